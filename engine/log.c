/* SPDX-License-Identifier: MIT */
/*
 * log: one line per event on stderr (contract in log.h).
 *
 * Shards log too, so a line must never block: stderr may be a pipe that nobody is draining (a
 * paused pager, a stuck log collector), and one blocked write would stop a shard and every
 * connection on it. A line is at most LOG_LINE_MAX bytes, under PIPE_BUF, so a pipe that polls
 * writable takes it whole without blocking; poll and write happen under one lock, so that two
 * threads cannot both see the same last free pipe buffer. A line that cannot go now is dropped
 * and counted, and the next line that goes out first says how many were lost.
 */
#include "log.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

_Static_assert(2 * LOG_LINE_MAX <= PIPE_BUF, "a line and the notice must fit one atomic write");

enum log_level log_threshold = LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t nr_dropped; /* under log_lock */

/* Formats "ringcast: LEVEL: text\n" into <buf> (LOG_LINE_MAX bytes). Returns its length. */
static size_t format(char *buf, enum log_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    int n = snprintf(buf, LOG_LINE_MAX, "ringcast: %s: ", names[level]);
    if (n < 0)
        n = 0;
    int m = vsnprintf(buf + n, LOG_LINE_MAX - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > LOG_LINE_MAX - 2)
        len = LOG_LINE_MAX - 2;
    buf[len++] = '\n';
    return len;
}

void log_line(enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold)
        return;
    char buf[2 * LOG_LINE_MAX];
    size_t len = 0;
    va_list ap;
    va_start(ap, fmt);
    char line[LOG_LINE_MAX];
    size_t line_len = format(line, level, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&log_lock);
    struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};
    if (poll(&pfd, 1, 0) != 1 || (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) != POLLOUT) {
        nr_dropped++;
        pthread_mutex_unlock(&log_lock);
        return;
    }
    if (nr_dropped) {
        int n =
            snprintf(buf, LOG_LINE_MAX, "ringcast: warn: %llu log lines dropped: stderr was full\n",
                     (unsigned long long)nr_dropped);
        len = n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < line_len; i++)
        buf[len + i] = line[i];
    len += line_len;
    /* A lost log line is not worth failing for. */
    if (write(STDERR_FILENO, buf, len) == (ssize_t)len)
        nr_dropped = 0;
    else
        nr_dropped++;
    pthread_mutex_unlock(&log_lock);
}
