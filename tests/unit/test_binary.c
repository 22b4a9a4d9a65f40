/*
 * test_binary.c — keys and values are byte strings, not C strings.
 *
 * kvs.h promises binary safety: a key or value is whatever bytes the pointer and length say,
 * NUL, CR, LF and 0xFF included, and the empty string is a valid key and a valid value. The
 * classic ways to break that are all silent: a strlen or strcmp somewhere truncates a key at its
 * first NUL (so "x\0a" and "x\0b" become one key, or "a\0b..." becomes "a"); a line-oriented
 * format mangles CR/LF; a signed char turns 0xFF into -1; an empty value is confused with "no
 * value" or with a tombstone. And a large value must come back byte for byte.
 *
 * Each case is a table of pairs (a NULL value meaning "must be absent"), written through the
 * public API and checked twice: on the handle that wrote them, and after kvs_close + kvs_open of
 * the same directory, where the bytes come back from the engine's files (the kvs engine's
 * segments, hints and recovery; the lmdb engine's tagged and hashed keys) rather than from
 * memory. Every successful get is also checked for the NUL byte kvs.h promises after the value.
 * CTest runs the cases once per engine (test_binary_kvs, test_binary_lmdb): argv[1] names it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A key and the value it must hold; val NULL: the key must be absent. */
typedef struct pair {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} pair;

/* A pair of string literals, lengths taken from the literals (embedded NULs count). */
#define PAIR(k, v) { k, sizeof k - 1, v, sizeof v - 1 }
#define ABSENT(k) { k, sizeof k - 1, NULL, 0 }
#define COUNT(a) (sizeof a / sizeof a[0])

/* ---- writing and checking tables of pairs ---- */

static void put_pairs(kvs_t *db, const pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].val)
            tu_set_bin(db, p[i].key, p[i].klen, p[i].val, p[i].vlen);
}

static void assert_pairs(kvs_t *db, const pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tu_assert_bin(db, p[i].key, p[i].klen, p[i].val, p[i].vlen);
}

/* Write the pairs, check them, reopen the directory, check them again. */
static void roundtrip(tu_fixture *f, const pair *p, size_t n)
{
    put_pairs(f->db, p, n);
    assert_pairs(f->db, p, n);
    tu_fx_reopen(f);
    assert_pairs(f->db, p, n);
}

static void assert_key_count(kvs_t *db, uint64_t want)
{
    assert_int_equal(tu_stats(db).keys, want);
}

/* ---- the cases ---- */

static void test_control_bytes(void **state)
{
    static const pair p[] = {
        PAIR("a\0b\r\n\xff", "v\0w\r\n\xff"),
        PAIR("\r\n", "\n\r"),
        PAIR("\xff", "\xff\xff\0\xff"),
        PAIR("line\nbreak", "\r\n\r\n"),
        PAIR("\r\n\xff\x00\xff", "\n\n\r\0x"), /* "\r\n" is another key */
        ABSENT("a"), /* "a\0b\r\n\xff" cut at its NUL */
        ABSENT("a\0b"),
        ABSENT("\r\n\xff"),
    };

    roundtrip(*state, p, COUNT(p));
    assert_key_count(((tu_fixture *)*state)->db, 5);
}

static void test_keys_differ_after_nul(void **state)
{
    static const pair p[] = {
        PAIR("x\0a", "first"),
        PAIR("x\0b", "second"),
        PAIR("x", "third"),
        PAIR("x\0", "fourth"),
        PAIR("x\0\0", "\xff\xfe\0\0"), /* a value that ends in NULs */
        ABSENT("x\0c"),
    };

    roundtrip(*state, p, COUNT(p));
    assert_key_count(((tu_fixture *)*state)->db, 5);
}

static void test_empty_value(void **state)
{
    tu_fixture *f = *state;
    static const pair p[] = {
        PAIR("empty", ""),
        PAIR("emptied", ""), /* had a value first */
        PAIR("after", "still here"),
    };

    assert_int_equal(kvs_set(f->db, "emptied", 7, "full", 4), 0);
    roundtrip(f, p, COUNT(p));
    assert_key_count(f->db, 3);
}

static void test_empty_key(void **state)
{
    static const pair p[] = {
        PAIR("", "value of the empty key"),
        PAIR("\0", "value of the one-NUL key"),
    };
    tu_fixture *f = *state;

    tu_assert_bin(f->db, "", 0, NULL, 0);
    roundtrip(f, p, COUNT(p));
    assert_key_count(f->db, 2);
    /* the empty key is removed like any other */
    assert_int_equal(kvs_remove(f->db, "", 0), 0);
    tu_assert_bin(f->db, "", 0, NULL, 0);
    assert_int_equal(kvs_remove(f->db, "", 0), KVS_ENOTFOUND);
    tu_assert_bin(f->db, p[1].key, p[1].klen, p[1].val, p[1].vlen);
    assert_key_count(f->db, 1);
}

#define BIG (16u << 20)

/* Deterministic pseudo-random bytes (xorshift64). */
static unsigned char *random_bytes(size_t n, uint64_t seed)
{
    unsigned char *p = malloc(n);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        p[i] = (unsigned char)(seed >> 24);
    }
    return p;
}

static void test_big_value(void **state)
{
    unsigned char *big = random_bytes(BIG, 0x9e3779b97f4a7c15ull), *lk = tu_filled(1000, 4);
    pair p[] = {
        {"big", 3, big, BIG},
        {lk, 1000, big, BIG}, /* behind a long key (lmdb: a hashed one, the key before it) */
        PAIR("small", "after the big one"),
    };

    roundtrip(*state, p, COUNT(p));
    free(big);
    free(lk);
}

static void test_all_single_byte_keys(void **state)
{
    static unsigned char keys[256], vals[256][256];
    pair p[256];

    for (int b = 0; b < 256; b++) {
        keys[b] = (unsigned char)b;
        memset(vals[b], b, (size_t)b + 1);
        p[b] = (pair){&keys[b], 1, vals[b], (size_t)b + 1}; /* byte b, b + 1 times */
    }
    roundtrip(*state, p, COUNT(p));
    assert_key_count(((tu_fixture *)*state)->db, 256);
}

int main(int argc, char **argv)
{
    const char *group = tu_engine_from_args(argc, argv);
    const struct CMUnitTest tests[] = {
        TU_CASE_OPEN(test_control_bytes),
        TU_CASE_OPEN(test_keys_differ_after_nul),
        TU_CASE_OPEN(test_empty_value),
        TU_CASE_OPEN(test_empty_key),
        TU_CASE_OPEN(test_big_value),
        TU_CASE_OPEN(test_all_single_byte_keys),
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
