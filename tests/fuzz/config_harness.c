/* SPDX-License-Identifier: MIT */
/* See config_harness.h: files from memory and the contract checks for the config targets. */
#include "config_harness.h"

#include "fuzz_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The limits config.c documents in its --help text. */
#define SECS_MAX           2147483u
#define SHARDS_MAX         1024u
#define MAX_HANDSHAKES_MAX 1000000u

FILE *__real_fopen(const char *path, const char *mode);

/* Set while config_load() runs: the wrap covers the whole program, replay_main.c included. */
static bool loading;

static struct {
    const char *name;
    const void *data;
    size_t len;
} files[] = {
    {CONFIG_HARNESS_CONFIG, NULL, 0},
    {CONFIG_HARNESS_SECRET, NULL, 0},
};

void config_harness_file(const char *name, const void *data, size_t len)
{
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (strcmp(files[i].name, name) == 0) {
            files[i].data = data;
            files[i].len = len;
        }
    }
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (!loading)
        return __real_fopen(path, mode);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (strcmp(files[i].name, path) != 0 || files[i].data == NULL)
            continue;
        /* fmemopen() refuses a zero size; an empty file reads the same as /dev/null. */
        if (files[i].len == 0)
            return __real_fopen("/dev/null", mode);
        return fmemopen((void *)files[i].data, files[i].len, mode);
    }
    errno = ENOENT;
    return NULL;
}

static bool numeric_host(const char *h)
{
    unsigned char bin[16];

    return inet_pton(AF_INET, h, bin) == 1 || inet_pton(AF_INET6, h, bin) == 1;
}

static bool set_and_empty(const char *s)
{
    return s != NULL && *s == '\0';
}

/* "Unless 0 is returned, <c> is left at its defaults, holding nothing." */
static void check_defaults(const struct config *c)
{
    struct config d;

    config_defaults(&d);
    CHECK(c->listen_host != NULL && strcmp(c->listen_host, d.listen_host) == 0);
    CHECK(c->listen_port == d.listen_port);
    CHECK(c->tls_listen_host == NULL && c->tls_cert == NULL && c->tls_key == NULL);
    CHECK(c->jwt_secret == NULL && c->api_key == NULL && c->redis_url == NULL);
    CHECK(c->allowed_origins == NULL && c->nr_allowed_origins == 0);
    CHECK(c->shards == d.shards && c->max_conns == d.max_conns);
    CHECK(c->max_message == d.max_message && c->send_queue == d.send_queue);
    CHECK(c->max_conns_per_ip == d.max_conns_per_ip && c->rate_limit == d.rate_limit);
    CHECK(c->ping_interval == d.ping_interval && c->idle_timeout == d.idle_timeout);
    CHECK(c->handshake_timeout == d.handshake_timeout);
    CHECK(c->history_size == d.history_size && c->history_ttl == d.history_ttl);
    CHECK(c->slow_consumer == d.slow_consumer && c->log_level == d.log_level);
    CHECK(c->allow_anonymous == d.allow_anonymous && c->tls_offload == d.tls_offload);
    CHECK(c->tls_max_handshakes == d.tls_max_handshakes);
}

/* What a loaded config may hold: every value inside the range its option documents. */
static void check_loaded(const struct config *c)
{
    CHECK(c->listen_host != NULL && numeric_host(c->listen_host));
    if (c->tls_listen_host != NULL) {
        CHECK(numeric_host(c->tls_listen_host));
        CHECK(c->tls_cert != NULL && c->tls_key != NULL);
    }
    CHECK(!set_and_empty(c->tls_cert) && !set_and_empty(c->tls_key));
    CHECK(!set_and_empty(c->jwt_secret) && !set_and_empty(c->api_key));
    CHECK(c->redis_url == NULL || strncmp(c->redis_url, "redis://", 8) == 0);
    CHECK(c->shards <= SHARDS_MAX);
    CHECK(c->max_message >= 1 && c->send_queue >= 1);
    CHECK(isfinite(c->rate_limit) && c->rate_limit >= 0);
    CHECK(c->ping_interval <= SECS_MAX && c->idle_timeout <= SECS_MAX);
    CHECK(c->handshake_timeout >= 1 && c->handshake_timeout <= SECS_MAX);
    CHECK(c->history_ttl <= SECS_MAX);
    CHECK(c->tls_max_handshakes <= MAX_HANDSHAKES_MAX);
    CHECK(c->slow_consumer == SLOW_CLOSE || c->slow_consumer == SLOW_DROP);
    CHECK(c->log_level >= LOG_ERROR && c->log_level <= LOG_DEBUG);
    CHECK((c->allowed_origins == NULL) == (c->nr_allowed_origins == 0));
    if (c->allowed_origins != NULL) {
        CHECK(c->allowed_origins[c->nr_allowed_origins] == NULL);
        for (size_t i = 0; i < c->nr_allowed_origins; i++) {
            const char *o = c->allowed_origins[i];
            size_t n = strlen(o);

            /* Trimmed, non-empty, one entry each. */
            CHECK(n > 0 && strchr(o, ',') == NULL);
            CHECK(o[0] != ' ' && o[0] != '\t' && o[n - 1] != ' ' && o[n - 1] != '\t');
        }
    }
}

/* "one line describing it is in <err>", and it names the program. */
static void check_error(const char *err, size_t cap)
{
    size_t n = strnlen(err, cap);

    CHECK(n < cap);
    CHECK(n == 0 || strncmp(err, "ringcast: ", n < 10 ? n : 10) == 0);
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)err[i] >= 0x20 && err[i] != 0x7f);
}

void config_harness_run(int argc, char **argv, char **envp, size_t small_cap)
{
    enum { ERR_CAP = 1024 };
    char *err = malloc(ERR_CAP), *small = small_cap ? malloc(small_cap) : NULL;
    struct config c, again;
    int rc, rc_again;

    CHECK(err != NULL && (small_cap == 0 || small != NULL));
    loading = true;
    rc = config_load(&c, argc, argv, envp, err, ERR_CAP);
    loading = false;
    CHECK(rc == 0 || rc == 1 || rc == -1);
    check_error(err, ERR_CAP);
    CHECK(rc == -1 ? strlen(err) > 10 : err[0] == '\0');
    if (rc == 0)
        check_loaded(&c);
    else
        check_defaults(&c);
    config_fini(&c);
    check_defaults(&c);

    /* The same verdict again, with the message cut to the small buffer (or none at all). */
    loading = true;
    rc_again = config_load(&again, argc, argv, envp, small, small_cap);
    loading = false;
    CHECK(rc_again == rc);
    if (small_cap > 0) {
        check_error(small, small_cap);
        CHECK(strncmp(small, err, small_cap - 1) == 0);
        CHECK(strlen(small) == (strlen(err) < small_cap ? strlen(err) : small_cap - 1));
    }
    if (rc_again == 0)
        check_loaded(&again);
    config_fini(&again);
    free(small);
    free(err);
}
