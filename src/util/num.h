/*
 * num.h — decimal integers read strictly, from a peer (RESP lengths and counts, both ways) or
 * from a user (flags): the one parser, so that every number kvs reads follows one rule.
 *
 * Strict: the whole of s[0, n) is the number — for a signed one an optional '-', then 1 to
 * max_digits decimal digits (leading zeros count), and nothing else: no '+', no space, no
 * trailing byte, no value outside the type. max_digits is the caller's bound on how much text a
 * number may be (18 for a length in a RESP request, 5 for a port); NUM_I64_DIGITS and
 * NUM_U64_DIGITS are the most the types can need. s need not be NUL-terminated: nothing past
 * s[n - 1] is read.
 */
#ifndef KVS_UTIL_NUM_H
#define KVS_UTIL_NUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NUM_I64_DIGITS 19 /* INT64_MAX, 9223372036854775807 */
#define NUM_U64_DIGITS 20 /* UINT64_MAX, 18446744073709551615 */

/* Digits only, within uint64_t. True with *out set, false (*out untouched) otherwise. */
bool num_parse_u64(const char *s, size_t n, size_t max_digits, uint64_t *out);

/* An optional '-' then digits, within int64_t ("-0" is 0). True with *out set, or false. */
bool num_parse_i64(const char *s, size_t n, size_t max_digits, int64_t *out);

#endif
