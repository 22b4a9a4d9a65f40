/*
 * verify.h — reading a whole data directory of the log engine offline, every byte checked: the
 * walk that kvs_verify (verify.c) reports and kvs_repair (repair.c) salvages from.
 *
 * The walk replays the MANIFEST leniently (man_walk: a damaged edit is reported and skipped),
 * opens every segment read-only, scans every record (both checksums; the active segment's tail
 * judged as recovery judges it), checks every hint entry against the record it names, and
 * judges the files the MANIFEST does not name. Each finding goes to the caller's function with
 * the file (its name in the directory), the offset and what is wrong; bad 0 marks a note (a
 * leftover the next open removes). Records go into a salvage table (salvage.h): the newest of
 * each key, the keys and values pointing into the segments' mappings, which the walk keeps
 * until walk_free.
 */
#ifndef KVS_LOG_VERIFY_H
#define KVS_LOG_VERIFY_H

#include "engine/log/manifest.h"
#include "engine/log/salvage.h"
#include "engine/log/segment.h"
#include "kvs.h"

typedef struct walk {
    const char *dir;
    kvs_finding_fn fn;
    void *ctx;
    bool salvage;           /* kvs_repair: also read the segment files no edit names or dropped */
    man_state st;
    uint32_t edits;         /* valid manifest edits */
    seg **segs;             /* every segment read, mapped (descriptors closed) */
    uint32_t nsegs;
    size_t nsegs_cap;
    salv_table keys;        /* the newest record of each key */
    uint64_t records, bytes, hint_entries, bad, notes;
    uint64_t dropped, dropped_bytes; /* damaged records and unreadable bytes */
} walk;

/* Walk dir (locked by the caller). 0, or a failure that stopped the walk (out of memory, no
 * MANIFEST: KVS_EINVAL); what it found is in w and went to w->fn. */
int walk_dir(walk *w);
void walk_free(walk *w);
/* A finding: counted in w->bad or w->notes, and handed to w->fn. */
void walk_finding(walk *w, int bad, const char *file, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
