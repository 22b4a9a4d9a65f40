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
 *
 * And the other way: num_fmt_i64 writes a number as decimal text (every RESP reply's lengths and
 * integers go through it; snprintf costs several hundred instructions a call).
 */
#ifndef KVS_UTIL_NUM_H
#define KVS_UTIL_NUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NUM_I64_DIGITS 19 /* INT64_MAX, 9223372036854775807 */
#define NUM_U64_DIGITS 20 /* UINT64_MAX, 18446744073709551615 */

/* Digits only, within uint64_t: num_parse_u64. An optional '-' then digits, within int64_t
 * ("-0" is 0): num_parse_i64. True with *out set, false (*out untouched) otherwise. */

/* The digits of s[0, n), n >= 1: no overflow check is needed below 20 digits (10^19 - 1 <
 * UINT64_MAX), so the loop has none; only a 20th digit is checked. RESP lengths go through here
 * for every argument of every request, hence inline. */
static inline bool num__digits(const char *s, size_t n, size_t max_digits, uint64_t *out)
{
    size_t head = n < NUM_U64_DIGITS ? n : NUM_U64_DIGITS - 1;
    uint64_t v = 0;

    if (n == 0 || n > max_digits || n > NUM_U64_DIGITS)
        return false;
    for (size_t i = 0; i < head; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    if (head < n) {
        unsigned d = (unsigned)(unsigned char)s[head] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static inline bool num_parse_u64(const char *s, size_t n, size_t max_digits, uint64_t *out)
{
    return num__digits(s, n, max_digits, out);
}

static inline bool num_parse_i64(const char *s, size_t n, size_t max_digits, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t v;

    if (!num__digits(s + neg, n - neg, max_digits, &v) || v > (uint64_t)INT64_MAX + neg)
        return false;
    /* -(v - 1) - 1 reaches INT64_MIN without overflowing */
    *out = neg && v ? -(int64_t)(v - 1) - 1 : (int64_t)v;
    return true;
}

#define NUM_I64_TEXT 20 /* the longest decimal int64_t: "-9223372036854775808" */

/* Write v in decimal at dst (NUM_I64_TEXT bytes of room, no NUL); returns how many bytes. */
static inline size_t num_fmt_i64(char *dst, int64_t v)
{
    char tmp[NUM_I64_TEXT];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too, without overflow */
    size_t n = 0, k = 0;

    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        dst[k++] = '-';
    while (n)
        dst[k++] = tmp[--n];
    return k;
}

#endif
