/*
 * hist.c — the log-linear latency histogram of hist.h.
 *
 * Index of a value v ≥ 64: with m the position of its highest set bit (6 ≤ m ≤ 63) and
 * top = v >> (m - 5) its five bits below that one plus the bit itself (32 ≤ top ≤ 63), the bucket
 * is 64 + (m - 6) * 32 + (top - 32). Its bounds are [top << (m-5), ((top+1) << (m-5)) - 1].
 */
#include "util/hist.h"

#include <math.h>
#include <string.h>

#define SUB (1u << KB_HIST_SUB_BITS)

void kb_hist_init(kb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned kb_hist_index(uint64_t ns)
{
    if (ns < KB_HIST_LINEAR)
        return (unsigned)ns;
    unsigned m = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = m - KB_HIST_SUB_BITS;
    return KB_HIST_LINEAR + (m - 6) * SUB + (unsigned)(ns >> shift) - SUB;
}

uint64_t kb_hist_bucket_lo(unsigned idx)
{
    if (idx < KB_HIST_LINEAR)
        return idx;
    unsigned m = (idx - KB_HIST_LINEAR) / SUB + 6, top = (idx - KB_HIST_LINEAR) % SUB + SUB;
    return (uint64_t)top << (m - KB_HIST_SUB_BITS);
}

uint64_t kb_hist_bucket_hi(unsigned idx)
{
    if (idx < KB_HIST_LINEAR)
        return idx;
    if (idx == KB_HIST_BUCKETS - 1)
        return UINT64_MAX;
    return kb_hist_bucket_lo(idx + 1) - 1;
}

/* Relaxed atomic stores and loads: one thread adds, others may merge at the same time (a
 * loop thread's latencies read by INFO on another loop). On x86 and arm64 they are plain moves;
 * a reader may see one sample's bucket before its count, which a percentile shrugs off. */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static double load_d(const double *p)
{
    double v;
    __atomic_load(p, &v, __ATOMIC_RELAXED);
    return v;
}

static void store_d(double *p, double v)
{
    __atomic_store(p, &v, __ATOMIC_RELAXED);
}

void kb_hist_add(kb_hist *h, uint64_t ns)
{
    kb_hist_add_n(h, ns, 1);
}

void kb_hist_add_n(kb_hist *h, uint64_t ns, uint64_t n)
{
    unsigned i = kb_hist_index(ns);

    STORE(h->buckets[i], h->buckets[i] + n);
    STORE(h->count, h->count + n);
    if (ns < h->min)
        STORE(h->min, ns);
    if (ns > h->max)
        STORE(h->max, ns);
    store_d(&h->sum, h->sum + (double)ns * (double)n);
    store_d(&h->sumsq, h->sumsq + (double)ns * (double)ns * (double)n);
}

void kb_hist_reset(kb_hist *h)
{
    for (unsigned i = 0; i < KB_HIST_BUCKETS; i++)
        STORE(h->buckets[i], 0);
    STORE(h->count, 0);
    STORE(h->min, UINT64_MAX);
    STORE(h->max, 0);
    store_d(&h->sum, 0);
    store_d(&h->sumsq, 0);
}

void kb_hist_merge(kb_hist *dst, const kb_hist *src)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
        uint64_t b = LOAD(src->buckets[i]);
        dst->buckets[i] += b;
        n += b;
    }
    dst->count += n; /* the buckets' sum: consistent with them even mid-add */
    if (LOAD(src->min) < dst->min)
        dst->min = LOAD(src->min);
    if (LOAD(src->max) > dst->max)
        dst->max = LOAD(src->max);
    dst->sum += load_d(&src->sum);
    dst->sumsq += load_d(&src->sumsq);
}

double kb_hist_percentile(const kb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    double want = h->count * (p / 100.0), cum = 0;
    for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0)
            continue;
        double prev = cum;
        cum += (double)h->buckets[i];
        if (cum >= want) {
            double lo = (double)kb_hist_bucket_lo(i), hi = (double)kb_hist_bucket_hi(i) + 1;
            double v = lo + (hi - lo) * ((want - prev) / (double)h->buckets[i]);
            if (v < (double)h->min)
                v = (double)h->min;
            if (v > (double)h->max)
                v = (double)h->max;
            return v;
        }
    }
    return (double)h->max;
}

double kb_hist_mean(const kb_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}

double kb_hist_stddev(const kb_hist *h)
{
    if (h->count == 0)
        return 0;
    double mean = kb_hist_mean(h), var = h->sumsq / (double)h->count - mean * mean;
    return var > 0 ? sqrt(var) : 0;
}

void kb_hist_print(const kb_hist *h, FILE *out)
{
    double us = 1e-3;

    fprintf(out, "Microseconds per op:\n");
    fprintf(out, "Count: %llu Average: %.4f  StdDev: %.2f\n", (unsigned long long)h->count,
            kb_hist_mean(h) * us, kb_hist_stddev(h) * us);
    fprintf(out, "Min: %.3f  Median: %.4f  Max: %.3f\n", h->count ? (double)h->min * us : 0,
            kb_hist_percentile(h, 50) * us, (double)h->max * us);
    fprintf(out, "Percentiles: P50: %.2f P75: %.2f P99: %.2f P99.9: %.2f P99.99: %.2f\n",
            kb_hist_percentile(h, 50) * us, kb_hist_percentile(h, 75) * us,
            kb_hist_percentile(h, 99) * us, kb_hist_percentile(h, 99.9) * us,
            kb_hist_percentile(h, 99.99) * us);
    fprintf(out, "------------------------------------------------------\n");
    double cum = 0;
    for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0)
            continue;
        double share = 100.0 * (double)h->buckets[i] / (double)h->count;
        cum += share;
        fprintf(out, "[ %10.3f, %10.3f ) %10llu %7.3f%% %7.3f%%\n",
                (double)kb_hist_bucket_lo(i) * us, ((double)kb_hist_bucket_hi(i) + 1) * us,
                (unsigned long long)h->buckets[i], share, cum);
    }
}
