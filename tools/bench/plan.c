/* SPDX-License-Identifier: MIT */
/*
 * plan: command line and run geometry of ringcast-bench. See plan.h for the contract.
 */
#include "plan.h"

#include "proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef RINGCAST_VERSION
#define RINGCAST_VERSION "0"
#endif

/* 127.0.0.1 is the usual listening address: sources start above it, the way PLATFORM.md's
 * 50k test did, and 127.0.0.255 is left alone. */
#define DEFAULT_SRC_FIRST 0x7f000002u
#define DEFAULT_SRC_LAST  0x7f0000feu

static const char usage[] =
    "usage: ringcast-bench SCENARIO --url ws[s]://HOST:PORT/PATH [options]\n"
    "\n"
    "scenarios:\n"
    "  hold     open --connections and keep them for --duration s, answering pings\n"
    "  ramp     add connections at --rate per second until the server refuses, stalls,\n"
    "           --connections is reached or --duration runs out; reports the limit and why\n"
    "  chat     --connections clients in rooms of --room-size; --rate publishes/s in total,\n"
    "           publishers picked at random; end-to-end latency, loss, reordering\n"
    "  fanout   one publisher in one room of --connections, --inflight messages in flight\n"
    "           (or --rate publishes/s); deliveries/s\n"
    "  echo     round trips on the URL (WS /echo): --inflight per connection (or --rate)\n"
    "\n"
    "options:\n"
    "  --url URL             ws:// or wss:// target; a path ending in '/' gets a room name\n"
    "                        appended (chat: /room/ -> /room/chat-0, /room/chat-1, ...)\n"
    "  --connections N       clients (hold/chat/fanout 1000, echo 100, ramp target 100000)\n"
    "  --room-size M         chat room size (50); hold/ramp with a '/' URL: rooms of M\n"
    "  --rate R              chat/fanout/echo: publishes/s in total (chat 1000; fanout, echo:\n"
    "                        0 = window of --inflight); hold/ramp: connections/s (ramp 5000;\n"
    "                        hold 0 = as fast as --connect-window allows)\n"
    "  --duration S          publishing time, hold time, or ramp time limit (10; ramp 60)\n"
    "  --warmup S            first seconds of publishing left out of latency figures (0)\n"
    "  --drain S             longest wait for outstanding deliveries after publishing (5)\n"
    "  --payload BYTES       published message size (100; at least 42, socketio 57)\n"
    "  --inflight K          fanout: messages in flight (16); echo: per connection (1)\n"
    "  --binary              publish binary frames instead of text\n"
    "  --stamp WHEN          time in each payload: send (taken as the frame is written; the\n"
    "                        default) or schedule (when it was due, so the tool's own lag\n"
    "                        counts as latency); the send lag is reported either way\n"
    "  --poll-us US          after a loop turn that completed something, poll this long\n"
    "                        before the worker blocks (30; 0 = block at once; <= 1000)\n"
    "  --protocol NAME       client protocol: raw (room mode; the default), socketio\n"
    "                        (Socket.IO v5 over Engine.IO v4 on the URL's path, e.g.\n"
    "                        /socket.io/, the room in the query; text only) or centrifugo\n"
    "                        (Centrifugo's client protocol in JSON, e.g. on\n"
    "                        /connection/websocket: the room is a channel; text only)\n"
    "  --personal            centrifugo: subscribe each client to a channel of its own too\n"
    "                        (personal-N, nothing published there): two subscriptions each\n"
    "  --token JWT           centrifugo: connection token sent in connect (anonymous without)\n"
    "  --workers W           client processes (enough that each holds <= 15000)\n"
    "  --source-ips A-B      source addresses, round robin (127.0.0.2-127.0.0.254; none)\n"
    "  --connect-window N    handshakes in progress at once, all workers (1024)\n"
    "  --handshake-timeout S connect (+ TLS) + upgrade time allowed per connection (10)\n"
    "  --stall S             ramp: no handshake completing for S seconds is a stall (3)\n"
    "  --tls-resume          wss: each worker's later handshakes resume the session (ticket)\n"
    "                        of its first one\n"
    "  --tls-verify CAFILE   wss: verify the server's certificate against CAFILE (PEM) and\n"
    "                        the URL's host (localhost for an address; default: no check)\n"
    "  --pid PID             sample the server's RSS and CPU time from /proc\n"
    "  --json                one JSON line on stdout (the human summary goes to stderr)\n"
    "  --plot FILE.png       latency distribution and connection ramp, drawn by gnuplot\n"
    "  --quiet               no progress line\n"
    "  --allow-remote        allow a target outside 127.0.0.0/8\n"
    "  --help, --version\n";

static int plan_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

const char *plan_scenario_name(enum scenario s)
{
    static const char *const names[] = {"hold", "ramp", "chat", "fanout", "echo"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---------------------------------------------------------------------------------------------
 * URL and addresses
 * -------------------------------------------------------------------------------------------*/

static int resolve(const char *host, bool allow_remote, struct in_addr *out)
{
    if (strcmp(host, "localhost") == 0) {
        out->s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (inet_pton(AF_INET, host, out) == 1)
        return 0;
    if (!allow_remote)
        return -EPERM;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -ENOENT;
    *out = ((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int plan_parse_url(struct bench_opts *o, const char *url, char *err, size_t cap)
{
    size_t skip;
    if (strncmp(url, "wss://", 6) == 0)
        skip = 6;
    else if (strncmp(url, "ws://", 5) == 0)
        skip = 5;
    else
        return plan_err(err, cap, "--url must start with ws:// or wss://, got '%s'", url);
    if (strlen(url) >= sizeof(o->url))
        return plan_err(err, cap, "--url is too long");
    snprintf(o->url, sizeof(o->url), "%s", url);
    o->tls = skip == 6;

    const char *h = url + skip;
    size_t hl = strcspn(h, "/?");
    if (hl == 0 || hl >= sizeof(o->host))
        return plan_err(err, cap, "--url has no host");
    char hostport[sizeof(o->host)];
    memcpy(hostport, h, hl);
    hostport[hl] = '\0';
    if (hostport[0] == '[')
        return plan_err(err, cap, "IPv6 targets are not supported");

    char host[sizeof(o->host)];
    unsigned long port = o->tls ? 443 : 80;
    char *colon = strrchr(hostport, ':');
    snprintf(host, sizeof(host), "%s", hostport);
    if (colon) {
        char *end;
        host[colon - hostport] = '\0';
        port = strtoul(colon + 1, &end, 10);
        if (*end || port == 0 || port > 65535)
            return plan_err(err, cap, "bad port in --url '%s'", url);
    }

    struct in_addr a;
    int r = resolve(host, o->allow_remote, &a);
    if (r == -EPERM)
        return plan_err(err, cap, "target '%s' is not a loopback address (pass --allow-remote)",
                        host);
    if (r < 0)
        return plan_err(err, cap, "cannot resolve '%s'", host);
    if ((ntohl(a.s_addr) >> 24) != 127 && !o->allow_remote)
        return plan_err(err, cap, "target %s is outside 127.0.0.0/8 (pass --allow-remote)", host);
    memset(&o->target, 0, sizeof(o->target));
    o->target.sin_family = AF_INET;
    o->target.sin_port = htons((uint16_t)port);
    o->target.sin_addr = a;
    snprintf(o->host, sizeof(o->host), "%s", hostport);
    /* RFC 6066 section 3: SNI carries a host name, never an address literal. Test certificates
     * (tools/gen-certs.sh) are made for localhost, so an address target asks for that. */
    struct in_addr lit;
    snprintf(o->tls_sni, sizeof(o->tls_sni), "%s",
             inet_pton(AF_INET, host, &lit) == 1 ? "localhost" : host);

    const char *p = h + hl;
    size_t pl = strcspn(p, "?");
    if (pl + 2 > sizeof(o->path))
        return plan_err(err, cap, "--url path is too long");
    if (pl == 0) {
        snprintf(o->path, sizeof(o->path), "/");
    } else {
        memcpy(o->path, p, pl);
        o->path[pl] = '\0';
    }
    const char *q = p[pl] == '?' ? p + pl + 1 : "";
    if (strlen(q) >= sizeof(o->query))
        return plan_err(err, cap, "--url query is too long");
    snprintf(o->query, sizeof(o->query), "%s", q);
    return 0;
}

static int parse_ip(const char *s, size_t n, uint32_t *out)
{
    char buf[32];
    struct in_addr a;
    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -EINVAL;
    *out = ntohl(a.s_addr);
    return 0;
}

int plan_parse_ips(const char *s, uint32_t *first, uint32_t *last)
{
    if (strcmp(s, "none") == 0) {
        *first = *last = 0;
        return 0;
    }
    const char *dash = strchr(s, '-');
    size_t n1 = dash ? (size_t)(dash - s) : strlen(s);
    if (parse_ip(s, n1, first) < 0)
        return -EINVAL;
    if (!dash) {
        *last = *first;
        return 0;
    }
    if (parse_ip(dash + 1, strlen(dash + 1), last) < 0 || *last < *first)
        return -EINVAL;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Command line
 * -------------------------------------------------------------------------------------------*/

enum {
    OPT_URL = 256,
    OPT_CONNECTIONS,
    OPT_ROOM_SIZE,
    OPT_RATE,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_DRAIN,
    OPT_PAYLOAD,
    OPT_INFLIGHT,
    OPT_BINARY,
    OPT_STAMP,
    OPT_POLL_US,
    OPT_PROTOCOL,
    OPT_PERSONAL,
    OPT_TOKEN,
    OPT_WORKERS,
    OPT_SOURCE_IPS,
    OPT_CONNECT_WINDOW,
    OPT_HS_TIMEOUT,
    OPT_STALL,
    OPT_TLS_RESUME,
    OPT_TLS_VERIFY,
    OPT_PID,
    OPT_JSON,
    OPT_PLOT,
    OPT_QUIET,
    OPT_ALLOW_REMOTE,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"room-size", required_argument, NULL, OPT_ROOM_SIZE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"stamp", required_argument, NULL, OPT_STAMP},
    {"poll-us", required_argument, NULL, OPT_POLL_US},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"personal", no_argument, NULL, OPT_PERSONAL},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"source-ips", required_argument, NULL, OPT_SOURCE_IPS},
    {"connect-window", required_argument, NULL, OPT_CONNECT_WINDOW},
    {"handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT},
    {"stall", required_argument, NULL, OPT_STALL},
    {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
    {"tls-verify", required_argument, NULL, OPT_TLS_VERIFY},
    {"pid", required_argument, NULL, OPT_PID},
    {"json", no_argument, NULL, OPT_JSON},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int num_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int num_f(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Values the user set, so that scenario defaults fill in only the rest. */
struct given {
    bool connections, room_size, rate, duration, inflight, workers, source_ips;
    const char *url, *ips;
};

static int parse_one(struct bench_opts *o, struct given *g, int c, const char *a, char *err,
                     size_t cap)
{
    uint32_t u;
    switch (c) {
    case OPT_URL:
        g->url = a;
        return 0;
    case OPT_CONNECTIONS:
        g->connections = true;
        if (num_u32(a, 1, PLAN_MAX_CONNECTIONS, &o->connections) < 0)
            return plan_err(err, cap, "--connections must be 1 to %u", PLAN_MAX_CONNECTIONS);
        return 0;
    case OPT_ROOM_SIZE:
        g->room_size = true;
        if (num_u32(a, 1, PLAN_MAX_CONNECTIONS, &o->room_size) < 0)
            return plan_err(err, cap, "--room-size must be 1 to %u", PLAN_MAX_CONNECTIONS);
        return 0;
    case OPT_RATE:
        g->rate = true;
        if (num_f(a, 0, 1e7, &o->rate) < 0)
            return plan_err(err, cap, "--rate must be 0 to 10000000 per second");
        return 0;
    case OPT_DURATION:
        g->duration = true;
        if (num_f(a, 0, PLAN_MAX_DURATION, &o->duration) < 0)
            return plan_err(err, cap, "--duration must be 0 to %.0f seconds", PLAN_MAX_DURATION);
        return 0;
    case OPT_WARMUP:
        if (num_f(a, 0, PLAN_MAX_DURATION, &o->warmup) < 0)
            return plan_err(err, cap, "--warmup must be 0 to %.0f seconds", PLAN_MAX_DURATION);
        return 0;
    case OPT_DRAIN:
        if (num_f(a, 0, 600, &o->drain) < 0)
            return plan_err(err, cap, "--drain must be 0 to 600 seconds");
        return 0;
    case OPT_PAYLOAD:
        if (num_u32(a, 1, PLAN_MAX_PAYLOAD, &o->payload) < 0)
            return plan_err(err, cap, "--payload must be up to %u bytes", PLAN_MAX_PAYLOAD);
        return 0;
    case OPT_INFLIGHT:
        g->inflight = true;
        if (num_u32(a, 1, 65536, &o->inflight) < 0)
            return plan_err(err, cap, "--inflight must be 1 to 65536");
        return 0;
    case OPT_BINARY:
        o->binary = true;
        return 0;
    case OPT_PROTOCOL:
        o->proto = proto_find(a);
        if (!o->proto)
            return plan_err(err, cap, "unknown --protocol '%s' (known: raw, socketio, centrifugo)",
                            a);
        return 0;
    case OPT_PERSONAL:
        o->personal = true;
        return 0;
    case OPT_TOKEN:
        /* RFC 7519: a JWT is base64url parts joined by dots, which go into JSON unescaped. */
        if (!a[0] || strlen(a) >= sizeof(o->token) ||
            strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
                strlen(a))
            return plan_err(err, cap,
                            "--token must be a JWT (base64url parts and dots, < %zu bytes)",
                            sizeof(o->token));
        snprintf(o->token, sizeof(o->token), "%s", a);
        return 0;
    case OPT_WORKERS:
        g->workers = true;
        if (num_u32(a, 1, PLAN_MAX_WORKERS, &o->workers) < 0)
            return plan_err(err, cap, "--workers must be 1 to %u", PLAN_MAX_WORKERS);
        return 0;
    case OPT_SOURCE_IPS:
        g->source_ips = true;
        g->ips = a;
        if (plan_parse_ips(a, &o->src_first, &o->src_last) < 0)
            return plan_err(err, cap, "bad --source-ips '%s' (A.B.C.D-E.F.G.H or none)", a);
        return 0;
    case OPT_CONNECT_WINDOW:
        if (num_u32(a, 1, 1000000, &o->connect_window) < 0)
            return plan_err(err, cap, "--connect-window must be 1 to 1000000");
        return 0;
    case OPT_HS_TIMEOUT:
        if (num_f(a, 0.1, 600, &o->handshake_timeout) < 0)
            return plan_err(err, cap, "--handshake-timeout must be 0.1 to 600 seconds");
        return 0;
    case OPT_STALL:
        if (num_f(a, 0.1, 600, &o->stall) < 0)
            return plan_err(err, cap, "--stall must be 0.1 to 600 seconds");
        return 0;
    case OPT_TLS_RESUME:
        o->tls_resume = true;
        return 0;
    case OPT_STAMP:
        if (strcmp(a, "send") == 0)
            o->stamp_schedule = false;
        else if (strcmp(a, "schedule") == 0)
            o->stamp_schedule = true;
        else
            return plan_err(err, cap, "--stamp must be send or schedule");
        return 0;
    case OPT_POLL_US:
        if (num_u32(a, 0, 1000, &o->poll_us) < 0)
            return plan_err(err, cap, "--poll-us must be 0 to 1000");
        return 0;
    case OPT_TLS_VERIFY:
        if (!a[0] || strlen(a) >= sizeof(o->tls_ca))
            return plan_err(err, cap, "--tls-verify needs a CA file path");
        snprintf(o->tls_ca, sizeof(o->tls_ca), "%s", a);
        return 0;
    case OPT_PID:
        if (num_u32(a, 1, 0x7fffffff, &u) < 0)
            return plan_err(err, cap, "bad --pid '%s'", a);
        o->pid = (pid_t)u;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_PLOT:
        if (strlen(a) >= sizeof(o->plot))
            return plan_err(err, cap, "--plot path is too long");
        snprintf(o->plot, sizeof(o->plot), "%s", a);
        return 0;
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_ALLOW_REMOTE:
        o->allow_remote = true;
        return 0;
    default:
        return plan_err(err, cap, "unknown option (see --help)");
    }
}

static int parse_scenario(const char *s, enum scenario *out)
{
    for (int i = SC_HOLD; i <= SC_ECHO; i++) {
        if (strcmp(s, plan_scenario_name((enum scenario)i)) == 0) {
            *out = (enum scenario)i;
            return 0;
        }
    }
    return -EINVAL;
}

static uint32_t table_max(void)
{
    /* PLATFORM.md section 2: a ring's registered file table may not exceed RLIMIT_NOFILE.
     * A few slots stay below it for the plain descriptors a worker holds for a moment. */
    struct rlimit rl;
    uint64_t lim = 20000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = rl.rlim_cur;
    if (lim > 32768)
        lim = 32768;
    return lim > 256 ? (uint32_t)lim - 64 : 192;
}

static void apply_defaults(struct bench_opts *o, const struct given *g)
{
    bool ramp = o->scenario == SC_RAMP, echo = o->scenario == SC_ECHO;
    if (!g->connections)
        o->connections = ramp ? 100000 : echo ? 100 : 1000;
    if (!g->room_size)
        o->room_size = o->scenario == SC_CHAT ? 50 : 0;
    if (o->scenario == SC_FANOUT)
        o->room_size = o->connections;
    if (!g->rate)
        o->rate = o->scenario == SC_CHAT ? 1000 : ramp ? 5000 : 0;
    if (!g->duration)
        o->duration = ramp ? 60 : 10;
    if (!g->inflight)
        o->inflight = o->scenario == SC_FANOUT ? 16 : 1;
    o->per_worker_max = table_max();
    uint32_t per = o->per_worker_max < PLAN_PER_WORKER ? o->per_worker_max : PLAN_PER_WORKER;
    if (!g->workers)
        o->workers = (o->connections + per - 1) / per;
    if (o->workers > o->connections)
        o->workers = o->connections;
    if (!g->source_ips) {
        bool loop = (ntohl(o->target.sin_addr.s_addr) >> 24) == 127;
        o->src_first = loop ? DEFAULT_SRC_FIRST : 0;
        o->src_last = loop ? DEFAULT_SRC_LAST : 0;
    }
}

static int check(struct bench_opts *o, char *err, size_t cap)
{
    if (o->workers > PLAN_MAX_WORKERS)
        return plan_err(err, cap, "%u connections need more than %u workers", o->connections,
                        PLAN_MAX_WORKERS);
    uint32_t per = (o->connections + o->workers - 1) / o->workers;
    if (per > o->per_worker_max)
        return plan_err(err, cap,
                        "%u connections per worker is over the %u a ring can hold: "
                        "raise --workers",
                        per, o->per_worker_max);
    if (o->scenario == SC_CHAT && o->room_size < 2)
        return plan_err(err, cap, "chat needs --room-size of at least 2");
    if (o->scenario == SC_FANOUT && o->connections < 2)
        return plan_err(err, cap, "fanout needs at least 2 connections");
    size_t min_payload =
        o->proto == &proto_centrifugo ? proto__centrifugo_min_payload(o) : o->proto->min_payload;
    if (o->payload < min_payload)
        return plan_err(err, cap, "--payload must be at least %zu bytes for protocol %s%s",
                        min_payload, o->proto->name,
                        o->proto == &proto_centrifugo ? " with these channel names" : "");
    if (o->proto != &proto_raw && o->binary)
        return plan_err(err, cap,
                        "--binary does not apply to --protocol %s: its messages are text (JSON)",
                        o->proto->name);
    /* A raw or Socket.IO connection joins one room: only a protocol client subscribes twice. */
    if (o->proto != &proto_centrifugo && (o->personal || o->token[0]))
        return plan_err(err, cap, "--personal and --token need --protocol centrifugo");
    /* Engine.IO serves every path under its own, which ends in '/' (/socket.io/). */
    if (o->proto == &proto_socketio && o->path[strlen(o->path) - 1] != '/')
        return plan_err(err, cap,
                        "--protocol socketio needs a --url path ending in '/' (the "
                        "server's Socket.IO path, e.g. /socket.io/)");
    if (o->src_first && (o->src_first >> 24) != 127 && !o->allow_remote)
        return plan_err(err, cap, "--source-ips outside 127.0.0.0/8 need --allow-remote");
    if (!o->tls && (o->tls_resume || o->tls_ca[0]))
        return plan_err(err, cap, "--tls-resume and --tls-verify need a wss:// --url");
    if (o->warmup >= o->duration && o->warmup > 0)
        return plan_err(err, cap, "--warmup must be shorter than --duration");
    return 0;
}

int plan_parse(struct bench_opts *o, int argc, char **argv, char *err, size_t cap)
{
    struct given g = {0};
    int c;

    memset(o, 0, sizeof(*o));
    o->proto = &proto_raw;
    o->payload = 100;
    o->poll_us = 30;
    o->drain = 5;
    o->handshake_timeout = 10;
    o->stall = 3;
    o->connect_window = 1024;
    optind = 0; /* GNU: 0 also resets its internal state, so parsing twice works */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (c == OPT_HELP) {
            fputs(usage, stdout);
            return 1;
        }
        if (c == OPT_VERSION) {
            printf("ringcast-bench %s\n", RINGCAST_VERSION);
            return 1;
        }
        if (c == '?' || c == ':')
            return plan_err(err, cap, "bad option '%s' (see --help)", argv[optind - 1]);
        int r = parse_one(o, &g, c, optarg, err, cap);
        if (r < 0)
            return r;
    }
    if (optind >= argc)
        return plan_err(err, cap, "no scenario given (hold, ramp, chat, fanout, echo; see --help)");
    if (optind + 1 < argc)
        return plan_err(err, cap, "unexpected argument '%s'", argv[optind + 1]);
    if (parse_scenario(argv[optind], &o->scenario) < 0)
        return plan_err(err, cap, "unknown scenario '%s' (hold, ramp, chat, fanout, echo)",
                        argv[optind]);
    if (!g.url)
        return plan_err(err, cap, "--url is required");
    int r = plan_parse_url(o, g.url, err, cap);
    if (r < 0)
        return r;
    apply_defaults(o, &g);
    return check(o, err, cap);
}

/* ---------------------------------------------------------------------------------------------
 * Geometry
 * -------------------------------------------------------------------------------------------*/

/* Clients per room; the whole population when everyone shares one room. */
static uint32_t room_span(const struct bench_opts *o)
{
    switch (o->scenario) {
    case SC_CHAT:
    case SC_HOLD:
    case SC_RAMP:
        return o->room_size ? o->room_size : o->connections;
    default:
        return o->connections;
    }
}

uint32_t plan_room_of(const struct bench_opts *o, uint32_t g)
{
    return g / room_span(o);
}

uint32_t plan_nr_rooms(const struct bench_opts *o)
{
    uint32_t s = room_span(o);
    return (o->connections + s - 1) / s;
}

uint32_t plan_room_first(const struct bench_opts *o, uint32_t r)
{
    return r * room_span(o);
}

uint32_t plan_room_members(const struct bench_opts *o, uint32_t r)
{
    uint32_t s = room_span(o), first = r * s;
    if (first >= o->connections)
        return 0;
    return o->connections - first < s ? o->connections - first : s;
}

uint32_t plan_receivers(const struct bench_opts *o, uint32_t g)
{
    switch (o->scenario) {
    case SC_CHAT:
        return plan_room_members(o, plan_room_of(o, g)) - (o->proto->self_delivery ? 0 : 1);
    case SC_FANOUT:
        /* The publisher's own copies are its window, never deliveries (client.c). */
        return plan_room_members(o, plan_room_of(o, g)) - 1;
    case SC_ECHO:
        return 1;
    default:
        return 0;
    }
}

bool plan_is_publisher(const struct bench_opts *o, uint32_t g)
{
    switch (o->scenario) {
    case SC_CHAT:
    case SC_ECHO:
        return true;
    case SC_FANOUT:
        return g == 0;
    default:
        return false;
    }
}

int plan_room_suffix(const struct bench_opts *o, uint32_t g, char *out, size_t cap)
{
    size_t pl = strlen(o->path);
    bool dir = pl > 0 && o->path[pl - 1] == '/';
    bool many = plan_nr_rooms(o) > 1;
    int n;

    if (o->scenario == SC_ECHO || (!dir && !many))
        n = snprintf(out, cap, "%s", "");
    else if (dir && !many)
        n = snprintf(out, cap, "%s", plan_scenario_name(o->scenario));
    else if (dir)
        n = snprintf(out, cap, "%s-%u", plan_scenario_name(o->scenario), plan_room_of(o, g));
    else
        n = snprintf(out, cap, "-%u", plan_room_of(o, g));
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

void plan_worker_range(const struct bench_opts *o, uint32_t w, uint32_t *lo, uint32_t *hi)
{
    uint64_t n = o->connections, k = o->workers;
    *lo = (uint32_t)(n * w / k);
    *hi = (uint32_t)(n * (w + 1) / k);
}

uint32_t plan_seq_slots(const struct bench_opts *o)
{
    switch (o->scenario) {
    case SC_CHAT:
        return room_span(o);
    case SC_FANOUT:
    case SC_ECHO:
        return 1;
    default:
        return 0;
    }
}

int64_t plan_seq_slot(const struct bench_opts *o, uint32_t g, uint32_t pub)
{
    if (pub >= o->connections)
        return -1;
    switch (o->scenario) {
    case SC_CHAT:
        if ((pub == g && !o->proto->self_delivery) || plan_room_of(o, pub) != plan_room_of(o, g))
            return -1;
        return pub - plan_room_first(o, plan_room_of(o, g));
    case SC_FANOUT:
        return pub == 0 ? 0 : -1;
    case SC_ECHO:
        return pub == g ? 0 : -1;
    default:
        return -1;
    }
}

uint32_t plan_source_ip(const struct bench_opts *o, uint32_t g)
{
    if (!o->src_first)
        return 0;
    uint32_t n = o->src_last - o->src_first + 1;
    return htonl(o->src_first + g % n);
}
