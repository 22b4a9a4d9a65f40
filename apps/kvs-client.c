/*
 * kvs-client — the command-line client of kvs-server, as the kvs course specifies it:
 *
 *   kvs-client set KEY VALUE   store (prints nothing)
 *   kvs-client get KEY         print the value, or "Key not found" on stdout (exit 0)
 *   kvs-client rm KEY          remove (prints nothing); a missing key prints "Key not found" on
 *                              stderr and exits 1
 *   kvs-client -V              print the version
 *   --addr IP:PORT             the server (default 127.0.0.1:4000), anywhere on the line;
 *                              IPv6 as [ADDR]:PORT
 *
 * Usage errors (a missing or extra argument, an unknown command or flag) print usage on stderr
 * and exit 2; a bad address, a failed connection and an error from the server print the reason
 * on stderr and exit 1. A word that starts with "--" is a flag wherever it stands (after "--",
 * nothing is); after the command a word starting with a single '-' is a key or value, so
 * `kvs-client set n -1` works. Everything else is libkvsclient: this file only parses and prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs.h"
#include "kvs/client.h"

#define DEFAULT_ADDR "127.0.0.1:4000"
#define TIMEOUT_MS   10000  /* for the connect and for each wait on the server */

static const char usage[] =
    "usage: kvs-client set KEY VALUE [--addr IP:PORT]\n"
    "       kvs-client get KEY [--addr IP:PORT]\n"
    "       kvs-client rm KEY [--addr IP:PORT]\n"
    "       kvs-client -V | --version\n"
    "       kvs-client -h | --help\n";

static int usage_error(const char *why, const char *what)
{
    fprintf(stderr, "kvs-client: %s%s%s\n%s", why, what ? ": " : "", what ? what : "", usage);
    return 2;
}

static int fail(const char *what, int rc, const char *detail)
{
    fprintf(stderr, "kvs-client: %s: %s%s%s\n", what, kvsc_strerror(rc),
            detail && *detail ? ": " : "", detail ? detail : "");
    return 1;
}

int main(int argc, char **argv)
{
    const char *addr = DEFAULT_ADDR, *args[4];
    int nargs = 0, rc, status = 0, flags_done = 0;
    kvsc_conn *c = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!flags_done && (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)) {
            printf("kvs-client %s\n", KVS_VERSION_STRING);
            return 0;
        }
        if (!flags_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(usage, stdout);
            return 0;
        }
        if (!flags_done && strcmp(a, "--") == 0) {
            flags_done = 1;
        } else if (!flags_done && strcmp(a, "--addr") == 0) {
            if (++i == argc)
                return usage_error("--addr needs IP:PORT", NULL);
            addr = argv[i];
        } else if (!flags_done && strncmp(a, "--addr=", 7) == 0) {
            addr = a + 7;
        } else if (!flags_done && a[0] == '-' && a[1] != '\0' && (a[1] == '-' || nargs == 0)) {
            return usage_error("unknown option", a);
        } else if (nargs == 4) {
            return usage_error("too many arguments", NULL);
        } else {
            args[nargs++] = a;
        }
    }
    if (nargs == 0)
        return usage_error("no command", NULL);
    const char *cmd = args[0];
    int want = strcmp(cmd, "set") == 0 ? 3 : (strcmp(cmd, "get") == 0 || strcmp(cmd, "rm") == 0) ? 2 : 0;
    if (want == 0)
        return usage_error("unknown command", cmd);
    if (nargs != want)
        return usage_error(nargs < want ? "missing argument" : "too many arguments", NULL);

    if ((rc = kvsc_connect(addr, TIMEOUT_MS, &c)) < 0)
        return fail(rc == KVSC_EADDR ? "bad --addr" : "cannot connect", rc, kvsc_last_error(NULL));
    const char *key = args[1];
    if (strcmp(cmd, "set") == 0) {
        if ((rc = kvsc_set(c, key, strlen(key), args[2], strlen(args[2]))) < 0)
            status = fail("set", rc, kvsc_last_error(c));
    } else if (strcmp(cmd, "get") == 0) {
        void *val;
        size_t len;
        rc = kvsc_get(c, key, strlen(key), &val, &len);
        if (rc == KVSC_ENOTFOUND) {
            puts("Key not found");
        } else if (rc < 0) {
            status = fail("get", rc, kvsc_last_error(c));
        } else {
            fwrite(val, 1, len, stdout);
            putchar('\n');
            kvsc_free(val);
        }
    } else {
        rc = kvsc_del(c, key, strlen(key));
        if (rc == KVSC_ENOTFOUND) {
            fputs("Key not found\n", stderr);
            status = 1;
        } else if (rc < 0) {
            status = fail("rm", rc, kvsc_last_error(c));
        }
    }
    kvsc_close(c);
    if (fflush(stdout) != 0 && status == 0) {
        perror("kvs-client: stdout");
        status = 1;
    }
    return status;
}
