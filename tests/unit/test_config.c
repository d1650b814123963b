/* SPDX-License-Identifier: MIT */
/*
 * config: every option through each of its three sources, precedence between them, each class
 * of error with its message, --help/--version, and teardown under the leak checker. Tests go
 * through the public header only. Files live in one mkdtemp directory per run, removed at the
 * end.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h relies on <setjmp.h>, <stdarg.h>, <stddef.h> and <stdint.h> coming first. */
#include <cmocka.h>

#define MAX_ARGS 48

static char tmpdir[256];

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

#define assert_has(hay, needle)                                                                    \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("'%s' does not contain '%s'", (hay), (needle));                               \
    } while (0)

/* Writes <len> bytes of <data> to <name> in the test directory; the path goes to <path>. */
static void put_bytes(char *path, size_t cap, const char *name, const char *data, size_t len)
{
    FILE *f;

    snprintf(path, cap, "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put(char *path, size_t cap, const char *name, const char *text)
{
    put_bytes(path, cap, name, text, strlen(text));
}

static int count(char **v)
{
    int n = 0;

    while (v[n] != NULL)
        n++;
    return n;
}

/*
 * Runs config_load on "ringcast" followed by <args> (NULL-terminated) with environment <env>
 * (NULL-terminated, may be NULL).
 */
static int load(struct config *c, const char *const *args, const char *const *env, char *err,
                size_t err_cap)
{
    char *argv[MAX_ARGS + 2] = {"ringcast"};
    int argc = 1;

    for (; args != NULL && args[argc - 1] != NULL; argc++) {
        assert_true(argc <= MAX_ARGS);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    assert_int_equal(count(argv), argc);
    return config_load(c, argc, argv, (char **)env, err, err_cap);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE      ((const char *const[]){NULL})

/* Loads, expects -1 and a message containing <expect>, and checks <c> holds nothing. */
static void expect_error(const char *const *args, const char *const *env, const char *expect)
{
    struct config c;
    char err[512];

    memset(err, 'x', sizeof(err));
    assert_int_equal(load(&c, args, env, err, sizeof(err)), -1);
    assert_has(err, expect);
    assert_true(strncmp(err, "ringcast: ", 10) == 0);
    assert_null(strchr(err, '\n'));
    /* A failed load leaves the defaults: nothing to free, nothing half-set. */
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_null(c.jwt_secret);
    assert_null(c.allowed_origins);
    config_fini(&c);
}

/* Runs config_load with stdout sent to a file; the output goes to <out>. */
static int load_capturing(const char *const *args, char *out, size_t cap)
{
    struct config c;
    char path[512], err[256];
    int saved, fd, rc;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/stdout", tmpdir);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    assert_true(fd >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    rc = load(&c, args, NONE, err, sizeof(err));
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    n = pread(fd, out, cap - 1, 0);
    close(fd);
    assert_true(n >= 0);
    out[n] = '\0';
    config_fini(&c);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Every option, through each source                                                         */
/* ---------------------------------------------------------------------------------------- */

/* One value for every option but config and jwt-secret-file, which have their own tests. */
static const char *const all_values[][2] = {
    {"listen", "127.0.0.1:9000"},
    {"tls-listen", "[::1]:9443"},
    {"tls-cert", "cert.pem"},
    {"tls-key", "key.pem"},
    {"tls-offload", "off"},
    {"tls-max-handshakes", "32"},
    {"shards", "4"},
    {"max-conns", "100000"},
    {"max-conns-per-ip", "10"},
    {"max-message", "1m"},
    {"send-queue", "2k"},
    {"slow-consumer", "drop"},
    {"rate-limit", "2.5"},
    {"ping-interval", "0"},
    {"idle-timeout", "0"},
    {"handshake-timeout", "7"},
    {"history-size", "50"},
    {"history-ttl", "30"},
    {"jwt-secret", "s3cret"},
    {"allowed-origins", "https://a.example, https://b.example:8443"},
    {"api-key", "k3y"},
    {"redis", "redis://127.0.0.1:6379/1"},
    {"log-level", "debug"},
};
#define NR_VALUES (sizeof(all_values) / sizeof(all_values[0]))

/* Checks what all_values set; allow-anonymous was set to true explicitly. */
static void check_all_values(const struct config *c)
{
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 9000);
    assert_string_equal(c->tls_listen_host, "::1");
    assert_int_equal(c->tls_listen_port, 9443);
    assert_string_equal(c->tls_cert, "cert.pem");
    assert_string_equal(c->tls_key, "key.pem");
    assert_false(c->tls_offload);
    assert_int_equal(c->tls_max_handshakes, 32);
    assert_int_equal(c->shards, 4);
    assert_int_equal(c->max_conns, 100000);
    assert_int_equal(c->max_conns_per_ip, 10);
    assert_int_equal(c->max_message, 1048576);
    assert_int_equal(c->send_queue, 2048);
    assert_int_equal(c->slow_consumer, SLOW_DROP);
    assert_true(c->rate_limit == 2.5);
    assert_int_equal(c->ping_interval, 0);
    assert_int_equal(c->idle_timeout, 0);
    assert_int_equal(c->handshake_timeout, 7);
    assert_int_equal(c->history_size, 50);
    assert_int_equal(c->history_ttl, 30);
    assert_string_equal(c->jwt_secret, "s3cret");
    assert_true(c->allow_anonymous);
    assert_int_equal(c->nr_allowed_origins, 2);
    assert_string_equal(c->allowed_origins[0], "https://a.example");
    assert_string_equal(c->allowed_origins[1], "https://b.example:8443");
    assert_null(c->allowed_origins[2]);
    assert_string_equal(c->api_key, "k3y");
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/1");
    assert_int_equal(c->log_level, LOG_DEBUG);
}

static void test_defaults(void **state)
{
    struct config c;
    char err[256] = "untouched";

    (void)state;
    assert_int_equal(load(&c, NONE, NONE, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 8080);
    assert_null(c.tls_listen_host);
    assert_null(c.tls_cert);
    assert_null(c.tls_key);
    assert_true(c.tls_offload);
    assert_int_equal(c.tls_max_handshakes, 256);
    assert_int_equal(c.shards, 0);
    assert_int_equal(c.max_conns, 0);
    assert_int_equal(c.max_conns_per_ip, 0);
    assert_int_equal(c.max_message, 65536);
    assert_int_equal(c.send_queue, 1048576);
    assert_int_equal(c.slow_consumer, SLOW_CLOSE);
    assert_true(c.rate_limit == 0.0);
    assert_int_equal(c.ping_interval, 25);
    assert_int_equal(c.idle_timeout, 60);
    assert_int_equal(c.handshake_timeout, 5);
    assert_int_equal(c.history_size, 100);
    assert_int_equal(c.history_ttl, 300);
    assert_null(c.jwt_secret);
    assert_true(c.allow_anonymous);
    assert_null(c.allowed_origins);
    assert_int_equal(c.nr_allowed_origins, 0);
    assert_null(c.api_key);
    assert_null(c.redis_url);
    assert_int_equal(c.log_level, LOG_INFO);
    config_fini(&c);

    /* A NULL environment is no environment; defaults alone need no fini but take one. */
    assert_int_equal(load(&c, NONE, NULL, NULL, 0), 0);
    config_fini(&c);
    config_defaults(&c);
    config_fini(&c);
    config_fini(&c);
}

static void test_cli_space_form(void **state)
{
    const char *args[2 * NR_VALUES + 2];
    struct config c;
    char err[256];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < NR_VALUES; i++) {
        static char names[NR_VALUES][32];

        snprintf(names[i], sizeof(names[i]), "--%s", all_values[i][0]);
        args[n++] = names[i];
        args[n++] = all_values[i][1];
    }
    args[n++] = "--allow-anonymous";
    args[n] = NULL;
    assert_int_equal(load(&c, args, NONE, err, sizeof(err)), 0);
    check_all_values(&c);
    config_fini(&c);
}

static void test_cli_equals_form(void **state)
{
    static char opts[NR_VALUES][128];
    const char *args[NR_VALUES + 2];
    struct config c;
    char err[256];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < NR_VALUES; i++) {
        snprintf(opts[i], sizeof(opts[i]), "--%s=%s", all_values[i][0], all_values[i][1]);
        args[n++] = opts[i];
    }
    args[n++] = "--allow-anonymous";
    args[n] = NULL;
    assert_int_equal(load(&c, args, NONE, err, sizeof(err)), 0);
    check_all_values(&c);
    config_fini(&c);
}

static void test_env(void **state)
{
    static char vars[NR_VALUES][128];
    const char *env[NR_VALUES + 8];
    struct config c;
    char err[256];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < NR_VALUES; i++) {
        int o = snprintf(vars[i], sizeof(vars[i]), "RINGCAST_");

        for (const char *p = all_values[i][0]; *p != '\0'; p++)
            vars[i][o++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
        snprintf(vars[i] + o, sizeof(vars[i]) - (size_t)o, "=%s", all_values[i][1]);
        env[n++] = vars[i];
    }
    env[n++] = "RINGCAST_ALLOW_ANONYMOUS=yes";
    /* Noise a real environment holds: other programs' variables, and names that are not
     * options (RINGCAST_VERSION is not --version), are left alone. */
    env[n++] = "PATH=/bin";
    env[n++] = "RINGCAST_VERSION=1";
    env[n++] = "RINGCAST_HELP=1";
    env[n++] = "RINGCAST_MAX_CONNSX=5";
    env[n] = NULL;
    assert_int_equal(load(&c, NONE, env, err, sizeof(err)), 0);
    check_all_values(&c);
    config_fini(&c);
}

static void test_env_empty_is_unset(void **state)
{
    struct config c;
    char err[256];

    (void)state;
    assert_int_equal(
        load(&c, NONE, ARGS("RINGCAST_MAX_CONNS=", "RINGCAST_LISTEN=", "X=1"), err, sizeof(err)),
        0);
    assert_int_equal(c.max_conns, 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    config_fini(&c);
}

static void test_env_booleans(void **state)
{
    static const char *const yes[] = {"1", "true", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"0", "false", "False", "no", "NO", "off", "Off"};
    char var[64], var2[64];
    struct config c;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(var, sizeof(var), "RINGCAST_ALLOW_ANONYMOUS=%s", no[i]);
        snprintf(var2, sizeof(var2), "RINGCAST_TLS_OFFLOAD=%s", yes[i]);
        assert_int_equal(load(&c, NONE, ARGS(var, var2), err, sizeof(err)), 0);
        assert_false(c.allow_anonymous);
        assert_true(c.tls_offload);
        config_fini(&c);

        snprintf(var, sizeof(var), "RINGCAST_ALLOW_ANONYMOUS=%s", yes[i]);
        snprintf(var2, sizeof(var2), "RINGCAST_TLS_OFFLOAD=%s", no[i]);
        assert_int_equal(load(&c, NONE, ARGS(var, var2, "RINGCAST_JWT_SECRET=x"), err, sizeof(err)),
                         0);
        assert_true(c.allow_anonymous);
        assert_false(c.tls_offload);
        config_fini(&c);
    }
}

static void test_file_every_option(void **state)
{
    char text[4096], path[512], arg[600];
    struct config c;
    char err[256];
    size_t o = 0;

    (void)state;
    for (size_t i = 0; i < NR_VALUES; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%s = %s\n", all_values[i][0],
                              all_values[i][1]);
    snprintf(text + o, sizeof(text) - o, "allow-anonymous = on\n");
    put(path, sizeof(path), "all.conf", text);

    /* Both ways of naming the file. */
    assert_int_equal(load(&c, ARGS("--config", path), NONE, err, sizeof(err)), 0);
    check_all_values(&c);
    config_fini(&c);

    snprintf(arg, sizeof(arg), "RINGCAST_CONFIG=%s", path);
    assert_int_equal(load(&c, NONE, ARGS(arg), err, sizeof(err)), 0);
    check_all_values(&c);
    config_fini(&c);
    unlink(path);
}

static void test_file_syntax(void **state)
{
    /* A byte order mark, comments, blank lines, odd spacing, both quotes, a '#' inside quotes,
     * trailing comments, CRLF, an underscore name and no final newline. */
    static const char text[] = "\xef\xbb\xbf# ringcast.conf\n"
                               "\n"
                               "   \t\n"
                               "  # indented comment\n"
                               "   max-conns   =   42   \n"
                               "listen=\"127.0.0.1:81\"\n"
                               "jwt-secret = 'a#b c'   # quoted, so the first '#' stays\n"
                               "api-key = k#1 # a bare '#' only after a space starts a comment\n"
                               "history_size = 7\r\n"
                               "allowed-origins = \" https://x.example ,, \"\n"
                               "log-level\t=\twarn";
    char path[512];
    struct config c;
    char err[256];

    (void)state;
    put(path, sizeof(path), "syntax.conf", text);
    assert_int_equal(load(&c, ARGS("--config", path), NONE, err, sizeof(err)), 0);
    assert_int_equal(c.max_conns, 42);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 81);
    assert_string_equal(c.jwt_secret, "a#b c");
    assert_false(c.allow_anonymous);
    assert_string_equal(c.api_key, "k#1");
    assert_int_equal(c.history_size, 7);
    assert_int_equal(c.nr_allowed_origins, 1);
    assert_string_equal(c.allowed_origins[0], "https://x.example");
    assert_int_equal(c.log_level, LOG_WARN);
    config_fini(&c);

    /* An empty file is a valid file. */
    put(path, sizeof(path), "empty.conf", "");
    assert_int_equal(load(&c, ARGS("--config", path), NONE, err, sizeof(err)), 0);
    assert_int_equal(c.max_conns, 0);
    config_fini(&c);
    unlink(path);
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_listen_forms(void **state)
{
    static const struct {
        const char *in, *host;
        unsigned port;
    } rows[] = {
        {"0.0.0.0:8080", "0.0.0.0", 8080},
        {"*:80", "0.0.0.0", 80},
        {":0", "0.0.0.0", 0},
        {"localhost:1", "127.0.0.1", 1},
        {"10.1.2.3:65535", "10.1.2.3", 65535},
        {"[::1]:8080", "::1", 8080},
        {"[::]:443", "::", 443},
        {"[fe80::1:2]:00080", "fe80::1:2", 80},
    };
    struct config c;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(load(&c, ARGS("--listen", rows[i].in), NONE, err, sizeof(err)), 0);
        assert_string_equal(c.listen_host, rows[i].host);
        assert_int_equal(c.listen_port, rows[i].port);
        config_fini(&c);
    }
}

static void test_sizes_and_numbers(void **state)
{
    static const struct {
        const char *in;
        uint64_t v;
    } sizes[] = {
        {"1", 1},        {"123", 123},    {"64k", 65536},     {"64K", 65536},
        {"1m", 1048576}, {"3M", 3145728}, {"1G", 1073741824}, {"1073741824", 1073741824},
    };
    static const struct {
        const char *in;
        double v;
    } rates[] = {{"0", 0}, {"0.5", 0.5}, {".25", 0.25}, {"10.", 10}, {"1000000", 1e6}};
    struct config c;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(load(&c, ARGS("--max-message", sizes[i].in, "--send-queue", sizes[i].in),
                              NONE, err, sizeof(err)),
                         0);
        assert_true(c.max_message == sizes[i].v);
        assert_true(c.send_queue == sizes[i].v);
        config_fini(&c);
    }
    /* The queue may be larger than one message: up to 2 GiB. */
    assert_int_equal(load(&c, ARGS("--send-queue", "2g"), NONE, err, sizeof(err)), 0);
    assert_true(c.send_queue == 2147483648ull);
    config_fini(&c);
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        assert_int_equal(load(&c, ARGS("--rate-limit", rates[i].in), NONE, err, sizeof(err)), 0);
        assert_true(c.rate_limit == rates[i].v);
        config_fini(&c);
    }
    assert_int_equal(
        load(&c,
             ARGS("--shards", "64", "--max-conns", "1073741824", "--history-size", "4294967295",
                  "--history-ttl", "0", "--ping-interval", "2147483", "--slow-consumer", "CLOSE"),
             NONE, err, sizeof(err)),
        0);
    assert_int_equal(c.shards, 64);
    assert_true(c.max_conns == 1073741824);
    assert_int_equal(c.history_size, 4294967295u);
    assert_int_equal(c.history_ttl, 0);
    assert_int_equal(c.ping_interval, 2147483);
    assert_int_equal(c.slow_consumer, SLOW_CLOSE);
    config_fini(&c);
}

static void test_allowed_origins(void **state)
{
    struct config c;
    char err[256];

    (void)state;
    assert_int_equal(
        load(&c, ARGS("--allowed-origins", " https://a.example , ,https://b.example:8443 ,"), NONE,
             err, sizeof(err)),
        0);
    assert_int_equal(c.nr_allowed_origins, 2);
    assert_string_equal(c.allowed_origins[0], "https://a.example");
    assert_string_equal(c.allowed_origins[1], "https://b.example:8443");
    assert_null(c.allowed_origins[2]);
    config_fini(&c);
    assert_null(c.allowed_origins);

    assert_int_equal(load(&c, ARGS("--allowed-origins", "*"), NONE, err, sizeof(err)), 0);
    assert_null(c.allowed_origins);
    assert_int_equal(c.nr_allowed_origins, 0);
    config_fini(&c);

    /* "*" anywhere in the list means any; the entries before it are freed. */
    assert_int_equal(
        load(&c, ARGS("--allowed-origins", "https://a.example, * "), NONE, err, sizeof(err)), 0);
    assert_null(c.allowed_origins);
    config_fini(&c);

    /* Repeated: the last one wins, the first is freed. */
    assert_int_equal(
        load(&c, ARGS("--allowed-origins", "a", "--allowed-origins=b"), NONE, err, sizeof(err)), 0);
    assert_int_equal(c.nr_allowed_origins, 1);
    assert_string_equal(c.allowed_origins[0], "b");
    config_fini(&c);

    assert_int_equal(load(&c, ARGS("--allowed-origins", "null"), NONE, err, sizeof(err)), 0);
    assert_string_equal(c.allowed_origins[0], "null");
    config_fini(&c);
}

static void test_jwt_secret_file(void **state)
{
    char path[512], err[512], expect[600], joined[600];
    struct config c;

    (void)state;
    put(path, sizeof(path), "secret", "s3cret\n");
    assert_int_equal(load(&c, ARGS("--jwt-secret-file", path), NONE, err, sizeof(err)), 0);
    assert_string_equal(c.jwt_secret, "s3cret");
    assert_false(c.allow_anonymous); /* a secret turns the default off */
    config_fini(&c);

    put(path, sizeof(path), "secret", "with spaces  \r\n\n");
    assert_int_equal(
        load(&c, ARGS("--jwt-secret-file", path, "--allow-anonymous"), NONE, err, sizeof(err)), 0);
    assert_string_equal(c.jwt_secret, "with spaces  ");
    assert_true(c.allow_anonymous); /* explicitly on, secret or not */
    config_fini(&c);

    put(path, sizeof(path), "secret", "no-newline");
    snprintf(joined, sizeof(joined), "--jwt-secret-file=%s", path);
    assert_int_equal(load(&c, ARGS(joined), NONE, err, sizeof(err)), 0);
    assert_string_equal(c.jwt_secret, "no-newline");
    config_fini(&c);

    put(path, sizeof(path), "secret", "\n");
    snprintf(expect, sizeof(expect), "ringcast: --jwt-secret-file: '%s' is empty", path);
    expect_error(ARGS("--jwt-secret-file", path), NONE, expect);

    put_bytes(path, sizeof(path), "secret", "ab\0cd\n", 6);
    expect_error(ARGS("--jwt-secret-file", path), NONE, "NUL byte");

    unlink(path);
    snprintf(expect, sizeof(expect), "ringcast: --jwt-secret-file: cannot read '%s': %s", path,
             strerror(ENOENT));
    expect_error(ARGS("--jwt-secret-file", path), NONE, expect);
    snprintf(expect, sizeof(expect), "RINGCAST_JWT_SECRET_FILE: cannot read '%s'", path);
    snprintf(joined, sizeof(joined), "RINGCAST_JWT_SECRET_FILE=%s", path);
    expect_error(NONE, ARGS(joined), expect);

    /* A directory is not a readable secret. */
    snprintf(expect, sizeof(expect), "--jwt-secret-file: cannot read '%s'", tmpdir);
    expect_error(ARGS("--jwt-secret-file", tmpdir), NONE, expect);
}

/* ---------------------------------------------------------------------------------------- */
/* Precedence                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_precedence(void **state)
{
    char path[512], cfg[600], secret[512];
    struct config c;
    char err[256];

    (void)state;
    put(secret, sizeof(secret), "file-secret", "from-file\n");
    {
        char text[1024];

        snprintf(text, sizeof(text),
                 "max-conns = 1\nshards = 1\nlisten = 127.0.0.1:1\njwt-secret-file = %s\n"
                 "allow-anonymous = yes\n",
                 secret);
        put(path, sizeof(path), "prec.conf", text);
    }
    snprintf(cfg, sizeof(cfg), "RINGCAST_CONFIG=%s", path);

    /* The same option from all three: the command line wins. */
    assert_int_equal(
        load(&c, ARGS("--max-conns", "3"), ARGS(cfg, "RINGCAST_MAX_CONNS=2"), err, sizeof(err)), 0);
    assert_int_equal(c.max_conns, 3);
    config_fini(&c);

    /* Environment over file. */
    assert_int_equal(load(&c, NONE, ARGS(cfg, "RINGCAST_MAX_CONNS=2"), err, sizeof(err)), 0);
    assert_int_equal(c.max_conns, 2);
    config_fini(&c);

    /* File over default, and each option is decided on its own. */
    assert_int_equal(
        load(&c, ARGS("--shards", "3"), ARGS(cfg, "RINGCAST_LISTEN=127.0.0.2:2"), err, sizeof(err)),
        0);
    assert_int_equal(c.max_conns, 1);
    assert_int_equal(c.shards, 3);
    assert_string_equal(c.listen_host, "127.0.0.2");
    assert_int_equal(c.listen_port, 2);
    assert_string_equal(c.jwt_secret, "from-file");
    assert_true(c.allow_anonymous);
    assert_int_equal(c.handshake_timeout, 5);
    config_fini(&c);

    /* --jwt-secret and --jwt-secret-file are one option: the command line's form wins over
     * the file's other form; --no-allow-anonymous wins over the file's yes. */
    assert_int_equal(load(&c, ARGS("--jwt-secret=from-cli", "--no-allow-anonymous"), ARGS(cfg), err,
                          sizeof(err)),
                     0);
    assert_string_equal(c.jwt_secret, "from-cli");
    assert_false(c.allow_anonymous);
    config_fini(&c);

    /* Repeated on one level: the last wins. */
    assert_int_equal(load(&c,
                          ARGS("--listen", ":1", "--listen", ":2", "--jwt-secret", "a",
                               "--jwt-secret-file", secret),
                          NONE, err, sizeof(err)),
                     0);
    assert_int_equal(c.listen_port, 2);
    assert_string_equal(c.jwt_secret, "from-file");
    config_fini(&c);

    /* --config beats RINGCAST_CONFIG, whose file is then never opened. */
    snprintf(cfg, sizeof(cfg), "RINGCAST_CONFIG=%s/missing.conf", tmpdir);
    assert_int_equal(load(&c, ARGS("--config", path), ARGS(cfg), err, sizeof(err)), 0);
    assert_int_equal(c.max_conns, 1);
    config_fini(&c);

    /* A value that loses is still checked, so a typo shows up before it starts to matter. */
    expect_error(ARGS("--shards", "2"), ARGS("RINGCAST_SHARDS=two"),
                 "ringcast: RINGCAST_SHARDS: not a number: 'two'");
    unlink(path);
    unlink(secret);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_cli_errors(void **state)
{
    static const struct {
        const char *args[6];
        const char *expect;
    } rows[] = {
        {{"--foo"}, "ringcast: unknown option '--foo' (see --help)"},
        {{"--foo=bar"}, "ringcast: unknown option '--foo' (see --help)"},
        {{"-x"}, "ringcast: unknown option '-x' (see --help)"},
        {{"--no-listen"}, "ringcast: unknown option '--no-listen'"},
        {{"--listen"}, "ringcast: --listen: missing value"},
        {{"--jwt-secret", "--listen", ":80"}, "ringcast: --jwt-secret: missing value"},
        {{"stray"}, "ringcast: unexpected argument 'stray' (see --help)"},
        {{"-"}, "ringcast: unexpected argument '-'"},
        {{"--", "x"}, "ringcast: unexpected argument 'x'"},
        {{"--listen="}, "ringcast: --listen: empty value"},
        {{"--api-key", ""}, "ringcast: --api-key: empty value"},
        {{"--max-conns", "abc"}, "ringcast: --max-conns: not a number: 'abc'"},
        {{"--max-conns", "12abc"}, "ringcast: --max-conns: not a number: '12abc'"},
        {{"--max-conns", " 12"}, "ringcast: --max-conns: not a number: ' 12'"},
        {{"--max-conns", "+12"}, "ringcast: --max-conns: not a number: '+12'"},
        {{"--max-conns", "0x10"}, "ringcast: --max-conns: not a number: '0x10'"},
        {{"--max-conns=-5"}, "ringcast: --max-conns: must not be negative: '-5'"},
        {{"--max-conns", "18446744073709551616"}, "ringcast: --max-conns: too large"},
        {{"--max-conns-per-ip", "-1"}, "ringcast: --max-conns-per-ip: must not be negative"},
        {{"--shards", "0"}, "ringcast: --shards: out of range: '0' (1..64)"},
        /* The cross-shard mesh addresses 64 shards: more is refused, not clamped. */
        {{"--shards", "65"}, "ringcast: --shards: out of range: '65' (1..64)"},
        {{"--shards", "1025"}, "ringcast: --shards: out of range: '1025' (1..64)"},
        /* 64 shards of 2^24 descriptor slots at most. */
        {{"--max-conns", "1073741825"},
         "ringcast: --max-conns: out of range: '1073741825' (0..1073741824)"},
        {{"--tls-max-handshakes", "1000001"},
         "ringcast: --tls-max-handshakes: out of range: '1000001' (0..1000000)"},
        {{"--history-size", "4294967296"}, "ringcast: --history-size: out of range"},
        {{"--history-ttl", "1.5"}, "ringcast: --history-ttl: not a number: '1.5'"},
        {{"--ping-interval", "2147484"}, "ringcast: --ping-interval: out of range"},
        {{"--idle-timeout", "-1"}, "ringcast: --idle-timeout: must not be negative"},
        {{"--handshake-timeout", "0"}, "ringcast: --handshake-timeout: out of range: '0' (1.."},
        {{"--max-message", "64x"}, "ringcast: --max-message: not a size: '64x'"},
        {{"--max-message", "64kb"}, "ringcast: --max-message: not a size: '64kb'"},
        {{"--max-message", "k"}, "ringcast: --max-message: not a number: 'k'"},
        {{"--max-message", "0"}, "ringcast: --max-message: must be at least 1"},
        {{"--send-queue", "17179869184g"}, "ringcast: --send-queue: too large: '17179869184g'"},
        /* Lengths are 32-bit: a 4 GiB queue would wrap and the slow-consumer policy never act. */
        {{"--send-queue", "4g"}, "ringcast: --send-queue: too large: '4g' (at most 2g)"},
        {{"--send-queue", "2147483649"},
         "ringcast: --send-queue: too large: '2147483649' (at most 2g)"},
        {{"--max-message", "2g"}, "ringcast: --max-message: too large: '2g' (at most 1g)"},
        {{"--max-message", "1073741825"},
         "ringcast: --max-message: too large: '1073741825' (at most 1g)"},
        {{"--max-message", "18446744073709551615"},
         "ringcast: --max-message: too large: '18446744073709551615' (at most 1g)"},
        /* The token bucket counts in a float: above 2^24 taking one token changes nothing. */
        {{"--rate-limit", "1000000.5"},
         "ringcast: --rate-limit: too large: '1000000.5' (at most 1000000)"},
        {{"--rate-limit", "99999999999"},
         "ringcast: --rate-limit: too large: '99999999999' (at most 1000000)"},
        {{"--listen", "8080"}, "ringcast: --listen: expected HOST:PORT: '8080'"},
        {{"--listen", "1.2.3:80"}, "ringcast: --listen: bad host in '1.2.3:80'"},
        {{"--listen", "example.com:80"}, "ringcast: --listen: bad host in 'example.com:80'"},
        {{"--listen", "0.0.0.0:65536"}, "ringcast: --listen: bad port in '0.0.0.0:65536'"},
        {{"--listen", "0.0.0.0:"}, "ringcast: --listen: bad port"},
        {{"--listen", "0.0.0.0:http"}, "ringcast: --listen: bad port"},
        {{"--listen", "0.0.0.0:-1"}, "ringcast: --listen: bad port"},
        {{"--listen", "::1:80"}, "ringcast: --listen: an IPv6 host needs brackets"},
        {{"--listen", "[::g]:80"}, "ringcast: --listen: bad IPv6 address in '[::g]:80'"},
        {{"--listen", "[::1]"}, "ringcast: --listen: expected [IPV6]:PORT: '[::1]'"},
        {{"--tls-listen", "nope"}, "ringcast: --tls-listen: expected HOST:PORT: 'nope'"},
        {{"--slow-consumer", "maybe"},
         "ringcast: --slow-consumer: unknown value 'maybe' (close or drop)"},
        {{"--log-level", "trace"}, "ringcast: --log-level: unknown value 'trace'"},
        {{"--tls-offload", "maybe"}, "ringcast: --tls-offload: not a boolean: 'maybe'"},
        {{"--rate-limit", "-1"}, "ringcast: --rate-limit: must not be negative: '-1'"},
        {{"--rate-limit", "abc"}, "ringcast: --rate-limit: not a number: 'abc'"},
        {{"--rate-limit", "nan"}, "ringcast: --rate-limit: not a number: 'nan'"},
        {{"--rate-limit", "inf"}, "ringcast: --rate-limit: not a number: 'inf'"},
        {{"--rate-limit", "1e3"}, "ringcast: --rate-limit: not a number: '1e3'"},
        {{"--rate-limit", "."}, "ringcast: --rate-limit: not a number: '.'"},
        {{"--allow-anonymous=yes"}, "ringcast: --allow-anonymous: takes no value"},
        {{"--help=1"}, "ringcast: --help takes no value"},
        {{"--version=1"}, "ringcast: --version takes no value"},
        {{"--allowed-origins", " , "}, "ringcast: --allowed-origins: no origin in ' , '"},
        {{"--redis", "http://x"}, "ringcast: --redis: expected redis://HOST:PORT[/DB]"},
        {{"--redis", "redis://"}, "ringcast: --redis: expected redis://"},
        {{"--config", ""}, "ringcast: --config: empty value"},
        {{"--tls-listen", ":8443"}, "ringcast: --tls-listen: needs --tls-cert and --tls-key"},
        {{"--tls-listen", ":8443", "--tls-cert", "c.pem"},
         "ringcast: --tls-listen: needs --tls-key"},
        {{"--tls-listen", ":8443", "--tls-key", "k.pem"},
         "ringcast: --tls-listen: needs --tls-cert"},
        /* Errors come in command-line order, before --help is seen. */
        {{"--bogus", "--help"}, "ringcast: unknown option '--bogus'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *args[7] = {NULL};

        memcpy(args, rows[i].args, sizeof(rows[i].args));
        expect_error(args, NONE, rows[i].expect);
    }
}

static void test_errors_hide_secrets(void **state)
{
    struct config c;
    char err[512];

    (void)state;
    assert_int_equal(load(&c, ARGS("--jwt-secrte=hunter2"), NONE, err, sizeof(err)), -1);
    assert_has(err, "unknown option '--jwt-secrte'");
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(load(&c, ARGS("--redis", "http://:hunter2@h"), NONE, err, sizeof(err)), -1);
    assert_null(strstr(err, "hunter2"));
    config_fini(&c);
}

static void test_error_values_are_one_line(void **state)
{
    char big[300], arg[320];
    struct config c;
    char err[512];

    (void)state;
    /* Control characters are escaped, long values cut: the message stays one short line. */
    expect_error(ARGS("--max-conns", "1\n2\x1b"), NONE, "not a number: '1\\x0a2\\x1b'");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(arg, sizeof(arg), "--max-conns=%s", big);
    assert_int_equal(load(&c, ARGS(arg), NONE, err, sizeof(err)), -1);
    assert_has(err, "aaa...'");
    assert_true(strlen(err) < 160);

    /* A small buffer gets a cut message, never an overflow; none at all is fine too. */
    assert_int_equal(load(&c, ARGS("--max-conns", "abc"), NONE, err, 12), -1);
    assert_string_equal(err, "ringcast: -");
    assert_int_equal(load(&c, ARGS("--max-conns", "abc"), NONE, NULL, 0), -1);
    config_fini(&c);
}

static void test_env_errors(void **state)
{
    static const struct {
        const char *env[3];
        const char *expect;
    } rows[] = {
        {{"RINGCAST_MAX_CONNS=abc"}, "ringcast: RINGCAST_MAX_CONNS: not a number: 'abc'"},
        {{"RINGCAST_ALLOW_ANONYMOUS=maybe"}, "ringcast: RINGCAST_ALLOW_ANONYMOUS: not a boolean"},
        {{"RINGCAST_MAX_CONNS_PER_IP=-3"},
         "ringcast: RINGCAST_MAX_CONNS_PER_IP: must not be negative: '-3'"},
        {{"RINGCAST_LISTEN=localhost"}, "ringcast: RINGCAST_LISTEN: expected HOST:PORT"},
        {{"RINGCAST_TLS_LISTEN=:443"}, "ringcast: --tls-listen: needs --tls-cert and --tls-key"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *env[4] = {NULL};

        memcpy(env, rows[i].env, sizeof(rows[i].env));
        expect_error(NONE, env, rows[i].expect);
    }

    char var[600], expect[700];

    snprintf(var, sizeof(var), "RINGCAST_CONFIG=%s/missing.conf", tmpdir);
    snprintf(expect, sizeof(expect), "ringcast: RINGCAST_CONFIG: cannot read '%s/missing.conf': %s",
             tmpdir, strerror(ENOENT));
    expect_error(NONE, ARGS(var), expect);
}

static void test_file_errors(void **state)
{
    static const struct {
        const char *text;
        const char *expect; /* after "ringcast: PATH" */
    } rows[] = {
        {"foo = 1\n", ":1: unknown option 'foo'"},
        {"# c\n\nmax-conns = abc\n", ":3: max-conns: not a number: 'abc'"},
        {"listen\n", ":1: expected 'name = value', got 'listen'"},
        {" = 5\n", ":1: expected 'name = value'"},
        {"--listen = :80\n", ":1: unknown option '--listen'"},
        {"jwt-secret = \"abc\n", ":1: jwt-secret: unterminated quote"},
        {"api-key = 'a' b\n", ":1: api-key: unexpected text after the closing quote: 'b'"},
        {"config = other.conf\n", ":1: config: not allowed in a config file"},
        {"max-conns =\n", ":1: max-conns: empty value"},
        {"max-conns = ''\n", ":1: max-conns: empty value"},
        {"help = 1\n", ":1: unknown option 'help'"},
        {"allow-anonymous = maybe\n", ":1: allow-anonymous: not a boolean: 'maybe'"},
        {"shards = 4\r\nshards = 0\r\n", ":2: shards: out of range: '0'"},
        {"\xef\xbb\xbfnope = 1\n", ":1: unknown option 'nope'"},
    };
    char path[512], expect[700];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        put(path, sizeof(path), "bad.conf", rows[i].text);
        snprintf(expect, sizeof(expect), "ringcast: %s%s", path, rows[i].expect);
        expect_error(ARGS("--config", path), NONE, expect);
    }
    unlink(path);

    snprintf(expect, sizeof(expect), "ringcast: --config: cannot read '%s': %s", path,
             strerror(ENOENT));
    expect_error(ARGS("--config", path), NONE, expect);
}

/* A failure after some strings were copied frees them (the leak checker watches). */
static void test_error_after_allocations(void **state)
{
    char path[512];

    (void)state;
    put(path, sizeof(path), "late.conf", "api-key = k\nallowed-origins = a,b\nredis = x\n");
    expect_error(ARGS("--listen", "1.2.3.4:1", "--jwt-secret", "x", "--tls-cert", "c",
                      "--allowed-origins", "a,b", "--config", path),
                 ARGS("RINGCAST_TLS_KEY=k", "RINGCAST_API_KEY=e"), ":3: redis: expected redis://");
    unlink(path);
}

/* ---------------------------------------------------------------------------------------- */
/* --help, --version, teardown                                                               */
/* ---------------------------------------------------------------------------------------- */

static void test_help(void **state)
{
    static const char *const names[] = {
        "--listen HOST:PORT",
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--tls-offload on|off",
        "--tls-max-handshakes N",
        "--shards N",
        "--max-conns N",
        "--max-conns-per-ip",
        "--max-message",
        "--send-queue",
        "--slow-consumer",
        "--rate-limit",
        "--ping-interval",
        "--idle-timeout",
        "--handshake-timeout",
        "--history-size",
        "--history-ttl",
        "--jwt-secret S",
        "--jwt-secret-file",
        "--allow-anonymous",
        "--no-allow-anonymous",
        "--allowed-origins",
        "--api-key",
        "--redis URL",
        "--log-level",
        "--config FILE",
        "-h, --help",
        "-V, --version",
        "RINGCAST_MAX_CONNS",
        "RINGCAST_CONFIG",
        "max-conns = ",
        "(default 0.0.0.0:8080)",
        "(default 64k)",
        "(default 1m)",
        "(default 25)",
        "(default 60)",
        "(default 5)",
        "(default 100)",
        "(default 300)",
        "(default info)",
        "(default close)",
        "(default on)",
    };
    static char out[16384];

    (void)state;
    assert_int_equal(load_capturing(ARGS("--help"), out, sizeof(out)), 1);
    assert_string_equal(out, config_usage);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_has(config_usage, names[i]);

    /* Fits a terminal: no line over 80 columns, no tabs, no trailing spaces. */
    for (const char *l = config_usage; *l != '\0';) {
        const char *nl = strchr(l, '\n');

        assert_non_null(nl);
        assert_true(nl - l <= 80);
        assert_true(nl == l || nl[-1] != ' ');
        l = nl + 1;
    }
    assert_null(strchr(config_usage, '\t'));

    assert_int_equal(load_capturing(ARGS("-h"), out, sizeof(out)), 1);
    assert_string_equal(out, config_usage);

    /* --help wins over a broken file named before it: the file is not read. */
    char missing[600];

    snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);
    assert_int_equal(load_capturing(ARGS("--config", missing, "--help"), out, sizeof(out)), 1);
    assert_string_equal(out, config_usage);
}

/* --help into a full disk is an error, not a silent exit 0. */
static void test_help_write_error(void **state)
{
    struct config c;
    char err[256];
    int saved, fd, rc;

    (void)state;
    fd = open("/dev/full", O_WRONLY);
    if (fd < 0)
        skip();
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    rc = load(&c, ARGS("--help"), NONE, err, sizeof(err));
    /* Drop what stdio still holds for the full device before the real stdout comes back. */
    __fpurge(stdout);
    clearerr(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    close(fd);
    assert_int_equal(rc, -1);
    assert_has(err, "ringcast: cannot write the output: ");
    config_fini(&c);
}

static void test_version(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(load_capturing(ARGS("--version"), out, sizeof(out)), 1);
    assert_true(strncmp(out, "ringcast ", 9) == 0);
    assert_true(strlen(out) > 10);
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);

    assert_int_equal(load_capturing(ARGS("-V"), out, sizeof(out)), 1);
    assert_true(strncmp(out, "ringcast ", 9) == 0);
}

static void test_fini_frees_everything(void **state)
{
    char path[512], cfg[600];
    struct config c;
    char err[256];

    (void)state;
    /* Every string option on every level, so that losing values go through the scratch
     * struct and winning ones replace earlier copies; ASan's leak check does the counting. */
    put(path, sizeof(path), "leak.conf",
        "listen = :1\ntls-listen = :2\ntls-cert = a\ntls-key = b\njwt-secret = c\n"
        "allowed-origins = d,e\napi-key = f\nredis = redis://g\n");
    snprintf(cfg, sizeof(cfg), "RINGCAST_CONFIG=%s", path);
    assert_int_equal(
        load(&c,
             ARGS("--listen", ":3", "--tls-listen", ":4", "--tls-cert", "h", "--tls-key", "i",
                  "--jwt-secret", "j", "--allowed-origins", "k", "--api-key", "l", "--redis",
                  "redis://m", "--listen", ":5", "--allowed-origins", "n,o"),
             ARGS(cfg, "RINGCAST_LISTEN=:6", "RINGCAST_TLS_CERT=p", "RINGCAST_API_KEY=q",
                  "RINGCAST_ALLOWED_ORIGINS=r", "RINGCAST_JWT_SECRET=s"),
             err, sizeof(err)),
        0);
    assert_int_equal(c.listen_port, 5);
    assert_string_equal(c.tls_cert, "h");
    assert_int_equal(c.nr_allowed_origins, 2);
    config_fini(&c);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_null(c.tls_listen_host);
    assert_null(c.tls_cert);
    assert_null(c.tls_key);
    assert_null(c.jwt_secret);
    assert_null(c.allowed_origins);
    assert_int_equal(c.nr_allowed_origins, 0);
    assert_null(c.api_key);
    assert_null(c.redis_url);
    config_fini(&c); /* twice is harmless */
    unlink(path);
}

/* ---------------------------------------------------------------------------------------- */
/* Setup                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    const char *base = getenv("TMPDIR");

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/ringcast-config-XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[600];

    (void)state;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_cli_space_form),
        cmocka_unit_test(test_cli_equals_form),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_empty_is_unset),
        cmocka_unit_test(test_env_booleans),
        cmocka_unit_test(test_file_every_option),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_sizes_and_numbers),
        cmocka_unit_test(test_allowed_origins),
        cmocka_unit_test(test_jwt_secret_file),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_errors_hide_secrets),
        cmocka_unit_test(test_error_values_are_one_line),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_error_after_allocations),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_help_write_error),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_fini_frees_everything),
    };

    return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
