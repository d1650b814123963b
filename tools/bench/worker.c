/* SPDX-License-Identifier: MIT */
/*
 * worker: one ringcast-bench worker process: its io_uring, its loop, and what each phase of the
 * run asks of it. See worker.h and bench.h.
 *
 * The loop, in order:
 *   1. read the clock once (refreshed every 64 completions) and the parent's phase;
 *   2. do the phase's work: start connects (within the window, at the pace), publish what the
 *      schedule says is due, or start closing;
 *   3. every 100 ms: handshake timeouts, own CPU time;
 *   4. submit and wait for a completion or the next scheduled event, whichever is first; for
 *      --poll-us after a turn that completed something, only submit and collect what has
 *      completed, without blocking;
 *   5. handle the completions, advance the CQ once, give receive buffers back in one go.
 *
 * Why poll: a client that blocks as soon as its CQ is empty is woken once per delivery or
 * two at rooms of 50, and on loopback the server pays for those wake-ups inside its sends
 * (measured in bench/crosscheck/README.md); a short poll gathers the rest of a fan-out first.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SQ_ENTRIES     4096
#define CQ_ENTRIES     65536 /* the kernel's largest: a turn may complete several per client */
#define NR_BUFS        2048
#define BUF_SIZE       8192
#define TICK_NS        10000000ull    /* poll the parent's phase at least this often */
#define SCAN_NS        100000000ull   /* handshake timeouts, CPU time */
#define CLOSE_STALL_NS 3000000000ull  /* closing: no close completing for this long ends it */
#define CLOSE_MAX_NS   60000000000ull /* closing: the longest it may take in any case */
#define CLOSE_WINDOW   2048u          /* closing handshakes in progress at once */
#define BATCH          2048u          /* clients closed or aborted per loop turn */
#define MIN_WAIT_NS    20000ull       /* shorter waits than this just spin through the loop */
#define MAX_PER_TURN   65536u         /* publishes per loop turn, so completions keep flowing */
/* Reordering is checked per (receiver, publisher): past this many slots it is not. */
#define MAX_SEQ_SLOTS (16u << 20)

uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
}

struct io_uring_sqe *worker__sqe(struct worker *w)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&w->ring)))
        io_uring_submit(&w->ring);
    return sqe;
}

/* ---------------------------------------------------------------------------------------------
 * Setup
 * -------------------------------------------------------------------------------------------*/

static int fatal(struct worker *w, const char *what, int err)
{
    snprintf(w->st->fatal, sizeof(w->st->fatal), "worker %u: %s: %s", w->id, what, strerror(err));
    return -err;
}

static int setup_ring(struct worker *w)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = CQ_ENTRIES;
    int r = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
    if (r == -EINVAL) {
        /* Older kernels: same loop, the kernel just runs task work at other times. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        r = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
    }
    if (r < 0)
        return fatal(w, "io_uring_queue_init", -r);
    r = io_uring_register_files_sparse(&w->ring, w->n);
    if (r < 0)
        return fatal(w, "registering the file table", -r);

    /* Provided buffer ring (liburing 2.3 has no io_uring_setup_buf_ring: PLATFORM.md). */
    size_t ring_sz = (size_t)NR_BUFS * sizeof(struct io_uring_buf);
    void *rp = mmap(NULL, ring_sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (rp == MAP_FAILED)
        return fatal(w, "mmap", errno);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)rp;
    reg.ring_entries = NR_BUFS;
    reg.bgid = 0;
    r = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (r < 0)
        return fatal(w, "registering the buffer ring", -r);
    w->br = rp;
    io_uring_buf_ring_init(w->br);
    w->nr_bufs = NR_BUFS;
    w->buf_size = BUF_SIZE;
    w->bufs = malloc((size_t)NR_BUFS * BUF_SIZE);
    if (!w->bufs)
        return fatal(w, "receive buffers", ENOMEM);
    for (unsigned i = 0; i < NR_BUFS; i++)
        io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              NR_BUFS - 1, (int)i);
    io_uring_buf_ring_advance(w->br, NR_BUFS);
    return 0;
}

static int setup(struct worker *w, const struct bench_opts *o, struct bench_shm *shm, uint32_t id)
{
    uint32_t lo, hi;
    plan_worker_range(o, id, &lo, &hi);
    w->o = o;
    w->proto = o->proto;
    w->ctl = &shm->ctl;
    w->st = &shm->w[id];
    w->id = id;
    w->lo = lo;
    w->n = hi - lo;
    w->opcode = o->binary ? WS_OP_BINARY : WS_OP_TEXT;
    w->phase = PH_CONNECT;
    w->window = o->connect_window / o->workers;
    if (w->window < 8)
        w->window = 8;

    w->c = calloc(w->n ? w->n : 1, sizeof(*w->c));
    w->scratch = malloc(WSC_RESPONSE_MAX + BUF_SIZE + o->payload + 64);
    if (!w->c || !w->scratch)
        return fatal(w, "client table", ENOMEM);
    w->seq_slots = plan_seq_slots(o);
    if (w->seq_slots && (uint64_t)w->n * w->seq_slots <= MAX_SEQ_SLOTS) {
        w->last_seq = calloc((size_t)w->n * w->seq_slots, sizeof(uint32_t));
        if (w->last_seq)
            STAT_SET(w->st->seq_tracked, 1);
    }
    if (o->tls) {
        /* Made here, after fork(): each worker seeds its own random generator. */
        char err[sizeof(w->st->fatal) - 32];
        struct tlsc_config_opts to = {.ca_file = o->tls_ca[0] ? o->tls_ca : NULL,
                                      .sni = o->tls_sni};
        w->tls_cfg = tlsc_config_create(&to, err, sizeof(err));
        if (!w->tls_cfg) {
            snprintf(w->st->fatal, sizeof(w->st->fatal), "worker %u: %s", w->id, err);
            return -EINVAL;
        }
        w->tls_plain = malloc(TLSC_PLAIN_MAX);
        if (!w->tls_plain)
            return fatal(w, "TLS buffer", ENOMEM);
    }
    if ((o->scenario == SC_HOLD || o->scenario == SC_RAMP) && o->rate > 0) {
        /* This worker's share of the connect rate, from the start of the run. */
        double share = o->rate * (double)w->n / (double)o->connections;
        pace_init(&w->conn_pace, share, bench_now(), UINT64_MAX);
        w->conn_paced = true;
    }
    return setup_ring(w);
}

/* ---------------------------------------------------------------------------------------------
 * Phases
 * -------------------------------------------------------------------------------------------*/

static void do_connect(struct worker *w)
{
    if (STAT_LOAD(w->ctl->stop_connecting) || w->next_open >= w->n)
        return;
    uint32_t room = w->nr_pending < w->window ? w->window - w->nr_pending : 0;
    if (w->conn_paced) {
        uint64_t due = pace_due(&w->conn_pace, w->now);
        if (due < room)
            room = (uint32_t)due;
    }
    if (w->o->tls_resume && !w->tls_primed) {
        /* Every later handshake offers the session of the first one: start that one alone
         * and the rest once its ticket is in (client.c saves it). */
        room = w->nr_pending ? 0 : room ? 1 : 0;
    }
    while (room > 0 && w->next_open < w->n) {
        uint32_t got = client__open_batch(w, room);
        if (got == 0)
            break;
        room -= got;
        if (w->conn_paced)
            w->conn_pace.taken += got;
    }
}

static bool paced_publishing(const struct worker *w)
{
    return w->o->scenario == SC_CHAT ||
           (w->o->rate > 0 && (w->o->scenario == SC_FANOUT || w->o->scenario == SC_ECHO));
}

static void fanout_refill(struct worker *w)
{
    if (w->lo != 0 || w->n == 0)
        return;
    while (w->fan_inflight < w->o->inflight && w->c[0].state == CL_OPEN) {
        client__publish(w, 0, w->now);
        w->fan_inflight++;
    }
}

static void start_run(struct worker *w)
{
    w->run_started = true;
    if (w->o->scenario == SC_ECHO && w->o->rate == 0) {
        for (uint32_t i = 0; i < w->n; i++) {
            for (uint32_t k = 0; k < w->o->inflight && w->c[i].state == CL_OPEN; k++) {
                client__publish(w, i, w->now);
                w->c[i].inflight++;
            }
        }
    }
}

static void do_publish(struct worker *w)
{
    const struct bench_ctl *ctl = w->ctl;
    if (!w->run_started) {
        if (w->now < ctl->t_run_start)
            return;
        start_run(w);
    }
    if (w->o->scenario == SC_HOLD || w->o->scenario == SC_RAMP)
        return;
    if (paced_publishing(w)) {
        uint64_t due = pace_due(&w->pub_pace, w->now);
        if (due > MAX_PER_TURN)
            due = MAX_PER_TURN;
        bool fan = w->o->scenario == SC_FANOUT;
        if (fan && w->lo != 0) {
            w->pub_pace.taken += due;
            return;
        }
        for (uint64_t k = 0; k < due; k++) {
            uint64_t ts = pace_take(&w->pub_pace);
            /* Every worker draws every pick, so all agree on the global random order. */
            uint32_t g = fan ? 0 : rng_below(&w->pick, w->o->connections);
            if (g >= w->lo && g - w->lo < w->n)
                client__publish(w, g - w->lo, ts);
        }
    } else if (w->o->scenario == SC_FANOUT && w->now < ctl->t_run_end) {
        fanout_refill(w);
    }
}

static void on_phase(struct worker *w, uint32_t ph)
{
    uint64_t cpu = cpu_us();
    STAT_SET(w->st->cpu_us, cpu);
    if (ph >= PH_RUN && w->phase < PH_RUN) {
        pace_init(&w->pub_pace, paced_publishing(w) ? w->o->rate : 0, w->ctl->t_run_start,
                  w->ctl->t_run_end);
        rng_seed(&w->pick, w->ctl->seed);
        w->cpu_run_start = cpu;
    }
    if (ph == PH_CLOSE && w->phase != PH_CLOSE) {
        if (w->phase >= PH_RUN)
            STAT_SET(w->st->cpu_us_run, cpu - w->cpu_run_start);
        w->closing = true;
        w->close_start = w->now;
        w->last_done_t = w->now;
    }
    w->phase = ph;
}

static void scan(struct worker *w)
{
    uint64_t limit = (uint64_t)(w->o->handshake_timeout * 1e9);
    if (w->nr_pending) {
        for (uint32_t i = 0; i < w->next_open; i++) {
            struct client *c = &w->c[i];
            if ((c->state == CL_CONNECTING || c->state == CL_TLS || c->state == CL_UPGRADING) &&
                !(c->flags & CL_F_ENDING) && w->now - c->t_start > limit) {
                STAT_INC(w->st->hs_timeouts);
                STAT_INC(w->st->failed);
                client__abort(w, i);
            }
        }
    }
    STAT_SET(w->st->cpu_us, cpu_us());
    w->next_scan = w->now + SCAN_NS;
}

/*
 * The closing handshake of every client, a window at a time so that the server sees a steady
 * stream rather than one burst of N close frames, and with a deadline that follows progress:
 * a loaded machine gets the time it needs, a server that stopped answering does not.
 * Returns true when the worker is done.
 */
static bool do_close(struct worker *w)
{
    if (w->nr_live == 0 && w->close_next >= w->next_open)
        return true;
    if (!w->forced) {
        uint32_t busy = w->nr_live - (uint32_t)STAT_LOAD(w->st->open) - w->nr_pending;
        for (uint32_t k = 0; k < BATCH && busy < CLOSE_WINDOW && w->close_next < w->next_open;
             k++) {
            uint8_t s = w->c[w->close_next].state;
            client__close(w, w->close_next++);
            busy += s == CL_OPEN;
        }
        if (w->now - w->last_done_t < CLOSE_STALL_NS && w->now - w->close_start < CLOSE_MAX_NS)
            return false;
        /* The server stopped finishing closing handshakes: reset what is left. */
        w->forced = true;
        w->forced_t = w->now;
        w->close_next = 0;
    }
    for (uint32_t k = 0; k < BATCH && w->close_next < w->next_open; k++) {
        uint32_t i = w->close_next++;
        struct client *c = &w->c[i];
        if (c->state != CL_DONE && c->state != CL_IDLE && !(c->flags & CL_F_ENDING)) {
            /* A client whose close was answered only waits for the server's FIN. */
            if (!(c->flags & CL_F_CLOSE_RCVD))
                STAT_INC(w->st->close_forced);
            client__abort(w, i);
        }
    }
    /* Cancellations complete at once; allow a moment, then leave it to the ring's exit. */
    return w->nr_live == 0 || w->now - w->forced_t > 2000000000ull;
}

/* ---------------------------------------------------------------------------------------------
 * Loop
 * -------------------------------------------------------------------------------------------*/

static uint64_t next_wake(struct worker *w)
{
    uint64_t next = w->now + TICK_NS;
    if (w->phase == PH_CONNECT && w->conn_paced && w->next_open < w->n &&
        w->nr_pending < w->window) {
        uint64_t t = pace_next(&w->conn_pace);
        if (t < next)
            next = t;
    }
    if (w->phase >= PH_RUN && w->phase < PH_CLOSE) {
        if (!w->run_started && w->ctl->t_run_start < next)
            next = w->ctl->t_run_start;
        if (w->run_started && paced_publishing(w)) {
            uint64_t t = pace_next(&w->pub_pace);
            if (t < next)
                next = t;
        }
    }
    if (w->next_scan < next)
        next = w->next_scan;
    return next;
}

/* Handles every completion in the CQ. Returns how many there were. */
static unsigned reap(struct worker *w)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        if ((n & 63) == 63)
            w->now = bench_now();
        client__handle_cqe(w, cqe);
        n++;
    }
    io_uring_cq_advance(&w->ring, n);
    if (w->br_added) {
        io_uring_buf_ring_advance(w->br, (int)w->br_added);
        w->br_added = 0;
    }
    return n;
}

static void run(struct worker *w)
{
    for (;;) {
        w->now = bench_now();
        uint32_t ph = __atomic_load_n(&w->ctl->phase, __ATOMIC_ACQUIRE);
        if (ph != w->phase)
            on_phase(w, ph);
        if (ph == PH_CONNECT)
            do_connect(w);
        else if (ph == PH_RUN || ph == PH_DRAIN)
            do_publish(w);
        if (w->now >= w->next_scan)
            scan(w);
        if (!w->st->connect_done && w->nr_pending == 0 &&
            (w->next_open >= w->n || STAT_LOAD(w->ctl->stop_connecting))) {
            STAT_SET(w->st->cpu_us_connect, cpu_us());
            STAT_SET(w->st->connect_done, 1);
        }
        if (w->closing && do_close(w))
            return;

        uint64_t next = next_wake(w);
        uint64_t wait = next > w->now ? next - w->now : 0;
        if (wait < MIN_WAIT_NS)
            wait = 0;
        struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000ull),
                                       .tv_nsec = (long long)(wait % 1000000000ull)};
        int r;
        if (w->now < w->poll_until) {
            r = io_uring_submit_and_get_events(&w->ring);
        } else {
            struct io_uring_cqe *cqe;
            if (wait && (w->phase == PH_RUN || w->phase == PH_DRAIN) && w->run_started)
                STAT_INC(w->st->waits_run);
            r = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        }
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            fatal(w, "io_uring_enter", -r);
            return;
        }
        w->now = bench_now();
        if (reap(w))
            w->poll_until = w->now + (uint64_t)w->o->poll_us * 1000u;
    }
}

int worker_main(const struct bench_opts *o, struct bench_shm *shm, uint32_t id)
{
    struct worker w;
    memset(&w, 0, sizeof(w));

    /* The parent alone decides when the run ends: a terminal's Ctrl-C reaches the whole
     * process group, so workers ignore it and die with the parent if it dies. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);

    int r = setup(&w, o, shm, id);
    if (r == 0)
        run(&w);
    STAT_SET(w.st->cpu_us, cpu_us());
    if (w.ring.ring_fd > 0) {
        io_uring_submit(&w.ring);
        io_uring_queue_exit(&w.ring);
    }
    /* The ring is gone, so no request can name a client any more: free what is left. */
    for (uint32_t i = 0; w.c && i < w.n; i++)
        tlsc_destroy(w.c[i].tls);
    tlsc_config_destroy(w.tls_cfg);
    free(w.tls_plain);
    STAT_SET(w.st->exited, 1);
    return w.st->fatal[0] ? 3 : 0;
}
