/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/log.c through log.h: the line format, the level filter, and that a
 * line never blocks its thread when stderr is a pipe nobody drains (a shard logging there would
 * stop with every connection on it): the line is dropped and counted, and the next line that
 * goes out says how many were lost. stderr is a pipe of the test's own for each test, restored
 * after; a watchdog alarm ends a test that blocks.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct captured {
    int saved_stderr;
    int rd, wr;
};

/* Points fd 2 at a fresh pipe; the read end is non-blocking. */
static int capture(void **state)
{
    static struct captured cap;
    int p[2];
    assert_int_equal(pipe(p), 0);
    cap.saved_stderr = dup(STDERR_FILENO);
    assert_true(cap.saved_stderr >= 0);
    assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    cap.rd = p[0];
    cap.wr = p[1];
    assert_int_equal(fcntl(cap.rd, F_SETFL, O_NONBLOCK), 0);
    log_threshold = LOG_INFO;
    *state = &cap;
    alarm(10);
    return 0;
}

static int restore(void **state)
{
    struct captured *cap = *state;
    alarm(0);
    dup2(cap->saved_stderr, STDERR_FILENO);
    close(cap->saved_stderr);
    close(cap->rd);
    close(cap->wr);
    return 0;
}

/* Everything in the pipe now, as a string (at most <cap> - 1 bytes kept). */
static size_t drain(struct captured *c, char *out, size_t cap)
{
    size_t len = 0;
    for (;;) {
        char tmp[4096];
        ssize_t n = read(c->rd, tmp, sizeof(tmp));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && len + 1 < cap; i++)
            out[len++] = tmp[i];
    }
    out[len] = '\0';
    return len;
}

static void format_and_levels(void **state)
{
    struct captured *c = *state;
    char out[8192];
    log_threshold = LOG_WARN;
    log_error("disk %s", "full");
    log_warn("w %d", 7);
    log_info("not shown");
    log_debug("not shown either");
    drain(c, out, sizeof(out));
    assert_string_equal(out, "ringcast: error: disk full\nringcast: warn: w 7\n");
    /* A long line is cut, still one line. */
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_error("%s", big);
    size_t n = drain(c, out, sizeof(out));
    assert_true(n <= 1024);
    assert_int_equal(out[n - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1);
}

/* stderr full: the line is dropped at once, not written when the pipe has room. */
static void full_pipe_does_not_block(void **state)
{
    struct captured *c = *state;
    char path[64], out[8192];
    /* A second open of the pipe, non-blocking, to fill it: O_NONBLOCK on a dup of fd 2 would
     * also make fd 2 non-blocking and prove nothing. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", c->wr);
    int filler = open(path, O_WRONLY | O_NONBLOCK);
    assert_true(filler >= 0);
    char chunk[4096];
    memset(chunk, 'f', sizeof(chunk));
    size_t filled = 0;
    for (;;) {
        ssize_t n = write(filler, chunk, sizeof(chunk));
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        filled += (size_t)n;
    }
    close(filler);
    assert_true(filled > 0);

    log_error("lost %d", 1); /* blocked here forever before: the alarm ended the test */
    log_info("lost %d", 2);
    /* A reader comes back. */
    size_t got = 0;
    for (;;) {
        char tmp[4096];
        ssize_t n = read(c->rd, tmp, sizeof(tmp));
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    assert_int_equal(got, filled);
    log_warn("back");
    drain(c, out, sizeof(out));
    assert_string_equal(out, "ringcast: warn: 2 log lines dropped: stderr was full\n"
                             "ringcast: warn: back\n");
    log_info("again");
    drain(c, out, sizeof(out));
    assert_string_equal(out, "ringcast: info: again\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(format_and_levels, capture, restore),
        cmocka_unit_test_setup_teardown(full_pipe_does_not_block, capture, restore),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
