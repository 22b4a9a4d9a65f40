/*
 * cmd.h — what the command files of src/server share (internal): the command table's entry,
 * the write batch's interface for commands, and the reply helpers.
 *
 * A command is one of three shapes, said by its table entry:
 *
 *   direct   fn runs on the loop thread and replies at once (PING, GET, SCAN, CLIENT, ...).
 *   write    queue parses and checks the arguments and queues the command's ops in the
 *            connection's batch (conn.h), with whatever state its reply needs in memory the
 *            batch owns (batch_alloc); reply answers once the batch is committed, from the
 *            ops' rc and that state. A refusal found by queue (syntax, a key too long) keeps
 *            the command's place: bc->err or bc->refused is its reply, and it queues no op.
 *            Every write goes this way, so there is one write path: a read-modify-write is a
 *            KVS_OP_UPDATE op whose function (called by the engine in its write order, under
 *            its write lock) computes the new value from kvs_cur and leaves its outcome in the
 *            command's state. Update functions never fail an op themselves (only WATCH's check
 *            returns KVS_ECONFLICT): an INCR of a non-number writes nothing and says so in its
 *            state, so that inside MULTI it cannot refuse the commands after it.
 *   read     read replies from a capture of each of its keys (first_key..last_key): run
 *            directly by kvs_read_meta (cmd_read_direct) or, inside MULTI, from update ops that
 *            write nothing and copy what they see, so they see the transaction's own writes.
 *            fn, when set, is a faster direct form (GET, MGET: the value straight to the reply).
 *
 * Memory: batch_alloc gives zeroed memory that lives until the batch's replies are out. Update
 * functions allocate from the batch being committed (c->batch: a transaction is moved there
 * before it commits), never from the one their state was queued in.
 */
#ifndef KVS_SERVER_CMD_H
#define KVS_SERVER_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/conn.h"

/* A key as a command saw it: val lies in batch memory (or, direct, in the caller's copy). */
typedef struct capture {
    bool found;
    kvs_meta meta;
    const char *val;
    size_t vlen;
} capture;

typedef void (*cmd_fn)(conn *c, int argc, const char **argv, const size_t *lens);
typedef void (*cmd_queue_fn)(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                             const size_t *lens);
typedef void (*cmd_reply_fn)(conn *c, const batch *b, const batch_cmd *bc);
/* caps: one per key position, in order. */
typedef void (*cmd_read_fn)(conn *c, int argc, const char **argv, const size_t *lens,
                            const capture *caps);

enum {
    CMD_WRITE = 1 << 0,    /* changes the data set */
    CMD_READONLY = 1 << 1, /* reads the data set */
    CMD_NOAUTH = 1 << 2,   /* may run before AUTH */
    CMD_FAST = 1 << 3,     /* constant time */
    CMD_TX = 1 << 4,       /* runs at once inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT) */
    CMD_META = 1 << 5,     /* a read that needs the keys' expiry times (kvs_read_meta) */
};

/* Everything dispatch, batching, transactions and COMMAND need to know of a command: nothing
 * recognises a command by its name. */
struct command {
    const char *name;
    int arity;                /* N: exactly N words, name included; -N: at least N */
    int flags;                /* CMD_* */
    int first_key, last_key, key_step; /* Redis's key positions (last -1: to the end) */
    cmd_fn fn;                /* direct form, or NULL */
    cmd_queue_fn queue;       /* write form: queue and reply, or NULL */
    cmd_reply_fn reply;
    cmd_read_fn read;         /* read form, or NULL */
    int variant;              /* which member of a family one function serves (queue reads it
                                 as bc->cmd->variant): INCR +1, DECR -1, EXPIRE its units... */
};

/* ---- the batch, for commands (commands.c) ---- */

/* Zeroed memory owned by b until its replies are out; NULL when out of memory. */
void *batch_alloc(batch *b, size_t n);
/* The next op of b (zeroed), its room already reserved by cmd_batch_add (queue functions ask
 * for more with batch_reserve). */
kvs_op *batch_op(batch *b);
bool batch_reserve(batch *b, size_t ops);
/* Queue an update op on key calling fn(ctx). */
void batch_update(batch *b, const char *key, size_t klen, kvs_update_fn fn, void *ctx);
/* Queue an op that copies key's state into *cap (a read inside a transaction, or the read
 * half of RENAME and COPY): cap->val then lies in c->batch's memory. */
bool batch_capture(conn *c, batch *b, const char *key, size_t klen, capture *cap);
/* Copy n bytes into the batch being committed (from an update function); NULL when out of
 * memory. */
char *batch_copy(conn *c, const void *p, size_t n);
/* Queue command k in b (write ops, a read's captures, or nothing for a direct command inside
 * MULTI); transient: copy the arguments; keep: keep argc/argv/lens in the batch_cmd. False when
 * out of memory (b is then as it was, but for memory it keeps). */
bool batch_add_cmd(conn *c, batch *b, const command *k, int argc, const char **argv,
                   const size_t *lens, bool transient, bool keep);
/* An error reply made at queue time (batch memory; a fixed text when out of memory). */
const char *batch_errf(batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first failure of bc's ops that is the engine's, not the command's: 0 if none. */
int batch_cmd_error(const batch *b, const batch_cmd *bc);

/* Run a read command directly: capture each key with kvs_read_meta, then k->read. */
void cmd_read_direct(conn *c, const command *k, int argc, const char **argv, const size_t *lens);

/* The command table (commands.c): its size, entry i, and k's index in it (per-command counts). */
size_t cmd_count(void);
const command *cmd_at(size_t i);
size_t cmd_index(const command *k);

/* ---- replies and checks (commands.c) ---- */

bool arg_is(const char *a, size_t n, const char *word);
bool key_fits(size_t klen);
int check_set(size_t klen, size_t vlen);
void reply_refused(conn *c, int rc);
void engine_error(conn *c, const char *what, int rc);
void engine_error_detail(conn *c, const char *what, int rc, const char *detail);
/* The reply of a write command whose ops failed in the engine (rc < 0), with b's detail. */
void reply_batch_error(conn *c, const batch *b, const batch_cmd *bc, int rc);
/* Redis's string2ll: the whole of s[0, n) is a long long, no leading zeros, no '+'. */
bool redis_str2ll(const char *s, size_t n, long long *out);
/* The store's clock now, in ms (kvs_now_ms). */
uint64_t cmd_now_ms(conn *c);

extern const char ERR_SYNTAX[], ERR_NOT_INT[], ERR_MAX_SIZE[];

/* ---- the commands, by file ---- */

/* cmd_string.c */
void set_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv, const size_t *lens);
void set_reply(conn *c, const batch *b, const batch_cmd *bc);
/* SETNX (variant 0) and GETSET (1): a SET with NX or with GET */
void setnx_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                 const size_t *lens);
/* SETEX (variant 1: seconds) and PSETEX (0) */
void setex_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                 const size_t *lens);
void getdel_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
void getex_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                 const size_t *lens);
void mset_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                const size_t *lens);
void msetnx_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
void ok_reply(conn *c, const batch *b, const batch_cmd *bc);
void int_reply(conn *c, const batch *b, const batch_cmd *bc);
/* INCR and DECR: variant the step */
void incr_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                const size_t *lens);
/* INCRBY and DECRBY: variant the sign */
void incrby_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
void incrbyfloat_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                       const size_t *lens);
void append_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
void setrange_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                    const size_t *lens);
void setbit_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
/* the EXPIRE family and PERSIST: single-key updates like the rest of cmd_string.c */
enum { EXPIRE_SECONDS = 1, EXPIRE_RELATIVE = 2 };
/* variant: EXPIRE_SECONDS | EXPIRE_RELATIVE */
void expire_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
void persist_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                   const size_t *lens);
void get_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void mget_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void strlen_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void getrange_read(conn *c, int argc, const char **argv, const size_t *lens,
                   const capture *caps);
void getbit_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void bitcount_read(conn *c, int argc, const char **argv, const size_t *lens,
                   const capture *caps);

/* cmd_keys.c */
void del_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv, const size_t *lens);
void del_reply(conn *c, const batch *b, const batch_cmd *bc);
/* RENAME (variant 0), RENAMENX (1) */
void rename_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                  const size_t *lens);
void copy_queue(conn *c, batch *b, batch_cmd *bc, int argc, const char **argv,
                const size_t *lens);
void move_reply(conn *c, const batch *b, const batch_cmd *bc);
void exists_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void ttl_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void pttl_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void expiretime_read(conn *c, int argc, const char **argv, const size_t *lens,
                     const capture *caps);
void pexpiretime_read(conn *c, int argc, const char **argv, const size_t *lens,
                      const capture *caps);
void type_read(conn *c, int argc, const char **argv, const size_t *lens, const capture *caps);
void cmd_scan(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_keys(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_randomkey(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_flushdb(conn *c, int argc, const char **argv, const size_t *lens);

/* cmd_multi.c */
void cmd_multi(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_exec(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_discard(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_watch(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_unwatch(conn *c, int argc, const char **argv, const size_t *lens);
/* Queue a command inside MULTI (+QUEUED). */
void tx_queue(conn *c, const command *k, int argc, const char **argv, const size_t *lens);
/* The EXEC in a committed batch's replies: emits its array header, or nil and false when its
 * watches refused it (then the bc->tx_n commands after it have no replies). */
bool exec_begin(conn *c, const batch *b, const batch_cmd *bc);

/* cmd_durable.c */
void cmd_waitaof(conn *c, int argc, const char **argv, const size_t *lens);

/* cmd_config.c */
void cmd_config(conn *c, int argc, const char **argv, const size_t *lens);

/* cmd_info.c */
void cmd_info(conn *c, int argc, const char **argv, const size_t *lens);
/* cmd_save.c */
void cmd_save(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_bgsave(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_lastsave(conn *c, int argc, const char **argv, const size_t *lens);

/* cmd_client.c */
void cmd_client(conn *c, int argc, const char **argv, const size_t *lens);
void cmd_time(conn *c, int argc, const char **argv, const size_t *lens);

#endif
