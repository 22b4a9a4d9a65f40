/*
 * kvs — the embedded command-line interface, as the kvs course specifies it:
 *
 *   kvs set KEY VALUE    store (prints nothing)
 *   kvs get KEY          print the value, or "Key not found" (exit 0)
 *   kvs rm KEY           remove (prints nothing); a missing key prints "Key not found" on
 *                        stdout and exits 1
 *   kvs scan [PATTERN]   print every key (that matches PATTERN, a Redis glob: util/glob.h),
 *                        one a line, in no particular order (kvs_iter)
 *   kvs upgrade [DIR]    convert a store of an earlier on-disk format (DIR, else --dir's) in
 *                        place, keeping the old one as DIR.format2 (kvs_upgrade in kvs.h):
 *                        progress and the counts on stdout, damage found on stderr; a store
 *                        already of the current format is left alone ("nothing to do", exit 0)
 *   kvs checkpoint DIR DEST   a checkpoint of the store in DIR (which no server may hold) in
 *                        DEST, new or empty (kvs_checkpoint: hard links, same file system)
 *   kvs verify [DIR]     check every record, hint and manifest edit of DIR (else --dir's),
 *                        offline: each problem as "DIR/FILE:OFFSET: what", notes as
 *                        "...: note: what", then a summary; exit 0 if all is well, 1 if not
 *                        (or if DIR cannot be checked: a server holds it, no store there)
 *   kvs repair DIR DEST  write a new store in DEST from every intact record of DIR, newest
 *                        version of each key; each thing dropped as "dropped: DIR/FILE:OFFSET:
 *                        why", then the counts; exit 0 once DEST is written
 *   kvs -V               print the version
 *   --dir DIR            the data directory (default: the current directory), anywhere on the line
 *
 * Usage errors print usage on stderr and exit 2; store errors print the reason on stderr and
 * exit 1. Everything else is libkvs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs.h"
#include "util/glob.h"

static const char usage[] =
    "usage: kvs [--dir DIR] set KEY VALUE\n"
    "       kvs [--dir DIR] get KEY\n"
    "       kvs [--dir DIR] rm KEY\n"
    "       kvs [--dir DIR] scan [PATTERN]   list the keys (matching a Redis glob)\n"
    "       kvs [--dir DIR] upgrade [DIR]   convert a store of an earlier format\n"
    "       kvs checkpoint DIR DEST         a checkpoint of DIR in DEST (new or empty)\n"
    "       kvs [--dir DIR] verify [DIR]    check every record, hint and manifest edit\n"
    "       kvs repair DIR DEST             salvage DIR's intact records into DEST\n"
    "       kvs -V | --version\n"
    "       kvs -h | --help\n";

static int usage_error(const char *why)
{
    fprintf(stderr, "kvs: %s\n%s", why, usage);
    return 2;
}

static int fail(const char *what, int rc)
{
    const char *detail = kvs_last_error();
    fprintf(stderr, "kvs: %s: %s%s%s\n", what, kvs_strerror(rc), *detail ? ": " : "", detail);
    return 1;
}

static void upgrade_progress(void *ctx, const kvs_upgrade_report *r)
{
    (void)ctx;
    if (r->phase == KVS_UPGRADE_READING && r->segments_read)
        printf("read segment %llu of %llu (%llu records so far)\n",
               (unsigned long long)r->segments_read, (unsigned long long)r->segments_total,
               (unsigned long long)r->records);
    else if (r->phase == KVS_UPGRADE_WRITING && r->keys)
        printf("wrote %llu of %llu keys\n", (unsigned long long)r->keys,
               (unsigned long long)r->keys_total);
    fflush(stdout);
}

static int upgrade(const char *dir)
{
    kvs_upgrade_report r;
    int rc = kvs_upgrade(dir, upgrade_progress, NULL, &r);

    if (rc < 0)
        return fail("upgrade", rc);
    if (r.outcome == KVS_UPGRADE_CURRENT) {
        printf("%s: nothing to do: the store is of the current format\n", dir);
        return 0;
    }
    if (r.outcome == KVS_UPGRADE_RESUMED) {
        printf("%s: finished an upgrade a crash interrupted; the old store is in %s\n", dir,
               r.backup);
        return 0;
    }
    printf("%s: upgraded: %llu keys written, %llu removed keys dropped, %llu damaged records "
           "skipped%s\nthe old store is kept in %s (remove it once the new one serves)\n",
           dir, (unsigned long long)r.keys, (unsigned long long)r.tombstones,
           (unsigned long long)r.damaged, r.damaged_keys ? " (see above)" : "", r.backup);
    if (r.damaged_keys)
        printf("%llu keys left out: their newest record is damaged\n",
               (unsigned long long)r.damaged_keys);
    return 0;
}

static int checkpoint(const char *dir, const char *dest)
{
    kvs_t *db = NULL;
    int rc, status = 0;

    if ((rc = kvs_create(&db)) < 0 || (rc = kvs_open(db, dir)) < 0)
        status = fail("cannot open the store", rc);
    else if ((rc = kvs_checkpoint(db, dest)) < 0)
        status = fail("checkpoint", rc);
    else
        printf("%s: checkpoint written to %s\n", dir, dest);
    if ((rc = kvs_close(db)) < 0 && status == 0)
        status = fail("close", rc);
    return status;
}

/* A finding of kvs_verify or kvs_repair, one line on stdout. */
typedef struct finding_ctx {
    const char *dir;
    const char *prefix; /* before bad findings: "" (verify), "dropped: " (repair) */
} finding_ctx;

static void print_finding(void *ctx, int bad, const char *file, uint64_t off, const char *what)
{
    const finding_ctx *f = ctx;
    printf("%s%s/%s:%llu: %s%s\n", bad ? f->prefix : "", f->dir, file, (unsigned long long)off,
           bad ? "" : "note: ", what);
}

static int verify(const char *dir)
{
    finding_ctx f = {dir, ""};
    kvs_verify_report r;
    int rc = kvs_verify(dir, print_finding, &f, &r);

    if (rc < 0 && rc != KVS_ECORRUPT)
        return fail("verify", rc);
    printf("%s: %llu segments, %llu records, %llu keys, %llu bytes, %llu hint entries, %llu "
           "manifest edits: %s",
           dir, (unsigned long long)r.segments, (unsigned long long)r.records,
           (unsigned long long)r.keys, (unsigned long long)r.bytes,
           (unsigned long long)r.hint_entries, (unsigned long long)r.manifest_edits,
           r.bad ? "" : "all well\n");
    if (r.bad)
        printf("%llu problems\n", (unsigned long long)r.bad);
    return r.bad ? 1 : 0;
}

static int repair(const char *dir, const char *dest)
{
    finding_ctx f = {dir, "dropped: "};
    kvs_repair_report r;
    int rc = kvs_repair(dir, dest, print_finding, &f, &r);

    if (rc < 0)
        return fail("repair", rc);
    printf("%s: repaired into %s: %llu keys written from %llu records of %llu segments; dropped "
           "%llu damaged records or unreadable regions (%llu bytes); %llu keys whose newest "
           "record is damaged; left out %llu removed and %llu expired keys\n",
           dir, dest, (unsigned long long)r.keys, (unsigned long long)r.records,
           (unsigned long long)r.segments, (unsigned long long)r.dropped,
           (unsigned long long)r.dropped_bytes, (unsigned long long)r.damaged_keys,
           (unsigned long long)r.removed, (unsigned long long)r.expired);
    return 0;
}

static int print_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                     const kvs_meta *meta)
{
    const char *pattern = ctx;
    (void)val, (void)vlen, (void)meta;

    if (!pattern || glob_match(pattern, strlen(pattern), key, klen, false)) {
        fwrite(key, 1, klen, stdout);
        putchar('\n');
    }
    return 0;
}

static int scan(kvs_t *db, const char *pattern)
{
    kvs_iter *it;
    int rc;

    if ((rc = kvs_iter_begin(db, &it)) < 0)
        return fail("scan", rc);
    while ((rc = kvs_iter_next(it, print_key, (void *)pattern)) == 1)
        ;
    kvs_iter_end(it);
    return rc < 0 ? fail("scan", rc) : 0;
}

int main(int argc, char **argv)
{
    const char *dir = ".", *args[4];
    int nargs = 0, rc, status = 0;
    kvs_t *db = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("kvs %s\n", KVS_VERSION_STRING);
            return 0;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--dir") == 0) {
            if (++i == argc)
                return usage_error("--dir needs a directory");
            dir = argv[i];
        } else if (strncmp(argv[i], "--dir=", 6) == 0) {
            dir = argv[i] + 6;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' && nargs == 0) {
            return usage_error("unknown option");
        } else if (nargs == 4) {
            return usage_error("too many arguments");
        } else {
            args[nargs++] = argv[i];
        }
    }
    if (nargs == 0)
        return usage_error("no command");
    const char *cmd = args[0];
    if (strcmp(cmd, "upgrade") == 0) {
        if (nargs > 2)
            return usage_error("too many arguments");
        return upgrade(nargs == 2 ? args[1] : dir);
    }
    if (strcmp(cmd, "checkpoint") == 0 || strcmp(cmd, "repair") == 0) {
        if (nargs != 3)
            return usage_error(nargs < 3 ? "missing argument" : "too many arguments");
        return cmd[0] == 'c' ? checkpoint(args[1], args[2]) : repair(args[1], args[2]);
    }
    if (strcmp(cmd, "verify") == 0) {
        if (nargs > 2)
            return usage_error("too many arguments");
        return verify(nargs == 2 ? args[1] : dir);
    }
    bool is_scan = strcmp(cmd, "scan") == 0;
    int want = strcmp(cmd, "set") == 0 ? 3 : (strcmp(cmd, "get") == 0 || strcmp(cmd, "rm") == 0) ? 2 : 0;
    if (want == 0 && !is_scan)
        return usage_error("unknown command");
    if (is_scan ? nargs > 2 : nargs != want)
        return usage_error(nargs < want ? "missing argument" : "too many arguments");

    if ((rc = kvs_create(&db)) < 0 || (rc = kvs_open(db, dir)) < 0) {
        status = fail("cannot open the store", rc);
        goto out;
    }
    const char *key = nargs > 1 ? args[1] : "";
    if (is_scan) {
        status = scan(db, nargs == 2 ? args[1] : NULL);
    } else if (strcmp(cmd, "set") == 0) {
        if ((rc = kvs_set(db, key, strlen(key), args[2], strlen(args[2]))) < 0)
            status = fail("set", rc);
    } else if (strcmp(cmd, "get") == 0) {
        void *val;
        size_t len;
        rc = kvs_get(db, key, strlen(key), &val, &len);
        if (rc == KVS_ENOTFOUND) {
            puts("Key not found");
        } else if (rc < 0) {
            status = fail("get", rc);
        } else {
            fwrite(val, 1, len, stdout);
            putchar('\n');
            kvs_free(val);
        }
    } else {
        rc = kvs_remove(db, key, strlen(key));
        if (rc == KVS_ENOTFOUND) {
            puts("Key not found");
            status = 1;
        } else if (rc < 0) {
            status = fail("rm", rc);
        }
    }
out:
    if ((rc = kvs_close(db)) < 0 && status == 0)
        status = fail("close", rc);
    return status;
}
