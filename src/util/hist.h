/*
 * hist.h — a log-bucketed latency histogram: kvs-bench's, and kvs-server's commit and command
 * latencies (INFO).
 *
 * Each benchmark thread keeps one and records every operation's latency in nanoseconds; the
 * threads' histograms are merged at the end (kb_hist_merge), so no thread ever shares a cache line
 * with another while it measures and no array of samples grows with the number of operations.
 *
 * Buckets are log-linear, as HdrHistogram's: values below 64 ns have a bucket each; above, every
 * power of two is split into 32 equal buckets, so a bucket is at most 1/32 (3.1 %) of its lower
 * bound wide. Percentiles interpolate linearly inside the bucket that holds them and are clamped
 * to the exact minimum and maximum, which are kept apart. 1920 buckets cover all of uint64_t.
 */
#ifndef KVS_UTIL_HIST_H
#define KVS_UTIL_HIST_H

#include <stdint.h>
#include <stdio.h>

#define KB_HIST_LINEAR 64  /* values below this have a bucket each */
#define KB_HIST_SUB_BITS 5 /* 2^5 = 32 buckets per power of two above */
#define KB_HIST_BUCKETS (KB_HIST_LINEAR + (64 - 6) * (1 << KB_HIST_SUB_BITS))

typedef struct kb_hist {
    uint64_t count;
    uint64_t min, max; /* ns; min is UINT64_MAX while count is 0 */
    double sum, sumsq; /* ns, ns² */
    uint64_t buckets[KB_HIST_BUCKETS];
} kb_hist;

void kb_hist_init(kb_hist *h);
/* Adds, resets: one thread at a time per histogram. Each may run while other threads merge
 * it (kb_hist_merge reads src with atomic loads), so a thread may keep its own and others read
 * it without a lock. */
void kb_hist_add(kb_hist *h, uint64_t ns);
/* n samples of the same value. */
void kb_hist_add_n(kb_hist *h, uint64_t ns, uint64_t n);
/* Empty h again (as kb_hist_init, but safe beside a merge). */
void kb_hist_reset(kb_hist *h);
/* Add every sample of src to dst (dst: the caller's alone). */
void kb_hist_merge(kb_hist *dst, const kb_hist *src);
/* The p-th percentile (0 < p ≤ 100) in ns; 0 when empty. */
double kb_hist_percentile(const kb_hist *h, double p);
double kb_hist_mean(const kb_hist *h);
double kb_hist_stddev(const kb_hist *h);
/* The bucket index of a value and a bucket's bounds [lo, hi] (for tests and printing). */
unsigned kb_hist_index(uint64_t ns);
uint64_t kb_hist_bucket_lo(unsigned idx);
uint64_t kb_hist_bucket_hi(unsigned idx);
/* db_bench's --histogram print-out, in microseconds: count, average, stddev, min, median, max,
 * percentiles, then one line per non-empty bucket with its share and the cumulative share. */
void kb_hist_print(const kb_hist *h, FILE *out);

#endif /* KVS_UTIL_HIST_H */
