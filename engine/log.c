/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

enum log_level log_threshold = LOG_INFO;

void log_line(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_threshold)
        return;
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "ringcast: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    buf[len++] = '\n';
    /* A lost log line is not worth failing for. */
    if (write(STDERR_FILENO, buf, len) < 0)
        return;
}
