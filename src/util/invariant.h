/*
 * invariant.h — internal invariants as code (style habit 12: LMDB's mdb_cassert, Redis's
 * serverAssert).
 *
 * KVS_ASSERT(cond) states what a function assumes of its caller and of the state it finds —
 * "called with wmu held", "inside an RCU read section", "the segment is sealed" — where a
 * comment used to. It is checked in debug, sanitizer and fuzz builds (no NDEBUG, or
 * KVS_CHECK_INVARIANTS, which the root CMakeLists sets for KVS_SANITIZE and KVS_FUZZ) and
 * compiles to nothing in release builds, so a check may cost what it likes but must have no
 * side effect. A broken invariant is a bug in kvs, not bad input: it logs where and aborts.
 *
 * Input from disk or from a socket is never asserted on: it is checked and refused with an error.
 */
#ifndef KVS_UTIL_INVARIANT_H
#define KVS_UTIL_INVARIANT_H

#if !defined(NDEBUG) || defined(KVS_CHECK_INVARIANTS)
#define KVS_INVARIANTS_CHECKED 1
#define KVS_ASSERT(cond)                                                                       \
    ((cond) ? (void)0 : kvs_invariant_failed(#cond, __FILE__, __LINE__, __func__))
#else
#define KVS_INVARIANTS_CHECKED 0
#define KVS_ASSERT(cond) ((void)sizeof(cond)) /* not evaluated, still compiled */
#endif

/* Log "invariant failed: cond at file:line (func)" at error level and abort(). */
_Noreturn void kvs_invariant_failed(const char *cond, const char *file, int line,
                                    const char *func);

#endif
