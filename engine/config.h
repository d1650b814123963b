/* SPDX-License-Identifier: MIT */
/*
 * config: the broker's options (ARCHITECTURE.md, "Broker command line"). Each option comes
 * from, in order of precedence, the command line (--max-conns 100), the environment
 * (RINGCAST_MAX_CONNS=100), a file named by --config or RINGCAST_CONFIG (lines
 * "max-conns = 100", '#' comments, blank lines), or its default.
 *
 * Owns the strings it copies into struct config (freed by config_fini). Does no I/O except
 * reading the config file and the secret file, and writing --help/--version to stdout. Does not
 * resolve names or open the certificate files (whoever loads them does). Main thread only.
 */
#ifndef RINGCAST_CONFIG_H
#define RINGCAST_CONFIG_H

#include "xshard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Limits config_load enforces, each refused with one line rather than clamped or wrapped:
 *   --shards        1..XSHARD_MAX_SHARDS (the cross-shard doorbell mask has a bit per shard);
 *   --max-conns     CONFIG_MAX_CONNS_MAX: every shard's descriptor table full (2^24 slots);
 *   --max-message   CONFIG_MAX_MESSAGE_MAX and --send-queue CONFIG_SEND_QUEUE_MAX: a frame's
 *                   length and a connection's queued bytes are 32-bit, and a queue may hold
 *                   its limit plus one frame, 2^31 + 2^30 + header < 2^32;
 *   --rate-limit    CONFIG_RATE_LIMIT_MAX messages/s: the token bucket is a float, which stops
 *                   counting single tokens at 2^24.
 */
#define CONFIG_MAX_CONNS_MAX   ((uint64_t)XSHARD_MAX_SHARDS << 24)
#define CONFIG_MAX_MESSAGE_MAX (UINT64_C(1) << 30)
#define CONFIG_SEND_QUEUE_MAX  (UINT64_C(1) << 31)
#define CONFIG_RATE_LIMIT_MAX  1000000.0

enum slow_policy { SLOW_CLOSE = 0, SLOW_DROP = 1 };
enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

struct config {
    char *listen_host;     /* numeric: "0.0.0.0", "127.0.0.1" or IPv6 without brackets */
    uint16_t listen_port;  /* 8080; 0 picks a free port */
    char *tls_listen_host; /* NULL: no TLS listener */
    uint16_t tls_listen_port;
    char *tls_cert, *tls_key;
    unsigned shards;      /* 0 = online CPUs */
    uint64_t max_conns;   /* 0 = what the limits allow */
    uint64_t max_message; /* 65536 */
    uint64_t send_queue;  /* 1048576 */
    enum slow_policy slow_consumer;
    unsigned ping_interval;     /* seconds, 25; 0 disables */
    unsigned idle_timeout;      /* seconds, 60; 0 disables */
    unsigned handshake_timeout; /* seconds, 5 */
    unsigned history_size;      /* 100 */
    unsigned history_ttl;       /* 300 */
    char *jwt_secret;           /* from --jwt-secret or the contents of --jwt-secret-file */
    bool allow_anonymous;       /* default: true when no secret */
    char **allowed_origins;     /* NULL-terminated; NULL = any */
    size_t nr_allowed_origins;
    uint64_t max_conns_per_ip; /* 0 = no limit */
    double rate_limit;         /* messages/s per connection; 0 = no limit */
    char *api_key;
    char *redis_url;
    enum log_level log_level;
    bool tls_offload;            /* --tls-offload on|off, default on */
    unsigned tls_max_handshakes; /* per shard, 256; 0 = no limit */
};

/*
 * Sets every field to its default. Cannot fail: the one string default (listen_host) is static,
 * and config_fini knows not to free it. Strings in <c> must not be written through.
 */
void config_defaults(struct config *c);

/*
 * Fills <c> from <argv>, then the environment <envp> (NULL-terminated "K=V" strings; pass
 * environ), then the config file, then defaults. Returns:
 *    0  ready to run
 *    1  --help or --version was handled (text written to stdout); exit 0
 *   -1  a bad option, value or file: one line describing it is in <err> (size <err_cap>),
 *       for example "ringcast: --max-conns: not a number: 'abc'"; exit 2
 * <c> need not be initialised. Unless 0 is returned, <c> is left at its defaults, holding
 * nothing; config_fini is safe (and needed after 0) either way.
 */
int config_load(struct config *c, int argc, char **argv, char **envp, char *err, size_t err_cap);

/* Frees what config_load copied and leaves <c> at its defaults. Cannot fail. */
void config_fini(struct config *c);

/* The --help text. */
extern const char config_usage[];

#endif
