/*
 * test_config.c — kvs-server's options in-process (src/server/config.c): the defaults, values
 * of every kind from flags and from a config file in Redis's format (sizes, choices in any case,
 * Redis's aliases, quotes and escapes), the flags overriding the file whatever their order, and
 * refusals that leave the config as it was. The server itself is tests/integration/
 * test_config.py's; what the table drives at run time (CONFIG) is tested there.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "server/server.h"

/* kvs_server_config_args with stderr (usage, errors) silenced; argv without the program. */
static int args(kvs_server_config *c, int argc, const char **argv)
{
    char *full[32] = {"kvs-server"};
    int saved = dup(2), null = open("/dev/null", O_WRONLY);

    assert_true(argc < 32);
    for (int i = 0; i < argc; i++)
        full[i + 1] = (char *)argv[i];
    fflush(stderr);
    dup2(null, 2);
    int rc = kvs_server_config_args(c, argc + 1, full);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(null);
    return rc;
}

/* A config file with text in the fixture's directory; its path in out (PATH_MAX). */
static void write_file(void **state, const char *text, char *out)
{
    tu_fixture *fx = *state;

    snprintf(out, PATH_MAX, "%s/kvs.conf", fx->dir);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_defaults(void **state)
{
    kvs_server_config c;
    kvs_options lib;

    kvs_server_config_init(&c);
    kvs_options_init(&lib);
    assert_int_equal(c.maxclients, 10000);
    assert_int_equal(c.threads, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(c.max_query, c.limits.max_bulk + (1 << 20));
    assert_int_equal(c.segment_size, lib.segment_size);
    assert_int_equal(c.compact_rate, (int64_t)lib.compact_rate);
    assert_int_equal(c.sync, KVS_SYNC_EVERYSEC);
    assert_int_equal(c.offload, -1);
    assert_string_equal(c.addr, KVS_SERVER_DEFAULT_ADDR);
    assert_string_equal(c.pool, "shared");
    assert_null(c.requirepass);
    assert_null(c.engine);
    assert_null(c.config_file);
    kvs_server_config_free(&c);
}

static void test_flag_values(void **state)
{
    kvs_server_config c;
    const char *ok[] = {"--max-bulk", "64kb", "--max-output", "512MB", "--max-multi-bytes", "1g",
                        "--log-level", "WARNING", "--offload", "never", "--pool", "UV",
                        "--compact-nice", "0", "--max-index-memory", "0", "--engine", "lmdb",
                        "--loglevel", "notice"};

    kvs_server_config_init(&c);
    assert_int_equal(args(&c, 20, ok), -1);
    assert_int_equal(c.limits.max_bulk, 64 << 10);
    assert_int_equal(c.max_output, 512ull << 20);
    assert_int_equal(c.max_multi_bytes, 1ull << 30);
    assert_int_equal(c.log_level, KVS_LOG_INFO); /* the later flag, Redis's name and level */
    assert_int_equal(c.offload, 0);
    assert_string_equal(c.pool, "uv"); /* its own spelling */
    assert_int_equal(c.compact_nice, 0);
    assert_int_equal(c.max_index_memory, 0);
    assert_string_equal(c.engine, "lmdb");
    kvs_server_config_free(&c);
}

static void test_flag_refusals(void **state)
{
    static const char *bad[][2] = {
        {"--max-bulk", "1kbb"}, {"--max-bulk", "513mb"}, {"--max-query", "1099511627777"},
        {"--maxclients", "+5"}, {"--maxclients", "0"}, {"--threads", ""},
        {"--max-index-memory", "1kb"}, {"--sync", "no"}, {"--engine", "nope"},
        {"--pool", "shared\xff"}, {"--no-such", "1"}, {"--compact-nice", "20"}};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvs_server_config c, d;
        kvs_server_config_init(&c);
        kvs_server_config_init(&d);
        if (args(&c, 2, bad[i]) != 2)
            fail_msg("%s '%s' should be refused", bad[i][0], bad[i][1]);
        assert_memory_equal(&c.limits, &d.limits, sizeof c.limits);
        assert_int_equal(c.maxclients, d.maxclients);
        assert_int_equal(c.max_query, d.max_query);
        assert_int_equal(c.sync, d.sync);
        assert_string_equal(c.pool, d.pool);
        kvs_server_config_free(&c);
        kvs_server_config_free(&d);
    }
    kvs_server_config c;
    const char *missing[] = {"--maxclients"}, *positional[] = {"x"};
    kvs_server_config_init(&c);
    assert_int_equal(args(&c, 1, missing), 2);
    assert_int_equal(args(&c, 1, positional), 2);
    kvs_server_config_free(&c);
}

static void test_file_then_flags(void **state)
{
    char path[PATH_MAX], real[PATH_MAX];
    kvs_server_config c;

    write_file(state, "# comment\n  \t# indented comment\n\nMAX-WATCH 7\r\n"
               "requirepass \"a\\x41\\\"\\n\"\n"
               "dir 'it\\'s here'\n"
               "appendfsync no\n"
               "maxclients 5\nmaxclients 6\n",
               path);
    const char *flag_first[] = {"--max-watch", "9", "--config", path};
    kvs_server_config_init(&c);
    assert_int_equal(args(&c, 4, flag_first), -1);
    assert_int_equal(c.max_watch, 9);
    assert_int_equal(c.maxclients, 6);
    assert_string_equal(c.requirepass, "aA\"\n");
    assert_string_equal(c.dir, "it's here");
    assert_int_equal(c.sync, KVS_SYNC_NEVER);
    assert_non_null(realpath(path, real));
    assert_string_equal(c.config_file, real);
    kvs_server_config_free(&c);

    const char *file_only[] = {"--config", path};
    kvs_server_config_init(&c);
    assert_int_equal(args(&c, 2, file_only), -1);
    assert_int_equal(c.max_watch, 7);
    kvs_server_config_free(&c);
}

static void test_bad_files(void **state)
{
    static const char *bad[] = {"no-such-key 1\n", "max-watch\n", "max-watch 1 2\n",
                                "requirepass \"open\n", "requirepass \"a\"b\n",
                                "save \"\"\n", "sync \"always\\x00\"\n", "threads 0\n"};
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvs_server_config c;
        write_file(state, bad[i], path);
        const char *argv[] = {"--config", path};
        kvs_server_config_init(&c);
        if (args(&c, 2, argv) != 2)
            fail_msg("config file '%s' should be refused", bad[i]);
        kvs_server_config_free(&c);
    }
    kvs_server_config c;
    const char *twice[] = {"--config", path, "--config", path};
    const char *missing[] = {"--config", "/nonexistent/kvs.conf"};
    kvs_server_config_init(&c);
    assert_int_equal(args(&c, 4, twice), 2);
    assert_int_equal(args(&c, 2, missing), 2);
    kvs_server_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TU_CASE_CLOSED(test_defaults),        TU_CASE_CLOSED(test_flag_values),
        TU_CASE_CLOSED(test_flag_refusals),   TU_CASE_CLOSED(test_file_then_flags),
        TU_CASE_CLOSED(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
