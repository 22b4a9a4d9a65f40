/*
 * kvs — the embedded command-line interface, as the kvs course specifies it:
 *
 *   kvs set KEY VALUE    store (prints nothing)
 *   kvs get KEY          print the value, or "Key not found" (exit 0)
 *   kvs rm KEY           remove (prints nothing); a missing key prints "Key not found" on
 *                        stdout and exits 1
 *   kvs -V               print the version
 *   --dir DIR            the data directory (default: the current directory), anywhere on the line
 *
 * Usage errors print usage on stderr and exit 2; store errors print the reason on stderr and
 * exit 1. Everything else is libkvs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs.h"

static const char usage[] =
    "usage: kvs [--dir DIR] set KEY VALUE\n"
    "       kvs [--dir DIR] get KEY\n"
    "       kvs [--dir DIR] rm KEY\n"
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
    int want = strcmp(cmd, "set") == 0 ? 3 : (strcmp(cmd, "get") == 0 || strcmp(cmd, "rm") == 0) ? 2 : 0;
    if (want == 0)
        return usage_error("unknown command");
    if (nargs != want)
        return usage_error(nargs < want ? "missing argument" : "too many arguments");

    if ((rc = kvs_create(&db)) < 0 || (rc = kvs_open(db, dir)) < 0) {
        status = fail("cannot open the store", rc);
        goto out;
    }
    const char *key = args[1];
    if (strcmp(cmd, "set") == 0) {
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
