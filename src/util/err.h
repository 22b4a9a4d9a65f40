/*
 * err.h — error detail for kvs_last_error().
 *
 * kvs_seterr records, in a thread-local buffer, why the call failed (with file names, offsets,
 * errno text) and returns the code, so a failing path reads `return kvs_seterr(KVS_EIO, ...)`.
 * kvs_errno converts an errno value at the place it happens (style habit 6).
 */
#ifndef KVS_UTIL_ERR_H
#define KVS_UTIL_ERR_H

int kvs_seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kvs_clearerr(void);
/* Map an errno value to a KVS_E* code. */
int kvs_errno(int e);

#endif
