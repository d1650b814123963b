/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/engine.c through engine.h and the engine part of shard.h: a real engine
 * on 127.0.0.1, port 0, started, asked things, drained and destroyed within each test.
 *
 *   - per-address counting (ip_acquire/ip_release) keeps working after far more distinct
 *     addresses than any fixed table holds;
 *   - startup fails cleanly when a shard thread cannot be created: pthread_create is wrapped
 *     (-Wl,--wrap=pthread_create, set for this executable only in tests/unit/CMakeLists.txt)
 *     and made to fail at a chosen call; the threads already started are stopped and joined;
 *   - startup fails with one line when the bound port or the open-file limit cannot be read
 *     (getsockname and getrlimit wrapped the same way).
 *
 * Where io_uring is refused (sandbox, seccomp, old kernel) a test skips. A watchdog alarm ends a
 * test that hangs, so a startup that waits forever fails in seconds, not at the ctest timeout.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "config.h"
#include "engine.h"
#include "log.h"
#include "shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define WATCHDOG_S 20

/* ---------------------------------------------------------------------------------------------
 * pthread_create fault injection
 * -------------------------------------------------------------------------------------------*/

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

/* The call (1-based) that fails with EAGAIN; 0: none. */
static atomic_int fail_create_at;
static atomic_int nr_create_calls;

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    int n = atomic_fetch_add(&nr_create_calls, 1) + 1;
    if (n == atomic_load(&fail_create_at))
        return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

int __real_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int __wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int __real_getrlimit(int resource, struct rlimit *rl);
int __wrap_getrlimit(int resource, struct rlimit *rl);

static atomic_bool fail_getsockname, fail_getrlimit;

int __wrap_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (atomic_load(&fail_getsockname)) {
        errno = ENOBUFS;
        return -1;
    }
    return __real_getsockname(fd, addr, len);
}

int __wrap_getrlimit(int resource, struct rlimit *rl)
{
    if (atomic_load(&fail_getrlimit) && resource == RLIMIT_NOFILE) {
        errno = EINVAL;
        return -1;
    }
    return __real_getrlimit(resource, rl);
}

/* Threads of this process, from /proc/self/status. */
static int nr_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * -------------------------------------------------------------------------------------------*/

static char host[] = "127.0.0.1";

static void small_config(struct config *cfg, unsigned shards)
{
    config_defaults(cfg);
    cfg->listen_host = host; /* static: never freed, no config_fini needed */
    cfg->listen_port = 0;
    cfg->shards = shards;
    cfg->max_conns = 64;
    cfg->log_level = LOG_ERROR;
}

/* Starts an engine, or skips when io_uring is not available here. */
static struct engine *start_or_skip(struct config *cfg)
{
    char err[512];
    int status = 0;
    struct engine *e = engine_start(cfg, err, sizeof(err), &status);
    if (!e && strstr(err, "cannot set up the io_uring shards") &&
        (strstr(err, "not implemented") || strstr(err, "not permitted") ||
         strstr(err, "Invalid argument")))
        skip();
    if (!e)
        fail_msg("engine_start: %s", err);
    return e;
}

static void stop(struct engine *e)
{
    engine_drain(e);
    engine_join_destroy(e);
}

static int setup_watchdog(void **state)
{
    (void)state;
    alarm(WATCHDOG_S); /* default action: the process dies, the test fails */
    log_threshold = LOG_ERROR;
    atomic_store(&fail_create_at, 0);
    atomic_store(&nr_create_calls, 0);
    atomic_store(&fail_getsockname, false);
    atomic_store(&fail_getrlimit, false);
    return 0;
}

static int teardown_watchdog(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Per-address counts
 * -------------------------------------------------------------------------------------------*/

/* An address that comes and goes leaves nothing behind: 200,000 of them, one after the other,
 * are all admitted (a table that never forgets refused every one after the 65,536th). */
static void test_ip_many_distinct_addresses(void **state)
{
    struct config cfg;
    (void)state;
    small_config(&cfg, 1);
    cfg.max_conns_per_ip = 2;
    struct engine *e = start_or_skip(&cfg);
    for (uint32_t i = 1; i <= 200000; i++) {
        uint32_t ip = 0x0a000000u + i; /* 10.0.0.0/8 */
        if (!ip_acquire(e, ip))
            fail_msg("address %u of 200000 refused", i);
        ip_release(e, ip);
    }
    stop(e);
}

/* The limit holds per address, and a release makes room for exactly one more. */
static void test_ip_limit_per_address(void **state)
{
    struct config cfg;
    (void)state;
    small_config(&cfg, 1);
    cfg.max_conns_per_ip = 3;
    struct engine *e = start_or_skip(&cfg);
    uint32_t a = 0x7f000002u, b = 0x7f000003u;
    for (int i = 0; i < 3; i++)
        assert_true(ip_acquire(e, a));
    assert_false(ip_acquire(e, a));
    assert_true(ip_acquire(e, b));
    ip_release(e, a);
    assert_true(ip_acquire(e, a));
    assert_false(ip_acquire(e, a));
    for (int i = 0; i < 3; i++)
        ip_release(e, a);
    ip_release(e, b);
    /* Gone after its last release: a release too many changes nothing. */
    ip_release(e, a);
    for (int i = 0; i < 3; i++)
        assert_true(ip_acquire(e, a));
    assert_false(ip_acquire(e, a));
    for (int i = 0; i < 3; i++)
        ip_release(e, a);
    stop(e);
}

/* ---------------------------------------------------------------------------------------------
 * Startup failures
 * -------------------------------------------------------------------------------------------*/

/* Shard thread <fail_at> of 4 cannot be created: engine_start returns NULL with one line, the
 * threads it had started are gone, and nothing leaks (ASan's leak check). */
static void check_create_failure(int fail_at)
{
    struct config cfg;
    char err[512] = "";
    int status = 0;
    small_config(&cfg, 4);
    int before = nr_threads();
    atomic_store(&nr_create_calls, 0);
    atomic_store(&fail_create_at, fail_at);
    struct engine *e = engine_start(&cfg, err, sizeof(err), &status);
    atomic_store(&fail_create_at, 0);
    if (e) {
        stop(e);
        fail_msg("engine_start succeeded though thread %d could not be created", fail_at);
    }
    if (strstr(err, "cannot set up the io_uring shards"))
        skip();
    assert_non_null(strstr(err, "thread"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(status, 1);
    assert_int_equal(nr_threads(), before);
    /* And the next start works. */
    struct engine *ok = start_or_skip(&cfg);
    stop(ok);
}

static void test_start_first_thread_fails(void **state)
{
    (void)state;
    check_create_failure(1);
}

static void test_start_middle_thread_fails(void **state)
{
    (void)state;
    check_create_failure(3);
}

static void test_start_last_thread_fails(void **state)
{
    (void)state;
    check_create_failure(4);
}

/* Port 0 with 2 shards: the first listener's port cannot be read back. Before, the error
 * became port 65535 - errno and the second shard listened there: refuse instead. */
static void test_start_bound_port_unreadable(void **state)
{
    struct config cfg;
    char err[512] = "";
    int status = 0;
    (void)state;
    small_config(&cfg, 2);
    atomic_store(&fail_getsockname, true);
    struct engine *e = engine_start(&cfg, err, sizeof(err), &status);
    atomic_store(&fail_getsockname, false);
    if (e) {
        unsigned port = engine_port(e);
        stop(e);
        fail_msg("engine_start succeeded, on port %u", port);
    }
    assert_non_null(strstr(err, "--listen 127.0.0.1:0"));
    assert_non_null(strstr(err, strerror(ENOBUFS)));
    assert_int_equal(status, 1);
}

/* The open-file limit cannot be read: refuse with one line rather than size from garbage. */
static void test_start_rlimit_unreadable(void **state)
{
    struct config cfg;
    char err[512] = "";
    int status = 0;
    (void)state;
    small_config(&cfg, 1);
    atomic_store(&fail_getrlimit, true);
    struct engine *e = engine_start(&cfg, err, sizeof(err), &status);
    atomic_store(&fail_getrlimit, false);
    if (e) {
        stop(e);
        fail_msg("engine_start succeeded without the open-file limit");
    }
    assert_non_null(strstr(err, "open-file limit"));
    assert_null(strchr(err, '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ip_many_distinct_addresses, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_ip_limit_per_address, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_start_first_thread_fails, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_start_middle_thread_fails, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_start_last_thread_fails, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_start_bound_port_unreadable, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_start_rlimit_unreadable, setup_watchdog,
                                        teardown_watchdog),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
