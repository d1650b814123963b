/* SPDX-License-Identifier: MIT */
/*
 * procstat: a process's resident memory and CPU time from /proc, for ringcast-bench's --pid
 * (the server's cost per connection and per delivered message) and for the tool's own figures.
 *
 * Owns nothing; reads two small files per call. Any thread.
 */
#ifndef RINGCAST_BENCH_PROCSTAT_H
#define RINGCAST_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct procstat {
    uint64_t rss_kb; /* VmRSS */
    uint64_t cpu_us; /* utime + stime, all threads */
    uint64_t threads;
};

/* Reads <pid>'s figures into <s>. Returns 0, or a negative errno (e.g. -ENOENT: it is gone). */
int procstat_read(pid_t pid, struct procstat *s);

#endif
