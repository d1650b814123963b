/* SPDX-License-Identifier: MIT */
/*
 * engine: sizing, listeners, shard threads, drain.
 *
 * Sizing. One io_uring's table of direct descriptors is limited by RLIMIT_NOFILE (PLATFORM.md
 * section 2), but direct descriptors do not occupy the process's fd table: N rings hold N
 * times the limit. So when --max-conns needs more slots than --shards rings can hold, the
 * engine starts more shards (threads share the CPUs round-robin) and says so.
 */
#include "engine.h"

#include "api.h"
#include "iptable.h"
#include "listener.h"
#include "log.h"
#include "proto_conn.h"
#include "shard.h"
#include "tls.h"
#include "xshard.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

/* Slots kept free in each table beyond its share, for imbalance between shards and for
 * answering 503 when full. */
#define TABLE_HEADROOM_DIV 8
#define TABLE_HEADROOM_MIN 64
/* Envelopes per (from, to) ring: N^2 rings, so fewer slots each as shards multiply. */
#define XSHARD_RING_BUDGET 32768
#define XSHARD_RING_MIN    256
#define XSHARD_RING_MAX    4096
#define LISTEN_BACKLOG     4096

struct engine_priv {
    struct engine e;
    /*
     * Startup handshake between engine_start and the shard threads, under <lock>: each thread
     * counts itself in <nr_ready> after its setup and waits for <go> (1: run, -1: give up).
     * Not a barrier: a barrier's count is fixed before the threads exist, and when one of them
     * cannot be created those already started would wait on it forever.
     */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned nr_ready;
    int go;
    bool sync_ok, stop_ok;
    pthread_barrier_t stop;
    atomic_int setup_err;
    uint16_t port, tls_port;
    int wake_ring_ok;
    struct io_uring wake_ring;
};

/* ---- per-address counts --------------------------------------------------------------- */

/* iptable.h: a table that forgets an address at its last close, behind one mutex (off the hot
 * path: once per upgrade and once per close of a counted connection). */
bool ip_acquire(struct engine *e, uint32_t ip)
{
    /* -ENOMEM too: refuse rather than admit a connection that is not counted. */
    return iptable_acquire(e->ips, ip, e->cfg->max_conns_per_ip) == 0;
}

void ip_release(struct engine *e, uint32_t ip)
{
    iptable_release(e->ips, ip);
}

/* ---- threads -------------------------------------------------------------------------- */

static void *shard_thread(void *arg)
{
    struct shard *s = arg;
    struct engine_priv *p = (struct engine_priv *)s->eng;
    if (s->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(s->cpu, &set);
        int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (err)
            log_warn("shard %u: cannot pin to CPU %d: %s", s->id, s->cpu, strerror(err));
    }
    int ret = shard_setup(s);
    if (ret < 0) {
        int zero = 0;
        atomic_compare_exchange_strong(&p->setup_err, &zero, ret);
    } else {
        s->eng->ring_fds[s->id] = s->ring.ring_fd;
    }
    pthread_mutex_lock(&p->lock);
    p->nr_ready++;
    pthread_cond_broadcast(&p->cond);
    while (p->go == 0)
        pthread_cond_wait(&p->cond, &p->lock);
    bool run = p->go > 0;
    pthread_mutex_unlock(&p->lock);
    if (run) {
        shard_run(s);
        /* No ring may close while another shard could still ring its doorbell. Only when
         * every shard was started (go == 1) is there a doorbell to fear, and a full count. */
        pthread_barrier_wait(&p->stop);
    }
    shard_teardown(s);
    return NULL;
}

static unsigned online_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* The CPUs this process may run on, in order, for pinning shard i to cpus[i % n]. */
static unsigned allowed_cpus(int *cpus, unsigned cap)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 0;
    for (int i = 0; i < CPU_SETSIZE && n < cap; i++)
        if (CPU_ISSET(i, &set))
            cpus[n++] = i;
    return n;
}

static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    uint64_t kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* Decides shards, slots per shard and max_conns. */
static int size_engine(struct engine *e, uint32_t *slots, char *err, size_t cap)
{
    struct config *cfg = e->cfg;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, cap, "ringcast: cannot read the open-file limit: %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        /* Direct descriptors count against the soft limit: take all the hard limit allows. */
        rlim_t soft = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("cannot raise the open-file limit from %lu to %lu: %s", (unsigned long)soft,
                     (unsigned long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = soft;
        }
    }
    uint64_t per_ring = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : rl.rlim_cur;
    if (per_ring > (1u << 24))
        per_ring = 1u << 24; /* the slot index has 24 bits in a msg's origin */
    uint64_t usable = per_ring - per_ring / TABLE_HEADROOM_DIV - TABLE_HEADROOM_MIN;
    if (per_ring < 4 * TABLE_HEADROOM_MIN) {
        snprintf(err, cap, "ringcast: open-file limit %lu is too low", (unsigned long)per_ring);
        return -1;
    }
    /* config_load refuses --shards above SHARDS_MAX; only the CPU count can be larger. */
    unsigned shards = cfg->shards ? cfg->shards : online_cpus();
    if (shards > SHARDS_MAX) {
        log_info("%u CPUs: starting %d shards, the most there can be", shards, SHARDS_MAX);
        shards = SHARDS_MAX;
    }
    uint64_t max = cfg->max_conns;
    if (max == 0) {
        /* What the limits allow: the descriptor tables, and memory at ~10 KiB a connection
         * (kernel socket included). */
        max = usable * shards;
        uint64_t mem = mem_available() / 10240;
        if (mem && mem < max)
            max = mem;
    }
    /* Rounded up without max + usable - 1, which wraps for a --max-conns near 2^64. */
    uint64_t need = max / usable + (max % usable != 0);
    if (need > shards) {
        if (need > SHARDS_MAX) {
            snprintf(err, cap,
                     "ringcast: --max-conns %lu needs %lu shards at %lu slots each; at most %d",
                     (unsigned long)max, (unsigned long)need, (unsigned long)usable, SHARDS_MAX);
            return -1;
        }
        log_info("--max-conns %lu needs more descriptor slots than %u shards hold "
                 "(open-file limit %lu per ring): starting %lu shards",
                 (unsigned long)max, shards, (unsigned long)per_ring, (unsigned long)need);
        shards = (unsigned)need;
    }
    uint64_t share = max / shards + (max % shards != 0);
    uint64_t table = share + share / TABLE_HEADROOM_DIV + TABLE_HEADROOM_MIN;
    if (table > per_ring)
        table = per_ring;
    e->nr_shards = shards;
    e->max_conns = max;
    *slots = (uint32_t)table;
    return 0;
}

/* One SO_REUSEPORT listener per shard on <host>:<port> for listener <l> (0 plain, 1 TLS). Port 0
 * binds the first to a free port and the others to the same one. */
static int open_listeners(struct engine *e, unsigned l, const char *host, uint16_t port,
                          uint16_t *bound, char *err, size_t err_cap)
{
    for (unsigned i = 0; i < e->nr_shards; i++) {
        struct shard *s = &e->shards[i];
        const char *what = "";
        /* TCP_DEFER_ACCEPT of 1 s: the accept completes with the first bytes queued; a client
         * that stays silent is accepted after about a second and meets the handshake timeout. */
        s->listen_fd[l] = listener_open(host, port, LISTEN_BACKLOG, 1, &what);
        if (s->listen_fd[l] < 0) {
            snprintf(err, err_cap, "ringcast: --%s %s:%u: %s: %s", l ? "tls-listen" : "listen",
                     host, (unsigned)port, what, strerror(-s->listen_fd[l]));
            s->listen_fd[l] = -1;
            return -1;
        }
        if (port == 0) {
            /* The other shards bind to the port this one got: it must be the real one. */
            int bound_port = listener_port(s->listen_fd[l]);
            if (bound_port <= 0) {
                snprintf(err, err_cap, "ringcast: --%s %s:0: cannot read the bound port: %s",
                         l ? "tls-listen" : "listen", host,
                         strerror(bound_port < 0 ? -bound_port : EADDRNOTAVAIL));
                return -1;
            }
            port = (uint16_t)bound_port;
        }
    }
    *bound = port;
    return 0;
}

static void close_listeners(struct engine *e)
{
    for (unsigned i = 0; i < e->nr_shards; i++)
        for (unsigned l = 0; l < 2; l++)
            if (e->shards[i].listen_fd[l] >= 0) {
                close(e->shards[i].listen_fd[l]);
                e->shards[i].listen_fd[l] = -1;
            }
}

/*
 * Starts one thread per shard and waits until each has set up its ring. Returns 0 with every
 * shard running, or -1 with one line in <err> after stopping and joining the threads it had
 * started, and dropping the TLS references of the shards that never ran.
 */
static int start_threads(struct engine_priv *p, char *err, size_t err_cap)
{
    struct engine *e = &p->e;
    int ret = pthread_mutex_init(&p->lock, NULL);
    if (ret == 0) {
        ret = pthread_cond_init(&p->cond, NULL);
        if (ret)
            pthread_mutex_destroy(&p->lock);
    }
    if (ret) {
        snprintf(err, err_cap, "ringcast: cannot start the shard threads: %s", strerror(ret));
        return -1;
    }
    p->sync_ok = true;
    ret = pthread_barrier_init(&p->stop, NULL, e->nr_shards);
    if (ret) {
        snprintf(err, err_cap, "ringcast: cannot start the shard threads: %s", strerror(ret));
        return -1;
    }
    p->stop_ok = true;
    unsigned started = 0;
    for (; started < e->nr_shards; started++) {
        ret = pthread_create(&e->shards[started].thread, NULL, shard_thread, &e->shards[started]);
        if (ret) {
            snprintf(err, err_cap, "ringcast: cannot start shard thread %u of %u: %s", started + 1,
                     e->nr_shards, strerror(ret));
            break;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (p->nr_ready < started)
        pthread_cond_wait(&p->cond, &p->lock);
    int serr = atomic_load(&p->setup_err);
    if (!ret && serr)
        snprintf(err, err_cap, "ringcast: cannot set up the io_uring shards: %s%s", strerror(-serr),
                 serr == -ENOMEM ? " (io_uring memory is locked memory: see ulimit -l)" : "");
    p->go = ret || serr ? -1 : 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->go > 0)
        return 0;
    for (unsigned i = 0; i < started; i++)
        pthread_join(e->shards[i].thread, NULL);
    for (unsigned i = started; i < e->nr_shards; i++) {
        if (e->shards[i].tls_cfg) {
            tls_config_unref(e->shards[i].tls_cfg);
            e->shards[i].tls_cfg = NULL;
        }
    }
    return -1;
}

/* The node's uid for the server API's `info`: a random UUID, as Centrifugo's nodes have. Without
 * randomness (never on Linux >= 3.17) the clock stands in: it only has to differ between runs. */
static void node_uid(char out[PROTO_CLIENT_ID_LEN + 1])
{
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = mono_ns();
        memcpy(rnd, &t, 8);
        memcpy(rnd + 8, &t, 8);
    }
    proto_client_id(out, rnd);
}

struct engine *engine_start(struct config *cfg, char *err, size_t err_cap, int *status)
{
    *status = 1;
    struct engine_priv *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, err_cap, "ringcast: out of memory");
        return NULL;
    }
    struct engine *e = &p->e;
    e->cfg = cfg;
    uint32_t slots;
    if (size_engine(e, &slots, err, err_cap) < 0)
        goto fail;
    if (getrandom(&e->room_seed, sizeof(e->room_seed), 0) != sizeof(e->room_seed))
        e->room_seed = (uint64_t)mono_ns() * 0x9e3779b97f4a7c15ull;
    e->started_ns = mono_ns();
    node_uid(e->node_uid);
    e->ips = iptable_create();
    e->shards = aligned_alloc(64, sizeof(struct shard) * e->nr_shards);
    if (e->shards) {
        memset(e->shards, 0, sizeof(struct shard) * e->nr_shards);
        for (unsigned i = 0; i < e->nr_shards; i++)
            e->shards[i].listen_fd[0] = e->shards[i].listen_fd[1] = -1;
    }
    unsigned ring_cap = XSHARD_RING_BUDGET / e->nr_shards;
    ring_cap = ring_cap < XSHARD_RING_MIN   ? XSHARD_RING_MIN
               : ring_cap > XSHARD_RING_MAX ? XSHARD_RING_MAX
                                            : ring_cap;
    e->xs = xshard_create(e->nr_shards, ring_cap);
    if (!e->ips || !e->shards || !e->xs) {
        snprintf(err, err_cap, "ringcast: out of memory");
        goto fail;
    }
    int cpus[CPU_SETSIZE];
    unsigned nr_cpus = allowed_cpus(cpus, CPU_SETSIZE);
    for (unsigned i = 0; i < e->nr_shards; i++) {
        struct shard *s = &e->shards[i];
        s->id = i;
        s->eng = e;
        s->cpu = nr_cpus ? cpus[i % nr_cpus] : -1;
        s->nr_slots = slots;
    }
    if (cfg->tls_listen_host) {
        struct tls_config_opts o = {
            .cert_file = cfg->tls_cert, .key_file = cfg->tls_key, .no_offload = !cfg->tls_offload};
        char why[256];
        e->tls = tls_config_create(&o, why, sizeof(why));
        if (!e->tls) {
            /* An unreadable or unusable file is a bad option (contract: exit status 2). */
            *status = 2;
            snprintf(err, err_cap, "ringcast: --tls-cert/--tls-key: %s", why);
            goto fail;
        }
    }
    if (open_listeners(e, 0, cfg->listen_host, cfg->listen_port, &p->port, err, err_cap) < 0)
        goto fail;
    if (e->tls && open_listeners(e, 1, cfg->tls_listen_host, cfg->tls_listen_port, &p->tls_port,
                                 err, err_cap) < 0)
        goto fail;
    for (unsigned i = 0; i < e->nr_shards && e->tls; i++) {
        tls_config_ref(e->tls);
        e->shards[i].tls_cfg = e->tls;
    }
    if (start_threads(p, err, err_cap) < 0)
        goto fail;
    /* One doorbell per shard in one batch: the CQ (twice the SQ) holds all their completions. */
    p->wake_ring_ok = io_uring_queue_init(e->nr_shards, &p->wake_ring, 0) == 0;
    if (!p->wake_ring_ok)
        log_warn("no doorbell ring: a drain or reload reaches idle shards within a second");
    log_info("%u shards, up to %lu connections (%u descriptor slots per shard)", e->nr_shards,
             (unsigned long)e->max_conns, slots);
    return e;
fail:
    if (p->stop_ok)
        pthread_barrier_destroy(&p->stop);
    if (p->sync_ok) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
    }
    if (e->shards)
        close_listeners(e);
    if (e->tls)
        tls_config_unref(e->tls);
    if (e->xs)
        xshard_destroy(e->xs);
    free(e->shards);
    iptable_destroy(e->ips);
    free(p);
    return NULL;
}

uint16_t engine_port(const struct engine *e)
{
    return ((const struct engine_priv *)e)->port;
}

static void wake_shards(struct engine *e);

uint16_t engine_tls_port(const struct engine *e)
{
    return e->tls ? ((const struct engine_priv *)e)->tls_port : 0;
}

int engine_reload_tls(struct engine *e, char *err, size_t err_cap)
{
    if (!e->tls) {
        snprintf(err, err_cap, "no TLS listener");
        return -1;
    }
    char why[256];
    struct tls_config *next =
        tls_config_reload(e->tls, e->cfg->tls_cert, e->cfg->tls_key, why, sizeof(why));
    if (!next) {
        snprintf(err, err_cap, "%s (keeping the current certificate)", why);
        return -1;
    }
    for (unsigned i = 0; i < e->nr_shards; i++) {
        tls_config_ref(next);
        /* release; pairs with the acquire exchange in take_tls_reload. */
        struct tls_config *old =
            atomic_exchange_explicit(&e->shards[i].tls_next, next, memory_order_release);
        if (old)
            tls_config_unref(old); /* an earlier reload the shard had not taken yet */
    }
    tls_config_unref(e->tls);
    e->tls = next;
    wake_shards(e);
    return 0;
}

/* Rings every shard's doorbell from the main thread's own ring, so that a shard asleep in its
 * wait looks at what the main thread just changed (drain flag, TLS config). */
static void wake_shards(struct engine *e)
{
    struct engine_priv *p = (struct engine_priv *)e;
    if (!p->wake_ring_ok)
        return; /* Shards notice within a second anyway: their wait is bounded. */
    int n = ring_msg_all(&p->wake_ring, e->ring_fds, e->nr_shards, ring_ud(OP_WAKE, 0, 0), 1000);
    if (n != (int)e->nr_shards)
        log_warn("woke %d of %u shards (%s); the others notice within a second", n < 0 ? 0 : n,
                 e->nr_shards, n < 0 ? strerror(-n) : "timed out or refused");
}

void engine_drain(struct engine *e)
{
    /* release; pairs with the acquire in shard_run. */
    atomic_store_explicit(&e->draining, true, memory_order_release);
    wake_shards(e);
}

/* After every shard stopped: free what is still in flight between them. */
static void drop_leftovers(struct engine *e)
{
    for (unsigned from = 0; from < e->nr_shards; from++) {
        bool pending = true;
        for (int tries = 0; pending && tries < 1000; tries++) {
            xshard_flush(e->xs, from, &pending);
            for (unsigned to = 0; to < e->nr_shards; to++) {
                struct xshard_env env[64];
                size_t n;
                while ((n = xshard_pop(e->xs, to, env, 64)) > 0)
                    for (size_t i = 0; i < n; i++) {
                        if (env[i].kind >= XS_API_FIRST)
                            api_envelope_drop(&env[i]);
                        else
                            room_envelope_drop(&env[i]);
                    }
            }
        }
    }
}

void engine_join_destroy(struct engine *e)
{
    struct engine_priv *p = (struct engine_priv *)e;
    for (unsigned i = 0; i < e->nr_shards; i++)
        pthread_join(e->shards[i].thread, NULL);
    drop_leftovers(e);
    close_listeners(e);
    if (e->tls)
        tls_config_unref(e->tls);
    if (p->wake_ring_ok)
        io_uring_queue_exit(&p->wake_ring);
    pthread_barrier_destroy(&p->stop);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    xshard_destroy(e->xs);
    free(e->shards);
    iptable_destroy(e->ips);
    free(p);
}
