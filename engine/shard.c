/* SPDX-License-Identifier: MIT */
/*
 * shard: the per-core event loop.
 *
 * One iteration:
 *   1. reap every completion and dispatch it (accept, recv, send, close, doorbell);
 *   2. advance the CQ once;
 *   3. take what other shards sent us (publishes to fan out, deliveries, joins, leaves);
 *   4. notice a drain request;
 *   5. run the timers whose second has come;
 *   6. flush: every connection with queued frames and no send in flight gets one send (and
 *      room membership notes that found no memory are sent again);
 *   7. publish our cross-shard batch and ring the doorbell of shards that sleep;
 *   8. submit everything and wait: for a completion, or until the next second when idle,
 *      or not at all when work is pending.
 * Steps 6 and 7 run after all input of the turn was seen, so everything a turn produced for
 * one connection or one shard leaves together.
 */
#include "shard.h"

#include "api.h"
#include "conn.h"
#include "log.h"
#include "routes.h"
#include "tls.h"
#include "ws_frame.h"
#include "xshard.h"

#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SQ_ENTRIES  4096
#define CQ_ENTRIES  65536
#define INBOX_BATCH 256
/*
 * Sends per loop turn. The flush list is a FIFO: a connection waits its turn while its frames
 * pile up, so under load each send carries more frames (the kernel's send is the cost of a
 * delivery, PLATFORM.md section 7), while turns stay short enough that publishes are read, and
 * their frames queued, within a millisecond or two. At light load every connection with
 * something queued is sent at the end of the turn that queued it.
 */
#define FLUSH_BUDGET 64
/* ...or more when many connections wait: the whole FIFO is served within this many turns. */
#define FLUSH_CYCLE_TURNS 16
/* Completions the kernel may run and post per io_uring_enter on a busy turn. */
#define TASKRUN_BATCH 4096
#define DRAIN_S       10

uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int shard_push(struct shard *s, unsigned to, uint32_t kind, void *ptr, uint64_t val)
{
    struct xshard_env env = {.kind = kind, .arg = s->id, .ptr = ptr, .val = val};
    if (xshard_push(s->eng->xs, s->id, to, &env) < 0) {
        log_warn("shard %u: cross-shard queue to %u: out of memory", s->id, to);
        return -ENOMEM;
    }
    STAT_ADD(s, xshard_msgs, 1);
    return 0;
}

/*
 * Accept. Normally one multishot accept per listener into auto-allocated direct descriptors.
 * A multishot accept cannot report each peer's address (the kernel would overwrite one
 * sockaddr), so when --max-conns-per-ip needs the address, ACCEPT_POOL single-shot accepts per
 * listener are kept in flight instead, each with its own sockaddr.
 */
static void arm_accept_one(struct shard *s, unsigned l, unsigned i)
{
    unsigned e = l * ACCEPT_POOL + i;
    struct io_uring_sqe *sqe = ring_sqe(&s->ring);
    s->acc_len[e] = sizeof(s->acc_addr[e]);
    /* liburing 2.3 wraps IORING_FILE_INDEX_ALLOC to 0 here; pass it minus one (PLATFORM.md). */
    io_uring_prep_accept_direct(sqe, s->listen_fd[l], (struct sockaddr *)&s->acc_addr[e],
                                &s->acc_len[e], 0, IORING_FILE_INDEX_ALLOC - 1);
    io_uring_sqe_set_data64(sqe, ring_ud(OP_ACCEPT, 1, l << 8 | i));
    s->acc_busy |= 1u << e;
}

static void arm_accept(struct shard *s)
{
    for (unsigned l = 0; l < 2; l++) {
        if (s->listen_fd[l] < 0)
            continue;
        if (s->eng->cfg->max_conns_per_ip) {
            for (unsigned i = 0; i < ACCEPT_POOL; i++)
                if (!(s->acc_busy & (1u << (l * ACCEPT_POOL + i))))
                    arm_accept_one(s, l, i);
            s->accept_armed[l] = true;
            continue;
        }
        if (s->accept_armed[l])
            continue;
        s->accept_armed[l] = true;
        struct io_uring_sqe *sqe = ring_sqe(&s->ring);
        /* liburing 2.3's multishot helper encodes IORING_FILE_INDEX_ALLOC correctly. */
        io_uring_prep_multishot_accept_direct(sqe, s->listen_fd[l], NULL, NULL, 0);
        io_uring_sqe_set_data64(sqe, ring_ud(OP_ACCEPT, 0, l << 8));
    }
}

static void handle_accept(struct shard *s, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned l = (ring_ud_idx(ud) >> 8) & 1;
    uint32_t ip = 0;
    if (ring_ud_gen(ud) == 1) {
        unsigned i = ring_ud_idx(ud) & 0xff;
        unsigned e = l * ACCEPT_POOL + i;
        s->acc_busy &= ~(1u << e);
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&s->acc_addr[e];
        if (cqe->res >= 0 && sin->sin_family == AF_INET)
            ip = sin->sin_addr.s_addr;
        if (cqe->res != -ENFILE && cqe->res != -ECANCELED && s->nr_live + 1 < s->nr_slots)
            arm_accept_one(s, l, i);
        uint32_t mine = ((1u << ACCEPT_POOL) - 1) << (l * ACCEPT_POOL);
        s->accept_armed[l] = (s->acc_busy & mine) != 0;
    } else if (!(cqe->flags & IORING_CQE_F_MORE)) {
        s->accept_armed[l] = false;
    }
    if (cqe->res >= 0) {
        if ((uint32_t)cqe->res < s->nr_slots) {
            conn_accepted(s, (uint32_t)cqe->res, l == 1, HANDLER_HTTP);
            s->conns[cqe->res].peer_ip = ip;
        } else {
            struct io_uring_sqe *sqe = ring_sqe(&s->ring);
            io_uring_prep_close_direct(sqe, (unsigned)cqe->res);
            io_uring_sqe_set_data64(sqe, ring_ud(OP_CANCEL, 0, 0));
        }
    } else if (cqe->res == -ENFILE) {
        /* The descriptor table is full; accept resumes when a slot frees (PLATFORM.md 6.2). */
        log_debug("shard %u: descriptor table full (%u live)", s->id, s->nr_live);
        return;
    } else if (cqe->res != -ECANCELED) {
        log_debug("shard %u: accept: %s", s->id, strerror(-cqe->res));
    }
    if (s->nr_live < s->nr_slots)
        arm_accept(s);
}

static void dispatch(struct shard *s, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned op = ring_ud_op(ud);
    if (op == OP_ACCEPT) {
        handle_accept(s, cqe);
        return;
    }
    if (op == OP_WAKE || op == OP_CANCEL || op == 0)
        return;
    uint32_t idx = ring_ud_idx(ud);
    struct conn *c = idx < s->nr_slots ? &s->conns[idx] : NULL;
    if (!c || c->gen != ring_ud_gen(ud) || c->state == CONN_FREE) {
        /* A completion for a slot that has moved on. Give back any buffer it took. */
        if (op == OP_RECV && cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER))
            bufring_recycle(&s->bufs, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        STAT_ADD(s, stale_cqes, 1);
        return;
    }
    switch (op) {
    case OP_RECV:
        conn_handle_recv(s, c, cqe);
        break;
    case OP_SEND:
        conn_handle_send(s, c, cqe->res);
        break;
    case OP_CLOSE:
        conn_handle_close(s, c);
        if (!s->draining_done)
            arm_accept(s);
        break;
    case OP_SHUTDOWN:
        conn_handle_shutdown(s, c);
        break;
    default:
        break;
    }
}

static void take_inbox(struct shard *s)
{
    struct xshard_env env[INBOX_BATCH];
    size_t n;
    do {
        n = xshard_pop(s->eng->xs, s->id, env, INBOX_BATCH);
        for (size_t i = 0; i < n; i++) {
            if (env[i].kind >= XS_API_FIRST)
                api_handle_envelope(s, &env[i]);
            else
                room_handle_envelope(s, &env[i]);
        }
    } while (n == INBOX_BATCH);
}

/* SIGHUP: the main thread left a new TLS config for this shard; new connections use it. */
static void take_tls_reload(struct shard *s)
{
    struct tls_config *next = atomic_load_explicit(&s->tls_next, memory_order_relaxed);
    if (!next)
        return;
    /* acquire; pairs with the release exchange in engine_reload_tls. */
    next = atomic_exchange_explicit(&s->tls_next, NULL, memory_order_acquire);
    if (!next)
        return;
    if (s->tls_cfg)
        tls_config_unref(s->tls_cfg);
    s->tls_cfg = next;
}

static void start_drain(struct shard *s)
{
    s->draining = true;
    s->drain_deadline_ns = s->now_ns + (uint64_t)DRAIN_S * 1000000000ull;
    for (uint32_t i = 0; i < s->slots_hwm && s->nr_live; i++) {
        struct conn *c = &s->conns[i];
        if (!conn_is_open(c))
            continue;
        if (conn_handler(c)->on_drain)
            conn_handler(c)->on_drain(s, c);
        else
            conn_close(s, c, WS_CLOSE_GOING_AWAY, "server shutting down");
    }
}

static void ring_doorbells(struct shard *s, uint64_t mask)
{
    while (mask) {
        unsigned to = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        struct io_uring_sqe *sqe = ring_sqe(&s->ring);
        io_uring_prep_msg_ring(sqe, s->eng->ring_fds[to], 0, ring_ud(OP_WAKE, 0, 0), 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, ring_ud(OP_WAKE, 0, 0));
    }
}

static void update_clock(struct shard *s)
{
    s->now_ns = mono_ns();
    s->now = (uint32_t)(s->now_ns / 1000000000ull);
}

int shard_setup(struct shard *s)
{
    int ret = ring_init(&s->ring, SQ_ENTRIES, CQ_ENTRIES);
    if (ret < 0)
        return ret;
    ret = io_uring_register_files_sparse(&s->ring, s->nr_slots);
    if (ret < 0)
        return ret;
    ret = bufring_init(&s->bufs, &s->ring, 0, SHARD_RECV_BUFS, SHARD_RECV_BUF_SIZE);
    if (ret < 0)
        return ret;
    size_t bytes = (size_t)s->nr_slots * sizeof(struct conn);
    /* Reserved, not touched: a slot's page is faulted in when a connection first uses it. */
    s->conns = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                    MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
    if (s->conns == MAP_FAILED) {
        s->conns = NULL;
        return -ENOMEM;
    }
    ret = room_table_init(&s->rooms);
    if (ret < 0)
        return ret;
    ret = users_init(&s->users, s->eng->room_seed);
    if (ret < 0)
        return ret;
    update_clock(s);
    timer_wheel_init(&s->wheel, s->now);
    return 0;
}

void shard_teardown(struct shard *s)
{
    if (s->conns) {
        for (uint32_t i = 0; i < s->slots_hwm; i++) {
            struct conn *c = &s->conns[i];
            if (c->state != CONN_FREE)
                conn_release_memory(s, c);
        }
        munmap(s->conns, (size_t)s->nr_slots * sizeof(struct conn));
        s->conns = NULL;
    }
    room_table_fini(s);
    users_fini(&s->users);
    conn_pools_fini(s);
    for (uint32_t i = 0; i < s->paused.nr; i++)
        free(s->paused.v[i].held);
    free(s->paused.v);
    s->paused = (struct paused_list){0};
    tls_thread_release_all(); /* this thread's spare handshake buffers */
    struct tls_config *next = atomic_exchange(&s->tls_next, NULL);
    if (next)
        tls_config_unref(next);
    if (s->tls_cfg) {
        tls_config_unref(s->tls_cfg);
        s->tls_cfg = NULL;
    }
    if (s->ring.ring_fd > 0) {
        ring_drop_parked(&s->ring);
        bufring_fini(&s->bufs, &s->ring);
        io_uring_queue_exit(&s->ring);
    }
}

/* Spare TLS handshake buffers given back to the system per loop turn (tls.h). */
#define RELEASE_PER_TURN 8

void shard_run(struct shard *s)
{
    struct engine *e = s->eng;
    arm_accept(s);
    for (;;) {
        update_clock(s);
        /* Before the accepts of this turn: a reload applies to the very next connection. */
        take_tls_reload(s);
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            dispatch(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
        STAT_ADD(s, turns, 1);
        STAT_ADD(s, cqes, n);
        take_inbox(s);
        if (!fifo_empty(&s->hs_wait))
            conn_admit_handshakes(s);
        if (!s->draining && atomic_load_explicit(&e->draining, memory_order_acquire))
            start_drain(s);
        if (s->now != s->trim_sec) {
            /* Once a second: the memory of a handshake storm goes back after it (tls.h), and
             * history past --history-ttl goes (room.h). */
            tls_thread_tick();
            room_tick(s);
            s->trim_sec = s->now;
        }
        timer_wheel_advance(&s->wheel, s->now, conn_on_timer, s);
        uint32_t pause_ms = s->paused.nr ? conn_resume_due(s) : UINT32_MAX;
        unsigned budget = s->nr_flush / FLUSH_CYCLE_TURNS;
        bool pending = conn_flush(s, budget > FLUSH_BUDGET ? budget : FLUSH_BUDGET);
        /* Membership notes that found no memory: retried at least once a second (the wait is
         * bounded by the timers' granularity), not in a busy loop. */
        if (!list_empty(&s->rooms.pending))
            room_retry(s);
        /* A few per turn, and no sleep until they are all back: each is a TLB flush. */
        pending |= tls_thread_release(RELEASE_PER_TURN) != 0;
        bool xs_pending = false;
        ring_doorbells(s, xshard_flush(e->xs, s->id, &xs_pending));
        pending |= xs_pending;
        if (s->draining && (s->nr_live == 0 || s->now_ns >= s->drain_deadline_ns)) {
            s->draining_done = true;
            io_uring_submit(&s->ring);
            break;
        }
        /* Entries the SQ could not take (ring.h): they go first, and the loop does not sleep
         * while some are left. */
        if (ring_nr_parked(&s->ring))
            pending |= ring_flush_parked(&s->ring) > 0;
        /*
         * Sleep only after a turn that found nothing to do. With DEFER_TASKRUN the kernel runs
         * completions (our multishot receives among them) only inside this call, and at most
         * max(20, wait_nr) of them per call: waiting for one at a time would cap the publishes
         * read per turn at 20 and leave the rest queued in the kernel, however idle the CPU.
         * A busy turn therefore asks for a large batch with a zero timeout.
         */
        bool sleep = n == 0 && !pending && xshard_prepare_sleep(e->xs, s->id);
        struct __kernel_timespec ts = {0, 0};
        unsigned wait_nr = TASKRUN_BATCH;
        if (sleep) {
            /* Wake at the next second boundary at the latest: the timers' granularity; or when
             * a paused publisher is due to resume (conn_pause). */
            ts.tv_nsec = (long long)(1000000000ull - s->now_ns % 1000000000ull);
            if (pause_ms != UINT32_MAX && (long long)pause_ms * 1000000 + 1000000 < ts.tv_nsec)
                ts.tv_nsec = (long long)pause_ms * 1000000 + 1000000;
            wait_nr = 1;
        }
        io_uring_submit_and_wait_timeout(&s->ring, &cqe, wait_nr, &ts, NULL);
        if (sleep)
            xshard_wake_done(e->xs, s->id);
    }
}
