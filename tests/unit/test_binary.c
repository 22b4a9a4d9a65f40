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
 * the same directory, where the bytes come back from the segment files, hints and recovery
 * rather than from memory. Every successful get is also checked for the NUL byte kvs.h promises
 * after the value.
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

/* ---- fixture: a scratch directory and a store open in it ---- */

typedef struct fixture {
    char *dir;
    kvs_t *db;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->dir = tu_mkdtemp();
    f->db = tu_open(f->dir, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    kvs_close(f->db);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- writing and checking tables of pairs ---- */

static void put_pairs(kvs_t *db, const pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].val)
            assert_int_equal(kvs_set(db, p[i].key, p[i].klen, p[i].val, p[i].vlen), 0);
}

static void assert_pair(kvs_t *db, const pair *p)
{
    void *val = &val; /* anything but NULL, so that an absent key must clear it */
    size_t len;
    int rc = kvs_get(db, p->key, p->klen, &val, &len);

    if (!p->val) {
        assert_int_equal(rc, KVS_ENOTFOUND);
        assert_null(val);
        return;
    }
    assert_int_equal(rc, 0);
    assert_non_null(val);
    assert_int_equal(len, p->vlen);
    if (memcmp(val, p->val, len) != 0)
        fail_msg("value of a %zu-byte key differs from what was set", p->klen);
    assert_int_equal(((unsigned char *)val)[len], 0);
    kvs_free(val);
}

static void assert_pairs(kvs_t *db, const pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_pair(db, &p[i]);
}

static void reopen(fixture *f)
{
    assert_int_equal(kvs_close(f->db), 0);
    f->db = tu_open(f->dir, NULL);
}

/* Write the pairs, check them, reopen the directory, check them again. */
static void roundtrip(fixture *f, const pair *p, size_t n)
{
    put_pairs(f->db, p, n);
    assert_pairs(f->db, p, n);
    reopen(f);
    assert_pairs(f->db, p, n);
}

static void assert_key_count(kvs_t *db, uint64_t want)
{
    kvs_stats st;

    assert_int_equal(kvs_stats_get(db, &st), 0);
    assert_int_equal(st.keys, want);
}

/* ---- the cases ---- */

static void test_control_bytes(void **state)
{
    static const pair p[] = {
        PAIR("a\0b\r\n\xff", "v\0w\r\n\xff"),
        PAIR("\r\n", "\n\r"),
        PAIR("\xff", "\xff\xff\0\xff"),
        PAIR("line\nbreak", "\r\n\r\n"),
        ABSENT("a"), /* "a\0b\r\n\xff" cut at its NUL */
        ABSENT("a\0b"),
    };

    roundtrip(*state, p, COUNT(p));
    assert_key_count(((fixture *)*state)->db, 4);
}

static void test_keys_differ_after_nul(void **state)
{
    static const pair p[] = {
        PAIR("x\0a", "first"),
        PAIR("x\0b", "second"),
        PAIR("x", "third"),
        PAIR("x\0", "fourth"),
        ABSENT("x\0c"),
    };

    roundtrip(*state, p, COUNT(p));
    assert_key_count(((fixture *)*state)->db, 4);
}

static void test_empty_value(void **state)
{
    fixture *f = *state;
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

    roundtrip(*state, p, COUNT(p));
    assert_key_count(((fixture *)*state)->db, 2);
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
    unsigned char *big = random_bytes(BIG, 0x9e3779b97f4a7c15ull);
    pair p[] = {
        {"big", 3, big, BIG},
        PAIR("small", "after the big one"),
    };

    roundtrip(*state, p, COUNT(p));
    free(big);
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
    assert_key_count(((fixture *)*state)->db, 256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_differ_after_nul, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_single_byte_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
