/*
 * make_lmdb1.c — writes a small store of the lmdb engine in its on-disk format 1 (values stored
 * as themselves, no expiry/version header) into DIR. tests/data/lmdb1/ was written by it.
 *
 * It only means something built against a libkvs whose lmdb engine writes format 1 (commit
 * 1dfaa8f and before): built against a later libkvs it writes that build's format.
 * tests/data/README.md says how the committed files were made. What the store holds is fixed,
 * and tests/unit/test_lmdb.c (test_format1_converted) checks exactly this list:
 *
 *   "alpha"            "1"
 *   "" (empty key)     "empty key"
 *   "e"                "" (empty value)
 *   "\x00\xff"         "binary"
 *   "over"             "second"          (overwritten once)
 *   600 bytes, byte i = (i * 7 + 3) & 0xff   "long"   (a tag-0x01, hashed key)
 *   "gone"             removed (absent)
 *
 *   cc -I include tests/data/make_lmdb1.c BUILD/lib/libkvs.a BUILD/lib/libkvsutil.a \
 *      -lurcu-bp -lxxhash -llmdb -lpthread -o make_lmdb1
 *   ./make_lmdb1 tests/data/lmdb1      (DIR must not exist)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs.h"

static kvs_t *db;

static void check(const char *what, int rc)
{
    if (rc < 0) {
        fprintf(stderr, "make_lmdb1: %s: %s: %s\n", what, kvs_strerror(rc), kvs_last_error());
        exit(1);
    }
}

static void set(const void *k, size_t klen, const char *v)
{
    check("set", kvs_set(db, k, klen, v, strlen(v)));
}

int main(int argc, char **argv)
{
    unsigned char longkey[600];
    kvs_options opt;

    if (argc != 2) {
        fprintf(stderr, "usage: make_lmdb1 DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof longkey; i++)
        longkey[i] = (unsigned char)((i * 7 + 3) & 0xff);
    kvs_options_init(&opt);
    opt.engine = "lmdb";
    opt.sync = KVS_SYNC_ALWAYS;
    check("create", kvs_create(&db));
    check("configure", kvs_configure(db, &opt));
    check("open", kvs_open(db, argv[1]));
    set("alpha", 5, "1");
    set("", 0, "empty key");
    set("e", 1, "");
    set("\x00\xff", 2, "binary");
    set("over", 4, "first");
    set("over", 4, "second");
    set(longkey, sizeof longkey, "long");
    set("gone", 4, "soon");
    check("remove", kvs_remove(db, "gone", 4));
    check("close", kvs_close(db));
    return 0;
}
