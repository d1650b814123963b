/* SPDX-License-Identifier: MIT */
/*
 * metrics: renders the engine's counters for GET /metrics (Prometheus text) and GET /stats
 * (JSON). Reads every shard's counters with relaxed loads; any shard may call it.
 */
#ifndef RINGCAST_METRICS_H
#define RINGCAST_METRICS_H

#include <stddef.h>

struct engine;

/* Writes the text into <out> (<cap> bytes) and returns its full length; when that is >= <cap>
 * the output was cut and the caller should retry with more room. Cannot fail otherwise. */
size_t metrics_prometheus(const struct engine *e, char *out, size_t cap);
size_t metrics_json(const struct engine *e, char *out, size_t cap);

#endif
