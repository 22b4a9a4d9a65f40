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
