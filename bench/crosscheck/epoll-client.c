/* SPDX-License-Identifier: MIT */
/*
 * epoll-client: a second independent chat load client, written apart from ringcast-bench
 * (tools/bench) and from chat-client.js, to cross-check ringcast-bench's `chat` figures against
 * the same broker. See README.md in this directory.
 *
 *   cc -O2 -Wall -Wextra -Werror -o epoll-client epoll-client.c -lmbedcrypto
 *   taskset -c 1 ./epoll-client --url ws://127.0.0.1:PORT/room/ --connections 1000 \
 *       --room-size 10 --rate 500 --duration 10 --warmup 1 --json
 *
 * It shares no code with ringcast-bench: nonblocking sockets on epoll (edge-triggered) instead of
 * io_uring, a timerfd for pacing, its own RFC 6455 client (handshake checked with mbedtls's
 * SHA-1 and base64, its own frame codec), its own payload and exact statistics. The command line,
 * the room layout, the open-loop schedule and the --json schema are chat-client.js's, so that
 * compare.js reads all three clients alike.
 *
 * Geometry: client g is in room floor(g / M); a URL path ending in "/" gets "chat-<room>"
 * appended ("chat" alone when there is one room), any other path gets "-<room>" when there is
 * more than one room. With --workers W the rooms are split into contiguous blocks, one per
 * forked process, so every member of a room lives in one process, which counts its rooms'
 * deliveries and loss exactly.
 *
 * Load: open loop. Worker w publishes at R * (its clients / N) per second; event k is due at
 * t0 + (k + w/W) / rate, one t0 on CLOCK_MONOTONIC for all workers; each event picks one of
 * the worker's clients uniformly at random. A late event is sent at once, never dropped.
 *
 * Payload (text, padded with letters to --payload bytes):
 *   {"from":G,"seq":S,"sent":NS,"lag":NS,"warm":0|1,"pad":"abc..."}
 * <sent> is clock_gettime(CLOCK_MONOTONIC) taken right before the frame is formatted, masked
 * and handed to send(2) (a few hundred ns); <lag> is how late that was against the schedule.
 * A receiver reads the clock right after the read(2) that completed the frame: latency =
 * that - sent. Messages scheduled during --warmup are counted but left out of the latency.
 * Every sample is kept; pQ is the ceil(Q * n)-th smallest, in exact integer arithmetic.
 *
 * Reading: every socket epoll reports is read until EAGAIN, in rounds: one read of each ready
 * socket, then another of each that returned data, and so on, so that the read confirming
 * EAGAIN on one socket does not delay the first read of the next.
 *
 * Bounded: at most 100,000 connections, 64 workers, 3600 s; the parent kills its workers and
 * reports failure after connect + warmup + duration + drain + 30 s. Exit status 0 when every
 * connection was established and held and nothing was lost, 3 when the run completed but not
 * that, 1 on failure, 2 on a bad command line. Targets outside 127.0.0.0/8 are refused.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS            1000000000ull
#define MAX_EVENTS    512
#define RBUF_SIZE     65536
#define MAX_MESSAGE   (1u << 20) /* a larger frame or message ends the connection */
#define MAX_HEAD      8192       /* the longest upgrade answer accepted */
#define RANK_SLOTS    8u         /* publishes per publisher tracked at once for --ranks */
#define CLOSE_WAIT_NS (3 * NS)   /* closing handshakes: then the rest are reset */
#define EV_TIMER      UINT64_MAX
#define EV_CTL        (UINT64_MAX - 1)
#define LAG_FIELD_MAX 9999999999999ull /* 2.8 h: past the time bound, so 13 digits suffice */
#define WS_GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 §1.3 */

static const char usage[] =
    "usage: epoll-client --url ws://HOST:PORT/PATH [options]\n"
    "  --connections N        clients (1000)\n"
    "  --room-size M          clients per room, >= 2 (50)\n"
    "  --rate R               publishes per second, all workers together (1000)\n"
    "  --duration S           measured publishing time (10)\n"
    "  --warmup S             publishing before that, counted but not in the latency (0)\n"
    "  --drain S              after publishing, wait up to S s for outstanding deliveries;\n"
    "                         ends early when all arrived or after 1 s without any (5)\n"
    "  --payload BYTES        message size (100)\n"
    "  --workers W            worker processes (1)\n"
    "  --connect-window K     handshakes in progress at once, all workers (256)\n"
    "  --handshake-timeout S  per connection (10)\n"
    "  --seed N               random seed for the publisher picks (from the clock)\n"
    "  --poll-us US           after a wake-up that had events, poll (epoll_wait with no\n"
    "                         timeout) for US microseconds before sleeping again (0)\n"
    "  --ranks                also report the latency by arrival order within a publish: of\n"
    "                         the first, the middle and the last member to receive it\n"
    "  --kernel-stamps        also report the latency to the kernel's receive timestamp\n"
    "                         (SO_TIMESTAMPNS) and the time each message waited in the\n"
    "                         socket before this client read it\n"
    "  --wake-stamps          also report the latency with every message of a wake-up stamped\n"
    "                         once, after all its reads (as a client reaping a batch of\n"
    "                         completions sees them)\n"
    "  --json                 one JSON line on stdout (otherwise a summary)\n"
    "  --quiet                no progress on stderr\n";

/* ---------------------------------------------------------------------------------------------
 * Types
 * -------------------------------------------------------------------------------------------*/

struct opts {
    char url[512];
    char host[256];  /* the URL's authority, for the Host header */
    char path[512];  /* without the query */
    char query[512]; /* "?..." or empty */
    struct sockaddr_in addr;
    uint32_t connections, room_size, payload, workers, connect_window, poll_us;
    double rate, duration, warmup, drain, handshake_timeout;
    uint64_t seed;
    bool ranks, kernel_stamps, wake_stamps, json, quiet;
};

struct buf {
    uint8_t *p;
    size_t len, cap;
};

enum { C_IDLE, C_CONNECTING, C_UPGRADING, C_OPEN, C_CLOSING, C_DONE };

struct conn {
    int fd;
    uint8_t state;
    uint8_t msg_op; /* opcode of the fragmented message being reassembled, 0 if none */
    bool close_sent;
    uint32_t g, room;
    uint32_t seq; /* last sequence number published */
    uint64_t t_start;
    char accept[32]; /* the Sec-WebSocket-Accept the server must answer */
    struct buf in;   /* received, not yet parsed */
    struct buf out;  /* not yet sent; out_off bytes of it already went */
    size_t out_off;
    struct buf msg; /* fragments so far */
};

struct samples {
    uint64_t *v;
    size_t n, cap;
};

/* What a worker reports; the parent adds these up. */
struct wstats {
    uint64_t established, failed, held, closed_early, protocol_errors;
    uint64_t published, skipped, expected, received, received_measured;
    uint64_t reordered, duplicates, unexpected, malformed, pings;
    uint64_t late, max_lag_ns, queued_sends, wakes, wake_events, reads;
    double cpu_s, cpu_user_s, wall_s, busy_s;
    char first_error[120];
};

enum { S_LAT, S_SCHED, S_LAG, S_KERN, S_WAIT, S_WAKE, S_FIRST, S_MIDDLE, S_LAST, NR_SAMPLES };

enum { PH_CONNECT, PH_READY, PH_RUN, PH_DRAIN, PH_REPORTED, PH_CLOSING };

struct worker {
    const struct opts *o;
    uint32_t id, nr_workers, lo, n, stride; /* clients lo..lo+n-1; stride = room slots */
    struct conn *c;
    uint32_t *last_seq;        /* [client][member]: last sequence seen from that member */
    uint32_t *rank_seq;        /* [publisher][slot]: which publish a slot counts */
    uint32_t *rank_count;      /* [publisher][slot]: arrivals of it so far */
    double *rank_sum, *rank_n; /* by place of arrival */
    int ep, tfd, ctl_in, res_out;
    int phase;
    uint32_t next_open, nr_pending, nr_settled, window, nr_closing;
    uint64_t t0, k, run_ns, warm_ns, t_end, drain_until, last_rx, close_until, next_scan;
    double period_ns, phase_off;
    uint64_t wall0, idle_ns;
    uint64_t poll_until; /* --poll-us: epoll_wait does not sleep before this */
    struct rusage ru0;
    int64_t rt_off; /* CLOCK_REALTIME - CLOCK_MONOTONIC, for kernel receive stamps */
    struct wstats st;
    struct samples s[NR_SAMPLES];
    struct samples wake_sent; /* --wake-stamps: send stamps of this wake-up's messages */
    uint8_t rbuf[RBUF_SIZE];
    uint8_t fbuf[16 + 65536];
};

struct ctl_msg {
    uint32_t type; /* CTL_START or CTL_CLOSE */
    uint32_t pad;
    uint64_t t0;
};

enum { CTL_START = 1, CTL_CLOSE };
enum { RES_CONNECTED = 1, RES_RESULT };

struct res_head {
    uint32_t type;
    uint32_t pad;
    uint64_t nr[NR_SAMPLES]; /* sample counts that follow the stats */
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * -------------------------------------------------------------------------------------------*/

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * NS + (uint64_t)t.tv_nsec;
}

static void die_oom(void)
{
    fputs("epoll-client: out of memory\n", stderr);
    _exit(1);
}

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        die_oom();
    b->p = p;
    b->cap = cap;
}

static void buf_put(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static void push(struct samples *s, uint64_t x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        uint64_t *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            die_oom();
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

/* Mask keys: RFC 6455 §5.3 wants them unpredictable, so they come from getrandom(2). */
static uint8_t rnd_pool[4096];
static size_t rnd_at = sizeof(rnd_pool);

static void random_bytes(void *out, size_t n)
{
    uint8_t *p = out;
    while (n) {
        if (rnd_at == sizeof(rnd_pool)) {
            size_t got = 0;
            while (got < sizeof(rnd_pool)) {
                ssize_t r = getrandom(rnd_pool + got, sizeof(rnd_pool) - got, 0);
                if (r < 0 && errno != EINTR) {
                    perror("epoll-client: getrandom");
                    _exit(1);
                }
                if (r > 0)
                    got += (size_t)r;
            }
            rnd_at = 0;
        }
        size_t k = sizeof(rnd_pool) - rnd_at < n ? sizeof(rnd_pool) - rnd_at : n;
        memcpy(p, rnd_pool + rnd_at, k);
        rnd_at += k;
        p += k;
        n -= k;
    }
}

/* PCG32 (O'Neill): the publisher picks, seeded so that a run's picks can be repeated. */
struct pcg {
    uint64_t state, inc;
};

static uint32_t pcg_next(struct pcg *r)
{
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ull + r->inc;
    uint32_t xs = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xs >> rot) | (xs << ((32 - rot) & 31));
}

static void pcg_seed(struct pcg *r, uint64_t seed, uint64_t stream)
{
    r->state = 0;
    r->inc = stream << 1 | 1;
    pcg_next(r);
    r->state += seed;
    pcg_next(r);
}

static uint32_t pcg_below(struct pcg *r, uint32_t n)
{
    return (uint32_t)(((uint64_t)pcg_next(r) * n) >> 32);
}

static size_t put_u64(uint8_t *out, uint64_t v)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)t[n - 1 - i];
    return n;
}

static size_t put_str(uint8_t *out, const char *s)
{
    size_t n = strlen(s);
    memcpy(out, s, n);
    return n;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Options and geometry
 * -------------------------------------------------------------------------------------------*/

static int num(const char *name, const char *v, double lo, double hi, bool integer, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!v[0] || *end || errno || !(x >= lo && x <= hi) || (integer && x != (double)(int64_t)x)) {
        fprintf(stderr, "epoll-client: %s must be %sfrom %g to %g\n", name,
                integer ? "an integer " : "", lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* ws://HOST[:PORT][/PATH][?QUERY], HOST a numeric address in 127.0.0.0/8 or localhost. */
static int parse_url(struct opts *o)
{
    const char *u = o->url;
    if (strncmp(u, "ws://", 5) != 0) {
        fputs("epoll-client: only ws:// URLs\n", stderr);
        return -1;
    }
    const char *a = u + 5;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || alen >= sizeof(o->host)) {
        fputs("epoll-client: bad host in --url\n", stderr);
        return -1;
    }
    memcpy(o->host, a, alen);
    o->host[alen] = '\0';
    char name[256];
    memcpy(name, a, alen + 1);
    name[alen] = '\0';
    long port = 80;
    char *colon = strchr(name, ':');
    if (colon) {
        char *end;
        *colon = '\0';
        port = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || port < 1 || port > 65535) {
            fputs("epoll-client: bad port in --url\n", stderr);
            return -1;
        }
    }
    memset(&o->addr, 0, sizeof(o->addr));
    o->addr.sin_family = AF_INET;
    o->addr.sin_port = htons((uint16_t)port);
    if (strcasecmp(name, "localhost") == 0)
        o->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, name, &o->addr.sin_addr) != 1 ||
             (ntohl(o->addr.sin_addr.s_addr) >> 24) != 127) {
        fputs("epoll-client: loopback targets only (127.0.0.0/8, localhost)\n", stderr);
        return -1;
    }
    const char *rest = a + alen;
    size_t plen = strcspn(rest, "?#");
    size_t qlen = rest[plen] == '?' ? strcspn(rest + plen, "#") : 0;
    if (plen + 2 > sizeof(o->path) || qlen + 1 > sizeof(o->query)) {
        fputs("epoll-client: --url too long\n", stderr);
        return -1;
    }
    if (plen == 0)
        strcpy(o->path, "/");
    else {
        memcpy(o->path, rest, plen);
        o->path[plen] = '\0';
    }
    memcpy(o->query, rest + plen, qlen);
    o->query[qlen] = '\0';
    return 0;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->connections = 1000;
    o->room_size = 50;
    o->rate = 1000;
    o->duration = 10;
    o->drain = 5;
    o->payload = 100;
    o->workers = 1;
    o->connect_window = 256;
    o->handshake_timeout = 10;
    o->seed = now_ns() % 4294967296ull;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        double x;
        bool flag = true;
        if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else if (strcmp(a, "--ranks") == 0)
            o->ranks = true;
        else if (strcmp(a, "--kernel-stamps") == 0)
            o->kernel_stamps = true;
        else if (strcmp(a, "--wake-stamps") == 0)
            o->wake_stamps = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else
            flag = false;
        if (flag)
            continue;
        /* The options that take a value, each between spaces. */
        static const char valued[] = " --url --connections --room-size --rate --duration --warmup "
                                     "--drain --payload --workers --connect-window "
                                     "--handshake-timeout --seed --poll-us ";
        char key[64];
        snprintf(key, sizeof(key), " %s ", a);
        bool known = a[0] == '-' && strstr(valued, key) != NULL;
        if (!known) {
            fprintf(stderr, "epoll-client: unknown option %s\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "epoll-client: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        int r = 0;
        if (strcmp(a, "--url") == 0) {
            if (strlen(v) >= sizeof(o->url)) {
                fputs("epoll-client: --url too long\n", stderr);
                return -1;
            }
            strcpy(o->url, v);
        } else if (strcmp(a, "--connections") == 0 && !(r = num(a, v, 1, 100000, true, &x)))
            o->connections = (uint32_t)x;
        else if (strcmp(a, "--room-size") == 0 && !(r = num(a, v, 2, 100000, true, &x)))
            o->room_size = (uint32_t)x;
        else if (strcmp(a, "--rate") == 0 && !(r = num(a, v, 0.001, 1000000, false, &x)))
            o->rate = x;
        else if (strcmp(a, "--duration") == 0 && !(r = num(a, v, 0.1, 3600, false, &x)))
            o->duration = x;
        else if (strcmp(a, "--warmup") == 0 && !(r = num(a, v, 0, 3600, false, &x)))
            o->warmup = x;
        else if (strcmp(a, "--drain") == 0 && !(r = num(a, v, 0, 600, false, &x)))
            o->drain = x;
        else if (strcmp(a, "--payload") == 0 && !(r = num(a, v, 16, 65536, true, &x)))
            o->payload = (uint32_t)x;
        else if (strcmp(a, "--workers") == 0 && !(r = num(a, v, 1, 64, true, &x)))
            o->workers = (uint32_t)x;
        else if (strcmp(a, "--connect-window") == 0 && !(r = num(a, v, 1, 100000, true, &x)))
            o->connect_window = (uint32_t)x;
        else if (strcmp(a, "--handshake-timeout") == 0 && !(r = num(a, v, 0.1, 600, false, &x)))
            o->handshake_timeout = x;
        else if (strcmp(a, "--seed") == 0 && !(r = num(a, v, 0, 4294967295.0, true, &x)))
            o->seed = (uint64_t)x;
        else if (strcmp(a, "--poll-us") == 0 && !(r = num(a, v, 0, 1000, true, &x)))
            o->poll_us = (uint32_t)x;
        if (r)
            return -1;
    }
    if (!o->url[0]) {
        fputs("epoll-client: --url is required\n", stderr);
        return -1;
    }
    return parse_url(o);
}

static uint32_t nr_rooms(const struct opts *o)
{
    return (o->connections + o->room_size - 1) / o->room_size;
}

static uint32_t room_members(const struct opts *o, uint32_t r)
{
    uint32_t first = r * o->room_size, left = o->connections - first;
    return left < o->room_size ? left : o->room_size;
}

/* The request target of client <g>: the room naming in the header comment. */
static void client_target(const struct opts *o, uint32_t g, char *out, size_t cap)
{
    bool dir = o->path[strlen(o->path) - 1] == '/';
    bool many = nr_rooms(o) > 1;
    uint32_t r = g / o->room_size;
    if (dir && many)
        snprintf(out, cap, "%schat-%u%s", o->path, r, o->query);
    else if (dir)
        snprintf(out, cap, "%schat%s", o->path, o->query);
    else if (many)
        snprintf(out, cap, "%s-%u%s", o->path, r, o->query);
    else
        snprintf(out, cap, "%s%s", o->path, o->query);
}

/* ---------------------------------------------------------------------------------------------
 * Payload
 * -------------------------------------------------------------------------------------------*/

/* Writes the payload, exactly <size> bytes; returns 0, or the size needed when <size> is less. */
static size_t payload_make(uint8_t *out, uint32_t size, uint32_t from, uint32_t seq, uint64_t sent,
                           uint64_t lag, bool warmup)
{
    uint8_t head[160];
    size_t n = put_str(head, "{\"from\":");
    n += put_u64(head + n, from);
    n += put_str(head + n, ",\"seq\":");
    n += put_u64(head + n, seq);
    n += put_str(head + n, ",\"sent\":");
    n += put_u64(head + n, sent);
    n += put_str(head + n, ",\"lag\":");
    n += put_u64(head + n, lag);
    n += put_str(head + n, warmup ? ",\"warm\":1,\"pad\":\"" : ",\"warm\":0,\"pad\":\"");
    if (n + 2 > size)
        return n + 2;
    memcpy(out, head, n);
    for (size_t i = 0; n < size - 2; i++)
        out[n++] = (uint8_t)('a' + i % 26);
    out[n++] = '"';
    out[n] = '}';
    return 0;
}

struct payload {
    uint64_t from, seq, sent, lag, warmup;
};

static bool take(const uint8_t **p, const uint8_t *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

static bool take_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    uint64_t x = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - *p < 20)
        x = x * 10 + (uint64_t)(*q++ - '0');
    if (q == *p)
        return false;
    *v = x;
    *p = q;
    return true;
}

/* Strict: exactly the shape payload_make() writes, or false. */
static bool payload_parse(const uint8_t *p, size_t n, struct payload *m)
{
    const uint8_t *end = p + n;
    if (!take(&p, end, "{\"from\":") || !take_u64(&p, end, &m->from) ||
        !take(&p, end, ",\"seq\":") || !take_u64(&p, end, &m->seq) ||
        !take(&p, end, ",\"sent\":") || !take_u64(&p, end, &m->sent) ||
        !take(&p, end, ",\"lag\":") || !take_u64(&p, end, &m->lag) ||
        !take(&p, end, ",\"warm\":") || !take_u64(&p, end, &m->warmup) || m->warmup > 1 ||
        !take(&p, end, ",\"pad\":\""))
        return false;
    while (p < end && *p >= 'a' && *p <= 'z')
        p++;
    return take(&p, end, "\"}") && p == end && m->seq <= UINT32_MAX;
}

/* ---------------------------------------------------------------------------------------------
 * RFC 6455 client: frames and the opening handshake
 * -------------------------------------------------------------------------------------------*/

enum {
    OP_CONT = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xA
};

/* One final frame, masked with a fresh key (RFC 6455 §5.3); returns its length. */
static size_t frame_make(uint8_t *out, uint8_t op, const uint8_t *p, size_t n)
{
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (n < 126)
        out[h++] = (uint8_t)(0x80 | n);
    else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint8_t *mask = out + h;
    random_bytes(mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = p[i] ^ mask[i & 3];
    return h + n;
}

/* Sec-WebSocket-Accept for <key>: base64(SHA-1(key + GUID)), RFC 6455 §4.2.2 item 5.4. */
static int accept_for(const char *key, char *out, size_t cap)
{
    char in[64];
    uint8_t sha[20];
    size_t olen;
    int n = snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(in) || mbedtls_sha1_ret((const uint8_t *)in, (size_t)n, sha))
        return -1;
    if (mbedtls_base64_encode((uint8_t *)out, cap, &olen, sha, sizeof(sha)))
        return -1;
    return 0;
}

static bool token_in_list(const char *v, size_t n, const char *tok)
{
    size_t t = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == t && strncasecmp(v + s, tok, t) == 0)
            return true;
    }
    return false;
}

/*
 * Checks the server's answer to the upgrade (RFC 6455 §4.1, the client's checks): status 101,
 * Upgrade: websocket, Connection: upgrade, the right Sec-WebSocket-Accept, and no extension or
 * subprotocol, since none was offered. Returns the length of the head, 0 when it is not complete
 * yet, or -1 with <err> set.
 */
static long handshake_check(const struct conn *c, const uint8_t *p, size_t n, char *err, size_t cap)
{
    const uint8_t *endp = memmem(p, n, "\r\n\r\n", 4);
    if (!endp) {
        if (n > MAX_HEAD)
            snprintf(err, cap, "upgrade answer over %d bytes", MAX_HEAD);
        return n > MAX_HEAD ? -1 : 0;
    }
    size_t head = (size_t)(endp - p) + 4;
    const char *s = (const char *)p;
    if (head < 12 || strncmp(s, "HTTP/1.1 ", 9) != 0) {
        snprintf(err, cap, "not an HTTP/1.1 answer");
        return -1;
    }
    int status = atoi(s + 9);
    if (status != 101) {
        snprintf(err, cap, "HTTP %d", status);
        return -1;
    }
    bool upgrade = false, connection = false, accept = false;
    const char *line = (const char *)memchr(s, '\n', head) + 1;
    const char *end = s + head - 2;
    while (line < end) {
        const char *eol = memchr(line, '\r', (size_t)(end - line) + 1);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon) {
            snprintf(err, cap, "bad header line in the upgrade answer");
            return -1;
        }
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t vl = (size_t)(eol - v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (nl == 7 && strncasecmp(line, "upgrade", 7) == 0)
            upgrade = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
        else if (nl == 10 && strncasecmp(line, "connection", 10) == 0)
            connection = token_in_list(v, vl, "upgrade");
        else if (nl == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0)
            accept = vl == strlen(c->accept) && memcmp(v, c->accept, vl) == 0;
        else if ((nl == 24 && strncasecmp(line, "sec-websocket-extensions", 24) == 0) ||
                 (nl == 22 && strncasecmp(line, "sec-websocket-protocol", 22) == 0)) {
            snprintf(err, cap, "the server chose an extension or subprotocol not offered");
            return -1;
        }
        line = eol + 2;
    }
    if (!upgrade || !connection || !accept) {
        snprintf(err, cap, "upgrade answer without %s",
                 !upgrade      ? "Upgrade: websocket"
                 : !connection ? "Connection: upgrade"
                               : "the right Sec-WebSocket-Accept");
        return -1;
    }
    return (long)head;
}

/* ---------------------------------------------------------------------------------------------
 * Connections
 * -------------------------------------------------------------------------------------------*/

static void set_error(struct worker *w, const char *what)
{
    if (!w->st.first_error[0])
        snprintf(w->st.first_error, sizeof(w->st.first_error), "%s", what);
}

/* Ends connection <i> at once; a reset (SO_LINGER 0) unless <graceful>. */
static void conn_end(struct worker *w, uint32_t i, bool graceful)
{
    struct conn *c = &w->c[i];
    if (c->state == C_DONE || c->state == C_IDLE)
        return;
    if (c->state == C_CONNECTING || c->state == C_UPGRADING)
        w->nr_pending--;
    if (c->state == C_CLOSING)
        w->nr_closing--;
    if (!graceful) {
        struct linger l = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(c->fd);
    c->fd = -1;
    c->state = C_DONE;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->msg);
}

/* A handshake settled: <err> NULL when it succeeded. */
static void settle(struct worker *w, uint32_t i, const char *err)
{
    w->nr_settled++;
    if (!err) {
        w->nr_pending--;
        w->c[i].state = C_OPEN;
        w->st.established++;
        return;
    }
    w->st.failed++;
    set_error(w, err);
    conn_end(w, i, false);
}

/* A connection that was open went away. */
static void conn_lost(struct worker *w, uint32_t i, const char *why)
{
    struct conn *c = &w->c[i];
    if (c->state == C_CONNECTING || c->state == C_UPGRADING) {
        settle(w, i, why);
        return;
    }
    if (c->state == C_OPEN && w->phase >= PH_RUN && w->phase <= PH_REPORTED)
        w->st.closed_early++;
    conn_end(w, i, false);
}

static void flush(struct worker *w, uint32_t i)
{
    struct conn *c = &w->c[i];
    while (c->out_off < c->out.len) {
        ssize_t r = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* EPOLLOUT (edge-triggered, always armed) calls again */
        if (r < 0) {
            conn_lost(w, i, strerror(errno));
            return;
        }
        c->out_off += (size_t)r;
    }
    c->out.len = c->out_off = 0;
}

/* Sends <n> bytes now, or queues them behind bytes still unsent, so frames never reorder. */
static void conn_send(struct worker *w, uint32_t i, const uint8_t *p, size_t n)
{
    struct conn *c = &w->c[i];
    if (c->out.len == 0) {
        ssize_t r;
        do
            r = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r == (ssize_t)n)
            return;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_lost(w, i, strerror(errno));
            return;
        }
        size_t sent = r > 0 ? (size_t)r : 0;
        buf_put(&c->out, p + sent, n - sent);
        return;
    }
    buf_put(&c->out, p, n);
    flush(w, i);
}

static void send_frame(struct worker *w, uint32_t i, uint8_t op, const uint8_t *p, size_t n)
{
    size_t len = frame_make(w->fbuf, op, p, n);
    conn_send(w, i, w->fbuf, len);
}

/* RFC 6455 §5.5.1 / §7.1.2: start the closing handshake, or answer the server's. */
static void send_close(struct worker *w, uint32_t i, uint16_t code)
{
    struct conn *c = &w->c[i];
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (c->close_sent)
        return;
    c->close_sent = true;
    send_frame(w, i, OP_CLOSE, p, code ? 2 : 0);
    if (c->state == C_OPEN) {
        c->state = C_CLOSING;
        w->nr_closing++;
    }
}

static void open_one(struct worker *w, uint32_t i)
{
    struct conn *c = &w->c[i];
    int one = 1;
    c->g = w->lo + i;
    c->room = c->g / w->o->room_size;
    c->t_start = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = C_DONE;
        w->nr_settled++;
        w->st.failed++;
        set_error(w, strerror(errno));
        return;
    }
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (w->o->kernel_stamps)
        (void)setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    c->state = C_CONNECTING;
    w->nr_pending++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = i};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        settle(w, i, strerror(errno));
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&w->o->addr, sizeof(w->o->addr)) < 0 &&
        errno != EINPROGRESS)
        settle(w, i, strerror(errno));
}

/* The TCP connection is up: send the upgrade request (RFC 6455 §4.1). */
static void send_upgrade(struct worker *w, uint32_t i)
{
    struct conn *c = &w->c[i];
    uint8_t raw[16];
    char key[32], target[1100], req[2048];
    size_t klen;
    random_bytes(raw, sizeof(raw));
    if (mbedtls_base64_encode((uint8_t *)key, sizeof(key), &klen, raw, sizeof(raw)) ||
        accept_for(key, c->accept, sizeof(c->accept))) {
        settle(w, i, "base64/SHA-1 failed");
        return;
    }
    client_target(w->o, c->g, target, sizeof(target));
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     target, w->o->host, key);
    c->state = C_UPGRADING;
    conn_send(w, i, (const uint8_t *)req, (size_t)n);
}

/* ---------------------------------------------------------------------------------------------
 * Receiving
 * -------------------------------------------------------------------------------------------*/

static void rank(struct worker *w, const struct payload *m, uint64_t lat, uint32_t receivers)
{
    size_t slot = (size_t)(m->from - w->lo) * RANK_SLOTS + (m->seq & (RANK_SLOTS - 1));
    if (w->rank_seq[slot] != (uint32_t)m->seq) {
        w->rank_seq[slot] = (uint32_t)m->seq;
        w->rank_count[slot] = 0;
    }
    uint32_t k = w->rank_count[slot]++;
    if (k >= w->stride)
        return;
    w->rank_sum[k] += (double)lat;
    w->rank_n[k]++;
    if (k == 0)
        push(&w->s[S_FIRST], lat);
    if (k == (receivers - 1) / 2)
        push(&w->s[S_MIDDLE], lat);
    if (k == receivers - 1)
        push(&w->s[S_LAST], lat);
}

static void on_message(struct worker *w, uint32_t i, const uint8_t *p, size_t n, uint64_t t_rx,
                       uint64_t t_kern)
{
    struct conn *c = &w->c[i];
    struct payload m;
    if (!payload_parse(p, n, &m)) {
        w->st.malformed++;
        return;
    }
    uint64_t first = (uint64_t)c->room * w->o->room_size;
    if (m.from < first || m.from - first >= w->stride || m.from == c->g ||
        m.from >= w->o->connections) {
        w->st.unexpected++;
        return;
    }
    uint32_t *last = &w->last_seq[(size_t)i * w->stride + (m.from - first)];
    if (m.seq == *last) {
        w->st.duplicates++;
        return;
    }
    if (m.seq < *last)
        w->st.reordered++;
    else
        *last = (uint32_t)m.seq;
    w->st.received++;
    w->last_rx = t_rx;
    if (m.warmup)
        return;
    w->st.received_measured++;
    uint64_t lat = t_rx > m.sent ? t_rx - m.sent : 0;
    push(&w->s[S_LAT], lat);
    push(&w->s[S_SCHED], lat + m.lag);
    if (w->o->wake_stamps)
        push(&w->wake_sent, m.sent);
    if (w->o->kernel_stamps && t_kern) {
        push(&w->s[S_KERN], t_kern > m.sent ? t_kern - m.sent : 0);
        push(&w->s[S_WAIT], t_rx > t_kern ? t_rx - t_kern : 0);
    }
    if (w->o->ranks)
        rank(w, &m, lat, room_members(w->o, c->room) - 1);
}

static void on_control(struct worker *w, uint32_t i, uint8_t op, const uint8_t *p, size_t n)
{
    struct conn *c = &w->c[i];
    if (op == OP_PING) {
        /* RFC 6455 §5.5.3: the pong carries the ping's payload; none after our close. */
        w->st.pings++;
        if (!c->close_sent)
            send_frame(w, i, OP_PONG, p, n);
    } else if (op == OP_CLOSE) {
        if (c->close_sent)
            return; /* the answer to ours: the server closes the TCP connection next */
        if (c->state == C_OPEN && w->phase >= PH_RUN && w->phase <= PH_REPORTED)
            w->st.closed_early++;
        /* §5.5.1: echo the status code; 1005 (none given) is answered with an empty close. */
        send_close(w, i, n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 0);
    }
}

/*
 * Decodes the complete frames at the front of <p, n> (server frames: never masked). Returns
 * the bytes consumed, or -1 on a protocol error (the connection is then ended).
 */
static long frames(struct worker *w, uint32_t i, const uint8_t *p, size_t n, uint64_t t_rx,
                   uint64_t t_kern)
{
    struct conn *c = &w->c[i];
    size_t at = 0;
    while (n - at >= 2 && c->state != C_DONE) {
        const uint8_t *f = p + at;
        uint8_t fin = f[0] >> 7, op = f[0] & 15;
        size_t h = 2;
        uint64_t len = f[1] & 127;
        /* §5.2: no extension was negotiated, so RSV1-3 are zero; §5.1: servers never mask. */
        if ((f[0] & 0x70) || (f[1] & 0x80))
            return -1;
        if (len == 126) {
            if (n - at < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (n - at < 10)
                break;
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | f[2 + k];
            h = 10;
        }
        if (len > MAX_MESSAGE)
            return -1;
        if (n - at < h + len)
            break;
        const uint8_t *pl = f + h;
        at += h + (size_t)len;
        if (op & 8) {
            /* §5.5: control frames are final and carry at most 125 bytes. */
            if (!fin || len > 125 || (op != OP_CLOSE && op != OP_PING && op != OP_PONG))
                return -1;
            on_control(w, i, op, pl, (size_t)len);
            continue;
        }
        if (op == OP_CONT) {
            if (!c->msg_op || c->msg.len + len > MAX_MESSAGE)
                return -1;
            buf_put(&c->msg, pl, (size_t)len);
            if (fin) {
                if (c->msg_op == OP_TEXT)
                    on_message(w, i, c->msg.p, c->msg.len, t_rx, t_kern);
                else
                    w->st.malformed++;
                c->msg_op = 0;
                c->msg.len = 0;
            }
        } else if (op == OP_TEXT || op == OP_BINARY) {
            if (c->msg_op) /* §5.4: a new message inside a fragmented one */
                return -1;
            if (fin && op == OP_TEXT)
                on_message(w, i, pl, (size_t)len, t_rx, t_kern);
            else if (fin)
                w->st.malformed++;
            else {
                c->msg_op = op;
                buf_put(&c->msg, pl, (size_t)len);
            }
        } else {
            return -1;
        }
    }
    return (long)at;
}

/* Bytes arrived on connection <i> at <t_rx>. */
static void feed(struct worker *w, uint32_t i, const uint8_t *p, size_t n, uint64_t t_rx,
                 uint64_t t_kern)
{
    struct conn *c = &w->c[i];
    if (c->state == C_UPGRADING) {
        char err[120];
        buf_put(&c->in, p, n);
        long head = handshake_check(c, c->in.p, c->in.len, err, sizeof(err));
        if (head == 0)
            return;
        if (head < 0) {
            settle(w, i, err);
            return;
        }
        settle(w, i, NULL);
        c->in.len -= (size_t)head;
        memmove(c->in.p, c->in.p + head, c->in.len);
        if (c->in.len == 0)
            return;
        p = NULL;
    } else if (c->in.len) {
        buf_put(&c->in, p, n);
        p = NULL;
    }
    const uint8_t *src = p ? p : c->in.p;
    size_t len = p ? n : c->in.len;
    long used = frames(w, i, src, len, t_rx, t_kern);
    if (used < 0) {
        w->st.protocol_errors++;
        set_error(w, "protocol error from the server");
        conn_lost(w, i, "protocol error");
        return;
    }
    if (c->state == C_DONE)
        return;
    if (p) {
        if ((size_t)used < len)
            buf_put(&c->in, src + used, len - (size_t)used);
    } else {
        c->in.len -= (size_t)used;
        memmove(c->in.p, c->in.p + used, c->in.len);
    }
}

/* One read of connection <i>. Returns true when it gave bytes (so read it again later). */
static bool read_once(struct worker *w, uint32_t i)
{
    struct conn *c = &w->c[i];
    ssize_t r;
    uint64_t t_kern = 0;
    if (w->o->kernel_stamps) {
        char cbuf[CMSG_SPACE(sizeof(struct timespec))];
        struct iovec iov = {.iov_base = w->rbuf, .iov_len = sizeof(w->rbuf)};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        r = recvmsg(c->fd, &mh, MSG_DONTWAIT);
        for (struct cmsghdr *cm = r > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm;
             cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                t_kern = (uint64_t)((int64_t)ts.tv_sec * (int64_t)NS + ts.tv_nsec - w->rt_off);
            }
        }
    } else {
        r = read(c->fd, w->rbuf, sizeof(w->rbuf));
    }
    if (r > 0) {
        uint64_t t = now_ns();
        w->st.reads++;
        feed(w, i, w->rbuf, (size_t)r, t, t_kern);
        return c->state != C_DONE;
    }
    if (r < 0 && errno == EINTR)
        return true;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    if (r == 0 && c->state == C_CLOSING)
        conn_end(w, i, true); /* the server closed after the closing handshake */
    else
        conn_lost(w, i, r == 0 ? "closed by the server" : strerror(errno));
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Publishing
 * -------------------------------------------------------------------------------------------*/

static uint64_t due(const struct worker *w, uint64_t k)
{
    return w->t0 + (uint64_t)(((double)k + w->phase_off) * w->period_ns);
}

static void publish(struct worker *w, uint32_t i, uint64_t due_ns, bool warmup)
{
    struct conn *c = &w->c[i];
    uint8_t pl[65536];
    if (c->state != C_OPEN) {
        w->st.skipped++;
        return;
    }
    if (c->out.len)
        w->st.queued_sends++; /* goes out behind unsent bytes: later than its stamp */
    uint32_t seq = ++c->seq;
    uint64_t t = now_ns();
    uint64_t lag = t > due_ns ? t - due_ns : 0;
    payload_make(pl, w->o->payload, c->g, seq, t, lag < LAG_FIELD_MAX ? lag : LAG_FIELD_MAX,
                 warmup);
    send_frame(w, i, OP_TEXT, pl, w->o->payload);
    w->st.published++;
    w->st.expected += room_members(w->o, c->room) - 1;
    if (!warmup)
        push(&w->s[S_LAG], lag);
    if (lag > w->st.max_lag_ns)
        w->st.max_lag_ns = lag;
    if (lag > 1000000)
        w->st.late++;
}

/* Sends every event due by now; then arms the timer for the next, or starts draining. */
static void publish_due(struct worker *w, struct pcg *pick)
{
    uint64_t now = now_ns(), d;
    while ((d = due(w, w->k)) - w->t0 < w->run_ns) {
        if (d > now) {
            now = now_ns();
            if (d > now)
                break;
        }
        uint32_t i = pcg_below(pick, w->n);
        w->k++;
        publish(w, i, d, d - w->t0 < w->warm_ns);
    }
    if (d - w->t0 >= w->run_ns) {
        w->phase = PH_DRAIN;
        w->t_end = now_ns();
        w->drain_until = w->t_end + (uint64_t)(w->o->drain * 1e9);
        if (w->last_rx < w->t_end)
            w->last_rx = w->t_end; /* "1 s without any" counts from the end of publishing */
        return;
    }
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(d / NS), .tv_nsec = (long)(d % NS)}};
    timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Worker
 * -------------------------------------------------------------------------------------------*/

static double tv_s(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

static void report(struct worker *w)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    w->st.cpu_user_s = tv_s(ru.ru_utime) - tv_s(w->ru0.ru_utime);
    w->st.cpu_s = w->st.cpu_user_s + tv_s(ru.ru_stime) - tv_s(w->ru0.ru_stime);
    uint64_t wall = now_ns() - w->wall0;
    w->st.wall_s = (double)wall / 1e9;
    w->st.busy_s = (double)(wall - w->idle_ns) / 1e9;
    for (uint32_t i = 0; i < w->n; i++)
        w->st.held += w->c[i].state == C_OPEN;
    struct res_head h = {.type = RES_RESULT};
    for (int k = 0; k < NR_SAMPLES; k++)
        h.nr[k] = w->s[k].n;
    if (write_all(w->res_out, &h, sizeof(h)) || write_all(w->res_out, &w->st, sizeof(w->st)))
        _exit(1);
    for (int k = 0; k < NR_SAMPLES; k++)
        if (w->s[k].n && write_all(w->res_out, w->s[k].v, w->s[k].n * sizeof(uint64_t)))
            _exit(1);
    if (write_all(w->res_out, w->rank_sum, w->stride * sizeof(double)) ||
        write_all(w->res_out, w->rank_n, w->stride * sizeof(double)))
        _exit(1);
    w->phase = PH_REPORTED;
}

static void on_ctl(struct worker *w)
{
    struct ctl_msg m;
    if (read_all(w->ctl_in, &m, sizeof(m)))
        _exit(1); /* the parent is gone */
    if (m.type == CTL_START && w->phase == PH_READY) {
        w->t0 = m.t0;
        w->phase = PH_RUN;
        w->wall0 = now_ns();
        w->idle_ns = 0;
        getrusage(RUSAGE_SELF, &w->ru0);
        if (w->n == 0) {
            w->phase = PH_DRAIN;
            w->t_end = w->drain_until = w->last_rx = now_ns();
        } else {
            struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(w->t0 / NS), .tv_nsec = (long)(w->t0 % NS)}};
            timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
    } else if (m.type == CTL_CLOSE) {
        w->phase = PH_CLOSING;
        w->close_until = now_ns() + CLOSE_WAIT_NS;
        for (uint32_t i = 0; i < w->n; i++) {
            if (w->c[i].state == C_OPEN)
                send_close(w, i, 1000);
            else if (w->c[i].state == C_CONNECTING || w->c[i].state == C_UPGRADING)
                conn_end(w, i, false);
        }
    }
}

static void housekeeping(struct worker *w, uint64_t now)
{
    if (w->phase == PH_CONNECT) {
        uint64_t limit = (uint64_t)(w->o->handshake_timeout * 1e9);
        if (now >= w->next_scan) {
            for (uint32_t i = 0; i < w->next_open; i++) {
                uint8_t s = w->c[i].state;
                if ((s == C_CONNECTING || s == C_UPGRADING) && now - w->c[i].t_start > limit)
                    settle(w, i, "handshake timeout");
            }
            w->next_scan = now + NS / 10;
        }
        while (w->nr_pending < w->window && w->next_open < w->n)
            open_one(w, w->next_open++);
        if (w->nr_settled == w->n) {
            struct res_head h = {.type = RES_CONNECTED};
            if (write_all(w->res_out, &h, sizeof(h)) ||
                write_all(w->res_out, &w->st, sizeof(w->st)))
                _exit(1);
            w->phase = PH_READY;
        }
    } else if (w->phase == PH_DRAIN) {
        if (w->st.received >= w->st.expected || now >= w->drain_until || now - w->last_rx >= NS)
            report(w);
    }
}

static int loop_timeout_ms(const struct worker *w)
{
    switch (w->phase) {
    case PH_CONNECT:
    case PH_CLOSING:
        return 20;
    case PH_DRAIN:
        return 10;
    default:
        return 1000; /* publishing wakes on the timer; the rest on the parent */
    }
}

static void worker_run(struct worker *w)
{
    struct epoll_event ev[MAX_EVENTS];
    uint32_t *again = malloc((MAX_EVENTS + 1) * sizeof(uint32_t));
    struct pcg pick;
    if (!again)
        die_oom();
    pcg_seed(&pick, w->o->seed, w->id + 1);
    for (;;) {
        uint64_t before = now_ns();
        housekeeping(w, before);
        if (w->phase == PH_CLOSING && (w->nr_closing == 0 || before >= w->close_until))
            break;
        int nr = epoll_wait(w->ep, ev, MAX_EVENTS, before < w->poll_until ? 0 : loop_timeout_ms(w));
        uint64_t after = now_ns();
        if (w->phase == PH_RUN || w->phase == PH_DRAIN)
            w->idle_ns += after - before;
        if (nr < 0 && errno != EINTR)
            _exit(1);
        bool timer = false, ctl = false;
        uint32_t nr_again = 0;
        if (nr > 0) {
            w->st.wakes++;
            w->st.wake_events += (uint64_t)nr;
            w->poll_until = after + (uint64_t)w->o->poll_us * 1000u;
        }
        for (int e = 0; e < nr; e++) {
            uint64_t id = ev[e].data.u64;
            if (id == EV_TIMER) {
                uint64_t x;
                if (read(w->tfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
                    _exit(1);
                timer = true;
                continue;
            }
            if (id == EV_CTL) {
                ctl = true;
                continue;
            }
            uint32_t i = (uint32_t)id;
            struct conn *c = &w->c[i];
            if (c->state == C_DONE)
                continue;
            if (ev[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                if (c->state == C_CONNECTING) {
                    int err = 0;
                    socklen_t el = sizeof(err);
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    if (err) {
                        settle(w, i, strerror(err));
                        continue;
                    }
                    send_upgrade(w, i);
                } else if (c->out.len && (ev[e].events & EPOLLOUT)) {
                    flush(w, i);
                }
            }
            if (c->state != C_DONE && c->state != C_CONNECTING &&
                (ev[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && read_once(w, i))
                again[nr_again++] = i;
        }
        /* The rest of each ready socket, round by round, until every one said EAGAIN. */
        while (nr_again) {
            uint32_t k = 0;
            for (uint32_t j = 0; j < nr_again; j++)
                if (read_once(w, again[j]))
                    again[k++] = again[j];
            nr_again = k;
        }
        if (w->wake_sent.n) {
            uint64_t t = now_ns();
            for (size_t j = 0; j < w->wake_sent.n; j++)
                push(&w->s[S_WAKE], t > w->wake_sent.v[j] ? t - w->wake_sent.v[j] : 0);
            w->wake_sent.n = 0;
        }
        if (w->phase == PH_RUN && (timer || due(w, w->k) <= now_ns()))
            publish_due(w, &pick);
        if (ctl)
            on_ctl(w);
    }
    for (uint32_t i = 0; i < w->n; i++)
        conn_end(w, i, false);
    free(again);
}

static void worker_main(const struct opts *o, uint32_t id, uint32_t nr_workers, int ctl_in,
                        int res_out)
{
    uint32_t rooms = nr_rooms(o);
    uint32_t rlo = (uint32_t)((uint64_t)id * rooms / nr_workers);
    uint32_t rhi = (uint32_t)((uint64_t)(id + 1) * rooms / nr_workers);
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        die_oom();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGALRM, SIG_DFL);
    rnd_at = sizeof(rnd_pool); /* a forked copy of the pool must not be reused */
    w->o = o;
    w->id = id;
    w->nr_workers = nr_workers;
    w->lo = rlo * o->room_size;
    uint32_t hi = rhi * o->room_size < o->connections ? rhi * o->room_size : o->connections;
    w->n = hi - w->lo;
    w->stride = o->room_size < o->connections ? o->room_size : o->connections;
    w->ctl_in = ctl_in;
    w->res_out = res_out;
    w->window = (o->connect_window + nr_workers - 1) / nr_workers;
    double rate = o->rate * (double)w->n / (double)o->connections;
    w->period_ns = rate > 0 ? 1e9 / rate : 1e18;
    w->phase_off = (double)id / (double)nr_workers;
    w->run_ns = (uint64_t)((o->warmup + o->duration) * 1e9 + 0.5);
    w->warm_ns = (uint64_t)(o->warmup * 1e9 + 0.5);
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    w->rt_off =
        ((int64_t)rt.tv_sec - (int64_t)mono.tv_sec) * (int64_t)NS + (rt.tv_nsec - mono.tv_nsec);
    w->c = calloc(w->n ? w->n : 1, sizeof(*w->c));
    w->last_seq = calloc((size_t)(w->n ? w->n : 1) * w->stride, sizeof(uint32_t));
    w->rank_seq = calloc((size_t)(w->n ? w->n : 1) * RANK_SLOTS, sizeof(uint32_t));
    w->rank_count = calloc((size_t)(w->n ? w->n : 1) * RANK_SLOTS, sizeof(uint32_t));
    w->rank_sum = calloc(w->stride, sizeof(double));
    w->rank_n = calloc(w->stride, sizeof(double));
    if (!w->c || !w->last_seq || !w->rank_seq || !w->rank_count || !w->rank_sum || !w->rank_n)
        die_oom();
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->ep < 0 || w->tfd < 0)
        _exit(1);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_TIMER};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &ev);
    ev.data.u64 = EV_CTL;
    epoll_ctl(w->ep, EPOLL_CTL_ADD, ctl_in, &ev);
    worker_run(w);
    _exit(0);
}

/* ---------------------------------------------------------------------------------------------
 * Parent: splits the rooms, steers the workers, merges their results
 * -------------------------------------------------------------------------------------------*/

static pid_t kids[64];
static uint32_t nr_kids;
static char bound_msg[256];

static void on_alarm(int sig)
{
    (void)sig;
    for (uint32_t k = 0; k < nr_kids; k++)
        kill(kids[k], SIGKILL);
    ssize_t r = write(STDOUT_FILENO, bound_msg, strlen(bound_msg));
    (void)r;
    _exit(1);
}

static void fail(const struct opts *o, const char *why)
{
    for (uint32_t k = 0; k < nr_kids; k++)
        kill(kids[k], SIGKILL);
    if (o->json)
        printf("{\"tool\":\"epoll-client\",\"error\":\"%s\",\"ok\":false}\n", why);
    else
        printf("epoll-client: %s\n", why);
    exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ceil(<num>/<den> * n)-th smallest of sorted <v>, in µs. */
static double q_us(const uint64_t *v, size_t n, uint64_t num, uint64_t den)
{
    size_t r = (size_t)(((uint64_t)n * num + den - 1) / den);
    if (r < 1)
        r = 1;
    return (double)v[r - 1] / 1000.0;
}

static void json_hist(FILE *f, const char *name, uint64_t *v, size_t n)
{
    fprintf(f, "\"%s\":", name);
    if (n == 0) {
        fputs("{\"count\":0,\"p50\":null,\"p90\":null,\"p99\":null,\"p99.9\":null,\"max\":null,"
              "\"mean\":null}",
              f);
        return;
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    long double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    fprintf(f,
            "{\"count\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f,"
            "\"mean\":%.3f}",
            n, q_us(v, n, 1, 2), q_us(v, n, 9, 10), q_us(v, n, 99, 100), q_us(v, n, 999, 1000),
            (double)v[n - 1] / 1000.0, (double)(sum / n / 1000.0L));
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

struct total {
    struct wstats st;
    struct samples s[NR_SAMPLES];
    double *rank_sum, *rank_n;
    double core_busiest, loop_busiest, wall_max, connect_s, wall_s;
    uint32_t nr_workers, stride;
};

static void print_json(const struct opts *o, struct total *t)
{
    const struct wstats *s = &t->st;
    double run_s = o->warmup + o->duration;
    FILE *f = stdout;
    fputs("{\"tool\":\"epoll-client\",\"scenario\":\"chat\",\"url\":", f);
    json_str(f, o->url);
    fprintf(f,
            ",\"params\":{\"connections\":%u,\"room_size\":%u,\"rate\":%g,\"duration\":%g,"
            "\"warmup\":%g,\"drain\":%g,\"payload\":%u,\"workers\":%u,\"seed\":%" PRIu64 "}",
            o->connections, o->room_size, o->rate, o->duration, o->warmup, o->drain, o->payload,
            t->nr_workers, o->seed);
    fprintf(f, ",\"wall_s\":%.6f,\"run_s\":%g", t->wall_s, run_s);
    fprintf(f,
            ",\"connections\":{\"target\":%u,\"established\":%" PRIu64 ",\"failed\":%" PRIu64
            ",\"first_error\":",
            o->connections, s->established, s->failed);
    if (s->first_error[0])
        json_str(f, s->first_error);
    else
        fputs("null", f);
    fprintf(f,
            ",\"held\":%" PRIu64 ",\"closed_early\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
            ",\"connect_s\":%.6f}",
            s->held, s->closed_early, s->protocol_errors, t->connect_s);
    fprintf(f,
            ",\"messages\":{\"published\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"expected\":%" PRIu64
            ",\"received\":%" PRIu64 ",\"lost\":%" PRId64 ",\"reordered\":%" PRIu64
            ",\"duplicates\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"malformed\":%" PRIu64
            ",\"publish_rate\":%.3f,\"deliveries_per_s\":%.3f,",
            s->published, s->skipped, s->expected, s->received,
            (int64_t)s->expected - (int64_t)s->received, s->reordered, s->duplicates, s->unexpected,
            s->malformed, (double)s->published / run_s, (double)s->received / run_s);
    json_hist(f, "latency_us", t->s[S_LAT].v, t->s[S_LAT].n);
    fputc(',', f);
    json_hist(f, "latency_sched_us", t->s[S_SCHED].v, t->s[S_SCHED].n);
    if (o->kernel_stamps) {
        fputc(',', f);
        json_hist(f, "latency_kernel_us", t->s[S_KERN].v, t->s[S_KERN].n);
        fputc(',', f);
        json_hist(f, "socket_wait_us", t->s[S_WAIT].v, t->s[S_WAIT].n);
    }
    if (o->wake_stamps) {
        fputc(',', f);
        json_hist(f, "latency_wake_us", t->s[S_WAKE].v, t->s[S_WAKE].n);
    }
    if (o->ranks) {
        fputs(",\"latency_by_rank_us\":{", f);
        json_hist(f, "first", t->s[S_FIRST].v, t->s[S_FIRST].n);
        fputc(',', f);
        json_hist(f, "middle", t->s[S_MIDDLE].v, t->s[S_MIDDLE].n);
        fputc(',', f);
        json_hist(f, "last", t->s[S_LAST].v, t->s[S_LAST].n);
        fputs(",\"mean_by_rank\":[", f);
        uint32_t places = t->stride - 1;
        for (uint32_t k = 0; k < places; k++) {
            if (t->rank_n[k] > 0)
                fprintf(f, "%s%.1f", k ? "," : "", t->rank_sum[k] / t->rank_n[k] / 1000.0);
            else
                fprintf(f, "%snull", k ? "," : "");
        }
        fputs("]}", f);
    }
    fputc('}', f);
    fprintf(f,
            ",\"client\":{\"cpu_s_run\":%.6f,\"cpu_user_s_run\":%.6f,\"core_share_run\":%.6f,"
            "\"busiest_worker_core_share\":%.6f,\"busiest_worker_loop_utilization\":%.6f,"
            "\"cpu_us_per_delivery\":",
            s->cpu_s, s->cpu_user_s, t->wall_max > 0 ? s->cpu_s / t->wall_max : 0, t->core_busiest,
            t->loop_busiest);
    if (s->received)
        fprintf(f, "%.3f", s->cpu_s * 1e6 / (double)s->received);
    else
        fputs("null", f);
    fprintf(f, ",\"max_schedule_lag_us\":%.3f,", (double)s->max_lag_ns / 1000.0);
    json_hist(f, "schedule_lag_us", t->s[S_LAG].v, t->s[S_LAG].n);
    fprintf(f,
            ",\"late_publishes\":%" PRIu64 ",\"queued_sends\":%" PRIu64 ",\"pings\":%" PRIu64
            ",\"events_per_wake\":%.3f,\"reads_per_delivery\":%.3f,\"poll_us\":%u}",
            s->late, s->queued_sends, s->pings,
            s->wakes ? (double)s->wake_events / (double)s->wakes : 0,
            s->received ? (double)s->reads / (double)s->received : 0, o->poll_us);
}

static void print_summary(const struct opts *o, struct total *t)
{
    const struct wstats *s = &t->st;
    double run_s = o->warmup + o->duration;
    struct samples *l = &t->s[S_LAT];
    printf("epoll-client chat %s (%u worker%s)\n", o->url, t->nr_workers,
           t->nr_workers > 1 ? "s" : "");
    printf("  connections %" PRIu64 "/%u in %.2f s, held %" PRIu64 "%s%s\n", s->established,
           o->connections, t->connect_s, s->held, s->first_error[0] ? "; first error: " : "",
           s->first_error);
    printf("  messages    %" PRIu64 " published, %" PRIu64 " expected, %" PRIu64
           " received (%.0f/s), lost %" PRId64 ", reordered %" PRIu64 ", duplicates %" PRIu64 "\n",
           s->published, s->expected, s->received, (double)s->received / run_s,
           (int64_t)s->expected - (int64_t)s->received, s->reordered, s->duplicates);
    if (l->n) {
        qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
        printf("  latency     p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us "
               "(%zu samples)\n",
               q_us(l->v, l->n, 1, 2), q_us(l->v, l->n, 9, 10), q_us(l->v, l->n, 99, 100),
               q_us(l->v, l->n, 999, 1000), (double)l->v[l->n - 1] / 1000.0, l->n);
    }
    printf("  client      CPU %.2f s (%.0f%% of a core), %.2f us per delivery, schedule lag max "
           "%.1f us\n",
           s->cpu_s, t->wall_max > 0 ? 100 * s->cpu_s / t->wall_max : 0,
           s->received ? s->cpu_s * 1e6 / (double)s->received : 0, (double)s->max_lag_ns / 1000.0);
}

static void add_stats(struct wstats *t, const struct wstats *s)
{
    t->established += s->established;
    t->failed += s->failed;
    t->held += s->held;
    t->closed_early += s->closed_early;
    t->protocol_errors += s->protocol_errors;
    t->published += s->published;
    t->skipped += s->skipped;
    t->expected += s->expected;
    t->received += s->received;
    t->received_measured += s->received_measured;
    t->reordered += s->reordered;
    t->duplicates += s->duplicates;
    t->unexpected += s->unexpected;
    t->malformed += s->malformed;
    t->pings += s->pings;
    t->late += s->late;
    if (s->max_lag_ns > t->max_lag_ns)
        t->max_lag_ns = s->max_lag_ns;
    t->queued_sends += s->queued_sends;
    t->wakes += s->wakes;
    t->wake_events += s->wake_events;
    t->reads += s->reads;
    t->cpu_s += s->cpu_s;
    t->cpu_user_s += s->cpu_user_s;
    if (!t->first_error[0])
        memcpy(t->first_error, s->first_error, sizeof(t->first_error));
}

static void read_result(const struct opts *o, int fd, struct total *t)
{
    struct res_head h;
    struct wstats s;
    if (read_all(fd, &h, sizeof(h)) || h.type != RES_RESULT || read_all(fd, &s, sizeof(s)))
        fail(o, "a worker exited early");
    for (int k = 0; k < NR_SAMPLES; k++) {
        struct samples *a = &t->s[k];
        if (a->n + h.nr[k] > a->cap) {
            size_t cap = a->n + h.nr[k];
            uint64_t *v = realloc(a->v, (cap ? cap : 1) * sizeof(uint64_t));
            if (!v)
                die_oom();
            a->v = v;
            a->cap = cap;
        }
        if (h.nr[k] && read_all(fd, a->v + a->n, h.nr[k] * sizeof(uint64_t)))
            fail(o, "a worker exited early");
        a->n += h.nr[k];
    }
    double *sum = malloc(t->stride * sizeof(double)), *cnt = malloc(t->stride * sizeof(double));
    if (!sum || !cnt)
        die_oom();
    if (read_all(fd, sum, t->stride * sizeof(double)) ||
        read_all(fd, cnt, t->stride * sizeof(double)))
        fail(o, "a worker exited early");
    for (uint32_t k = 0; k < t->stride; k++) {
        t->rank_sum[k] += sum[k];
        t->rank_n[k] += cnt[k];
    }
    free(sum);
    free(cnt);
    add_stats(&t->st, &s);
    if (s.wall_s > 0 && s.cpu_s / s.wall_s > t->core_busiest)
        t->core_busiest = s.cpu_s / s.wall_s;
    if (s.wall_s > 0 && s.busy_s / s.wall_s > t->loop_busiest)
        t->loop_busiest = s.busy_s / s.wall_s;
    if (s.wall_s > t->wall_max)
        t->wall_max = s.wall_s;
}

int main(int argc, char **argv)
{
    static struct opts o;
    if (parse_args(&o, argc, argv)) {
        fputs(usage, stderr);
        return 2;
    }
    uint8_t probe[256];
    size_t need = payload_make(probe, 1, 99999, UINT32_MAX, UINT64_MAX, LAG_FIELD_MAX, false);
    if (o.payload < need) {
        fprintf(stderr, "epoll-client: --payload must be at least %zu\n", need);
        return 2;
    }
    if ((uint64_t)o.connections * (o.room_size < o.connections ? o.room_size : o.connections) >
        (1ull << 28)) {
        fputs("epoll-client: --connections x --room-size must be at most 2^28\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uint32_t rooms = nr_rooms(&o);
    uint32_t nw = o.workers < rooms ? o.workers : rooms;
    double limit =
        o.handshake_timeout + o.connections / 1000.0 + 10 + o.warmup + o.duration + o.drain + 30;
    if (o.json)
        snprintf(bound_msg, sizeof(bound_msg),
                 "{\"tool\":\"epoll-client\",\"error\":\"time bound of %.0f s hit\",\"ok\":false}"
                 "\n",
                 limit);
    else
        snprintf(bound_msg, sizeof(bound_msg), "epoll-client: time bound of %.0f s hit\n", limit);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)limit + 1);
    fflush(NULL);

    uint64_t t00 = now_ns();
    int ctl[64], res[64];
    for (uint32_t k = 0; k < nw; k++) {
        int a[2], b[2];
        if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC))
            fail(&o, "pipe failed");
        pid_t pid = fork();
        if (pid < 0)
            fail(&o, "fork failed");
        if (pid == 0) {
            for (uint32_t j = 0; j < k; j++) {
                close(ctl[j]);
                close(res[j]);
            }
            close(a[1]);
            close(b[0]);
            worker_main(&o, k, nw, a[0], b[1]);
        }
        close(a[0]);
        close(b[1]);
        ctl[k] = a[1];
        res[k] = b[0];
        kids[nr_kids++] = pid;
    }

    struct total t;
    memset(&t, 0, sizeof(t));
    t.nr_workers = nw;
    t.stride = o.room_size < o.connections ? o.room_size : o.connections;
    t.rank_sum = calloc(t.stride, sizeof(double));
    t.rank_n = calloc(t.stride, sizeof(double));
    if (!t.rank_sum || !t.rank_n)
        die_oom();
    uint64_t established = 0;
    for (uint32_t k = 0; k < nw; k++) {
        struct res_head h;
        struct wstats s;
        if (read_all(res[k], &h, sizeof(h)) || h.type != RES_CONNECTED ||
            read_all(res[k], &s, sizeof(s)))
            fail(&o, "a worker exited early");
        established += s.established;
    }
    t.connect_s = (double)(now_ns() - t00) / 1e9;
    if (!o.quiet)
        fprintf(stderr, "connected %" PRIu64 "/%u in %.2f s; publishing\n", established,
                o.connections, t.connect_s);
    struct ctl_msg m = {.type = CTL_START, .t0 = now_ns() + NS / 5}; /* one clock for all */
    for (uint32_t k = 0; k < nw; k++)
        if (write_all(ctl[k], &m, sizeof(m)))
            fail(&o, "a worker exited early");
    for (uint32_t k = 0; k < nw; k++)
        read_result(&o, res[k], &t);
    m.type = CTL_CLOSE;
    for (uint32_t k = 0; k < nw; k++)
        (void)write_all(ctl[k], &m, sizeof(m));
    for (uint32_t k = 0; k < nw; k++) {
        int status;
        while (waitpid(kids[k], &status, 0) < 0 && errno == EINTR)
            ;
    }
    alarm(0);
    t.wall_s = (double)(now_ns() - t00) / 1e9;
    const struct wstats *s = &t.st;
    bool ok = s->established == o.connections && s->held == o.connections &&
              s->expected == s->received && s->malformed == 0 && s->unexpected == 0;
    if (o.json) {
        print_json(&o, &t);
        printf(",\"ok\":%s}\n", ok ? "true" : "false");
    } else {
        print_summary(&o, &t);
    }
    return ok ? 0 : 3;
}
