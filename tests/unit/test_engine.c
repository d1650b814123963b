/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/engine.c through engine.h and the engine part of shard.h: a real engine
 * on 127.0.0.1, port 0, started, asked things, drained and destroyed within each test.
 *
 *   - per-address counting (ip_acquire/ip_release) keeps working after far more distinct
 *     addresses than any fixed table holds.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WATCHDOG_S 20

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ip_many_distinct_addresses, setup_watchdog,
                                        teardown_watchdog),
        cmocka_unit_test_setup_teardown(test_ip_limit_per_address, setup_watchdog,
                                        teardown_watchdog),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
