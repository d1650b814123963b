/* SPDX-License-Identifier: MIT */
/*
 * engine: the process-wide part of the broker. Sizes the shards from --shards, --max-conns
 * and the open-file limit, opens one SO_REUSEPORT listener per shard, starts the shard
 * threads, and drains them on request.
 *
 * Owns the shards, their threads and the cross-shard mesh. Main thread only.
 */
#ifndef RINGCAST_ENGINE_H
#define RINGCAST_ENGINE_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

struct engine;

/*
 * Sizes and starts the engine for <cfg> (borrowed until engine_destroy). On failure returns
 * NULL with one line in <err> and the exit status to use in *<status>: 2 for an unusable
 * certificate or key file, 1 for anything else (address in use, io_uring refused, memory).
 */
struct engine *engine_start(struct config *cfg, char *err, size_t err_cap, int *status);

/* The port the plain listener is bound to. */
uint16_t engine_port(const struct engine *e);

/* The port of the TLS listener, 0 without one. */
uint16_t engine_tls_port(const struct engine *e);

/*
 * Reloads --tls-cert and --tls-key for new connections (SIGHUP); current connections keep
 * theirs. Returns 0, or -1 with one line in <err> (the old certificate stays in use).
 */
int engine_reload_tls(struct engine *e, char *err, size_t err_cap);

/* Asks every shard to drain: refuse new upgrades (503), close 1001, flush up to 10 s. Any
 * thread; async-signal-unsafe. */
void engine_drain(struct engine *e);

/* Waits for every shard to finish its drain, then frees everything. Cannot fail. */
void engine_join_destroy(struct engine *e);

#endif
