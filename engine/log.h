/* SPDX-License-Identifier: MIT */
/*
 * log: one line per event on stderr, "ringcast: LEVEL: text", filtered by --log-level.
 * Any thread; each line is written with a single write(2), so lines from shards never mix.
 * Never blocks: a line that stderr cannot take at once (a pipe nobody drains) is dropped, and
 * the next line written is preceded by "ringcast: warn: N log lines dropped: stderr was full".
 * Lines longer than about 1 KiB are cut.
 */
#ifndef RINGCAST_LOG_H
#define RINGCAST_LOG_H

#include "config.h"

extern enum log_level log_threshold;

void log_line(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_line(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_line(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_line(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_threshold >= LOG_DEBUG)                                                            \
            log_line(LOG_DEBUG, __VA_ARGS__);                                                      \
    } while (0)

#endif
