/*
 * log.h — libkvs's one logging path.
 *
 * Everything the library wants an operator to see goes through kvs_logf, which formats the line
 * and hands it to the process-wide handler (kvs_log_set_handler in kvs.h). The level check is a
 * relaxed atomic load, so a disabled debug line costs one compare.
 */
#ifndef KVS_UTIL_LOG_H
#define KVS_UTIL_LOG_H

#include "kvs.h"

void kvs_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kvs_log_enabled(int level);
const char *kvs_log_level_name(int level);

#define LOG_DEBUG(...) kvs_logf(KVS_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) kvs_logf(KVS_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) kvs_logf(KVS_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) kvs_logf(KVS_LOG_ERROR, __VA_ARGS__)

#endif
