/* SPDX-License-Identifier: MIT */
/*
 * micro_xshard: the cost of one envelope across the mesh, push + flush + pop, in the spirit of
 * Seastar's smp_submit_to_perf. A producer thread (CPU 0) pushes envelopes to shard 1 in
 * batches of 1, 16 and 256, flushing after each batch; a consumer thread (CPU 1) busy-pops
 * them. Reports ns per envelope over the whole transfer, best and median of several runs, and
 * next to it the same path on one thread through the loop-back ring.
 *
 * Usage: micro_xshard [envelopes-per-run]   (default 4,000,000)
 * For stable numbers: a release build, an otherwise idle machine, two physical cores.
 */
#include "xshard.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#define BENCH_RING_CAP 1024
#define BENCH_RUNS     5

struct bench {
    struct xshard *x;
    unsigned batch;
    uint64_t total;
    atomic_uint ready; /* start line: both threads pinned and waiting */
    bool pinned[2];
    double t0, t1; /* producer leaves the start line; consumer pops the last envelope */
    uint64_t errors;
};

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static bool pin(unsigned cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

/* Both threads start together so neither times the other's thread creation. */
static void start_line(struct bench *b)
{
    /* Relaxed, pairs with nothing: what the threads share was written before they were
     * created, and this only lines them up in time. */
    atomic_fetch_add_explicit(&b->ready, 1, memory_order_relaxed);
    while (atomic_load_explicit(&b->ready, memory_order_relaxed) < 2)
        ;
}

static void *producer(void *arg)
{
    struct bench *b = arg;
    struct xshard_env e = {.kind = 1, .arg = 0, .ptr = NULL, .val = 0};
    uint64_t seq = 0;
    bool pending = false;
    unsigned i;

    b->pinned[0] = pin(0);
    start_line(b);
    b->t0 = now_ns();
    while (seq < b->total) {
        /* Keep to the ring: the overflow path is for bursts, not what this measures. */
        while (pending)
            xshard_flush(b->x, 0, &pending);
        for (i = 0; i < b->batch && seq < b->total; i++) {
            e.val = seq++;
            if (xshard_push(b->x, 0, 1, &e) < 0)
                b->errors++;
        }
        xshard_flush(b->x, 0, &pending);
    }
    while (pending)
        xshard_flush(b->x, 0, &pending);
    return NULL;
}

static void *consumer(void *arg)
{
    struct bench *b = arg;
    struct xshard_env out[256];
    uint64_t next = 0;
    size_t n, i;

    b->pinned[1] = pin(1);
    start_line(b);
    while (next < b->total) {
        n = xshard_pop(b->x, 1, out, 256);
        for (i = 0; i < n; i++)
            if (out[i].val != next++)
                b->errors++;
    }
    b->t1 = now_ns();
    return NULL;
}

/* One run: ns per envelope from the start line to the last envelope popped. */
static double run_once(unsigned batch, uint64_t total, bool *pinned)
{
    struct bench b = {.batch = batch, .total = total};
    pthread_t tp, tc;

    b.x = xshard_create(2, BENCH_RING_CAP);
    if (!b.x) {
        fprintf(stderr, "micro_xshard: out of memory\n");
        exit(1);
    }
    atomic_init(&b.ready, 0);
    if (pthread_create(&tc, NULL, consumer, &b) || pthread_create(&tp, NULL, producer, &b)) {
        fprintf(stderr, "micro_xshard: cannot start threads\n");
        exit(1);
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    xshard_destroy(b.x);
    if (b.errors) {
        fprintf(stderr, "micro_xshard: %llu envelopes out of order\n",
                (unsigned long long)b.errors);
        exit(1);
    }
    *pinned = b.pinned[0] && b.pinned[1];
    return (b.t1 - b.t0) / (double)total;
}

/*
 * The same path on one thread through the loop-back ring: the instructions alone, with no cache
 * line crossing cores. The gap to run_once is what the transfer between cores costs.
 */
static double run_local(unsigned batch, uint64_t total)
{
    struct xshard *x = xshard_create(1, BENCH_RING_CAP);
    struct xshard_env e = {.kind = 1, .arg = 0, .ptr = NULL, .val = 0}, out[256];
    uint64_t seq = 0, next = 0, errors = 0;
    double t0, t1;
    size_t n, i;
    unsigned b;

    if (!x) {
        fprintf(stderr, "micro_xshard: out of memory\n");
        exit(1);
    }
    t0 = now_ns();
    while (seq < total) {
        for (b = 0; b < batch && seq < total; b++) {
            e.val = seq++;
            if (xshard_push(x, 0, 0, &e) < 0)
                errors++;
        }
        xshard_flush(x, 0, NULL);
        while ((n = xshard_pop(x, 0, out, 256)) > 0)
            for (i = 0; i < n; i++)
                if (out[i].val != next++)
                    errors++;
    }
    t1 = now_ns();
    xshard_destroy(x);
    if (errors || next != total) {
        fprintf(stderr, "micro_xshard: loop-back ring lost or reordered envelopes\n");
        exit(1);
    }
    return (t1 - t0) / (double)total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void print_platform(void)
{
    char line[256], model[256] = "unknown";
    struct utsname u;
    FILE *f = fopen("/proc/cpuinfo", "r");

    if (f) {
        while (fgets(line, sizeof(line), f)) {
            char *colon = strchr(line, ':');

            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof(model), "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    if (uname(&u) != 0)
        strcpy(u.release, "unknown");
    printf("cpu: %s\nkernel: %s\nliburing: not used on this path\n", model, u.release);
}

int main(int argc, char **argv)
{
    static const unsigned batches[] = {1, 16, 256};
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 4000000;
    bool pinned = true;
    unsigned i, r;

    if (total == 0) {
        fprintf(stderr, "usage: micro_xshard [envelopes-per-run]\n");
        return 2;
    }
    print_platform();
    printf("ring: %u envelopes of %zu bytes; %llu envelopes per run, %u runs\n", BENCH_RING_CAP,
           sizeof(struct xshard_env), (unsigned long long)total, BENCH_RUNS);
    printf("%-6s %14s %16s %18s\n", "batch", "best ns/env", "median ns/env", "1 thread, best");
    for (i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
        double ns[BENCH_RUNS], local[BENCH_RUNS];
        bool p;

        for (r = 0; r < BENCH_RUNS; r++) {
            ns[r] = run_once(batches[i], total, &p);
            pinned = pinned && p;
            local[r] = run_local(batches[i], total);
        }
        qsort(ns, BENCH_RUNS, sizeof(ns[0]), cmp_double);
        qsort(local, BENCH_RUNS, sizeof(local[0]), cmp_double);
        printf("%-6u %14.2f %16.2f %18.2f\n", batches[i], ns[0], ns[BENCH_RUNS / 2], local[0]);
    }
    if (!pinned)
        printf("note: threads could not be pinned to CPUs 0 and 1\n");
    return 0;
}
