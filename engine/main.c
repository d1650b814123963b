/* SPDX-License-Identifier: MIT */
/*
 * ringcast: the broker's entry point. Reads the configuration, starts the engine, prints the
 * listening line, and turns SIGINT/SIGTERM into a drain (ARCHITECTURE.md, "Broker command
 * line"). Signals are blocked in every thread and taken here with sigtimedwait, so no shard is
 * ever interrupted by one; between signals, once a second, this thread samples the process
 * figures that /metrics reports (metrics.h), so that no shard reads a file for them.
 */
#include "config.h"
#include "engine.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

/*
 * Options of the contract whose features this version does not serve yet. Accepting them
 * silently would let an operator believe, say, that brokers are clustered: refuse instead.
 */
static const char *unsupported_option(const struct config *c)
{
    if (c->redis_url)
        return "--redis";
    return NULL;
}

/* "ringcast: listening on ws://HOST:PORT", an IPv6 HOST in brackets (RFC 3986, 3.2.2) so that
 * the URL can be used as printed. */
static void print_listening(const char *scheme, const char *host, uint16_t port)
{
    bool v6 = strchr(host, ':') != NULL;
    printf("ringcast: listening on %s://%s%s%s:%u\n", scheme, v6 ? "[" : "", host, v6 ? "]" : "",
           (unsigned)port);
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    int r = config_load(&cfg, argc, argv, environ, err, sizeof(err));
    if (r != 0) {
        if (r < 0)
            fprintf(stderr, "%s\n", err);
        config_fini(&cfg);
        return r < 0 ? 2 : 0;
    }
    log_threshold = cfg.log_level;
    const char *unsup = unsupported_option(&cfg);
    if (unsup) {
        fprintf(stderr, "ringcast: %s: not supported by this version yet\n", unsup);
        config_fini(&cfg);
        return 2;
    }
    /*
     * Messages are small, short-lived heap objects freed on whichever shard sends last. With
     * glibc's default dynamic trim threshold the arenas shrink after each burst and regrow on
     * the next, so a steady publish load spends its time in sysmalloc and page faults; keep
     * freed memory for reuse instead.
     */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Sends use MSG_NOSIGNAL; this covers anything else that writes to a closed socket. */
    signal(SIGPIPE, SIG_IGN);

    const char *fault = fault_init();
    if (fault)
        log_warn("RINGCAST_FAULT: allocation failures armed at %s (a test build)", fault);

    metrics_sample_process();
    int status;
    struct engine *e = engine_start(&cfg, err, sizeof(err), &status);
    if (!e) {
        fprintf(stderr, "%s\n", err);
        config_fini(&cfg);
        return status;
    }
    print_listening("ws", cfg.listen_host, engine_port(e));
    if (cfg.tls_listen_host)
        print_listening("wss", cfg.tls_listen_host, engine_tls_port(e));
    fflush(stdout);

    for (;;) {
        siginfo_t si;
        const struct timespec second = {1, 0};
        int sig = sigtimedwait(&set, &si, &second);
        if (sig < 0) {
            if (errno == EAGAIN) {
                metrics_sample_process();
                metrics_sample_shards(e);
            }
            continue; /* EAGAIN: the second passed; EINTR: a signal not in <set> */
        }
        if (sig == SIGINT || sig == SIGTERM) {
            log_info("%s: draining (new upgrades get 503, connections close with 1001)",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (sig == SIGHUP) {
            if (!cfg.tls_listen_host) {
                log_info("SIGHUP: nothing to reload without a TLS listener");
            } else if (engine_reload_tls(e, err, sizeof(err)) == 0) {
                log_info("SIGHUP: reloaded %s and %s for new connections", cfg.tls_cert,
                         cfg.tls_key);
            } else {
                log_error("SIGHUP: %s", err);
            }
        }
    }
    engine_drain(e);
    engine_join_destroy(e);
    log_info("drained, exiting");
    config_fini(&cfg);
    return 0;
}
