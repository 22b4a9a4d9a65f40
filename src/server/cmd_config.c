/*
 * cmd_config.c — CONFIG GET, SET, REWRITE, RESETSTAT and HELP, in Redis 7's shapes.
 *
 * The parameters, their values and what may change are config.c's table; this file is the
 * command's grammar and replies. Every subcommand holds server.cfg_mu while it reads or changes
 * the config, so that two clients' CONFIG SETs cannot interleave and a GET sees one or the other
 * whole. GET takes several patterns (Redis 7): a word without glob characters is looked up
 * exactly, any case, and answered under the name as the client wrote it; a pattern is matched,
 * any case, against every name, and answered under the names. Each parameter comes once.
 */
#include <stdlib.h>
#include <string.h>

#include "server/cmd.h"
#include "server/config.h"
#include "util/glob.h"

static bool is_pattern(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '*' || p[i] == '?' || p[i] == '[')
            return true;
    return false;
}

/* Which parameter pattern (a word) selects, exactly; -1 if none. */
static long exact_param(const char *word, size_t n)
{
    for (size_t i = 0; i < config_count(); i++)
        if (arg_is(word, n, config_name(i)))
            return (long)i;
    return -1;
}

/* The parameters the patterns select (hit[i]), and under which name the reply gives each
 * (as[i], as_len[i]: the client's word for an exact one). Returns how many. */
static size_t config_select(int npat, const char **pat, const size_t *plen, bool *hit,
                            const char **as, size_t *as_len)
{
    size_t hits = 0;

    for (int p = 0; p < npat; p++) {
        if (!is_pattern(pat[p], plen[p])) {
            long i = exact_param(pat[p], plen[p]);
            if (i >= 0 && !hit[i]) {
                hit[i] = true, hits++;
                as[i] = pat[p], as_len[i] = plen[p];
            }
            continue;
        }
        for (size_t i = 0; i < config_count(); i++) {
            const char *name = config_name(i);
            if (!hit[i] && glob_match(pat[p], plen[p], name, strlen(name), true)) {
                hit[i] = true, hits++;
                as[i] = name, as_len[i] = strlen(name);
            }
        }
    }
    return hits;
}

static void config_get(conn *c, int npat, const char **pat, const size_t *plen)
{
    size_t n = config_count();
    bool *hit = calloc(n, sizeof *hit);
    const char **as = calloc(n, sizeof *as);
    size_t *as_len = calloc(n, sizeof *as_len);
    server *s = c->srv;

    if (!hit || !as || !as_len) {
        resp_error(&c->out, "ERR out of memory");
        goto out;
    }
    pthread_mutex_lock(&s->cfg_mu);
    resp_array(&c->out, 2 * (long long)config_select(npat, pat, plen, hit, as, as_len));
    for (size_t i = 0; i < n; i++) {
        char tmp[CONFIG_VALUE_TEXT];
        size_t len;
        if (!hit[i])
            continue;
        const char *v = config_value(s, i, tmp, &len);
        resp_bulk(&c->out, as[i], as_len[i]);
        resp_bulk(&c->out, v, len);
    }
    pthread_mutex_unlock(&s->cfg_mu);
out:
    free(hit);
    free(as);
    free(as_len);
}

static const char *const config_help[] = {
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value> (those kvs can change while it runs).",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
};

static void wrong_arity(conn *c, const char *sub)
{
    resp_error(&c->out, "ERR wrong number of arguments for 'config|%s' command", sub);
}

static void reply_rc(conn *c, int rc, const char *err)
{
    if (rc < 0)
        resp_error(&c->out, "%s", err);
    else
        resp_ok(&c->out);
}

void cmd_config(conn *c, int argc, const char **argv, const size_t *lens)
{
    server *s = c->srv;
    char err[512];
    int rc;

    if (arg_is(argv[1], lens[1], "GET")) {
        if (argc < 3)
            return wrong_arity(c, "get");
        config_get(c, argc - 2, argv + 2, lens + 2);
    } else if (arg_is(argv[1], lens[1], "SET")) {
        if (argc < 4 || argc % 2 != 0)
            return wrong_arity(c, "set");
        pthread_mutex_lock(&s->cfg_mu);
        rc = config_set(s, (argc - 2) / 2, argv + 2, lens + 2, err, sizeof err);
        pthread_mutex_unlock(&s->cfg_mu);
        reply_rc(c, rc, err);
    } else if (arg_is(argv[1], lens[1], "REWRITE")) {
        if (argc != 2)
            return wrong_arity(c, "rewrite");
        pthread_mutex_lock(&s->cfg_mu);
        rc = config_rewrite(s, err, sizeof err);
        pthread_mutex_unlock(&s->cfg_mu);
        reply_rc(c, rc, err);
    } else if (arg_is(argv[1], lens[1], "RESETSTAT")) {
        if (argc != 2)
            return wrong_arity(c, "resetstat");
        info_reset_stats(s, c->w);
        resp_ok(&c->out);
    } else if (arg_is(argv[1], lens[1], "HELP") && argc == 2) {
        size_t n = sizeof config_help / sizeof config_help[0];
        resp_array(&c->out, (long long)n);
        for (size_t i = 0; i < n; i++)
            resp_status(&c->out, config_help[i]);
    } else {
        resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
                   (int)(lens[1] > 128 ? 128 : lens[1]), argv[1]);
    }
}
