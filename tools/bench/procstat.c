/* SPDX-License-Identifier: MIT */
/*
 * procstat: /proc sampling. See procstat.h for the contract.
 */
#include "procstat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

int procstat_read(pid_t pid, struct procstat *s)
{
    char path[64], buf[4096];
    memset(s, 0, sizeof(*s));

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int r = read_file(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    /* proc(5): the command name may hold spaces and parentheses, so count fields from the
     * last ')'. utime and stime are fields 14 and 15, num_threads 20. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    unsigned long long ut = 0, st = 0;
    long nth = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %ld",
               &ut, &st, &nth) != 3)
        return -EINVAL;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    s->cpu_us = (uint64_t)(ut + st) * 1000000ull / (uint64_t)hz;
    s->threads = nth > 0 ? (uint64_t)nth : 0;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    r = read_file(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    p = strstr(buf, "\nVmRSS:");
    if (p)
        s->rss_kb = strtoull(p + 7, NULL, 10);
    return 0;
}
