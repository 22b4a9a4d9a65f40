/*
 * invariant.c — what a broken invariant does (invariant.h): say where, then abort.
 *
 * The line goes to stderr as well as the log handler: the handler may be a test's or may be
 * silenced, and the abort that follows must never be a mystery.
 */
#include "util/invariant.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"

void kvs_invariant_failed(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "kvs: invariant failed: %s at %s:%d (%s)\n", cond, file, line, func);
    LOG_ERROR("invariant failed: %s at %s:%d (%s)", cond, file, line, func);
    abort();
}
