/* SPDX-License-Identifier: MIT */
/*
 * plan: what a ringcast-bench run does. Parses the command line into struct bench_opts
 * (applying each scenario's defaults and the tool's bounds, and refusing non-loopback targets
 * unless --allow-remote), and answers the geometry questions every process of the run asks the
 * same way: which room client <g> joins, its request path, how many deliveries one publish
 * should produce, and which clients worker <w> owns.
 *
 * Owns nothing: struct bench_opts is a plain value, copied into every worker by fork().
 * No I/O besides name resolution for --allow-remote targets. Any thread.
 */
#ifndef RINGCAST_BENCH_PLAN_H
#define RINGCAST_BENCH_PLAN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum scenario {
    SC_HOLD,
    SC_RAMP,
    SC_CHAT,
    SC_FANOUT,
    SC_ECHO,
};

/* Bounds: a run is always finite in size and time. */
#define PLAN_MAX_CONNECTIONS 1000000u
#define PLAN_MAX_WORKERS     128u
#define PLAN_MAX_DURATION    3600.0
#define PLAN_MAX_PAYLOAD     (1u << 20)
/* Connections per worker by default: well under the 20,000 registered files a ring may have. */
#define PLAN_PER_WORKER 15000u

struct proto_ops;

struct bench_opts {
    enum scenario scenario;
    const struct proto_ops *proto;
    char url[512];
    char host[300];  /* Host header value: "127.0.0.1:8080" */
    char path[512];  /* request path from the URL, without the query */
    char query[256]; /* query from the URL without '?', may be empty */
    struct sockaddr_in target;
    bool tls;          /* wss:// */
    bool tls_resume;   /* offer each worker's first session ticket in its later handshakes */
    char tls_sni[300]; /* server name sent: the URL's host, or "localhost" for an address */
    char tls_ca[512];  /* --tls-verify: trusted certificates (PEM); "" = no verification */
    uint32_t connections;
    uint32_t room_size; /* chat: clients per room; hold/ramp: 0 = one room */
    double rate;        /* chat/fanout/echo: publishes/s in total; hold/ramp: connects/s */
    double duration;    /* seconds: publishing time, hold time, or ramp time limit */
    double warmup;      /* seconds of publishing left out of the latency figures */
    double drain;       /* longest wait for outstanding deliveries after publishing */
    double handshake_timeout;
    double stall;      /* ramp: no handshake completing for this long while some wait */
    uint32_t payload;  /* bytes per published message */
    uint32_t inflight; /* fanout: messages in flight; echo: per connection */
    uint32_t workers;
    uint32_t per_worker_max;      /* registered file slots per worker ring */
    uint32_t connect_window;      /* handshakes in progress at once, all workers together */
    uint32_t src_first, src_last; /* source IPv4 range, host order; 0: let the kernel pick */
    pid_t pid;                    /* server to sample from /proc; 0: none */
    bool json;
    bool allow_remote;
    bool binary;
    bool stamp_schedule; /* payload time is the scheduled send time, not the actual one */
    bool quiet;
    bool personal;    /* centrifugo: also subscribe each client to a channel of its own */
    char token[512];  /* centrifugo: connection token (JWT) sent in connect; "" = anonymous */
    uint32_t poll_us; /* after a turn that completed something, poll this long before blocking */
    char plot[512];
};

/*
 * Parses argv into <o>. Returns 0 to run, 1 when --help or --version was printed (exit 0),
 * or -EINVAL with a one-line message in <err> (exit 2).
 */
int plan_parse(struct bench_opts *o, int argc, char **argv, char *err, size_t err_cap);

/*
 * Parses a ws:// or wss:// URL into <o>'s url, host, path, query, target, tls and tls_sni (the
 * default ports are 80 and 443). Names other than "localhost" are resolved only when
 * <o>->allow_remote is set; any address outside 127.0.0.0/8 is refused without it. Returns 0
 * or -EINVAL with a message in <err>.
 */
int plan_parse_url(struct bench_opts *o, const char *url, char *err, size_t err_cap);

/*
 * Parses "A.B.C.D", "A.B.C.D-E.F.G.H" or "none" into a host-order range (0, 0 for none).
 * Returns 0 or -EINVAL.
 */
int plan_parse_ips(const char *s, uint32_t *first, uint32_t *last);

/* Name of a scenario ("hold"...). Cannot fail. */
const char *plan_scenario_name(enum scenario s);

/* Room of client <g> (0-based). Cannot fail. */
uint32_t plan_room_of(const struct bench_opts *o, uint32_t g);

/* Number of rooms. Cannot fail. */
uint32_t plan_nr_rooms(const struct bench_opts *o);

/* Members of room <r>: the last room may be smaller. Cannot fail. */
uint32_t plan_room_members(const struct bench_opts *o, uint32_t r);

/* First client of room <r>. Cannot fail. */
uint32_t plan_room_first(const struct bench_opts *o, uint32_t r);

/*
 * Deliveries one publish by client <g> must produce: every other member of its room (chat,
 * fanout), itself (echo); in chat the publisher too when the protocol delivers to it
 * (proto_ops.self_delivery). Cannot fail.
 */
uint32_t plan_receivers(const struct bench_opts *o, uint32_t g);

/* Whether client <g> publishes in this scenario. Cannot fail. */
bool plan_is_publisher(const struct bench_opts *o, uint32_t g);

/*
 * The room suffix of client <g> (what follows the URL's path), e.g. "chat-3", or "" when the
 * client uses the URL's path unchanged. Writes a NUL-terminated string. Returns its length or
 * -ENOSPC.
 */
int plan_room_suffix(const struct bench_opts *o, uint32_t g, char *out, size_t cap);

/* Clients [*<lo>, *<hi>) owned by worker <w>: contiguous, sizes differ by at most one. */
void plan_worker_range(const struct bench_opts *o, uint32_t w, uint32_t *lo, uint32_t *hi);

/*
 * Slots of last-seen sequence numbers each client keeps, one per publisher it hears from:
 * the room size in chat, 1 in fanout and echo, 0 in hold and ramp. Cannot fail.
 */
uint32_t plan_seq_slots(const struct bench_opts *o);

/*
 * Slot for messages from publisher <pub> at receiver <g>, or -1 when <g> should never get a
 * message from <pub> (another room, or itself outside echo and self-delivering protocols).
 * Cannot fail.
 */
int64_t plan_seq_slot(const struct bench_opts *o, uint32_t g, uint32_t pub);

/* Source address (network order) of client <g>, or 0 to let the kernel choose. */
uint32_t plan_source_ip(const struct bench_opts *o, uint32_t g);

#endif
