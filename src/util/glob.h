/*
 * glob.h — Redis's glob patterns (KEYS, SCAN MATCH, `kvs scan PATTERN`), matched as Redis's
 * stringmatchlen matches them, so a pattern selects the same keys here as there:
 *
 *   *        any run of bytes, the empty one too
 *   ?        any one byte
 *   [abc]    one byte of the set; [^abc] one byte outside it; [a-z] a range (its ends may come
 *            in either order); \x inside a set is x itself
 *   \x       the byte x itself (a '\' at the very end of the pattern is itself)
 *
 * Redis's corners, kept: a set runs to its ']' or to the end of the pattern ("[ab" is the set
 * {a, b}); a '-' right before the ']' makes a range that ends at ']' ("[a-]"); a set that is
 * empty at the end of the pattern ("[") matches nothing. Both strings are byte strings with
 * lengths (NUL is a byte like another); ranges compare bytes unsigned (Redis compares them as
 * the platform's char, signed on x86: the two differ only for ranges across 0x80).
 *
 * Matching never recurses and takes O(plen × slen) steps at worst: a '*' remembers where it was,
 * and a mismatch after it resumes one byte further (a later '*' replaces the earlier one, which
 * is enough for patterns whose other tokens each match one byte).
 */
#ifndef KVS_UTIL_GLOB_H
#define KVS_UTIL_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* Does s (slen bytes) match pat (plen bytes)? nocase: ASCII letters compared without case. */
bool glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);

#endif
