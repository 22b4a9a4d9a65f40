/*
 * test_glob.c — util/glob.c against a table of patterns, Redis's corners included (glob.h):
 * the answers are those of Redis's stringmatchlen (src/util.c), case by case.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <setjmp.h> /* cmocka needs these before cmocka.h */
#include <cmocka.h>

#include "util/glob.h"

typedef struct glob_case {
    const char *pat, *str;
    bool match;
} glob_case;

static const glob_case cases[] = {
    {"", "", true},
    {"", "a", false},
    {"*", "", true},
    {"*", "anything", true},
    {"**", "x", true},
    {"a*", "a", true},
    {"a*", "ab", true},
    {"a*", "ba", false},
    {"*a", "ba", true},
    {"*a", "ab", false},
    {"a*b*c", "aXbYc", true},
    {"a*b*c", "abcabc", true},
    {"a*b*c", "acb", false},
    {"h?llo", "hello", true},
    {"h?llo", "hllo", false},
    {"?", "", false},
    {"h[ae]llo", "hallo", true},
    {"h[ae]llo", "hillo", false},
    {"h[^e]llo", "hallo", true},
    {"h[^e]llo", "hello", false},
    {"h[a-b]llo", "hbllo", true},
    {"h[a-b]llo", "hcllo", false},
    {"h[b-a]llo", "hallo", true}, /* ends in either order */
    {"[a-c-e]", "d", false},     /* a-c, then '-' and 'e' */
    {"[a-c-e]", "-", true},
    {"\\*", "*", true},
    {"\\*", "a", false},
    {"\\?", "?", true},
    {"\\[a]", "[a]", true},
    {"a\\", "a\\", true},        /* a '\' at the end is itself */
    {"[\\]]", "]", true},        /* escaped inside a set */
    {"[\\^a]", "^", true},
    {"[ab", "a", true},          /* a set runs to the end of the pattern */
    {"[ab", "c", false},
    {"[", "[", false},           /* an empty set at the end matches nothing */
    {"[^", "x", true},
    {"[]", "]", false},          /* "[]" is an empty set */
    {"[a-]", "b", false},        /* a range from 'a' to ']' ... */
    {"[a-]", "^", true},         /* ... holding ']' .. 'a' */
    {"*[a", "xxa", true},
    {"*.txt", "notes.txt", true},
    {"*.txt", "notes.txt.bak", false},
    {"user:*:name", "user:1000:name", true},
    {"user:*:name", "user:1000:email", false},
    {"a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    {"*?*?*", "ab", true},
    {"*?*?*", "a", false},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const glob_case *c = &cases[i];
        bool got = glob_match(c->pat, strlen(c->pat), c->str, strlen(c->str), false);
        if (got != c->match)
            fail_msg("pattern \"%s\" on \"%s\": %d, want %d", c->pat, c->str, got, c->match);
    }
}

static void test_nocase_and_binary(void **state)
{
    (void)state;
    assert_true(glob_match("HeLLo*", 6, "hello world", 11, true));
    assert_false(glob_match("HeLLo*", 6, "hello world", 11, false));
    assert_true(glob_match("[A-C]", 5, "b", 1, true));
    /* NUL is a byte like another, in the pattern and in the string */
    assert_true(glob_match("a\0?", 3, "a\0b", 3, false));
    assert_false(glob_match("a\0?", 3, "a\1b", 3, false));
    assert_true(glob_match("[\x80-\xff]", 5, "\xc3", 1, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_nocase_and_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
