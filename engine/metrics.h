/* SPDX-License-Identifier: MIT */
/*
 * metrics: renders the engine's counters for GET /metrics (Prometheus text) and GET /stats
 * (JSON). Reads every shard's counters with relaxed loads; any shard may call it. The process
 * figures come from the last metrics_sample_process(), not from the system at request time.
 */
#ifndef RINGCAST_METRICS_H
#define RINGCAST_METRICS_H

#include <stddef.h>

struct engine;

/*
 * Samples the process figures (resident memory, CPU time) into atomics that the two renderers
 * read, so that a request on a shard never reads a file or walks the process's threads. Call
 * it from a thread that may block, about once a second (main.c does, between signals); until
 * the first call both figures read 0. Cannot fail: a figure that cannot be read keeps its last
 * value.
 */
void metrics_sample_process(void);

/*
 * Samples each shard thread's CPU time into its stats (cpu_ns), for the same reason and from
 * the same thread as metrics_sample_process: a shard's loop never reads a clock for it. Call it
 * while the shard threads run (between engine_start and engine_join_destroy). Cannot fail: a
 * thread whose clock cannot be read keeps its last value.
 */
void metrics_sample_shards(struct engine *e);

/* Writes the text into <out> (<cap> bytes) and returns its full length; when that is >= <cap>
 * the output was cut and the caller should retry with more room. Cannot fail otherwise. */
size_t metrics_prometheus(const struct engine *e, char *out, size_t cap);
size_t metrics_json(const struct engine *e, char *out, size_t cap);

#endif
