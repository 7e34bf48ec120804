/*
 * weft-cni: the executable that container runtimes exec as the CNI plugin.
 *
 * Why C: a runtime starts one plugin process per ADD/DEL, and Node.js needs over 20 ms
 * just to start, more than the whole reference bridge+host-local ADD. So this front end
 * only forwards the request (the CNI_* variables and stdin) to weft's long-lived CNI
 * server on this node, which keeps netlink sockets and state warm, and relays the answer.
 * It is static, so it runs on hosts without Node.js.
 *
 * Where the server listens: $WEFT_CNI_SOCKET, else the abstract unix socket "@weft-cni".
 * Abstract sockets belong to a network namespace, so the server of the host's namespace
 * (the node agent runs with hostNetwork) is exactly the one this process reaches.
 *
 * With no server listening it runs the standalone plugin ($WEFT_CNI_FALLBACK, else the
 * path compiled in as WEFT_FALLBACK, as "<path> cni"), giving it the same stdin. If there
 * is none, it answers with a CNI error (code 11, try again later) that says what to check.
 *
 * Wire format (all integers u32 big-endian):
 *   request:  "WCNI" count { len "KEY=VALUE" }*count len stdin
 *   response: "WCNR" exitCode len stdout len stderr
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef WEFT_FALLBACK
#define WEFT_FALLBACK ""
#endif

/* The whole request frame; the server (MAX_REQUEST_BYTES in src/cni/wire.ts) refuses more.
 * A real request is a few KiB. Checking here gives a clear error before anything is sent. */
#define MAX_REQUEST (1u << 20)
#define DEFAULT_SOCKET "@weft-cni"
#define REPLY_TIMEOUT_SECONDS 300

extern char **environ;

struct buf { char *data; size_t len, cap; };

static void fail_code(int code, const char *msg) {
  /* A CNI error object on stdout, as libcni expects. */
  printf("{\"code\":%d,\"msg\":\"%s\"}\n", code, msg);
  exit(1);
}

/* Code 11: try again later. */
static void fail(const char *msg) { fail_code(11, msg); }

/* With code 6 (failed to decode content): retrying cannot help. */
#define TOO_LARGE "larger than 1 MiB; a real one is a few KiB"

static void put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 4096;
    b->data = realloc(b->data, b->cap);
    if (!b->data) fail("weft-cni: out of memory");
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) {
  uint32_t be = htonl(v);
  put(b, &be, 4);
}

static void read_stdin(struct buf *in) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("weft-cni: cannot read the network configuration from stdin");
    if (n == 0) return;
    if (in->len + (size_t)n > MAX_REQUEST) fail_code(6, "weft-cni: the network configuration on stdin is " TOO_LARGE);
    put(in, chunk, (size_t)n);
  }
}

static int connect_server(void) {
  const char *path = getenv("WEFT_CNI_SOCKET");
  if (!path || !*path) path = DEFAULT_SOCKET;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  size_t n = strlen(path);
  if (n >= sizeof addr.sun_path) fail("weft-cni: WEFT_CNI_SOCKET is too long for a unix socket path");
  memcpy(addr.sun_path, path, n);
  if (path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = { .tv_sec = REPLY_TIMEOUT_SECONDS };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* No server: hand the request to the standalone plugin, feeding it the stdin we consumed. */
static void run_standalone(const struct buf *in) {
  const char *plugin = getenv("WEFT_CNI_FALLBACK");
  if (!plugin || !*plugin) plugin = WEFT_FALLBACK;
  if (!*plugin || access(plugin, X_OK) != 0)
    fail("weft-cni: the weft CNI server is not running on this node (nothing listens on its socket) "
         "and no standalone plugin is installed; check that the weft agent pod on this node is running");
  int memfd = memfd_create("weft-cni-stdin", MFD_CLOEXEC);
  if (memfd < 0 || write(memfd, in->data, in->len) != (ssize_t)in->len || lseek(memfd, 0, SEEK_SET) != 0)
    fail("weft-cni: cannot pass stdin to the standalone plugin");
  dup2(memfd, 0); /* dup2 clears FD_CLOEXEC on the copy */
  execl(plugin, plugin, "cni", (char *)NULL);
  fail("weft-cni: cannot execute the standalone plugin");
}

static int read_full(int fd, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static uint32_t read_u32(int fd) {
  uint32_t be;
  if (read_full(fd, &be, 4) < 0) fail("weft-cni: the weft CNI server closed the connection without an answer; see its log");
  return ntohl(be);
}

static void relay(int fd, int out) {
  uint32_t n = read_u32(fd);
  if (n > MAX_REQUEST) fail("weft-cni: malformed answer from the weft CNI server");
  char *p = malloc(n + 1);
  if (!p || read_full(fd, p, n) < 0) fail("weft-cni: truncated answer from the weft CNI server");
  for (size_t done = 0; done < n;) {
    ssize_t w = write(out, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  free(p);
}

int main(void) {
  struct buf in = { 0 }, req = { 0 };
  read_stdin(&in);

  int fd = connect_server();
  if (fd < 0) run_standalone(&in);

  uint32_t count = 0;
  for (char **e = environ; *e; e++) if (strncmp(*e, "CNI_", 4) == 0) count++;
  put(&req, "WCNI", 4);
  put_u32(&req, count);
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    size_t n = strlen(*e);
    put_u32(&req, (uint32_t)n);
    put(&req, *e, n);
  }
  put_u32(&req, (uint32_t)in.len);
  put(&req, in.data, in.len);
  if (req.len > MAX_REQUEST) fail_code(6, "weft-cni: the request (CNI_* variables and network configuration) is " TOO_LARGE);

  for (size_t done = 0; done < req.len;) {
    ssize_t w = send(fd, req.data + done, req.len - done, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("weft-cni: cannot send the request to the weft CNI server");
    done += (size_t)w;
  }
  shutdown(fd, SHUT_WR);

  char magic[4];
  if (read_full(fd, magic, 4) < 0 || memcmp(magic, "WCNR", 4) != 0)
    fail("weft-cni: no valid answer from the weft CNI server (timed out or crashed); see its log");
  int code = (int)read_u32(fd);
  relay(fd, 1);
  relay(fd, 2);
  return code;
}
