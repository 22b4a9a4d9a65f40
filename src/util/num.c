/*
 * num.c — the strict decimal parsers of num.h. The signed one is the unsigned one with a sign
 * in front and a tighter range, so the digit rules live in one loop.
 */
#include "util/num.h"

bool num_parse_u64(const char *s, size_t n, size_t max_digits, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > max_digits)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool num_parse_i64(const char *s, size_t n, size_t max_digits, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t v;

    if (!num_parse_u64(s + neg, n - neg, max_digits, &v) || v > (uint64_t)INT64_MAX + neg)
        return false;
    /* -(v - 1) - 1 reaches INT64_MIN without overflowing */
    *out = neg && v ? -(int64_t)(v - 1) - 1 : (int64_t)v;
    return true;
}
