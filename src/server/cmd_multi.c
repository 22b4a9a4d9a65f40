/*
 * cmd_multi.c — MULTI, EXEC, DISCARD, WATCH, UNWATCH.
 *
 * MULTI opens a second batch on the connection (c->tx). Every command after it but the
 * transaction's own (CMD_TX) is queued there, arguments copied, as it would be queued in the
 * ordinary batch (cmd.h) — writes as their ops, reads as update ops that write nothing and copy
 * what they see, other commands as nothing (they run when EXEC replies) — and answered +QUEUED.
 * An unknown command or a wrong arity marks the transaction dirty (EXECABORT at EXEC, as Redis);
 * a command's own syntax errors are found when it is queued and become its reply inside EXEC's
 * array, as they do in Redis.
 *
 * The transaction's first batch_cmd is the EXEC itself (bc->tx), with one op per WATCHed key
 * that refuses with KVS_ECONFLICT if the key's version (kvs_read_meta, 0 if absent) changed
 * since WATCH. EXEC moves the whole transaction into c->batch — empty then: the connection
 * commits what it had before running EXEC — with every op in one group, so it commits as one
 * kvs_write: atomic across a crash, and nothing interleaves with it. If a watch refuses, none of
 * it is applied and EXEC answers nil. Only KVS_ECONFLICT refuses a group: the commands' updates
 * never fail their op (cmd.h), so an INCR of a non-number inside EXEC fails alone, as in Redis.
 *
 * A key's version cannot tell an absent key from one created and deleted since WATCH, which
 * Redis's EXEC refuses too. So every write command also bumps a count (server.touched) in the
 * slot of each of its keys' hash before its ops are committed (watch_touch, from run_batch); a
 * watch refuses when its slot's count moved as well. (FLUSHDB needs nothing more: as in Redis,
 * it fails the EXEC of a key it removed — whose version then changed — and not of a key absent
 * at WATCH and still absent.) Bumped before the commit, a count is seen by any EXEC whose
 * check commits after the write (the check runs in the commit, engine side). Two keys that share
 * a slot make an EXEC refuse when only the other was written: a spurious abort, which a client
 * retries as any other; with WATCH_SLOTS slots and 100,000 writes a second, about 0.6 % of
 * watches held for a millisecond. SET NX that sets nothing counts as a write here (Redis's does
 * not): the same.
 *
 * Not isolated: the commands that run when EXEC replies (KEYS, SCAN, DBSIZE, FLUSHDB, ...) see
 * the store as it is then, not as of the commit.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "server/cmd.h"
#include "util/array.h"
#include "util/invariant.h"

/* What one connection may hold (a client controls all three, and each costs memory on the
 * server): cfg->max_watch keys watched at once, cfg->max_multi_commands commands queued in one
 * MULTI, cfg->max_multi_bytes bytes of their arguments. CONFIG SET may change them from another
 * thread: read atomically. */

typedef struct watched {
    char *key;
    size_t klen;
    uint64_t version;          /* kvs_meta.version at WATCH, 0 if absent */
    uint64_t touched;          /* server.touched[slot of key], read just before */
} watched;

static uint64_t *touch_slot(server *s, const void *key, size_t klen)
{
    return &s->touched[XXH3_64bits(key, klen) & (WATCH_SLOTS - 1)];
}

void watch_touch(server *s, const batch *b)
{
    for (size_t j = 0; j < b->ncmds; j++) {
        const batch_cmd *bc = &b->cmds[j];
        if (!bc->cmd || !(bc->cmd->flags & CMD_WRITE))
            continue;
        for (size_t i = bc->first; i < bc->first + bc->n; i++)
            __atomic_add_fetch(touch_slot(s, b->ops[i].key, b->ops[i].klen), 1, __ATOMIC_SEQ_CST);
    }
}

static void watch_clear(conn *c)
{
    for (size_t i = 0; i < c->nwatch; i++)
        free(c->watch[i].key);
    free(c->watch);
    c->watch = NULL;
    c->nwatch = c->capwatch = 0;
}

void tx_end(conn *c)
{
    batch_clear(&c->tx);
    c->multi = c->multi_dirty = false;
    watch_clear(c);
}

static int no_value(void *ctx, const void *val, size_t vlen)
{
    (void)ctx, (void)val, (void)vlen;
    return 0;
}

void cmd_watch(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (c->multi)
        return (void)resp_error(&c->out, "ERR WATCH inside MULTI is not allowed");
    uint32_t max_watch = __atomic_load_n(&c->srv->cfg->max_watch, __ATOMIC_RELAXED);
    if (c->nwatch + (size_t)(argc - 1) > max_watch)
        return (void)resp_error(&c->out, "ERR too many watched keys (kvs: at most %u per "
                                         "connection)", max_watch);
    /* A key watched twice is checked twice: the older version refuses whenever the key
     * changed after the first WATCH, which is when Redis's EXEC fails too. */
    for (int i = 1; i < argc; i++) {
        uint64_t touched = __atomic_load_n(touch_slot(c->srv, argv[i], lens[i]), __ATOMIC_SEQ_CST);
        kvs_meta meta = {0};
        int rc = key_fits(lens[i]) ? kvs_read_meta(c->srv->db, argv[i], lens[i], no_value, NULL,
                                                   &meta)
                                   : KVS_ENOTFOUND;
        if (rc < 0 && rc != KVS_ENOTFOUND)
            return engine_error(c, "WATCH", rc);
        char *key = malloc(lens[i] ? lens[i] : 1);
        if (!key || ARR_RESERVE(c->watch, c->capwatch, c->nwatch + 1) < 0) {
            free(key);
            return (void)resp_error(&c->out, "ERR out of memory");
        }
        memcpy(key, argv[i], lens[i]);
        c->watch[c->nwatch++] = (watched){key, lens[i], rc == 0 ? meta.version : 0, touched};
    }
    resp_ok(&c->out);
}

void cmd_unwatch(conn *c, int argc, const char **argv, const size_t *lens)
{
    watch_clear(c);
    resp_ok(&c->out);
}

/* One watch, as EXEC's op checks it (in the commit: nothing is written between it and the
 * transaction's writes). */
typedef struct watch_op {
    uint64_t version, touched;
    const uint64_t *slot;
} watch_op;

static int watch_check(void *ctx, const kvs_cur *cur, kvs_update_out *out)
{
    const watch_op *w = ctx;

    (void)out;
    if ((cur->found ? cur->meta.version : 0) != w->version ||
        __atomic_load_n(w->slot, __ATOMIC_SEQ_CST) != w->touched)
        return KVS_ECONFLICT;
    return 0;
}

void cmd_multi(conn *c, int argc, const char **argv, const size_t *lens)
{
    batch *t = &c->tx;

    if (c->multi)
        return (void)resp_error(&c->out, "ERR MULTI calls can not be nested");
    KVS_ASSERT(t->ncmds == 0 && t->nops == 0);
    if (ARR_RESERVE(t->cmds, t->capcmds, 1) < 0 || !batch_reserve(t, c->nwatch))
        return (void)resp_error(&c->out, "ERR out of memory");
    t->cmds[t->ncmds++] = (batch_cmd){.tx = true};
    for (size_t i = 0; i < c->nwatch; i++) {
        const watched *w = &c->watch[i];
        watch_op *op = batch_alloc(t, sizeof *op);
        char *key = batch_alloc(t, w->klen ? w->klen : 1);
        if (!op || !key) {
            batch_clear(t);
            return (void)resp_error(&c->out, "ERR out of memory");
        }
        *op = (watch_op){w->version, w->touched, touch_slot(c->srv, w->key, w->klen)};
        memcpy(key, w->key, w->klen);
        if (key_fits(w->klen))
            batch_update(t, key, w->klen, watch_check, op);
    }
    t->cmds[0].n = t->nops;
    c->multi = true;
    resp_ok(&c->out);
}

void tx_queue(conn *c, const command *k, int argc, const char **argv, const size_t *lens)
{
    const kvs_server_config *cfg = c->srv->cfg;
    uint32_t max_commands = __atomic_load_n(&cfg->max_multi_commands, __ATOMIC_RELAXED);
    uint64_t max_bytes = __atomic_load_n(&cfg->max_multi_bytes, __ATOMIC_RELAXED);
    if (c->tx.ncmds > max_commands) { /* cmds[0] is the EXEC */
        c->multi_dirty = true;
        return (void)resp_error(&c->out, "ERR too many commands in one transaction (kvs: at "
                                         "most %u)", max_commands);
    }
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += lens[i];
    if (c->tx.arg_bytes + bytes > max_bytes) {
        c->multi_dirty = true;
        return (void)resp_error(&c->out, "ERR transaction too large (kvs: at most %llu bytes "
                                         "of arguments)", (unsigned long long)max_bytes);
    }
    if (!batch_add_cmd(c, &c->tx, k, argc, argv, lens, true, true)) {
        c->multi_dirty = true;
        return (void)resp_error(&c->out, "ERR out of memory");
    }
    c->tx.arg_bytes += bytes;
    resp_status(&c->out, "QUEUED");
}

void cmd_discard(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (!c->multi)
        return (void)resp_error(&c->out, "ERR DISCARD without MULTI");
    tx_end(c);
    resp_ok(&c->out);
}

/* The transaction's own writes bump their slots too (watch_touch, before the commit that checks
 * its watches): each watch expects them. */
static bool watch_own_writes(server *s, const batch *b)
{
    uint32_t *own = calloc(WATCH_SLOTS, sizeof *own);

    if (!own)
        return false;
    for (size_t j = 1; j < b->ncmds; j++) {
        const batch_cmd *bc = &b->cmds[j];
        if (bc->cmd && (bc->cmd->flags & CMD_WRITE))
            for (size_t i = bc->first; i < bc->first + bc->n; i++)
                own[touch_slot(s, b->ops[i].key, b->ops[i].klen) - s->touched]++;
    }
    for (size_t i = b->cmds[0].first; i < b->cmds[0].first + b->cmds[0].n; i++) {
        watch_op *w = b->ops[i].update_ctx;
        w->touched += own[w->slot - s->touched];
    }
    free(own);
    return true;
}

void cmd_exec(conn *c, int argc, const char **argv, const size_t *lens)
{
    if (!c->multi)
        return (void)resp_error(&c->out, "ERR EXEC without MULTI");
    if (c->multi_dirty) {
        tx_end(c);
        return (void)resp_error(&c->out,
                                "EXECABORT Transaction discarded because of previous errors.");
    }
    batch tmp = c->batch;
    KVS_ASSERT(tmp.ncmds == 0 && tmp.nops == 0); /* committed before a direct command runs */
    c->batch = c->tx;
    c->tx = tmp;
    batch *b = &c->batch;
    b->cmds[0].tx_n = b->ncmds - 1;
    if (b->cmds[0].n && !watch_own_writes(c->srv, b)) {
        batch_clear(b);
        tx_end(c);
        return (void)resp_error(&c->out, "ERR out of memory");
    }
    for (size_t i = 0; i + 1 < b->nops; i++) /* one group: all or nothing, also across a crash */
        b->ops[i].flags |= KVS_OP_WITH_NEXT;
    if (b->nops)
        b->ops[b->nops - 1].flags &= ~KVS_OP_WITH_NEXT;
    tx_end(c); /* the watches are spent; the replies come with the batch's */
}

bool exec_begin(conn *c, const batch *b, const batch_cmd *bc)
{
    for (size_t i = bc->first; i < bc->first + bc->n; i++)
        if (b->ops[i].rc == KVS_ECONFLICT) {
            resp_array(&c->out, -1);
            return false;
        }
    resp_array(&c->out, (long long)bc->tx_n);
    return true;
}
