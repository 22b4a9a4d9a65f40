/*
 * manifest.h — the MANIFEST: the single truth of which segments are live and which is active.
 *
 * An append-only file of checksummed edits. Each edit adds and drops segments and may name a new
 * active segment; replaying every edit from the start gives the live set. A rotation is one edit
 * (add the new segment, make it active); a compaction is one edit (add its outputs, drop what
 * they replace), so its swap is atomic: before the edit is on disk the old files are the truth,
 * after it the new ones are. Files in the directory that the manifest does not name are judged
 * at open by recover.c, which deletes only what is certain to hold nothing live.
 *
 * Header (16 bytes), then edits. Little-endian.
 *
 *   offset  size  field
 *   ------  ----  ---------------------------------------------------------------
 *        0     4  magic "KVSM" (0x4d53564b)
 *        4     2  format version (1)
 *        6    10  reserved, 0
 *
 *   edit:
 *        0     4  checksum: low 32 bits of XXH3-64 over bytes 4 .. end of the edit
 *        4     4  payload length P = 12 + 4 * (n_add + n_drop)
 *        8     4  active segment id after this edit (0: unchanged)
 *       12     4  n_add
 *       16     4  n_drop
 *       20  4*na  ids added
 *        .  4*nd  ids dropped
 *
 * A damaged last edit is either a torn append (never acknowledged) or an acknowledged edit
 * damaged since; the bytes cannot tell which. Replay stops before it and reports its offset and
 * size (man_state.lost_*) without touching the file: recovery first judges the segment files
 * that edit may have named (recover.c), then cuts the damaged bytes off (man_drop_tail) or
 * rewrites the whole manifest (man_reset). A damaged edit with valid edits after it is
 * corruption: open refuses (KVS_ECORRUPT) rather than guess which segments are live.
 *
 * Ids only grow (next_id starts past every id an edit added), so an id is added at most once in
 * a manifest's history. Replay remembers every id an edit dropped (man_state.dropped): a dropped
 * segment whose file is still there is a compaction victim whose deletion a crash interrupted,
 * dead for certain, while an unnamed id never dropped may hold the writes of a lost edit.
 *
 * man_reset replaces the file atomically (MANIFEST.tmp, fdatasync, rename, directory fsync) and
 * keeps appending to the old file until the new one is in place: a reset that fails leaves the
 * old manifest in use, whole, and the next reset tries again.
 */
#ifndef KVS_LOG_MANIFEST_H
#define KVS_LOG_MANIFEST_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define MAN_MAGIC 0x4d53564bu
#define MAN_VERSION 1u
#define MAN_HDR 16u
#define MAN_EDIT_HDR 20u
#define MAN_MAX_IDS (1u << 20)
#define MAN_FILE "MANIFEST"

typedef struct man_state {
    uint32_t active;
    uint32_t n;
    size_t cap;
    uint32_t *ids;     /* live segment ids, ascending */
    uint32_t max_id;   /* highest id any edit added (dropped ones included) */
    uint32_t ndropped;
    size_t capdropped;
    uint32_t *dropped; /* ids some edit dropped, ascending */
    uint64_t lost_off, lost_bytes; /* a damaged last edit: where, how long (0: none) */
} man_state;

typedef struct manifest {
    int fd;
    uint64_t size;
    uint32_t edits;
    char path[PATH_MAX];
} manifest;

/* Open dir's MANIFEST and replay it into st. KVS_ENOTFOUND if the directory has none. A damaged
 * last edit is reported in st (lost_off, lost_bytes) and left in the file: the caller decides,
 * then calls man_drop_tail or man_reset before the first man_append. */
int man_open(const char *dir, manifest *m, man_state *st);
/* Replay dir's MANIFEST leniently, read-only, for readers of a store no one has open
 * (kvs_verify, kvs_repair): each edit that is not whole and valid, or does not apply (drops an
 * unknown segment...), goes to bad(ctx, offset, what) and is skipped, the walk going on at the
 * next valid edit; the valid edits are replayed into st (the caller frees it), *edits counts
 * them. A bad header is reported and is KVS_ECORRUPT; no MANIFEST is KVS_ENOTFOUND. */
typedef void (*man_bad_fn)(void *ctx, uint64_t off, const char *what);
int man_walk(const char *dir, man_bad_fn bad, void *ctx, man_state *st, uint32_t *edits);
/* Cut the file back to the end of its last valid edit, synced. */
int man_drop_tail(manifest *m);
/* Write a manifest holding one edit (active, ids) atomically over any old one, and append to it
 * from then on. On failure m still appends to the old manifest, which is unchanged. */
int man_reset(const char *dir, manifest *m, uint32_t active, const uint32_t *ids, uint32_t n);
/* Append one edit and sync it. */
int man_append(manifest *m, uint32_t active, const uint32_t *add, uint32_t n_add,
               const uint32_t *drop, uint32_t n_drop);
void man_close(manifest *m);
void man_state_free(man_state *st);
int man_state_has(const man_state *st, uint32_t id);
/* Did some edit drop segment id? */
int man_state_dropped(const man_state *st, uint32_t id);

#endif
