/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench: the load generator of ringcast (ARCHITECTURE.md, "Load tool").
 *
 * The parent process parses the plan, maps the shared control and stats region, forks the
 * workers (worker.c, one io_uring each) and then only steers and watches: every 100 ms it sums
 * the workers' counters, records a point of the time series, redraws the progress line, samples
 * the server from /proc when --pid is given, and moves the run through its phases:
 *
 *   CONNECT -> (all connected) -> RUN -> DRAIN -> CLOSE -> (workers exited) -> report
 *
 * hold holds in RUN for --duration; ramp goes from CONNECT straight to CLOSE once it has found
 * the limit. The parent does no network I/O, so it never competes with the workers for long.
 */
#include "bench.h"
#include "pace.h"
#include "procstat.h"
#include "proto.h"
#include "report.h"
#include "tlsclient.h"
#include "wsclient.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS      100000000ull
#define SETTLE_NS    500000000ull  /* all members joined -> first publish */
#define RAMP_HOLD_NS 1000000000ull /* after the limit: does the count hold? */
#define QUIET_NS     1000000000ull /* drain: this long without a delivery ends it */
/* Workers end the closing handshake on their own within 60 s (worker.c); this is the net. */
#define EXIT_NS 75000000000ull

static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
    (void)sig;
    interrupts++;
}

struct parent {
    struct bench_opts o;
    struct bench_shm *shm;
    size_t shm_len;
    pid_t *pids;
    uint32_t nr_alive;
    struct bench_result res;
    size_t series_cap;
    uint64_t t0;
    uint64_t phase_t; /* when the current phase began */
    uint64_t connect_deadline;
    uint64_t last_progress_t; /* ramp: last time the established count grew */
    uint64_t last_established;
    uint64_t last_received;
    uint64_t last_rx_t;
    uint64_t stop_t; /* ramp: when the limit was found */
    uint64_t close_t;
    uint64_t prev_received;
    uint64_t prev_t;
    double msgs_rate;
    bool tty;
    bool killing; /* workers are being killed on purpose: not a failure */
};

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL); /* an interrupt just ends the tick early */
}

static void set_phase(struct parent *p, enum bench_phase ph)
{
    /* Release: the run times written before become visible with the phase (bench.h). */
    __atomic_store_n(&p->shm->ctl.phase, (uint32_t)ph, __ATOMIC_RELEASE);
    p->phase_t = bench_now();
}

static uint32_t phase(const struct parent *p)
{
    return p->shm->ctl.phase;
}

/* ---------------------------------------------------------------------------------------------
 * Gathering
 * -------------------------------------------------------------------------------------------*/

/* Sums the workers' counters and merges their histograms into the result. */
static void gather(struct parent *p)
{
    struct bench_result *r = &p->res;
    struct worker_stats *t = &r->tot;
    uint64_t cpu = 0;
    memset(t, 0, sizeof(*t));
    hist_reset(&r->lat);
    hist_reset(&r->lag);
    hist_reset(&r->hs);
    hist_reset(&r->hs_full);
    hist_reset(&r->hs_resumed);
    t->first_status = 0;
    for (uint32_t w = 0; w < p->o.workers; w++) {
        const struct worker_stats *s = &p->shm->w[w];
#define SUM(f) t->f += STAT_LOAD(s->f)
        SUM(attempted);
        SUM(established);
        SUM(open);
        SUM(pending);
        SUM(failed);
        SUM(refused);
        SUM(connect_errors);
        SUM(hs_timeouts);
        SUM(proto_errors);
        SUM(client_limit);
        SUM(tls_errors);
        SUM(tls_full);
        SUM(tls_resumed);
        SUM(tls_offered);
        SUM(dropped);
        SUM(close_clean);
        SUM(close_forced);
        for (int k = 0; k < CC_NR; k++)
            SUM(close_codes[k]);
        if (!t->first_status)
            t->first_status = STAT_LOAD(s->first_status);
        if (!t->first_errno)
            t->first_errno = STAT_LOAD(s->first_errno);
        if (!t->first_tls_error)
            t->first_tls_error = STAT_LOAD(s->first_tls_error);
#define EARLIEST(f)                                                                                \
    do {                                                                                           \
        uint64_t v = STAT_LOAD(s->f);                                                              \
        if (v && (!t->f || v < t->f))                                                              \
            t->f = v;                                                                              \
    } while (0)
#define LATEST(f)                                                                                  \
    do {                                                                                           \
        uint64_t v = STAT_LOAD(s->f);                                                              \
        if (v > t->f)                                                                              \
            t->f = v;                                                                              \
    } while (0)
        EARLIEST(t_full_first);
        EARLIEST(t_resumed_first);
        LATEST(t_full_last);
        LATEST(t_resumed_last);
#undef EARLIEST
#undef LATEST
        uint64_t tf = STAT_LOAD(s->t_first_attempt), tl = STAT_LOAD(s->t_last_established);
        if (tf && (!t->t_first_attempt || tf < t->t_first_attempt))
            t->t_first_attempt = tf;
        if (tl > t->t_last_established)
            t->t_last_established = tl;
        SUM(published);
        SUM(expected);
        SUM(skipped);
        SUM(received);
        SUM(reordered);
        SUM(duplicates);
        SUM(malformed);
        SUM(unexpected);
        SUM(echoes);
        SUM(rx_bytes);
        SUM(tx_bytes);
        SUM(recvs);
        SUM(rx_frames);
        SUM(pings);
        SUM(nobufs);
        SUM(waits_run);
        SUM(late);
        SUM(connect_done);
        SUM(exited);
#undef SUM
        uint64_t lag = STAT_LOAD(s->max_lag_ns);
        if (lag > t->max_lag_ns)
            t->max_lag_ns = lag;
        t->seq_tracked =
            w == 0 ? STAT_LOAD(s->seq_tracked) : (t->seq_tracked && STAT_LOAD(s->seq_tracked));
        cpu += STAT_LOAD(s->cpu_us);
        hist_merge(&r->lat, &s->lat);
        hist_merge(&r->lag, &s->lag);
        hist_merge(&r->hs, &s->hs);
        hist_merge(&r->hs_full, &s->hs_full);
        hist_merge(&r->hs_resumed, &s->hs_resumed);
    }
    t->cpu_us = cpu;
    if (t->t_first_attempt && t->t_last_established > t->t_first_attempt)
        r->connect_s = (double)(t->t_last_established - t->t_first_attempt) / 1e9;
}

static void sample_server(struct parent *p, struct procstat *into)
{
    struct procstat s;
    if (!p->o.pid || procstat_read(p->o.pid, &s) < 0)
        return;
    if (into)
        *into = s;
    if (s.rss_kb > p->res.srv_rss_peak_kb)
        p->res.srv_rss_peak_kb = s.rss_kb;
}

static void record_point(struct parent *p, uint64_t now)
{
    struct bench_result *r = &p->res;
    if (r->nr_series == p->series_cap) {
        size_t cap = p->series_cap ? p->series_cap * 2 : 1024;
        struct series_point *s = realloc(r->series, cap * sizeof(*s));
        if (!s)
            return;
        r->series = s;
        p->series_cap = cap;
    }
    r->series[r->nr_series++] = (struct series_point){
        .t = (double)(now - p->t0) / 1e9,
        .open = r->tot.open,
        .established = r->tot.established,
        .published = r->tot.published,
        .received = r->tot.received,
    };
    if (now > p->prev_t) {
        double inst =
            (double)(r->tot.received - p->prev_received) / ((double)(now - p->prev_t) / 1e9);
        p->msgs_rate = p->prev_t ? 0.7 * inst + 0.3 * p->msgs_rate : inst;
    }
    p->prev_received = r->tot.received;
    p->prev_t = now;
}

/* Reaps workers that exited; one that exits before the run closes is a failure. */
static void reap_workers(struct parent *p)
{
    int st;
    pid_t pid;
    while (p->nr_alive && (pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (uint32_t w = 0; w < p->o.workers; w++) {
            if (p->pids[w] != pid)
                continue;
            p->pids[w] = 0;
            p->nr_alive--;
            bool bad = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
            if (bad && !p->killing && !p->res.error[0]) {
                if (p->shm->w[w].fatal[0])
                    snprintf(p->res.error, sizeof(p->res.error), "%s", p->shm->w[w].fatal);
                else
                    snprintf(p->res.error, sizeof(p->res.error), "worker %u died (status %d)", w,
                             st);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Steering
 * -------------------------------------------------------------------------------------------*/

static void start_close(struct parent *p, uint64_t now)
{
    if (phase(p) == PH_CLOSE)
        return;
    if (phase(p) < PH_CLOSE && !p->res.held)
        p->res.held = p->res.tot.open;
    if (phase(p) >= PH_RUN)
        sample_server(p, &p->res.srv_run_end);
    p->close_t = now;
    set_phase(p, PH_CLOSE);
}

static void start_run(struct parent *p, uint64_t now)
{
    struct bench_ctl *ctl = &p->shm->ctl;
    sample_server(p, &p->res.srv_connected);
    uint64_t settle = p->o.scenario == SC_HOLD ? 0 : SETTLE_NS;
    ctl->t_run_start = now + settle;
    ctl->t_measure = ctl->t_run_start + (uint64_t)(p->o.warmup * 1e9);
    ctl->t_run_end = ctl->t_run_start + (uint64_t)((p->o.duration + p->o.warmup) * 1e9);
    p->res.run_s = p->o.duration + p->o.warmup;
    set_phase(p, PH_RUN);
}

static bool ramp_limit(struct parent *p, uint64_t now)
{
    const struct worker_stats *t = &p->res.tot;
    struct bench_result *r = &p->res;
    char *why = r->limit_reason;
    size_t cap = sizeof(r->limit_reason);
    char tls_err[120];

    if (t->established > p->last_established) {
        p->last_established = t->established;
        p->last_progress_t = now;
    }
    if (t->refused)
        snprintf(why, cap, "the server refused an upgrade with HTTP %d", t->first_status);
    else if (t->connect_errors)
        snprintf(why, cap, "a connect or upgrade failed: %s",
                 t->first_errno ? strerror(t->first_errno) : "?");
    else if (t->client_limit)
        snprintf(why, cap, "the client ran out of resources: %s (not the server's limit)",
                 t->first_errno ? strerror(t->first_errno) : "?");
    else if (t->tls_errors)
        snprintf(why, cap, "a TLS handshake failed: %s",
                 tlsc_strerror(t->first_tls_error, tls_err, sizeof(tls_err)));
    else if (t->hs_timeouts)
        snprintf(why, cap, "a handshake took longer than %.1f s", p->o.handshake_timeout);
    else if (t->proto_errors)
        snprintf(why, cap, "the server answered an upgrade with something malformed");
    else if (t->dropped)
        snprintf(why, cap, "the server closed %llu open connections",
                 (unsigned long long)t->dropped);
    else if (t->pending && now - p->last_progress_t > (uint64_t)(p->o.stall * 1e9))
        snprintf(why, cap, "stall: no handshake completed for %.1f s with %llu waiting", p->o.stall,
                 (unsigned long long)t->pending);
    else if (t->established >= p->o.connections)
        snprintf(why, cap, "target of %u connections reached", p->o.connections);
    else if (now - p->t0 >= (uint64_t)(p->o.duration * 1e9))
        snprintf(why, cap, "time limit of %.0f s reached", p->o.duration);
    else
        return false;
    r->limit = t->open;
    return true;
}

static void step_connect(struct parent *p, uint64_t now)
{
    const struct worker_stats *t = &p->res.tot;
    bool all_done = t->connect_done == p->o.workers;

    if (p->o.scenario == SC_RAMP) {
        if (!p->stop_t && ramp_limit(p, now)) {
            __atomic_store_n(&p->shm->ctl.stop_connecting, 1, __ATOMIC_RELAXED);
            p->stop_t = now;
        }
        /* Once stopped: pending handshakes settle, then the count must hold for a moment. */
        if (p->stop_t && all_done && now - p->stop_t >= RAMP_HOLD_NS) {
            sample_server(p, &p->res.srv_connected);
            p->res.held = t->open;
            start_close(p, now);
        }
        return;
    }
    if (all_done) {
        start_run(p, now);
        return;
    }
    if (now > p->connect_deadline)
        __atomic_store_n(&p->shm->ctl.stop_connecting, 1, __ATOMIC_RELAXED);
}

static void step(struct parent *p, uint64_t now)
{
    const struct worker_stats *t = &p->res.tot;
    const struct bench_ctl *ctl = &p->shm->ctl;

    switch (phase(p)) {
    case PH_CONNECT:
        step_connect(p, now);
        break;
    case PH_RUN:
        if (p->o.scenario != SC_HOLD && !p->res.srv_run_start.cpu_us && now >= ctl->t_run_start)
            sample_server(p, &p->res.srv_run_start);
        if (now < ctl->t_run_end)
            break;
        if (p->o.scenario == SC_HOLD) {
            sample_server(p, &p->res.srv_run_end);
            p->res.held = t->open;
            start_close(p, now);
            break;
        }
        set_phase(p, PH_DRAIN);
        p->last_received = t->received;
        p->last_rx_t = now;
        break;
    case PH_DRAIN:
        if (t->received != p->last_received) {
            p->last_received = t->received;
            p->last_rx_t = now;
        }
        if (t->received + t->duplicates >= t->expected || now - p->last_rx_t >= QUIET_NS ||
            now - p->phase_t >= (uint64_t)(p->o.drain * 1e9))
            start_close(p, now);
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Main
 * -------------------------------------------------------------------------------------------*/

static int spawn(struct parent *p)
{
    size_t len = sizeof(struct bench_shm) + (size_t)p->o.workers * sizeof(struct worker_stats);
    p->shm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p->shm == MAP_FAILED) {
        perror("ringcast-bench: mmap");
        return -1;
    }
    p->shm_len = len;
    p->pids = calloc(p->o.workers, sizeof(pid_t));
    if (!p->pids)
        return -1;
    struct wsc_random rnd = {0};
    wsc_random_bytes(&rnd, &p->shm->ctl.seed, sizeof(p->shm->ctl.seed));
    fflush(NULL);
    for (uint32_t w = 0; w < p->o.workers; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("ringcast-bench: fork");
            return -1;
        }
        if (pid == 0)
            _exit(worker_main(&p->o, p->shm, w));
        p->pids[w] = pid;
        p->nr_alive++;
    }
    return 0;
}

static void finish_workers(struct parent *p)
{
    uint64_t deadline = bench_now() + 2000000000ull;
    while (p->nr_alive && bench_now() < deadline) {
        reap_workers(p);
        if (p->nr_alive)
            sleep_ns(20000000);
    }
    p->killing = true;
    for (uint32_t w = 0; w < p->o.workers; w++) {
        if (p->pids[w] > 0) {
            kill(p->pids[w], SIGKILL);
            p->res.killed++;
        }
    }
    while (p->nr_alive) {
        reap_workers(p);
        if (p->nr_alive)
            sleep_ns(10000000);
    }
}

static void loop(struct parent *p)
{
    uint64_t hard_end =
        p->t0 +
        (uint64_t)((p->o.duration + p->o.warmup + p->o.drain + p->o.handshake_timeout) * 1e9) +
        (p->connect_deadline - p->t0) + 30000000000ull;
    for (;;) {
        sleep_ns(TICK_NS);
        uint64_t now = bench_now();
        reap_workers(p);
        gather(p);
        sample_server(p, NULL);
        record_point(p, now);
        if (p->tty)
            report_progress(stderr, &p->res, (double)(now - p->t0) / 1e9, p->msgs_rate);
        if (interrupts && phase(p) < PH_CLOSE) {
            p->res.interrupted = true;
            start_close(p, now);
        }
        if ((p->res.error[0] || now > hard_end) && phase(p) < PH_CLOSE) {
            if (!p->res.error[0])
                snprintf(p->res.error, sizeof(p->res.error), "run time bound exceeded");
            start_close(p, now);
        }
        if (phase(p) == PH_CLOSE) {
            if (p->nr_alive == 0 || now - p->close_t > EXIT_NS || interrupts > 1)
                return;
            continue;
        }
        step(p, now);
    }
}

static uint64_t own_cpu_us(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
}

static void finish_result(struct parent *p)
{
    struct bench_result *r = &p->res;
    gather(p);
    /* Read only now: the workers have exited, so each wrote its string before. */
    for (uint32_t w = 0; w < p->o.workers && !r->tls_suite[0]; w++)
        memcpy(r->tls_suite, p->shm->w[w].tls_suite, sizeof(r->tls_suite) - 1);
    r->wall_s = (double)(bench_now() - p->t0) / 1e9;
    r->client_cpu_us = own_cpu_us(RUSAGE_SELF) + own_cpu_us(RUSAGE_CHILDREN);
    uint64_t run_ns = 0;
    const struct bench_ctl *ctl = &p->shm->ctl;
    if (ctl->t_run_start && p->close_t > ctl->t_run_start)
        run_ns = p->close_t - ctl->t_run_start;
    for (uint32_t w = 0; w < p->o.workers; w++) {
        uint64_t c = STAT_LOAD(p->shm->w[w].cpu_us_run);
        r->client_cpu_us_run += c;
        r->client_cpu_us_connect += STAT_LOAD(p->shm->w[w].cpu_us_connect);
        double share = run_ns ? (double)c * 1e3 / (double)run_ns : 0;
        if (share > r->client_busiest)
            r->client_busiest = share;
    }
    if (r->o->scenario == SC_HOLD && !r->run_s)
        r->run_s = p->o.duration;
    /* Peak rate over 1 s windows of the 100 ms series: the steady-state figure when the
     * average is diluted by ramp-up and drain. */
    for (size_t i = 0, j = 0; i < r->nr_series; i++) {
        while (j < r->nr_series && r->series[j].t - r->series[i].t < 1.0)
            j++;
        if (j == r->nr_series)
            break;
        double rate = (double)(r->series[j].received - r->series[i].received) /
                      (r->series[j].t - r->series[i].t);
        if (rate > r->peak_rate)
            r->peak_rate = rate;
    }
}

/* The soft open-file limit bounds each worker's registered file table (PLATFORM.md section
 * 2): take the hard limit, as the broker does, so fewer workers are needed. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static struct parent p;
    char err[256];
    raise_nofile();
    int r = plan_parse(&p.o, argc, argv, err, sizeof(err));
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "ringcast-bench: %s\n", err);
        return 2;
    }
    p.res.o = &p.o;
    p.res.workers = p.o.workers;
    p.res.have_server = p.o.pid != 0;
    p.tty = !p.o.quiet && isatty(STDERR_FILENO);
    if (p.o.pid && procstat_read(p.o.pid, &p.res.srv_base) < 0) {
        fprintf(stderr, "ringcast-bench: cannot read /proc/%d\n", (int)p.o.pid);
        return 2;
    }
    p.res.srv_rss_peak_kb = p.res.srv_base.rss_kb;
    if (p.o.tls) {
        /* Each worker makes its own config after fork(); one made here first turns a bad
         * --tls-verify file into a command-line error instead of a failure of every worker. */
        struct tlsc_config_opts to = {.ca_file = p.o.tls_ca[0] ? p.o.tls_ca : NULL,
                                      .sni = p.o.tls_sni};
        struct tlsc_config *cfg = tlsc_config_create(&to, err, sizeof(err));
        if (!cfg) {
            fprintf(stderr, "ringcast-bench: %s\n", err);
            return 2;
        }
        tlsc_config_destroy(cfg);
    }

    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    p.t0 = bench_now();
    /* A bound, not an estimate: full TLS handshakes cost the server milliseconds of CPU each
     * (PLATFORM.md section 3), so they get a slower floor than plain or resumed ones. */
    double floor_rate = p.o.tls && !p.o.tls_resume ? 100.0 : p.o.tls ? 500.0 : 1000.0;
    double connect_s =
        p.o.handshake_timeout + 5 +
        (double)p.o.connections / (p.o.rate > 0 && p.o.scenario <= SC_RAMP ? p.o.rate : floor_rate);
    p.connect_deadline = p.t0 + (uint64_t)(connect_s * 1e9);
    p.last_progress_t = p.t0;
    if (spawn(&p) < 0) {
        finish_workers(&p);
        return 1;
    }
    loop(&p);
    finish_workers(&p);
    if (p.tty)
        report_progress_end(stderr);
    finish_result(&p);

    FILE *human = p.o.json ? stderr : stdout;
    report_summary(human, &p.res);
    if (p.o.plot[0]) {
        int pr = report_plot(&p.res, p.o.plot);
        if (pr == -ENOENT)
            fprintf(stderr, "ringcast-bench: gnuplot not found or failed; script left in %s.gp\n",
                    p.o.plot);
        else if (pr < 0)
            fprintf(stderr, "ringcast-bench: --plot %s: %s\n", p.o.plot, strerror(-pr));
    }
    if (p.o.json)
        report_json(stdout, &p.res);
    free(p.res.series);
    free(p.pids);
    munmap(p.shm, p.shm_len);
    if (p.res.error[0])
        return 1;
    if (p.res.interrupted)
        return 130;
    return report_ok(&p.res) ? 0 : 3;
}
