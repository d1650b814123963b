/* SPDX-License-Identifier: MIT */
/*
 * metrics: GET /metrics (Prometheus text format) and GET /stats (the same figures as JSON).
 * Each shard writes its own counters (relaxed atomics, one writer); a request sums them on
 * whichever shard serves it. Nothing in here is secret.
 */
#include "metrics.h"

#include "shard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct totals {
    uint64_t accepted, failed, msgs_in, msgs_out, bytes_in, bytes_out, sends, slow_close, slow_drop,
        xshard, rooms, queued, conns, turns, cqes, tls_handshaking, tls_waiting, upgrades, closes,
        paused;
    uint64_t hs_failed[HS_FAIL_NR];
};

/* The `reason` label of each enum hs_fail (shard.h), in its order. */
static const char *const hs_fail_names[HS_FAIL_NR] = {
    [HS_FAIL_BAD_REQUEST] = "bad_request",
    [HS_FAIL_FORBIDDEN] = "forbidden",
    [HS_FAIL_NOT_FOUND] = "not_found",
    [HS_FAIL_NOT_WEBSOCKET] = "not_websocket",
    [HS_FAIL_PER_IP] = "per_ip_limit",
    [HS_FAIL_UNAVAILABLE] = "unavailable",
    [HS_FAIL_TIMEOUT] = "timeout",
    [HS_FAIL_TLS] = "tls",
    [HS_FAIL_OTHER] = "other",
};

static void sum(const struct engine *e, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < e->nr_shards; i++) {
        const struct shard_stats *st = &e->shards[i].stats;
        t->conns += LOAD(st->conns);
        t->accepted += LOAD(st->accepted);
        t->failed += LOAD(st->handshakes_failed);
        t->msgs_in += LOAD(st->msgs_in);
        t->msgs_out += LOAD(st->msgs_out);
        t->bytes_in += LOAD(st->bytes_in);
        t->bytes_out += LOAD(st->bytes_out);
        t->sends += LOAD(st->sends);
        t->slow_close += LOAD(st->slow_close);
        t->slow_drop += LOAD(st->slow_drop);
        t->paused += LOAD(st->paused);
        t->xshard += LOAD(st->xshard_msgs);
        t->rooms += LOAD(st->rooms);
        t->queued += LOAD(st->queued_bytes);
        t->turns += LOAD(st->turns);
        t->cqes += LOAD(st->cqes);
        t->tls_handshaking += LOAD(st->tls_handshaking);
        t->tls_waiting += LOAD(st->tls_waiting);
        t->upgrades += LOAD(st->upgrades);
        t->closes += LOAD(st->closes);
        for (unsigned r = 0; r < HS_FAIL_NR; r++)
            t->hs_failed[r] += LOAD(st->hs_failed[r]);
    }
}

/*
 * The process figures, written by metrics_sample_process (one writer, the main thread) and read
 * by any shard: relaxed stores and loads, since each value stands alone. Reading
 * /proc/self/statm on a shard would be a blocking file read (open, read, close) in the middle of
 * its loop, and getrusage(RUSAGE_SELF) walks every thread of the process.
 */
static _Atomic uint64_t proc_rss_bytes;
static _Atomic uint64_t proc_cpu_us;

void metrics_sample_process(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                      (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
        atomic_store_explicit(&proc_cpu_us, us, memory_order_relaxed);
    }
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return;
    unsigned long pages_total, pages_rss;
    long page = sysconf(_SC_PAGESIZE);
    if (fscanf(f, "%lu %lu", &pages_total, &pages_rss) == 2 && page > 0)
        atomic_store_explicit(&proc_rss_bytes, (uint64_t)pages_rss * (uint64_t)page,
                              memory_order_relaxed);
    (void)fclose(f); /* read only: nothing to lose */
}

void metrics_sample_shards(struct engine *e)
{
    for (unsigned i = 0; i < e->nr_shards; i++) {
        struct shard *s = &e->shards[i];
        clockid_t clk;
        struct timespec ts;
        if (pthread_getcpuclockid(s->thread, &clk) != 0 || clock_gettime(clk, &ts) != 0)
            continue;
        atomic_store_explicit(&s->stats.cpu_ns,
                              (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                              memory_order_relaxed);
    }
}

static void process_figures(uint64_t *rss, double *cpu)
{
    *rss = atomic_load_explicit(&proc_rss_bytes, memory_order_relaxed);
    *cpu = (double)atomic_load_explicit(&proc_cpu_us, memory_order_relaxed) / 1e6;
}

/* Appends with snprintf, tracking the length even past <cap> (the caller sizes by retrying). */
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(out + (len < cap ? len : cap), len < cap ? cap - len : 0, __VA_ARGS__);  \
        if (n_ > 0)                                                                                \
            len += (size_t)n_;                                                                     \
    } while (0)

size_t metrics_prometheus(const struct engine *e, char *out, size_t cap)
{
    struct totals t;
    uint64_t rss;
    double cpu;
    size_t len = 0;
    sum(e, &t);
    process_figures(&rss, &cpu);
    OUT("# HELP ringcast_connections Upgraded WebSocket connections held.\n"
        "# TYPE ringcast_connections gauge\n");
    for (unsigned i = 0; i < e->nr_shards; i++)
        OUT("ringcast_connections{shard=\"%u\"} %lu\n", i,
            (unsigned long)LOAD(e->shards[i].stats.conns));
    OUT("# TYPE ringcast_connections_accepted_total counter\n"
        "ringcast_connections_accepted_total %lu\n",
        (unsigned long)t.accepted);
    /* One sample per reason, zeros included, so that rate() sees a series from the start and
     * sum() over the label is the total (no "any" sample to count twice). */
    OUT("# HELP ringcast_handshakes_failed_total Connections refused or dropped before their "
        "request was answered or upgraded, by reason.\n"
        "# TYPE ringcast_handshakes_failed_total counter\n");
    for (unsigned r = 0; r < HS_FAIL_NR; r++)
        OUT("ringcast_handshakes_failed_total{reason=\"%s\"} %lu\n", hs_fail_names[r],
            (unsigned long)t.hs_failed[r]);
    OUT("# TYPE ringcast_messages_received_total counter\n"
        "ringcast_messages_received_total %lu\n",
        (unsigned long)t.msgs_in);
    OUT("# TYPE ringcast_messages_delivered_total counter\n"
        "ringcast_messages_delivered_total %lu\n",
        (unsigned long)t.msgs_out);
    OUT("# TYPE ringcast_bytes_received_total counter\n"
        "ringcast_bytes_received_total %lu\n",
        (unsigned long)t.bytes_in);
    OUT("# TYPE ringcast_bytes_sent_total counter\nringcast_bytes_sent_total %lu\n",
        (unsigned long)t.bytes_out);
    OUT("# HELP ringcast_sends_total Socket sends issued; delivered/sends is frames per send.\n"
        "# TYPE ringcast_sends_total counter\nringcast_sends_total %lu\n",
        (unsigned long)t.sends);
    OUT("# TYPE ringcast_rooms gauge\nringcast_rooms %lu\n", (unsigned long)t.rooms);
    OUT("# HELP ringcast_tls_handshakes TLS handshakes under way, and accepted connections "
        "waiting for a turn (--tls-max-handshakes).\n"
        "# TYPE ringcast_tls_handshakes gauge\n"
        "ringcast_tls_handshakes{state=\"active\"} %lu\n"
        "ringcast_tls_handshakes{state=\"waiting\"} %lu\n",
        (unsigned long)t.tls_handshaking, (unsigned long)t.tls_waiting);
    OUT("# TYPE ringcast_slow_consumer_total counter\n"
        "ringcast_slow_consumer_total{action=\"close\"} %lu\n"
        "ringcast_slow_consumer_total{action=\"drop\"} %lu\n",
        (unsigned long)t.slow_close, (unsigned long)t.slow_drop);
    OUT("# HELP ringcast_publisher_pauses_total Publishers whose reading was paused because "
        "their messages met receivers with half of --send-queue queued (backpressure).\n"
        "# TYPE ringcast_publisher_pauses_total counter\nringcast_publisher_pauses_total %lu\n",
        (unsigned long)t.paused);
    OUT("# TYPE ringcast_send_queue_bytes gauge\nringcast_send_queue_bytes %lu\n",
        (unsigned long)t.queued);
    OUT("# TYPE ringcast_xshard_messages_total counter\nringcast_xshard_messages_total %lu\n",
        (unsigned long)t.xshard);
    uint64_t lat[LAT_NR_BUCKETS] = {0}, lat_sum = 0, lat_count = 0;
    for (unsigned i = 0; i < e->nr_shards; i++) {
        for (unsigned b = 0; b < LAT_NR_BUCKETS; b++)
            lat[b] += LOAD(e->shards[i].stats.lat_buckets[b]);
        lat_sum += LOAD(e->shards[i].stats.lat_sum_ns);
    }
    OUT("# HELP ringcast_publish_latency_seconds From the receipt of a publish to the "
        "submission of each send that carries it.\n"
        "# TYPE ringcast_publish_latency_seconds histogram\n");
    for (unsigned b = 0; b < LAT_NR_BUCKETS; b++) {
        lat_count += lat[b];
        if (b < LAT_NR_BUCKETS - 1)
            OUT("ringcast_publish_latency_seconds_bucket{le=\"%g\"} %lu\n",
                (double)LAT_BOUNDS_NS[b] / 1e9, (unsigned long)lat_count);
        else
            OUT("ringcast_publish_latency_seconds_bucket{le=\"+Inf\"} %lu\n",
                (unsigned long)lat_count);
    }
    OUT("ringcast_publish_latency_seconds_sum %.9f\nringcast_publish_latency_seconds_count %lu\n",
        (double)lat_sum / 1e9, (unsigned long)lat_count);
    OUT("# HELP ringcast_loop_turns_total Event loop iterations, all shards.\n"
        "# TYPE ringcast_loop_turns_total counter\nringcast_loop_turns_total %lu\n",
        (unsigned long)t.turns);
    OUT("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lu\n",
        (unsigned long)rss);
    OUT("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n", cpu);
    return len;
}

size_t metrics_json(const struct engine *e, char *out, size_t cap)
{
    struct totals t;
    uint64_t rss;
    double cpu;
    size_t len = 0;
    sum(e, &t);
    process_figures(&rss, &cpu);
    OUT("{\"shards\":%u,\"connections\":%lu,\"max_connections\":%lu,\"accepted\":%lu,"
        "\"handshakes_failed\":%lu,\"messages_received\":%lu,\"messages_delivered\":%lu,"
        "\"bytes_received\":%lu,\"bytes_sent\":%lu,\"sends\":%lu,\"frames_per_send\":%.2f,"
        "\"rooms\":%lu,\"slow_consumer_close\":%lu,\"slow_consumer_drop\":%lu,"
        "\"send_queue_bytes\":%lu,\"xshard_messages\":%lu,\"loop_turns\":%lu,"
        "\"completions\":%lu,\"tls_handshakes_active\":%lu,\"tls_handshakes_waiting\":%lu,"
        "\"rss_bytes\":%lu,\"cpu_seconds\":%.3f",
        e->nr_shards, (unsigned long)t.conns, (unsigned long)e->max_conns,
        (unsigned long)t.accepted, (unsigned long)t.failed, (unsigned long)t.msgs_in,
        (unsigned long)t.msgs_out, (unsigned long)t.bytes_in, (unsigned long)t.bytes_out,
        (unsigned long)t.sends, t.sends ? (double)t.msgs_out / (double)t.sends : 0.0,
        (unsigned long)t.rooms, (unsigned long)t.slow_close, (unsigned long)t.slow_drop,
        (unsigned long)t.queued, (unsigned long)t.xshard, (unsigned long)t.turns,
        (unsigned long)t.cqes, (unsigned long)t.tls_handshaking, (unsigned long)t.tls_waiting,
        (unsigned long)rss, cpu);
    /* What the operations page needs on top (README, "GET /stats"): counters it turns into
     * rates itself, the latency histogram's buckets, and the figures of each shard. */
    OUT(",\"upgrades\":%lu,\"closes\":%lu,\"publisher_pauses\":%lu,"
        "\"handshakes_failed_by_reason\":{",
        (unsigned long)t.upgrades, (unsigned long)t.closes, (unsigned long)t.paused);
    for (unsigned r = 0; r < HS_FAIL_NR; r++)
        OUT("%s\"%s\":%lu", r ? "," : "", hs_fail_names[r], (unsigned long)t.hs_failed[r]);
    OUT("},\"publish_latency\":{\"le_seconds\":[");
    for (unsigned b = 0; b < LAT_NR_BUCKETS - 1; b++)
        OUT("%s%g", b ? "," : "", (double)LAT_BOUNDS_NS[b] / 1e9);
    uint64_t lat_sum = 0;
    OUT("],\"counts\":[");
    for (unsigned b = 0; b < LAT_NR_BUCKETS; b++) {
        uint64_t n = 0;
        for (unsigned i = 0; i < e->nr_shards; i++)
            n += LOAD(e->shards[i].stats.lat_buckets[b]);
        OUT("%s%lu", b ? "," : "", (unsigned long)n);
    }
    for (unsigned i = 0; i < e->nr_shards; i++)
        lat_sum += LOAD(e->shards[i].stats.lat_sum_ns);
    OUT("],\"sum_seconds\":%.9f},\"per_shard\":[", (double)lat_sum / 1e9);
    for (unsigned i = 0; i < e->nr_shards; i++) {
        const struct shard_stats *st = &e->shards[i].stats;
        OUT("%s{\"shard\":%u,\"connections\":%lu,\"accepted\":%lu,\"upgrades\":%lu,"
            "\"closes\":%lu,\"messages_received\":%lu,\"messages_delivered\":%lu,"
            "\"sends\":%lu,\"send_queue_bytes\":%lu,\"slow_consumer_close\":%lu,"
            "\"slow_consumer_drop\":%lu,\"loop_turns\":%lu,\"completions\":%lu,"
            "\"tls_handshakes_active\":%lu,\"cpu_seconds\":%.3f}",
            i ? "," : "", i, (unsigned long)LOAD(st->conns), (unsigned long)LOAD(st->accepted),
            (unsigned long)LOAD(st->upgrades), (unsigned long)LOAD(st->closes),
            (unsigned long)LOAD(st->msgs_in), (unsigned long)LOAD(st->msgs_out),
            (unsigned long)LOAD(st->sends), (unsigned long)LOAD(st->queued_bytes),
            (unsigned long)LOAD(st->slow_close), (unsigned long)LOAD(st->slow_drop),
            (unsigned long)LOAD(st->turns), (unsigned long)LOAD(st->cqes),
            (unsigned long)LOAD(st->tls_handshaking), (double)LOAD(st->cpu_ns) / 1e9);
    }
    OUT("]}\n");
    return len;
}
