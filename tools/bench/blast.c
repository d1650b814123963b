/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench-blast: a WebSocket server that does nothing but send raw-room frames as fast
 * as it can, to measure ringcast-bench's own receive ceiling (tools/bench/README.md).
 *
 * A broker spends a few microseconds of CPU per delivery, so with both on one machine the
 * broker saturates long before the load generator and hides its limit. This server builds its
 * frames 64 KiB at a time (each with a fresh sequence number and timestamp, in the payload
 * layout of proto_raw.c, publisher 0) and writes them with one send each, so the sending side
 * costs tens of nanoseconds per frame and the receiving side is what saturates.
 *
 * --frames-per-send N sends N frames per send instead (1 is the worst case for a receiver:
 * one frame per receive), to measure the cost of a delivery at a given batching.
 *
 * It accepts upgrades on any path, answers a client's close frame with a close and ends the
 * connection, and ignores everything else it receives. Single-threaded, poll(2), loopback
 * only. Not a server to run anywhere else.
 *
 *   ringcast-bench-blast [--listen 127.0.0.1:PORT] [--payload BYTES] [--frames-per-send N]
 *   ringcast-bench fanout --url ws://127.0.0.1:PORT/room/ --connections 10 --workers 1 ...
 */
#include "proto.h"
#include "ws_frame.h"
#include "ws_handshake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define CHUNK     65536

struct peer {
    int fd;
    bool open;    /* upgraded: blasting */
    bool closing; /* close answered: send what is queued, then end */
    char in[HTTP_HEAD_MAX];
    size_t in_len;
    struct http_request req;
    struct ws_parser parser;
    uint8_t out[CHUNK + 256];
    size_t out_len, out_off;
    uint32_t seq;
};

static struct peer *peers[MAX_CONNS];
static struct bench_opts opts;
static unsigned frames_per_send; /* 0: as many as fit in CHUNK */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void drop(int i)
{
    close(peers[i]->fd);
    free(peers[i]);
    peers[i] = NULL;
}

/* Fills the output with whole frames, one timestamp per chunk (a chunk takes microseconds). */
static void refill(struct peer *p)
{
    uint64_t ts = now_ns();
    uint8_t payload[4096];
    size_t plen = opts.payload;
    p->out_len = p->out_off = 0;
    for (unsigned k = 0; p->out_len + WS_HEADER_MAX + plen <= CHUNK; k++) {
        if (frames_per_send && k == frames_per_send)
            break;
        struct bench_msg m = {.pub = 0, .seq = ++p->seq, .ts_ns = ts};
        size_t n = proto_raw.publish(&opts, &m, payload, plen);
        size_t h = ws_frame_header(p->out + p->out_len, WS_OP_TEXT, true, n, NULL);
        memcpy(p->out + p->out_len + h, payload, n);
        p->out_len += h + n;
    }
}

/* RFC 6455 §5.5.1: answer a close with a close, then end the connection. */
static void answer_close(struct peer *p)
{
    /* After what is queued (the buffer keeps room for it): close 1000. */
    static const uint8_t frame[] = {0x88, 0x02, 0x03, 0xe8};
    p->open = false;
    p->closing = true;
    memcpy(p->out + p->out_len, frame, sizeof(frame));
    p->out_len += sizeof(frame);
}

static int on_frames(struct peer *p, uint8_t *buf, size_t len)
{
    while (len) {
        struct ws_chunk ch;
        bool got = false;
        ssize_t n = ws_parser_feed(&p->parser, buf, len, &ch, &got);
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
        if (got && ch.opcode == WS_OP_CLOSE && ch.frame_end && !p->closing)
            answer_close(p);
        if (!got && n == 0)
            break;
    }
    return 0;
}

static int on_readable(struct peer *p)
{
    uint8_t buf[16384];
    ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return -1;
    if (n < 0)
        return 0;
    if (p->open || p->closing)
        return on_frames(p, buf, (size_t)n);
    if (p->in_len + (size_t)n > sizeof(p->in))
        return -1;
    memcpy(p->in + p->in_len, buf, (size_t)n);
    p->in_len += (size_t)n;
    int r = http_request_parse(p->in, p->in_len, &p->req);
    if (r == -EAGAIN)
        return 0;
    if (r < 0 || ws_upgrade_check(&p->req) != WS_UPGRADE_OK)
        return -1;
    p->out_len = ws_response_101((char *)p->out, p->req.ws_key.p, p->req.ws_key.len);
    p->out_off = 0;
    p->open = true;
    p->parser.server = true;
    if (p->in_len > (size_t)r)
        return on_frames(p, (uint8_t *)p->in + r, p->in_len - (size_t)r);
    return 0;
}

static int on_writable(struct peer *p)
{
    if (p->out_off == p->out_len) {
        if (p->closing) {
            shutdown(p->fd, SHUT_WR);
            return -1;
        }
        if (!p->open)
            return 0;
        refill(p);
    }
    ssize_t n =
        send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    p->out_off += (size_t)n;
    return 0;
}

static int listen_on(const char *spec)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || (ntohl(a.sin_addr.s_addr) >> 24) != 127)
        return -1;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
        close(fd);
        return -1;
    }
    socklen_t al = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    printf("ringcast-bench-blast: listening on ws://%s:%u\n", host, ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:0";
    opts.payload = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_spec = argv[++i];
        } else if (strcmp(argv[i], "--payload") == 0 && i + 1 < argc) {
            opts.payload = (uint32_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--frames-per-send") == 0 && i + 1 < argc) {
            frames_per_send = (unsigned)atoi(argv[++i]);
        } else {
            fputs("usage: ringcast-bench-blast [--listen 127.0.0.1:PORT] [--payload BYTES] "
                  "[--frames-per-send N]\n",
                  stderr);
            return 2;
        }
    }
    if (opts.payload < proto_raw.min_payload || opts.payload > 4096) {
        fprintf(stderr, "ringcast-bench-blast: --payload must be %zu to 4096\n",
                proto_raw.min_payload);
        return 2;
    }
    int lfd = listen_on(listen_spec);
    if (lfd < 0) {
        fprintf(stderr, "ringcast-bench-blast: cannot listen on %s (loopback only)\n", listen_spec);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    static struct pollfd pfd[MAX_CONNS + 1];
    static int idx[MAX_CONNS + 1];
    while (!stop) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++) {
            if (!peers[i])
                continue;
            struct peer *p = peers[i];
            short ev = POLLIN;
            if (p->open || p->closing || p->out_off < p->out_len)
                ev |= POLLOUT;
            idx[n] = i;
            pfd[n++] = (struct pollfd){.fd = p->fd, .events = ev};
        }
        if (poll(pfd, (nfds_t)n, 200) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            int slot = -1;
            for (int i = 0; i < MAX_CONNS && fd >= 0 && slot < 0; i++)
                if (!peers[i])
                    slot = i;
            struct peer *p = slot >= 0 ? calloc(1, sizeof(*p)) : NULL;
            if (!p) {
                if (fd >= 0)
                    close(fd);
            } else {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                p->fd = fd;
                peers[slot] = p;
            }
        }
        for (int k = 1; k < n; k++) {
            int i = idx[k];
            if (!peers[i])
                continue;
            if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) && on_readable(peers[i]) < 0) {
                drop(i);
                continue;
            }
            if ((pfd[k].revents & POLLOUT) && on_writable(peers[i]) < 0)
                drop(i);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (peers[i])
            drop(i);
    close(lfd);
    return 0;
}
