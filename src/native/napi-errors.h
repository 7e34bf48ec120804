/*
 * What both of weft's Node-API addons need (weft_native.c, weft_bpf.c): the CHECK macro and
 * errors shaped like Node's system errors. A header of static functions, so each addon stays
 * one translation unit built by one cc call (scripts/build-native.ts).
 */
#ifndef WEFT_NAPI_ERRORS_H
#define WEFT_NAPI_ERRORS_H

#include <stdio.h>
#include <string.h>
#include <node_api.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)

/* An Error like Node's system errors: message "<what>: <strerror>", .code "ENOENT", .errno. */
static napi_value errno_error(napi_env env, const char *what, int err) {
  char msg[4300];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error, errnum;
  napi_create_string_utf8(env, strerrorname_np(err) ? strerrorname_np(err) : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_set_named_property(env, error, "code", code);
  return error;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  napi_throw(env, errno_error(env, what, err));
  return NULL;
}

#endif
