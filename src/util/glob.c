/*
 * glob.c — Redis's glob patterns (the rules in glob.h).
 */
#include "util/glob.h"

#include <ctype.h>

static unsigned char fold(unsigned char c, bool nocase)
{
    return nocase ? (unsigned char)tolower(c) : c;
}

/* The set at p[*i] (just past its '['), against the byte c: does c belong? *i ends past the
 * set: past its ']', or at the end of the pattern when it has none. */
static bool set_has(const unsigned char *p, size_t n, size_t *i, unsigned char c, bool nocase)
{
    bool neg = *i < n && p[*i] == '^', in = false;

    if (neg)
        ++*i;
    c = fold(c, nocase);
    for (; *i < n; ++*i) {
        if (p[*i] == '\\' && n - *i >= 2) {
            ++*i;
            in |= fold(p[*i], nocase) == c;
        } else if (p[*i] == ']') {
            ++*i;
            return in != neg;
        } else if (n - *i >= 3 && p[*i + 1] == '-') {
            unsigned char lo = fold(p[*i], nocase), hi = fold(p[*i + 2], nocase);
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            in |= c >= lo && c <= hi;
            *i += 2;
        } else {
            in |= fold(p[*i], nocase) == c;
        }
    }
    return in != neg;
}

/* The token at p[*i] (not a '*') against the byte c; *i moves past it. */
static bool token_has(const unsigned char *p, size_t n, size_t *i, unsigned char c, bool nocase)
{
    switch (p[*i]) {
    case '?':
        ++*i;
        return true;
    case '[':
        ++*i;
        return set_has(p, n, i, c, nocase);
    case '\\':
        if (n - *i >= 2)
            ++*i;
        /* fall through */
    default:
        return fold(p[(*i)++], nocase) == fold(c, nocase);
    }
}

bool glob_match(const char *pat, size_t plen, const char *str, size_t slen, bool nocase)
{
    const unsigned char *p = (const unsigned char *)pat, *s = (const unsigned char *)str;
    size_t pi = 0, si = 0, star_p = 0, star_s = 0;
    bool star = false;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            while (pi < plen && p[pi] == '*')
                pi++;
            if (pi == plen)
                return true;
            star = true;
            star_p = pi;
            star_s = si;
            continue;
        }
        size_t next = pi;
        if (pi < plen && token_has(p, plen, &next, s[si], nocase)) {
            pi = next;
            si++;
            continue;
        }
        if (!star)
            return false;
        pi = star_p; /* the '*' takes one more byte */
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}
