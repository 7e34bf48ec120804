/*
 * weft's BPF addon: loads the fast path's object with libbpf, attaches its programs with tc,
 * and reads and writes its maps (src/fastpath/kernel.ts gives this a typed API).
 *
 * A separate addon from weft_native.node because it links libbpf: a host without libbpf.so.1
 * fails to load only this one, which the agent reports as the reason it runs without the fast
 * path; everything else keeps working.
 *
 * Every call is synchronous, on the calling thread and in its network namespace. Errors are
 * thrown as Node-style system errors (.code "ENOENT", .errno); a failed load also carries
 * .log, the last lines libbpf printed (the verifier's reason is among them).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <node_api.h>

#include "napi-errors.h"

/* ---- libbpf's messages, kept in a bounded buffer for the next error ---- */

#define LOG_SIZE 16384
static char log_buf[LOG_SIZE];
static size_t log_len;

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[2048];
  int n = vsnprintf(line, sizeof line, fmt, args);
  if (n <= 0) return 0;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  /* Keep the newest text: drop the oldest half when full. */
  if (log_len + (size_t)n >= LOG_SIZE) {
    size_t keep = log_len / 2;
    memmove(log_buf, log_buf + log_len - keep, keep);
    log_len = keep;
    if (log_len + (size_t)n >= LOG_SIZE) log_len = 0;
  }
  memcpy(log_buf + log_len, line, (size_t)n);
  log_len += (size_t)n;
  log_buf[log_len] = '\0';
  return n;
}


/* Like throw_errno, in libbpf's words for its own codes (4000 and up), with .log: what libbpf
 * printed since the call began. */
static napi_value throw_with_log(napi_env env, const char *what, int err) {
  char text[256], full[1024];
  libbpf_strerror(err, text, sizeof text);
  snprintf(full, sizeof full, "%s: %s", what, text);
  napi_value error = errno_error(env, what, err), log, message;
  napi_create_string_utf8(env, full, NAPI_AUTO_LENGTH, &message);
  napi_set_named_property(env, error, "message", message);
  napi_create_string_utf8(env, log_buf, log_len, &log);
  napi_set_named_property(env, error, "log", log);
  napi_throw(env, error);
  return NULL;
}

static int32_t arg_i32(napi_env env, napi_value v) {
  int32_t out = -1;
  napi_get_value_int32(env, v, &out);
  return out;
}

static uint32_t arg_u32(napi_env env, napi_value v) {
  uint32_t out = 0;
  napi_get_value_uint32(env, v, &out);
  return out;
}

/* A Uint8Array argument's bytes; NULL (and a thrown TypeError) when it is not one. */
static void *arg_bytes(napi_env env, napi_value v, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) { napi_throw_type_error(env, NULL, "expected a Uint8Array"); return NULL; }
  napi_typedarray_type type;
  void *data;
  napi_value buffer;
  size_t offset;
  napi_get_typedarray_info(env, v, &type, len, &data, &buffer, &offset);
  if (type != napi_uint8_array) { napi_throw_type_error(env, NULL, "expected a Uint8Array"); return NULL; }
  return data ? data : (void *)"";
}

static int arg_str(napi_env env, napi_value v, char *buf, size_t len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_string) { napi_throw_type_error(env, NULL, "expected a string"); return 0; }
  size_t n = 0;
  napi_get_value_string_utf8(env, v, buf, len, &n);
  if (n + 1 >= len) { napi_throw_range_error(env, NULL, "string too long"); return 0; }
  return 1;
}

static napi_value int_value(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

/* ---- the object ---- */

static void object_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  struct bpf_object **slot = data;
  if (*slot) bpf_object__close(*slot);
  free(slot);
}

/*
 * open(objectPath, pinRoot) -> { handle, programs: { name: { fd, id } },
 *                                maps: { name: { fd, keySize, valueSize, maxEntries } } }
 * Maps marked LIBBPF_PIN_BY_NAME are reused from pinRoot/<name> when pinned there (libbpf
 * refuses one whose type, sizes or flags differ), else created and pinned.
 */
static napi_value open_object(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096], pin_root[4096];
  if (!arg_str(env, argv[0], path, sizeof path) || !arg_str(env, argv[1], pin_root, sizeof pin_root)) return NULL;

  log_len = 0;
  log_buf[0] = '\0';
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root);
  struct bpf_object *obj = bpf_object__open_file(path, &opts);
  if (!obj) return throw_with_log(env, "opening the BPF object", errno);
  int err = bpf_object__load(obj);
  if (err) {
    bpf_object__close(obj);
    return throw_with_log(env, "loading the BPF object", -err);
  }

  napi_value result, programs, maps, handle;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_object(env, &programs));
  CHECK(napi_create_object(env, &maps));
  struct bpf_program *prog;
  bpf_object__for_each_program(prog, obj) {
    int fd = bpf_program__fd(prog);
    struct bpf_prog_info pinfo = {0};
    __u32 len = sizeof pinfo;
    if (bpf_obj_get_info_by_fd(fd, &pinfo, &len)) {
      int e = errno;
      bpf_object__close(obj);
      return throw_errno(env, "reading a program's id", e);
    }
    napi_value p;
    CHECK(napi_create_object(env, &p));
    CHECK(napi_set_named_property(env, p, "fd", int_value(env, fd)));
    CHECK(napi_set_named_property(env, p, "id", int_value(env, pinfo.id)));
    CHECK(napi_set_named_property(env, programs, bpf_program__name(prog), p));
  }
  struct bpf_map *map;
  bpf_object__for_each_map(map, obj) {
    napi_value m;
    CHECK(napi_create_object(env, &m));
    CHECK(napi_set_named_property(env, m, "fd", int_value(env, bpf_map__fd(map))));
    CHECK(napi_set_named_property(env, m, "keySize", int_value(env, bpf_map__key_size(map))));
    CHECK(napi_set_named_property(env, m, "valueSize", int_value(env, bpf_map__value_size(map))));
    CHECK(napi_set_named_property(env, m, "maxEntries", int_value(env, bpf_map__max_entries(map))));
    CHECK(napi_set_named_property(env, maps, bpf_map__name(map), m));
  }
  struct bpf_object **slot = malloc(sizeof *slot);
  if (!slot) { bpf_object__close(obj); napi_throw_error(env, NULL, "out of memory"); return NULL; }
  *slot = obj;
  CHECK(napi_create_external(env, slot, object_finalize, NULL, &handle));
  CHECK(napi_set_named_property(env, result, "handle", handle));
  CHECK(napi_set_named_property(env, result, "programs", programs));
  CHECK(napi_set_named_property(env, result, "maps", maps));
  return result;
}

/* close(handle): the object's fds; pins and tc attachments stay. Safe to repeat. */
static napi_value close_object(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct bpf_object **slot = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&slot) != napi_ok || !slot) {
    napi_throw_type_error(env, NULL, "expected a handle from open()");
    return NULL;
  }
  if (*slot) bpf_object__close(*slot);
  *slot = NULL;
  return NULL;
}

/* ---- tc (clsact ingress) ---- */

static void tc_target(napi_env env, napi_value *argv, struct bpf_tc_hook *hook, struct bpf_tc_opts *opts) {
  hook->ifindex = arg_i32(env, argv[0]);
  hook->attach_point = BPF_TC_INGRESS;
  opts->handle = arg_u32(env, argv[1]);
  opts->priority = arg_u32(env, argv[2]);
}

/* tcAttach(ifindex, handle, priority, progFd): creates clsact when missing, replaces our filter. */
static napi_value tc_attach(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  LIBBPF_OPTS(bpf_tc_hook, hook);
  LIBBPF_OPTS(bpf_tc_opts, opts);
  tc_target(env, argv, &hook, &opts);
  opts.prog_fd = arg_i32(env, argv[3]);
  opts.flags = BPF_TC_F_REPLACE;
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) return throw_errno(env, "creating the clsact qdisc", -err);
  err = bpf_tc_attach(&hook, &opts);
  if (err) return throw_errno(env, "attaching the tc filter", -err);
  return NULL;
}

/* tcDetach(ifindex, handle, priority) -> whether a filter was removed. */
static napi_value tc_detach(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  LIBBPF_OPTS(bpf_tc_hook, hook);
  LIBBPF_OPTS(bpf_tc_opts, opts);
  tc_target(env, argv, &hook, &opts);
  int err = bpf_tc_detach(&hook, &opts);
  napi_value out;
  /* Gone already: no filter (ENOENT), no clsact (EINVAL), no device (ENODEV). */
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) { napi_get_boolean(env, false, &out); return out; }
  if (err) return throw_errno(env, "detaching the tc filter", -err);
  napi_get_boolean(env, true, &out);
  return out;
}

/* tcQuery(ifindex, handle, priority) -> the program id of our filter there, or 0. */
static napi_value tc_query(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  LIBBPF_OPTS(bpf_tc_hook, hook);
  LIBBPF_OPTS(bpf_tc_opts, opts);
  tc_target(env, argv, &hook, &opts);
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) return int_value(env, 0);
  if (err) return throw_errno(env, "querying the tc filter", -err);
  return int_value(env, opts.prog_id);
}

/* ---- maps ---- */

/* A libbpf map call's answer: true when it found the entry, false for ENOENT, else a thrown error. */
static napi_value found(napi_env env, int rc, const char *what) {
  napi_value out;
  if (rc && errno != ENOENT) return throw_errno(env, what, errno);
  napi_get_boolean(env, rc == 0, &out);
  return out;
}

/* mapUpdate(fd, key, value): insert or replace. */
static napi_value map_update(napi_env env, napi_callback_info info) {
  size_t argc = 3, klen, vlen;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *key = arg_bytes(env, argv[1], &klen);
  if (!key) return NULL;
  void *value = arg_bytes(env, argv[2], &vlen);
  if (!value) return NULL;
  if (bpf_map_update_elem(arg_i32(env, argv[0]), key, value, BPF_ANY)) return throw_errno(env, "updating a map", errno);
  return NULL;
}

/* mapDelete(fd, key) -> whether an entry was there. */
static napi_value map_delete(napi_env env, napi_callback_info info) {
  size_t argc = 2, klen;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *key = arg_bytes(env, argv[1], &klen);
  if (!key) return NULL;
  return found(env, bpf_map_delete_elem(arg_i32(env, argv[0]), key), "deleting from a map");
}

/* mapLookup(fd, key, into) -> whether found; the value is written into `into` (its exact size). */
static napi_value map_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 3, klen, vlen;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *key = arg_bytes(env, argv[1], &klen);
  if (!key) return NULL;
  void *value = arg_bytes(env, argv[2], &vlen);
  if (!value) return NULL;
  return found(env, bpf_map_lookup_elem(arg_i32(env, argv[0]), key, value), "reading a map");
}

/* mapNextKey(fd, key | null, into) -> whether there is a next key (written into `into`). */
static napi_value map_next_key(napi_env env, napi_callback_info info) {
  size_t argc = 3, klen = 0, nlen;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  void *key = NULL;
  if (t != napi_null && t != napi_undefined && !(key = arg_bytes(env, argv[1], &klen))) return NULL;
  void *next = arg_bytes(env, argv[2], &nlen);
  if (!next) return NULL;
  return found(env, bpf_map_get_next_key(arg_i32(env, argv[0]), key, next), "listing a map");
}

/* ---- the rest ---- */

/* mountBpffs(path): mounts a BPF file system there (mode 0700: pins are root's). */
static napi_value mount_bpffs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096];
  if (!arg_str(env, argv[0], path, sizeof path)) return NULL;
  if (mount("bpf", path, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700")) return throw_errno(env, "mounting bpffs", errno);
  return NULL;
}

/* possibleCpus(): how many per-CPU slots a PERCPU map's value has. */
static napi_value possible_cpus(napi_env env, napi_callback_info info) {
  (void)info;
  int n = libbpf_num_possible_cpus();
  if (n < 0) return throw_errno(env, "counting possible CPUs", -n);
  return int_value(env, n);
}

static napi_value init(napi_env env, napi_value exports) {
  libbpf_set_print(on_libbpf_print);
  napi_property_descriptor props[] = {
    { "open", NULL, open_object, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, close_object, NULL, NULL, NULL, napi_default, NULL },
    { "tcAttach", NULL, tc_attach, NULL, NULL, NULL, napi_default, NULL },
    { "tcDetach", NULL, tc_detach, NULL, NULL, NULL, napi_default, NULL },
    { "tcQuery", NULL, tc_query, NULL, NULL, NULL, napi_default, NULL },
    { "mapUpdate", NULL, map_update, NULL, NULL, NULL, napi_default, NULL },
    { "mapDelete", NULL, map_delete, NULL, NULL, NULL, napi_default, NULL },
    { "mapLookup", NULL, map_lookup, NULL, NULL, NULL, napi_default, NULL },
    { "mapNextKey", NULL, map_next_key, NULL, NULL, NULL, napi_default, NULL },
    { "mountBpffs", NULL, mount_bpffs, NULL, NULL, NULL, napi_default, NULL },
    { "possibleCpus", NULL, possible_cpus, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
