/*
 * fuzz_seeds.c — writes the seed corpora of the fuzz targets: fuzz_seeds DIR fills
 * DIR/<target>/ (make fuzz-seeds: tests/fuzz/corpus/, which is committed).
 *
 * Each seed is an input in its target's format (see the target's opening comment): a
 * configuration byte and four bytes of seed before a client's bytes (fuzz_resp,
 * fuzz_commands), a selector and flags before a record or file (fuzz_decoders), a list of edits
 * (fuzz_recover). The on-disk seeds of fuzz_decoders are files the engine itself writes: a
 * small store is built here (rotations, removes, a compaction) and its segments, hints and
 * MANIFEST copied out. The others are written by hand, to start the fuzzer at the interesting
 * places: quoting and escapes in inline commands, binary bulks, length headers at and past the
 * limits, authentication, batches of writes, protocol errors in the middle of a pipeline.
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/log/segment.h"
#include "fuzzutil.h"
#include "kvs.h"
#include "util/io.h"

static const char *out_dir;

static void seed(const char *target, const char *name, const void *head, size_t hn,
                 const void *body, size_t bn)
{
    char path[4096];
    uint8_t *b = malloc(hn + bn + 1);

    FZ_CHECK(b, "out of memory");
    if (hn)
        memcpy(b, head, hn);
    if (bn)
        memcpy(b + hn, body, bn);
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FZ_CHECK(fz_write_file(path, b, hn + bn) == 0, "cannot write %s: %s", path, strerror(errno));
    free(b);
}

/* A stream seed: configuration byte, four bytes of seed, then s (n bytes; -1: strlen). */
static void stream(const char *target, const char *name, uint8_t cfg, const char *s, long n)
{
    uint8_t head[5] = {cfg, 0x5e, 0xed, 0x01, 0x02};
    seed(target, name, head, sizeof head, s, n < 0 ? strlen(s) : (size_t)n);
}

static const char tour[] =
    "PING\r\n"
    "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n"
    "SET k1 v1\r\n"
    "*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$8\r\nb\r\nin\0ry\r\n"
    "GET k1\r\nGET missing\r\n"
    "MSET a 1 b 2 c 3\r\n"
    "MGET a b c d\r\n"
    "DEL a a b zz\r\n"
    "EXISTS a b c c\r\n"
    "DBSIZE\r\n"
    "SET \"quoted key\" 'single \\' quoted'\r\n"
    "GET \"quoted key\"\r\n"
    "SET \"\\x00\\xff\\r\\n\\t\" \"esc\\\"aped\"\r\n"
    "SELECT 0\r\nSELECT 1\r\n"
    "INFO\r\nINFO keyspace\r\nCOMMAND COUNT\r\nCOMMAND DOCS\r\nCONFIG GET *\r\n"
    "HELLO\r\nHELLO 2\r\nHELLO 3\r\n"
    "SET k v EX 10\r\nMSET a\r\nGETX k\r\nPING a b\r\nECHO\r\n"
    "\r\n*0\r\n*-1\r\n"
    "SHUTDOWN NOSAVE\r\nSHUTDOWN BAD\r\n"
    "QUIT\r\nPING\r\n";

static void resp_seeds(void)
{
    const char *t = "fuzz_resp";
    static const char big[] =
        "*1\r\n$536870912\r\n"; /* exactly max_bulk, never delivered */
    stream(t, "tour-bytewise", 0x00, tour, sizeof tour - 1);
    stream(t, "tour-pieces", 0x0c, tour, sizeof tour - 1);
    stream(t, "tour-small-limits", 0x05, tour, sizeof tour - 1);
    stream(t, "big-bulk-header", 0x08, big, -1);
    stream(t, "bulk-over-limit", 0x08, "*1\r\n$536870913\r\nx\r\n", -1);
    stream(t, "count-limit", 0x04, "*1048576\r\n$1\r\na\r\n", -1);
    stream(t, "count-over-limit", 0x04, "*1048577\r\n", -1);
    stream(t, "negative-counts", 0x0c, "*-1\r\n*0\r\n*1\r\n$-1\r\n", -1);
    stream(t, "dollar-inline", 0x00, "$3\r\nGET\r\n", -1);
    stream(t, "lf-only", 0x04, "GET a\nSET b c\n*1\n$1\na\n", -1);
    stream(t, "missing-crlf", 0x04, "*2\r\n$3\r\nGET\r\n$1\r\nkxx\r\n", -1);
    stream(t, "unbalanced", 0x04, "SET \"a b\r\nSET 'a\r\nSET \"a\"b c\r\n", -1);
    stream(t, "escapes", 0x0c, "SET \"\\x4\" \"\\xZZ\\q\\\\\" '\\'\\x41'\r\n", -1);
    stream(t, "unauth-limits", 0x02,
           "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$9\r\n123456789\r\n$1\r\nx\r\n*4\r\n", -1);
    stream(t, "small-limits-edge", 0x01,
           "*6\r\n$40\r\n0123456789012345678901234567890123456789\r\n"
           "0123456789012345678901234567890123456789\r\n", -1);
    stream(t, "long-count-line", 0x05, "*000000000000000000000000000000000000001\r\n", -1);
    stream(t, "whitespace", 0x0c, " \t\v\f GET \t k \r\n\r\n \r\n", -1);
}

static void command_seeds(void)
{
    const char *t = "fuzz_commands";
    static const char auth[] =
        "GET k\r\nAUTH wrong\r\nAUTH default wrong\r\nHELLO 2 AUTH default wrong\r\n"
        "*11\r\n"; /* more than the unauthenticated limit: a protocol error */
    static const char auth_ok[] =
        "PING\r\nAUTH pw\r\nSET k v\r\nGET k\r\nAUTH a b c\r\nQUIT\r\n";
    static const char hello_auth[] =
        "HELLO 2 AUTH default pw SETNAME me\r\nSET k v\r\nDEL k\r\n";
    static const char batch_then_error[] =
        "SET a 1\r\nSET b 2\r\nDEL a\r\nMSET c 3 d 4\r\n*2\r\n$3\r\nGET\r\n$1\r\nc\r\n"
        "SET e 5\r\nDEL a b c\r\n*1\r\nX";
    char rot[4096];
    size_t n = 0;
    for (int i = 0; i < 12; i++)
        n += (size_t)snprintf(rot + n, sizeof rot - n,
                              "SET key%d vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
                              "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
                              "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv%d\r\n",
                              i % 5, i);
    n += (size_t)snprintf(rot + n, sizeof rot - n, "DEL key1 key2\r\nDBSIZE\r\nMGET key0 key1\r\n");

    stream(t, "tour-bytewise", 0x00, tour, sizeof tour - 1);
    stream(t, "tour-pieces", 0x30, tour, sizeof tour - 1);
    stream(t, "tour-lmdb", 0x22, tour, sizeof tour - 1);
    stream(t, "tour-small-limits", 0x50, tour, sizeof tour - 1);
    stream(t, "auth-refused", 0x11, auth, sizeof auth - 1);
    stream(t, "auth-ok", 0x21, auth_ok, sizeof auth_ok - 1);
    stream(t, "hello-auth", 0x31, hello_auth, sizeof hello_auth - 1);
    stream(t, "batch-then-error", 0x20, batch_then_error, sizeof batch_then_error - 1);
    stream(t, "rotations-reopen", 0x2c, rot, (long)n);
    stream(t, "rotations-lmdb-reopen", 0x2a, rot, (long)n);
}

/* ---- fuzz_decoders: files the engine writes ---- */

static void dec_seed(const char *name, uint8_t sel, uint8_t flags, const uint8_t *extra,
                     size_t en, const uint8_t *b, size_t n)
{
    uint8_t head[8] = {sel, flags};
    if (en)
        memcpy(head + 2, extra, en);
    seed("fuzz_decoders", name, head, 2 + en, b, n);
}

static void decoder_seeds(void)
{
    char dir[4096], path[8192];
    kvs_t *db;
    kvs_options opt;
    DIR *d;
    struct dirent *de;
    char val[300];

    fz_path(dir, sizeof dir, "store");
    kvs_options_init(&opt);
    opt.engine = "kvs";
    opt.sync = KVS_SYNC_NEVER;
    opt.segment_size = 4096;
    opt.auto_compact = 0;
    FZ_CHECK(kvs_create(&db) == 0 && kvs_configure(db, &opt) == 0 && kvs_open(db, dir) == 0,
             "cannot open a store in %s: %s", dir, kvs_last_error());
    for (int round = 0; round < 8; round++) {
        if (round == 4) /* a compaction in the middle: the manifest drops segments */
            FZ_CHECK(kvs_compact(db) >= 0, "compact: %s", kvs_last_error());
        for (int k = 0; k < 16; k++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "key-%d", k);
            size_t vl = (size_t)(k * 29 + round * 53) % 200 + 1;
            memset(val, 'a' + k, vl);
            FZ_CHECK(kvs_set(db, key, (size_t)kl, val, vl) == 0, "set: %s", kvs_last_error());
            if ((k + round) % 5 == 0)
                FZ_CHECK(kvs_remove(db, key, (size_t)kl) == 0, "remove: %s", kvs_last_error());
        }
    }
    FZ_CHECK(kvs_close(db) == 0, "close: %s", kvs_last_error());

    FZ_CHECK((d = opendir(dir)) != NULL, "cannot list %s", dir);
    while ((de = readdir(d)) != NULL) {
        uint8_t *b;
        size_t n;
        uint32_t id;
        char name[128];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (de->d_name[0] == '.' || fz_read_file(path, &b, &n) < 0)
            continue;
        if ((id = seg_parse_name(de->d_name, "log")) != 0) {
            snprintf(name, sizeof name, "segment-%u", id);
            dec_seed(name, 1, 0, NULL, 0, b, n);
            snprintf(name, sizeof name, "segment-%u-fixed", id);
            dec_seed(name, 1, 3, NULL, 0, b, n);
            snprintf(name, sizeof name, "segment-%u-torn", id);
            dec_seed(name, 1, 3, NULL, 0, b, n > 100 ? n - 37 : n);
            /* the first records, one by one */
            size_t off = SEG_HDR;
            for (int r = 0; r < 3 && off + REC_HDR <= n; r++) {
                uint64_t len = rec_len(le_get32(b + off + 17), le_get32(b + off + 21));
                if (len > n - off)
                    break;
                snprintf(name, sizeof name, "record-%u-%d", id, r);
                dec_seed(name, 0, 0, NULL, 0, b + off, (size_t)len);
                off += (size_t)len;
            }
        } else if ((id = seg_parse_name(de->d_name, "hint")) != 0) {
            char log[8192];
            struct stat st;
            uint8_t size[4];
            snprintf(log, sizeof log, "%s/%06u.log", dir, id);
            FZ_CHECK(stat(log, &st) == 0, "no segment for %s", path);
            le_put32(size, (uint32_t)st.st_size);
            /* fuzz_decoders checks a hint against segment 1: the id is made right with bit 0 */
            snprintf(name, sizeof name, "hint-%u", id);
            dec_seed(name, 2, 3, size, 4, b, n);
            snprintf(name, sizeof name, "hint-%u-unfixed", id);
            dec_seed(name, 2, 0, size, 4, b, n);
        } else if (strcmp(de->d_name, "MANIFEST") == 0) {
            dec_seed("manifest", 3, 0, NULL, 0, b, n);
            dec_seed("manifest-torn", 3, 0, NULL, 0, b, n - 5);
            dec_seed("manifest-fixed", 3, 3, NULL, 0, b, n);
        }
        free(b);
    }
    closedir(d);
    fz_rmrf(dir);
}

/* ---- fuzz_recover: edit lists ---- */

static void recover_seeds(void)
{
    /* file indices refer to the template's files sorted by name; today
     * 0 000003.hint 1 000003.log 2 000004.hint 3 000004.log 4 000005.hint 5 000005.log
     * 6 000006.log (active) 7 ENGINE 8 MANIFEST — seeds stay valid inputs if that changes */
    static const struct {
        const char *name;
        uint8_t bytes[32];
        size_t n;
    } s[] = {
        {"nothing", {0}, 0},
        {"truncate-active", {2, 6, 0xf4, 0x01}, 4},
        {"truncate-active-in-header", {2, 6, 30, 0}, 4},
        {"flip-sealed", {1, 1, 100, 0, 3}, 5},
        {"flip-sealed-header", {1, 3, 20, 0, 6}, 5},
        {"delete-hint", {4, 0}, 2},
        {"delete-all-hints", {4, 0, 4, 2, 4, 4}, 6},
        {"delete-manifest", {4, 8}, 2},
        {"delete-engine", {4, 7}, 2},
        {"truncate-manifest-tail", {2, 8, 150, 0}, 4},
        {"lost-rotation", {6, 6, 0, 6, 2, 8, 150, 0}, 8},
        {"garbage-after-active", {3, 6, 8, 'g', 'a', 'r', 'b', 'a', 'g', 'e', '!'}, 11},
        {"zero-middle-active", {5, 6, 0x00, 0x01, 0x40, 0x00}, 6},
        {"lying-hint", {7, 0, 40, 0, 0x10, 0, 0, 0, 8, 0}, 10},
        {"reseal-edited-record", {7, 1, 24, 0, 1, 0, 0, 0, 8, 1}, 10},
        {"engine-lmdb", {0, 7, 0, 0, 5, 'l', 'm', 'd', 'b', '\n'}, 10},
        {"manifest-tmp", {6, 8, 4, 0}, 4},
        {"hint-tmp", {6, 0, 2, 8}, 4},
        {"stray-segment", {6, 7, 0, 9}, 4},
        {"manifest-edit-resealed", {7, 8, 24, 0, 9, 0, 0, 0, 8, 8}, 10},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        seed("fuzz_recover", s[i].name, "", 0, s[i].bytes, s[i].n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR (writes DIR/<target>/...)\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    fz_quiet();
    resp_seeds();
    command_seeds();
    decoder_seeds();
    recover_seeds();
    return 0;
}
