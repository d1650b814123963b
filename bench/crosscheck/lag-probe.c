/* SPDX-License-Identifier: MIT */
/*
 * lag-probe: how late a sender paced the way ringcast-bench paces its publishes wakes up on
 * this machine. ringcast-bench waits for each publish's due time in
 * io_uring_submit_and_wait_timeout (spinning instead when less than 20 us remain). By default
 * (--stamp send) it stamps the actual send and reports this lag apart, as send_lag_us; with
 * --stamp schedule the lag is inside its latency figures. This program repeats only that wait,
 * on an otherwise idle ring, and prints the lag's percentiles: the floor of what
 * ringcast-bench's own pacing adds (its loop also handles receives, which can only delay it
 * more).
 *
 *   cc -O2 -o lag-probe lag-probe.c -luring
 *   taskset -c 1 ./lag-probe RATE COUNT          # prints one JSON line
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MIN_WAIT_NS 20000ull /* as ringcast-bench: shorter waits just spin */

static unsigned long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: lag-probe RATE COUNT\n");
        return 2;
    }
    double rate = atof(argv[1]);
    long n = atol(argv[2]);
    if (rate <= 0 || rate > 1e6 || n < 10 || n > 10000000) {
        fprintf(stderr, "lag-probe: RATE 0 to 1e6, COUNT 10 to 1e7\n");
        return 2;
    }
    struct io_uring ring;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(64, &ring, &p);
    if (r < 0) {
        p.flags = 0;
        r = io_uring_queue_init_params(64, &ring, &p);
    }
    if (r < 0) {
        fprintf(stderr, "lag-probe: io_uring_queue_init: %d\n", r);
        return 1;
    }
    double *lag = malloc((size_t)n * sizeof(double));
    if (!lag)
        return 1;
    unsigned long long t0 = now_ns() + 10000000ull;
    double per = 1e9 / rate;
    for (long k = 0; k < n; k++) {
        unsigned long long due = t0 + (unsigned long long)(k * per);
        for (;;) {
            unsigned long long t = now_ns();
            if (t >= due)
                break;
            unsigned long long w = due - t;
            if (w < MIN_WAIT_NS)
                continue;
            struct __kernel_timespec ts = {.tv_sec = (long long)(w / 1000000000ull),
                                           .tv_nsec = (long long)(w % 1000000000ull)};
            struct io_uring_cqe *cqe;
            io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        }
        lag[k] = (double)(now_ns() - due) / 1000.0;
    }
    qsort(lag, (size_t)n, sizeof(double), cmp);
    double sum = 0;
    for (long k = 0; k < n; k++)
        sum += lag[k];
#define Q(q) lag[(long)((q) * (double)n + 0.999999) - 1]
    printf("{\"rate\":%g,\"count\":%ld,\"lag_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
           "\"max\":%.1f,\"mean\":%.1f}}\n",
           rate, n, Q(0.5), Q(0.9), Q(0.99), lag[n - 1], sum / (double)n);
    free(lag);
    io_uring_queue_exit(&ring);
    return 0;
}
