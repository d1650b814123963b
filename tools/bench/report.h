/* SPDX-License-Identifier: MIT */
/*
 * report: what ringcast-bench says about a run: the live progress line (on a terminal only),
 * the human summary, the one-line JSON record (schema in tools/bench/README.md) and the
 * gnuplot chart of --plot.
 *
 * Owns nothing: it reads a struct bench_result that main.c filled in. Parent process only.
 */
#ifndef RINGCAST_BENCH_REPORT_H
#define RINGCAST_BENCH_REPORT_H

#include "bench.h"
#include "procstat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One sample of the run, taken every 100 ms by the parent. */
struct series_point {
    double t; /* seconds since the start */
    uint64_t open;
    uint64_t established;
    uint64_t published;
    uint64_t received;
};

struct bench_result {
    const struct bench_opts *o;
    struct worker_stats tot; /* counters summed over workers (histograms left empty) */
    struct hist lat;
    struct hist lag; /* how late publishes went out against their schedule */
    struct hist hs;
    struct hist hs_full;    /* wss: full TLS handshakes */
    struct hist hs_resumed; /* wss: abbreviated TLS handshakes */
    char tls_suite[64];     /* wss: the suite the first handshake agreed on */
    double wall_s;
    double connect_s; /* first connect to last established */
    double run_s;     /* publishing (or holding) time */
    double peak_rate; /* most deliveries received in any 1 s window, per second */
    uint64_t held;    /* open at the end of the hold or the drain */
    /* ramp */
    uint64_t limit;
    char limit_reason[200];
    /* server (--pid) */
    bool have_server;
    struct procstat srv_base, srv_connected, srv_run_start, srv_run_end;
    uint64_t srv_rss_peak_kb;
    /* the tool itself */
    uint64_t client_cpu_us;         /* all workers and the parent, whole run */
    uint64_t client_cpu_us_connect; /* workers, until each had finished connecting */
    uint64_t client_cpu_us_run;     /* workers, publishing (or holding) and draining */
    double client_busiest;          /* highest share of one core a worker used while running */
    uint32_t workers;
    uint32_t killed; /* workers still running after the closing handshake, killed */
    struct series_point *series;
    size_t nr_series;
    bool interrupted;
    char error[200];
};

/* Rewrites the progress line on <tty> (a terminal). Cannot fail. */
void report_progress(FILE *tty, const struct bench_result *r, double t, double msgs_per_s);

/* Ends the progress line so that what follows starts on a fresh line. Cannot fail. */
void report_progress_end(FILE *tty);

/* Writes the human summary. Cannot fail. */
void report_summary(FILE *f, const struct bench_result *r);

/*
 * Whether the run did what was asked: no error or interrupt, every connection held to the end
 * (but ramp, which looks for the point where that stops), no delivery lost. Cannot fail.
 */
bool report_ok(const struct bench_result *r);

/* Writes the JSON record as one line. Cannot fail. */
void report_json(FILE *f, const struct bench_result *r);

/*
 * Draws the latency distribution and the connection ramp into <png> with gnuplot.
 * Returns 0, or -ENOENT when gnuplot could not be run (the script is then left in
 * <png>.gp so it can be run by hand), or another negative errno.
 */
int report_plot(const struct bench_result *r, const char *png);

#endif
