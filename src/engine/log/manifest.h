/*
 * manifest.h — the MANIFEST: the single truth of which segments are live and which is active.
 *
 * An append-only file of checksummed edits. Each edit adds and drops segments and may name a new
 * active segment; replaying every edit from the start gives the live set. A rotation is one edit
 * (add the new segment, make it active); a compaction is one edit (add its outputs, drop what
 * they replace), so its swap is atomic: before the edit is on disk the old files are the truth,
 * after it the new ones are. Files in the directory that the manifest does not name are leftovers
 * of an unfinished step and are deleted at open.
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
 * A damaged last edit is a torn append (the edit was never acknowledged): it is truncated and
 * logged. A damaged edit with valid edits after it is corruption: open refuses (KVS_ECORRUPT)
 * rather than guess which segments are live and delete the others.
 */
#ifndef KVS_LOG_MANIFEST_H
#define KVS_LOG_MANIFEST_H

#include <limits.h>
#include <stdint.h>

#define MAN_MAGIC 0x4d53564bu
#define MAN_VERSION 1u
#define MAN_HDR 16u
#define MAN_EDIT_HDR 20u
#define MAN_MAX_IDS (1u << 20)
#define MAN_FILE "MANIFEST"

typedef struct man_state {
    uint32_t active;
    uint32_t n, cap;
    uint32_t *ids; /* live segment ids, ascending */
    uint32_t max_id;
} man_state;

typedef struct manifest {
    int fd;
    uint64_t size;
    uint32_t edits;
    char path[PATH_MAX];
} manifest;

/* Open dir's MANIFEST and replay it into st. KVS_ENOTFOUND if the directory has none. */
int man_open(const char *dir, manifest *m, man_state *st);
/* Write a manifest holding one edit (active, ids) atomically over any old one, and open it. */
int man_reset(const char *dir, manifest *m, uint32_t active, const uint32_t *ids, uint32_t n);
/* Append one edit and sync it. */
int man_append(manifest *m, uint32_t active, const uint32_t *add, uint32_t n_add,
               const uint32_t *drop, uint32_t n_drop);
void man_close(manifest *m);
void man_state_free(man_state *st);
int man_state_has(const man_state *st, uint32_t id);

#endif
