/* SPDX-License-Identifier: MIT */
/*
 * ringcast: the broker's entry point. Reads the configuration, starts the engine, prints the
 * listening line, and turns SIGINT/SIGTERM into a drain (ARCHITECTURE.md, "Broker command
 * line"). Signals are blocked in every thread and taken here with sigwaitinfo, so no shard is
 * ever interrupted by one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "engine.h"
#include "log.h"

extern char **environ;

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

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Sends use MSG_NOSIGNAL; this covers anything else that writes to a closed socket. */
    signal(SIGPIPE, SIG_IGN);

    struct engine *e = engine_start(&cfg, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "%s\n", err);
        config_fini(&cfg);
        return 1;
    }
    printf("ringcast: listening on ws://%s:%u\n", cfg.listen_host, (unsigned)engine_port(e));
    fflush(stdout);

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig == SIGINT || sig == SIGTERM) {
            log_info("%s: draining (new upgrades get 503, connections close with 1001)",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (sig == SIGHUP)
            log_info("SIGHUP: nothing to reload without a TLS listener");
    }
    engine_drain(e);
    engine_join_destroy(e);
    log_info("drained, exiting");
    config_fini(&cfg);
    return 0;
}
