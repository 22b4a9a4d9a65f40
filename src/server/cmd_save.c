/*
 * cmd_save.c — SAVE, BGSAVE, LASTSAVE: backups of a running server, as Redis clients ask for
 * them, made of kvs_checkpoint (kvs.h) instead of Redis's fork and RDB file.
 *
 * A checkpoint goes into a new directory named for the unix time it began (and "-N" after it when
 * that name is taken, several in one second) under the checkpoint directory: --checkpoint-dir,
 * else DIR/checkpoints. The default is inside the data directory on purpose: hard links need
 * the same file system, and a subdirectory is nothing recovery or kvs verify reads (both look at
 * the files they name: NNNNNN.log, MANIFEST, ...). A checkpoint opens as a data directory of its
 * own (kvs --dir, kvs-server --dir); removing old ones is the operator's (their linked files keep
 * space the store has since freed).
 *
 * SAVE makes the checkpoint on the calling connection's loop thread and answers +OK: that loop's
 * other clients wait for it (Redis's SAVE stops the whole server), which with the kvs engine is a
 * rotation, some fsyncs and a link per segment. BGSAVE makes it on a thread of its own and
 * answers "+Background saving started" at once. One save at a time, SAVEs included (two in one
 * second would race for one directory name): "-ERR Background save already in progress". LASTSAVE answers the unix time of the last one that succeeded — the
 * server's start time before any, as Redis does — so a client polls it to see a BGSAVE finish.
 * No fork, so no second copy of memory: the point of the design (DESIGN.md, issue 15).
 *
 * State is in server.save under its mutex; INFO reads a copy (server_save_get).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/cmd.h"
#include "util/err.h"
#include "util/log.h"

#define SAVE_NAME_TRIES 100

void server_save_init(server *s)
{
    pthread_mutex_init(&s->save.mu, NULL);
    s->save.last_save = (int64_t)time(NULL);
    s->save.last_secs = -1;
}

void server_save_stop(server *s)
{
    pthread_mutex_lock(&s->save.mu);
    bool join = s->save.joinable;
    s->save.joinable = false;
    pthread_mutex_unlock(&s->save.mu);
    if (join)
        pthread_join(s->save.thread, NULL);
}

static uint64_t writes_now(server *s)
{
    kvs_stats st;
    return kvs_stats_get(s->db, &st) == 0 ? st.writes : 0;
}

void server_save_get(server *s, server_save_status *out)
{
    uint64_t writes = writes_now(s);

    pthread_mutex_lock(&s->save.mu);
    out->last_save = s->save.last_save;
    out->in_progress = s->save.in_progress;
    out->last_status = s->save.last_status;
    out->changes = writes > s->save.writes_at_save ? writes - s->save.writes_at_save : 0;
    out->bg_started = s->save.bg_started;
    out->last_secs = s->save.last_secs;
    out->saves = s->save.saves;
    snprintf(out->last_path, sizeof out->last_path, "%s", s->save.last_path);
    pthread_mutex_unlock(&s->save.mu);
}

/* The checkpoint directory (made if absent) into dir. */
static int save_root(server *s, char *dir, size_t cap)
{
    const char *root = s->cfg->checkpoint_dir;
    int n = root ? snprintf(dir, cap, "%s", root)
                 : snprintf(dir, cap, "%s/checkpoints", s->cfg->dir);

    if (n < 0 || (size_t)n >= cap)
        return kvs_seterr(KVS_EINVAL, "checkpoint directory path too long");
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return kvs_seterr(KVS_EIO, "create %s: %s", dir, strerror(errno));
    return 0;
}

/* Make one checkpoint now, on the calling thread, and record how it went. */
static int save_now(server *s)
{
    char root[PATH_MAX], path[PATH_MAX];
    int64_t t = (int64_t)time(NULL);
    uint64_t writes = writes_now(s);
    int rc = save_root(s, root, sizeof root);
    struct stat st;

    for (int i = 1; rc == 0 && i <= SAVE_NAME_TRIES; i++) {
        int n = i == 1 ? snprintf(path, sizeof path, "%s/%lld", root, (long long)t)
                       : snprintf(path, sizeof path, "%s/%lld-%d", root, (long long)t, i);
        if (n < 0 || (size_t)n >= sizeof path)
            rc = kvs_seterr(KVS_EINVAL, "checkpoint path too long");
        else if (stat(path, &st) < 0 && errno == ENOENT)
            break;
        else if (i == SAVE_NAME_TRIES)
            rc = kvs_seterr(KVS_EBUSY, "%s: %d checkpoints in one second", root, i);
    }
    if (rc == 0)
        rc = kvs_checkpoint(s->db, path);
    pthread_mutex_lock(&s->save.mu);
    s->save.last_status = rc;
    s->save.last_secs = (int64_t)time(NULL) - t;
    if (rc == 0) {
        s->save.saves++;
        s->save.last_save = (int64_t)time(NULL);
        s->save.writes_at_save = writes;
        snprintf(s->save.last_path, sizeof s->save.last_path, "%s", path);
    }
    pthread_mutex_unlock(&s->save.mu);
    if (rc == 0)
        LOG_INFO("DB saved on disk: checkpoint in %s", path);
    else
        LOG_WARN("checkpoint failed: %s: %s", kvs_strerror(rc), kvs_last_error());
    return rc;
}

/* Claim the right to save: false if a save runs (background: a BGSAVE from now). */
static bool save_claim(server *s, bool background)
{
    pthread_mutex_lock(&s->save.mu);
    bool ok = !s->save.saving;
    if (ok) {
        s->save.saving = true;
        s->save.in_progress = background;
        if (background)
            s->save.bg_started = (int64_t)time(NULL);
    }
    pthread_mutex_unlock(&s->save.mu);
    return ok;
}

static void save_release(server *s)
{
    pthread_mutex_lock(&s->save.mu);
    s->save.saving = s->save.in_progress = false;
    pthread_mutex_unlock(&s->save.mu);
}

static void *bgsave_main(void *arg)
{
    server *s = arg;

    save_now(s);
    save_release(s);
    return NULL;
}

void cmd_save(conn *c, int argc, const char **argv, const size_t *lens)
{
    (void)argv, (void)lens;
    if (argc != 1) {
        resp_error(&c->out, "%s", ERR_SYNTAX);
        return;
    }
    if (!save_claim(c->srv, false)) {
        resp_error(&c->out, "ERR Background save already in progress");
        return;
    }
    int rc = save_now(c->srv);
    save_release(c->srv);
    if (rc < 0)
        engine_error(c, "SAVE", rc);
    else
        resp_ok(&c->out);
}

void cmd_bgsave(conn *c, int argc, const char **argv, const size_t *lens)
{
    server *s = c->srv;

    (void)argv, (void)lens;
    if (argc != 1) {
        resp_error(&c->out, "%s", ERR_SYNTAX);
        return;
    }
    if (!save_claim(s, true)) {
        resp_error(&c->out, "ERR Background save already in progress");
        return;
    }
    /* the last BGSAVE's thread has finished (no save ran): reap it first */
    server_save_stop(s);
    pthread_mutex_lock(&s->save.mu);
    int e = pthread_create(&s->save.thread, NULL, bgsave_main, s);
    s->save.joinable = e == 0;
    pthread_mutex_unlock(&s->save.mu);
    if (e != 0)
        save_release(s);
    if (e != 0) {
        LOG_WARN("BGSAVE: cannot start a thread: %s", strerror(e));
        resp_error(&c->out, "ERR cannot start the background save: %s", strerror(e));
        return;
    }
    LOG_INFO("Background saving started");
    resp_status(&c->out, "Background saving started");
}

void cmd_lastsave(conn *c, int argc, const char **argv, const size_t *lens)
{
    server_save_status st;

    (void)argc, (void)argv, (void)lens;
    server_save_get(c->srv, &st);
    resp_int(&c->out, (long long)st.last_save);
}
