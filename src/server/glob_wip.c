/* TEMPORARY (not committed): until h-kvs13's src/util/glob.c is merged. */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
static bool gm(const char *p, size_t pl, const char *s, size_t sl, bool nc)
{
    while (pl && sl) {
        switch (*p) {
        case '*':
            while (pl > 1 && p[1] == '*') p++, pl--;
            if (pl == 1) return true;
            for (; sl; s++, sl--) if (gm(p + 1, pl - 1, s, sl, nc)) return true;
            return gm(p + 1, pl - 1, s, 0, nc);
        case '?': s++, sl--; break;
        case '[': {
            bool neg, match = false;
            p++, pl--;
            neg = pl && *p == '^';
            if (neg) p++, pl--;
            while (pl && *p != ']') {
                if (*p == '\\' && pl >= 2) { p++, pl--; if (*p == *s) match = true; }
                else if (pl >= 3 && p[1] == '-') {
                    int a = (unsigned char)p[0], b = (unsigned char)p[2], c = (unsigned char)*s;
                    if (a > b) { int t = a; a = b; b = t; }
                    if (nc) { a = tolower(a); b = tolower(b); c = tolower(c); }
                    p += 2, pl -= 2;
                    if (c >= a && c <= b) match = true;
                } else if (nc ? tolower((unsigned char)*p) == tolower((unsigned char)*s) : *p == *s) match = true;
                p++, pl--;
            }
            if (pl == 0) { p--, pl++; }
            if (neg) match = !match;
            if (!match) return false;
            s++, sl--;
            break;
        }
        case '\\':
            if (pl >= 2) p++, pl--;
            /* fall through */
        default:
            if (nc ? tolower((unsigned char)*p) != tolower((unsigned char)*s) : *p != *s) return false;
            s++, sl--;
        }
        p++, pl--;
        if (sl == 0) { while (pl && *p == '*') p++, pl--; break; }
    }
    return pl == 0 && sl == 0;
}
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase)
{
    return gm(pat, plen, s, slen, nocase);
}
