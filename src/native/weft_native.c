/*
 * weft's native addon: the few system calls Node.js cannot make.
 *
 * - netlink sockets (AF_NETLINK), optionally opened inside another network namespace:
 *   setns() affects only the calling thread, and we switch there and back within one
 *   synchronous call, so no JavaScript ever runs in the other namespace.
 * - flock(), so weft shares host-local's lock file with the reference plugins.
 * - SO_PEERCRED, so the CNI server only serves root callers.
 *
 * Everything else (message encoding, retries, policy) lives in TypeScript.
 * Built against Node-API only, so one build serves every Node version >= 18.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>
#include <node_api.h>

#include "napi-errors.h"


static int arg_int(napi_env env, napi_value v) {
  int32_t out = -1;
  napi_get_value_int32(env, v, &out);
  return out;
}

/* Copies a JS string argument into buf; returns 0 when the value is null/undefined. */
static int arg_str(napi_env env, napi_value v, char *buf, size_t len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_string) return 0;
  size_t n = 0;
  napi_get_value_string_utf8(env, v, buf, len, &n);
  return 1;
}

/* Runs fn(ctx) with the calling thread inside the network namespace at path. */
static int in_netns(const char *path, int (*fn)(void *), void *ctx, int *err) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) { *err = errno; return -1; }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) { *err = errno; close(self); return -1; }
  if (setns(target, CLONE_NEWNET) < 0) { *err = errno; close(target); close(self); return -1; }
  int rc = fn(ctx);
  int saved = errno;
  if (setns(self, CLONE_NEWNET) < 0) abort(); /* cannot continue in the wrong namespace */
  close(target);
  close(self);
  if (rc < 0) *err = saved;
  return rc;
}

static int open_netlink(void *ctx) {
  int protocol = *(int *)ctx;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -1;
  int one = 1, size = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct sockaddr_nl addr = { .nl_family = AF_NETLINK };
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { int e = errno; close(fd); errno = e; return -1; }
  return fd;
}

/* nlOpen(protocol: number, netnsPath?: string | null): number */
static napi_value nl_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int protocol = arg_int(env, argv[0]);
  char path[4096];
  int fd, err = 0;
  if (argc > 1 && arg_str(env, argv[1], path, sizeof path)) {
    fd = in_netns(path, open_netlink, &protocol, &err);
    if (fd < 0) return throw_errno(env, path, err);
  } else {
    fd = open_netlink(&protocol);
    if (fd < 0) return throw_errno(env, "netlink socket", errno);
  }
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* nlSend(fd: number, data: Uint8Array): number */
static napi_value nl_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data; size_t len;
  CHECK(napi_get_typedarray_info(env, argv[1], NULL, &len, &data, NULL, NULL));
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  ssize_t n;
  do n = sendto(arg_int(env, argv[0]), data, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "netlink send", errno);
  CHECK(napi_create_int32(env, (int32_t)n, &out));
  return out;
}

/* nlRecv(fd: number, into: Uint8Array, timeoutMs: number): number — 0 on timeout.
 * MSG_TRUNC makes recv() return the datagram's real length, so a reply larger than `into`
 * shows up as a length > into.length instead of being cut short without a trace. */
static napi_value nl_recv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = arg_int(env, argv[0]);
  void *data; size_t len;
  CHECK(napi_get_typedarray_info(env, argv[1], NULL, &len, &data, NULL, NULL));
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int ready;
  do ready = poll(&p, 1, arg_int(env, argv[2]));
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return throw_errno(env, "netlink poll", errno);
  ssize_t n = 0;
  if (ready > 0) {
    do n = recv(fd, data, len, MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return throw_errno(env, "netlink recv", errno);
  }
  CHECK(napi_create_int32(env, (int32_t)n, &out));
  return out;
}

/* close(fd: number): void */
static napi_value fd_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (close(arg_int(env, argv[0])) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

/* flock(fd: number, mode: 'ex' | 'sh' | 'un', wait: boolean): boolean — false if busy and !wait */
static napi_value fd_flock(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char mode[4] = "";
  arg_str(env, argv[1], mode, sizeof mode);
  bool wait = false;
  napi_get_value_bool(env, argv[2], &wait);
  int op = strcmp(mode, "un") == 0 ? LOCK_UN : strcmp(mode, "sh") == 0 ? LOCK_SH : LOCK_EX;
  if (!wait) op |= LOCK_NB;
  int rc;
  do rc = flock(arg_int(env, argv[0]), op);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EWOULDBLOCK) return throw_errno(env, "flock", errno);
  CHECK(napi_get_boolean(env, rc == 0, &out));
  return out;
}

/* peerCred(fd: number): { pid, uid, gid } of a connected unix socket's peer */
static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(arg_int(env, argv[0]), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return throw_errno(env, "SO_PEERCRED", errno);
  CHECK(napi_create_object(env, &out));
  napi_create_int32(env, cred.pid, &v); napi_set_named_property(env, out, "pid", v);
  napi_create_uint32(env, cred.uid, &v); napi_set_named_property(env, out, "uid", v);
  napi_create_uint32(env, cred.gid, &v); napi_set_named_property(env, out, "gid", v);
  return out;
}

struct write_ctx { const char *file; const char *data; };

static int write_file(void *p) {
  struct write_ctx *ctx = p;
  int fd = open(ctx->file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, ctx->data, strlen(ctx->data));
  int e = errno;
  close(fd);
  errno = e;
  return n < 0 ? -1 : 0;
}

/* writeInNetns(netnsPath: string, file: string, data: string): void — e.g. a /proc/sys/net knob */
static napi_value write_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096], file[4096], data[256];
  if (!arg_str(env, argv[0], path, sizeof path) || !arg_str(env, argv[1], file, sizeof file) ||
      !arg_str(env, argv[2], data, sizeof data)) {
    napi_throw_type_error(env, NULL, "writeInNetns(netnsPath, file, data) takes three strings");
    return NULL;
  }
  struct write_ctx ctx = { file, data };
  int err = 0;
  if (in_netns(path, write_file, &ctx, &err) < 0) return throw_errno(env, file, err);
  return NULL;
}


/*
 * nlRequestAsync(protocol, netnsPath | null, message, timeoutMs): Promise<Buffer>
 * One netlink request on a thread-pool thread, with a socket of its own (opened in the
 * namespace there: setns only moves that worker thread, and we move it back). For requests
 * the kernel answers slowly, such as deleting a veth (it waits for the device to be fully
 * unregistered, ~20 ms): the event loop keeps serving, and concurrent ones overlap.
 * Resolves with the first reply datagram (the ACK); errors while sending reject.
 */
struct async_request {
  napi_async_work work;
  napi_deferred deferred;
  int protocol;
  int has_netns;
  char netns[4096];
  unsigned char *message;
  size_t message_len;
  int timeout_ms;
  unsigned char reply[65536];
  ssize_t reply_len;
  int err;
  const char *failed;
};

static void async_execute(napi_env env, void *data) {
  (void)env;
  struct async_request *r = data;
  int fd, err = 0;
  if (r->has_netns) fd = in_netns(r->netns, open_netlink, &r->protocol, &err);
  else { fd = open_netlink(&r->protocol); err = errno; }
  if (fd < 0) { r->err = err; r->failed = "netlink socket"; return; }
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  ssize_t n;
  do n = sendto(fd, r->message, r->message_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) { r->err = errno; r->failed = "netlink send"; close(fd); return; }
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int ready;
  do ready = poll(&p, 1, r->timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready <= 0) { r->err = ready == 0 ? ETIMEDOUT : errno; r->failed = "netlink poll"; close(fd); return; }
  do n = recv(fd, r->reply, sizeof r->reply, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) { r->err = errno; r->failed = "netlink recv"; close(fd); return; }
  r->reply_len = n;
  close(fd);
}

static void async_complete(napi_env env, napi_status status, void *data) {
  struct async_request *r = data;
  if (status == napi_ok && r->err == 0) {
    napi_value buffer;
    void *copy;
    napi_create_buffer_copy(env, (size_t)r->reply_len, r->reply, &copy, &buffer);
    napi_resolve_deferred(env, r->deferred, buffer);
  } else {
    char what[4200];
    snprintf(what, sizeof what, "%s%s%s", r->failed ? r->failed : "netlink request",
             r->has_netns ? " in " : "", r->has_netns ? r->netns : "");
    napi_value error = errno_error(env, what, r->err ? r->err : EIO);
    napi_reject_deferred(env, r->deferred, error);
  }
  napi_delete_async_work(env, r->work);
  free(r->message);
  free(r);
}

static napi_value nl_request_async(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], promise, name;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct async_request *r = calloc(1, sizeof *r);
  if (!r) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  r->protocol = arg_int(env, argv[0]);
  r->has_netns = arg_str(env, argv[1], r->netns, sizeof r->netns);
  void *data; size_t len;
  if (napi_get_typedarray_info(env, argv[2], NULL, &len, &data, NULL, NULL) != napi_ok) {
    free(r);
    napi_throw_type_error(env, NULL, "nlRequestAsync: message must be a Uint8Array");
    return NULL;
  }
  r->message = malloc(len);
  if (!r->message) { free(r); napi_throw_error(env, NULL, "out of memory"); return NULL; }
  memcpy(r->message, data, len);
  r->message_len = len;
  r->timeout_ms = arg_int(env, argv[3]);
  CHECK(napi_create_promise(env, &r->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "weft:netlink", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, async_execute, async_complete, r, &r->work));
  CHECK(napi_queue_async_work(env, r->work));
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "nlOpen", NULL, nl_open, NULL, NULL, NULL, napi_default, NULL },
    { "nlSend", NULL, nl_send, NULL, NULL, NULL, napi_default, NULL },
    { "nlRecv", NULL, nl_recv, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL },
    { "flock", NULL, fd_flock, NULL, NULL, NULL, napi_default, NULL },
    { "peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_default, NULL },
    { "writeInNetns", NULL, write_in_netns, NULL, NULL, NULL, napi_default, NULL },
    { "nlRequestAsync", NULL, nl_request_async, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
