/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's TLS client glue (tools/bench/tlsclient.c) against a plain mbedtls 2.28 server
 * set up here, all in memory: what the client queues is handed to the server, and what the
 * server sends is fed to the client whole, byte by byte, or in random pieces, the way receives
 * cut it. Covers the full and the resumed (session ticket) handshake, data both ways, ALPN,
 * certificate verification on and off, and the two mbedtls traps STYLE.md names: a write that
 * meets a full ciphertext queue (WANT_WRITE) must be retried with the same bytes, and a read can
 * return WANT_WRITE (a refused renegotiation's alert) without losing the next write's bytes.
 *
 * Certificates come from tools/gen-certs.sh, run at start into a temporary directory (found
 * through RINGCAST_SOURCE_DIR, else relative to this file). The module is compiled in by
 * including its .c file (see test_bench_hist.c).
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../../tools/bench/tlsclient.c"

#include <mbedtls/ssl_ticket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- certificates ------------------------------------------------------------------------ */

static char cert_dir[256];
static char ec_crt[300], ec_key[300], rsa_crt[300];

static int gen_certs(void **state)
{
    char script[512], cmd[1024];
    const char *src = getenv("RINGCAST_SOURCE_DIR");

    (void)state;
    if (src) {
        snprintf(script, sizeof(script), "%s/tools/gen-certs.sh", src);
    } else {
        /* This file is tests/unit/test_bench_tls.c: the script is ../../tools/ from here. */
        char *slash;
        snprintf(script, sizeof(script), "%s", __FILE__);
        for (int i = 0; i < 3 && (slash = strrchr(script, '/')); i++)
            *slash = '\0';
        if (strcmp(script, __FILE__) == 0)
            snprintf(script, sizeof(script), ".");
        strncat(script, "/tools/gen-certs.sh", sizeof(script) - strlen(script) - 1);
    }
    snprintf(cert_dir, sizeof(cert_dir), "%s/ringcast-bench-tls-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(cert_dir))
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", script, cert_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_bench_tls: '%s' failed\n", cmd);
        return -1;
    }
    snprintf(ec_crt, sizeof(ec_crt), "%s/ec.crt", cert_dir);
    snprintf(ec_key, sizeof(ec_key), "%s/ec.key", cert_dir);
    snprintf(rsa_crt, sizeof(rsa_crt), "%s/rsa.crt", cert_dir);
    return 0;
}

static int rm_certs(void **state)
{
    const char *names[] = {"ec.crt", "ec.key", "ec2.crt", "ec2.key", "rsa.crt", "rsa.key"};
    char p[320];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", cert_dir, names[i]);
        unlink(p);
    }
    rmdir(cert_dir);
    return 0;
}

/* ---- the server: plain mbedtls, as the broker configures it --------------------------------- */

struct server {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_ssl_ticket_context tickets;
    mbedtls_ssl_config conf;
};

static const char *srv_alpn[] = {"http/1.1", NULL};
/* The broker's choices (tls/tls_config.c): ECDHE AEAD suites, AES-GCM first, X25519 first. */
static const int srv_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};
static const mbedtls_ecp_group_id srv_curves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_NONE,
};

static void server_init(struct server *s)
{
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_x509_crt_init(&s->crt);
    mbedtls_pk_init(&s->key);
    mbedtls_ssl_ticket_init(&s->tickets);
    mbedtls_ssl_config_init(&s->conf);
    assert_int_equal(mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
                                           (const unsigned char *)"srv", 3),
                     0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->crt, ec_crt), 0);
    assert_int_equal(mbedtls_pk_parse_keyfile(&s->key, ec_key, NULL), 0);
    assert_int_equal(mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_min_version(&s->conf, 3, 3);
    mbedtls_ssl_conf_max_version(&s->conf, 3, 3);
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    mbedtls_ssl_conf_ciphersuites(&s->conf, srv_suites);
    mbedtls_ssl_conf_curves(&s->conf, srv_curves);
    assert_int_equal(mbedtls_ssl_conf_own_cert(&s->conf, &s->crt, &s->key), 0);
    assert_int_equal(mbedtls_ssl_conf_alpn_protocols(&s->conf, srv_alpn), 0);
    assert_int_equal(mbedtls_ssl_ticket_setup(&s->tickets, mbedtls_ctr_drbg_random, &s->drbg,
                                              MBEDTLS_CIPHER_AES_256_GCM, 3600),
                     0);
    mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &s->tickets);
    /* Only so that the server may send a HelloRequest, which the client refuses. */
    mbedtls_ssl_conf_renegotiation(&s->conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
}

static void server_fini(struct server *s)
{
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_ssl_ticket_free(&s->tickets);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->crt);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
}

/* ---- one connection through memory ------------------------------------------------------ */

struct bytes {
    uint8_t *p;
    size_t len, off, cap;
};

static void bytes_push(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

struct conn {
    struct tlsc *c;
    mbedtls_ssl_context s;
    struct bytes c2s, s2c;
    uint8_t *tmp; /* swapped with the client's ciphertext queue */
    uint32_t tmp_cap;
    size_t chunk; /* pieces fed to the client: 0 whole, else 1..chunk bytes at random */
    unsigned seed;
};

static int srv_send(void *ctx, const unsigned char *buf, size_t len)
{
    bytes_push(&((struct conn *)ctx)->s2c, buf, len);
    return (int)len;
}

static int srv_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct bytes *b = &((struct conn *)ctx)->c2s;
    size_t n = b->len - b->off;
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, b->p + b->off, n);
    b->off += n;
    return (int)n;
}

static void conn_init(struct conn *k, struct server *srv, struct tlsc_config *cfg, bool resume,
                      size_t chunk)
{
    memset(k, 0, sizeof(*k));
    k->c = tlsc_create(cfg, resume);
    assert_non_null(k->c);
    mbedtls_ssl_init(&k->s);
    assert_int_equal(mbedtls_ssl_setup(&k->s, &srv->conf), 0);
    mbedtls_ssl_set_bio(&k->s, k, srv_send, srv_recv, NULL);
    k->chunk = chunk;
    k->seed = 12345;
}

static void conn_fini(struct conn *k)
{
    tlsc_destroy(k->c);
    mbedtls_ssl_free(&k->s);
    free(k->c2s.p);
    free(k->s2c.p);
    free(k->tmp);
}

/* Moves the client's queued ciphertext to the server's input. */
static void client_flush(struct conn *k)
{
    size_t n = tlsc_swap_out(k->c, &k->tmp, &k->tmp_cap);
    assert_true(n == 0 || k->tmp != NULL);
    bytes_push(&k->c2s, k->tmp, n);
    assert_int_equal(tlsc_out_len(k->c), 0);
}

static size_t next_piece(struct conn *k, size_t left)
{
    if (k->chunk == 0)
        return left;
    k->seed = k->seed * 1103515245u + 12345u;
    size_t n = 1 + (k->seed >> 8) % k->chunk;
    return n < left ? n : left;
}

/* Feeds the server's output to the client piece by piece, running <step> after each. Returns
 * the last result of <step>. */
static int client_feed(struct conn *k, int (*step)(struct conn *, void *), void *arg)
{
    int r = -EAGAIN;
    while (k->s2c.off < k->s2c.len) {
        size_t n = next_piece(k, k->s2c.len - k->s2c.off);
        tlsc_feed(k->c, k->s2c.p + k->s2c.off, n);
        k->s2c.off += n;
        r = step(k, arg);
        tlsc_feed_end(k->c);
    }
    return r;
}

static int step_handshake(struct conn *k, void *arg)
{
    (void)arg;
    return tlsc_handshake(k->c);
}

/* Runs both handshakes to the end; returns the client's last result (0 or -EPROTO). */
static int handshake(struct conn *k)
{
    int cr = tlsc_handshake(k->c), sr = MBEDTLS_ERR_SSL_WANT_READ;
    for (int i = 0; i < 100 && (cr != 0 || sr != 0); i++) {
        client_flush(k);
        if (cr < 0 && cr != -EAGAIN)
            return cr;
        sr = mbedtls_ssl_handshake(&k->s);
        if (sr != 0 && sr != MBEDTLS_ERR_SSL_WANT_READ)
            return -EPROTO; /* the server gave up (a fatal alert from the client) */
        if (k->s2c.off < k->s2c.len)
            cr = client_feed(k, step_handshake, NULL); /* a failure stays: the last says it */
        else if (cr != 0)
            cr = tlsc_handshake(k->c);
        if (cr != 0 && cr != -EAGAIN)
            return cr;
    }
    assert_int_equal(sr, 0);
    return cr;
}

/* Client -> server: <n> bytes through tlsc_write(), read back by the server. */
static void send_to_server(struct conn *k, const uint8_t *p, size_t n)
{
    size_t off = 0, got = 0;
    uint8_t *back = malloc(n + 1);
    assert_non_null(back);
    /* Each call moves at least one byte of ciphertext when the queue has room: a session that
     * stopped counting what it sealed would loop forever without this bound. */
    for (size_t calls = 0; off < n; calls++) {
        assert_true(calls < 2 * (n + 200) + 100000);
        int r = tlsc_write(k->c, p + off, n - off);
        if (r == -ENOBUFS) {
            /* The queue is full: send it, and call again with the same bytes. */
            client_flush(k);
            continue;
        }
        assert_true(r > 0);
        off += (size_t)r;
    }
    client_flush(k);
    while (got < n) {
        int r = mbedtls_ssl_read(&k->s, back + got, n - got);
        /* Also after a record that carried no data (an alert): go on while input is left. */
        if (r == MBEDTLS_ERR_SSL_WANT_READ && k->c2s.off < k->c2s.len)
            continue;
        if (r == MBEDTLS_ERR_SSL_WANT_READ)
            break;
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_int_equal(got, n);
    assert_memory_equal(back, p, n);
    free(back);
}

struct sink {
    uint8_t *p;
    size_t len, cap;
};

static int step_read(struct conn *k, void *arg)
{
    struct sink *s = arg;
    uint8_t buf[TLSC_PLAIN_MAX];
    for (;;) {
        int r = tlsc_read(k->c, buf, sizeof(buf));
        if (r == -EAGAIN)
            return r;
        assert_true(r > 0);
        assert_true(s->len + (size_t)r <= s->cap);
        memcpy(s->p + s->len, buf, (size_t)r);
        s->len += (size_t)r;
    }
}

/* Server -> client: <n> bytes through mbedtls_ssl_write(), read by tlsc_read(). */
static void send_to_client(struct conn *k, const uint8_t *p, size_t n)
{
    struct sink s = {.p = malloc(n + 1), .cap = n};
    size_t off = 0;
    assert_non_null(s.p);
    while (off < n) {
        int r = mbedtls_ssl_write(&k->s, p + off, n - off);
        assert_true(r > 0);
        off += (size_t)r;
    }
    client_feed(k, step_read, &s);
    assert_int_equal(s.len, n);
    assert_memory_equal(s.p, p, n);
    free(s.p);
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + (i >> 9));
    return p;
}

static struct tlsc_config *client_config(const char *ca, const char *sni)
{
    struct tlsc_config_opts o = {.ca_file = ca, .sni = sni};
    char err[256];
    struct tlsc_config *cfg = tlsc_config_create(&o, err, sizeof(err));
    if (!cfg)
        fail_msg("%s", err);
    return cfg;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void full_handshake_and_data_every_cut(void **state)
{
    static const size_t chunks[] = {0, 1, 7, 300, 5000};
    struct server srv;
    (void)state;
    server_init(&srv);
    struct tlsc_config *cfg = client_config(NULL, "localhost");
    uint8_t *big = pattern(100000);

    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        struct conn k;
        conn_init(&k, &srv, cfg, false, chunks[i]);
        assert_false(tlsc_established(k.c));
        assert_int_equal(tlsc_write(k.c, big, 10), -ENOTCONN);
        assert_int_equal(handshake(&k), 0);
        assert_true(tlsc_established(k.c));
        assert_false(tlsc_resumed(k.c));
        assert_false(tlsc_offered(k.c));
        assert_string_equal(tlsc_alpn(k.c), "http/1.1");
        assert_non_null(strstr(tlsc_suite(k.c), "ECDHE-ECDSA"));
        assert_string_equal(tlsc_suite(k.c), "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256");
        assert_int_equal(tlsc_handshake(k.c), 0); /* idempotent */

        send_to_server(&k, big, 120);
        send_to_server(&k, big, 40000); /* several records */
        send_to_client(&k, big, 50);
        send_to_client(&k, big, 100000);

        /* An established idle session: mbedtls's two record buffers dominate. */
        size_t mem = tlsc_memory(k.c);
        assert_true(mem > 32 * 1024 && mem < 64 * 1024);

        /* close_notify from the server reads as 0. */
        assert_int_equal(mbedtls_ssl_close_notify(&k.s), 0);
        tlsc_feed(k.c, k.s2c.p + k.s2c.off, k.s2c.len - k.s2c.off);
        k.s2c.off = k.s2c.len;
        uint8_t b[64];
        assert_int_equal(tlsc_read(k.c, b, sizeof(b)), 0);
        tlsc_feed_end(k.c);
        conn_fini(&k);
    }
    free(big);
    tlsc_config_destroy(cfg);
    server_fini(&srv);
}

static void resumption_with_the_saved_ticket(void **state)
{
    struct server srv;
    struct conn k;
    (void)state;
    server_init(&srv);
    struct tlsc_config *cfg = client_config(NULL, "localhost");
    uint8_t *p = pattern(2000);

    /* Nothing saved yet: resume asked for, nothing offered, a full handshake. */
    assert_false(tlsc_config_has_session(cfg));
    conn_init(&k, &srv, cfg, true, 0);
    assert_int_equal(tlsc_config_save_session(cfg, k.c), -ENOTCONN);
    assert_int_equal(handshake(&k), 0);
    assert_false(tlsc_offered(k.c));
    assert_false(tlsc_resumed(k.c));
    assert_int_equal(tlsc_config_save_session(cfg, k.c), 0);
    assert_true(tlsc_config_has_session(cfg));
    size_t full_bytes = k.s2c.len;
    conn_fini(&k);

    /* Every later session offers the same ticket and gets the abbreviated handshake, which
     * carries no certificate: far fewer bytes from the server. */
    for (int i = 0; i < 3; i++) {
        conn_init(&k, &srv, cfg, true, i == 1 ? 1 : 0);
        assert_true(tlsc_offered(k.c));
        assert_int_equal(handshake(&k), 0);
        assert_true(tlsc_resumed(k.c));
        assert_true(k.s2c.len < full_bytes / 2);
        assert_string_equal(tlsc_alpn(k.c), "http/1.1");
        send_to_server(&k, p, 2000);
        send_to_client(&k, p, 2000);
        conn_fini(&k);
    }

    /* Without <resume> the saved session is not offered. */
    conn_init(&k, &srv, cfg, false, 0);
    assert_int_equal(handshake(&k), 0);
    assert_false(tlsc_offered(k.c));
    assert_false(tlsc_resumed(k.c));
    conn_fini(&k);

    /* A server that no longer knows the ticket key answers with a full handshake. */
    struct server other;
    server_init(&other);
    conn_init(&k, &other, cfg, true, 0);
    assert_true(tlsc_offered(k.c));
    assert_int_equal(handshake(&k), 0);
    assert_false(tlsc_resumed(k.c));
    conn_fini(&k);
    server_fini(&other);

    free(p);
    tlsc_config_destroy(cfg);
    server_fini(&srv);
}

static void full_queue_retries_with_the_same_bytes(void **state)
{
    static const size_t bounds[] = {0, 1, 100, 16000, 17000};
    struct server srv;
    (void)state;
    server_init(&srv);
    struct tlsc_config *cfg = client_config(NULL, NULL);
    uint8_t *big = pattern(70000);

    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        struct conn k;
        conn_init(&k, &srv, cfg, false, 0);
        assert_int_equal(handshake(&k), 0);
        tlsc_set_out_max(k.c, bounds[i]);
        /* A bound of 0 blocks every write until it is raised: the retry must still go. */
        if (bounds[i] == 0) {
            assert_int_equal(tlsc_write(k.c, big, 500), -ENOBUFS);
            assert_int_equal(tlsc_write(k.c, big, 500), -ENOBUFS);
            tlsc_set_out_max(k.c, 1);
        }
        send_to_server(&k, big, 70000);
        send_to_server(&k, big + 3, 33);
        conn_fini(&k);
    }

    /* Breaking the rule (fewer bytes on the retry) fails the session instead of losing data. */
    struct conn k;
    conn_init(&k, &srv, cfg, false, 0);
    assert_int_equal(handshake(&k), 0);
    tlsc_set_out_max(k.c, 10);
    int r;
    while ((r = tlsc_write(k.c, big, 1000)) == -ENOBUFS && tlsc_out_len(k.c) < 10)
        ;
    assert_int_equal(r, -ENOBUFS);
    assert_int_equal(tlsc_write(k.c, big, 999), -EPROTO);
    assert_int_equal(tlsc_error(k.c), MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
    assert_int_equal(tlsc_write(k.c, big, 1000), -EPROTO); /* sticky */
    conn_fini(&k);

    free(big);
    tlsc_config_destroy(cfg);
    server_fini(&srv);
}

static void read_that_wants_write_loses_nothing(void **state)
{
    struct server srv;
    struct conn k;
    uint8_t buf[256];
    (void)state;
    server_init(&srv);
    struct tlsc_config *cfg = client_config(NULL, "localhost");
    conn_init(&k, &srv, cfg, false, 0);
    assert_int_equal(handshake(&k), 0);

    /* The server asks to renegotiate; the client refuses with a warning alert, which it cannot
     * queue while the queue is full: the read says -ENOBUFS and tlsc_blocked(). */
    assert_int_equal(mbedtls_ssl_renegotiate(&k.s), 0);
    assert_true(k.s2c.len > k.s2c.off);
    tlsc_set_out_max(k.c, 0);
    tlsc_feed(k.c, k.s2c.p + k.s2c.off, k.s2c.len - k.s2c.off);
    k.s2c.off = k.s2c.len;
    assert_int_equal(tlsc_read(k.c, buf, sizeof(buf)), -ENOBUFS);
    assert_true(tlsc_blocked(k.c));
    tlsc_feed_end(k.c);

    /* Room again: the read goes on (nothing more to read), then data written now must reach
     * the server intact, after the alert mbedtls still holds. */
    tlsc_set_out_max(k.c, TLSC_OUT_MAX);
    assert_int_equal(tlsc_read(k.c, buf, sizeof(buf)), -EAGAIN);
    assert_false(tlsc_blocked(k.c));
    uint8_t *p = pattern(3000);
    send_to_server(&k, p, 3000);
    send_to_client(&k, p, 3000);
    free(p);
    conn_fini(&k);
    tlsc_config_destroy(cfg);
    server_fini(&srv);
}

static void certificate_verification(void **state)
{
    struct server srv;
    struct conn k;
    char err[256];
    (void)state;
    server_init(&srv);

    /* The right CA and name. */
    struct tlsc_config *cfg = client_config(ec_crt, "localhost");
    conn_init(&k, &srv, cfg, false, 7);
    assert_int_equal(handshake(&k), 0);
    conn_fini(&k);
    tlsc_config_destroy(cfg);

    /* Another certificate as the only CA: the chain does not verify. */
    cfg = client_config(rsa_crt, "localhost");
    conn_init(&k, &srv, cfg, false, 0);
    assert_int_equal(handshake(&k), -EPROTO);
    assert_int_equal(tlsc_error(k.c), MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
    assert_int_equal(tlsc_handshake(k.c), -EPROTO); /* sticky */
    assert_non_null(strstr(tlsc_strerror(tlsc_error(k.c), err, sizeof(err)), "X509"));
    conn_fini(&k);
    tlsc_config_destroy(cfg);

    /* The right CA, a name the certificate is not for. */
    cfg = client_config(ec_crt, "example.com");
    conn_init(&k, &srv, cfg, false, 0);
    assert_int_equal(handshake(&k), -EPROTO);
    assert_int_equal(tlsc_error(k.c), MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
    conn_fini(&k);
    tlsc_config_destroy(cfg);

    /* Without a CA file the same certificate is accepted, whatever the name. */
    cfg = client_config(NULL, "example.com");
    conn_init(&k, &srv, cfg, false, 0);
    assert_int_equal(handshake(&k), 0);
    conn_fini(&k);
    tlsc_config_destroy(cfg);

    /* An unreadable CA file is a config error with the file's name in it. */
    struct tlsc_config_opts o = {.ca_file = "/nonexistent/ca.pem", .sni = "localhost"};
    assert_null(tlsc_config_create(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    server_fini(&srv);
}

static void swap_out_hands_buffers_over(void **state)
{
    struct server srv;
    struct conn k;
    (void)state;
    server_init(&srv);
    struct tlsc_config *cfg = client_config(NULL, NULL);
    conn_init(&k, &srv, cfg, false, 0);

    /* The ClientHello is queued by the first handshake call, before any input. */
    assert_int_equal(tlsc_handshake(k.c), -EAGAIN);
    size_t n = tlsc_out_len(k.c);
    assert_true(n > 50);
    uint8_t *mine = NULL;
    uint32_t cap = 0;
    assert_int_equal(tlsc_swap_out(k.c, &mine, &cap), n);
    assert_non_null(mine);
    assert_true(cap >= n);
    assert_int_equal(mine[0], 22); /* a handshake record (RFC 5246 section 6.2.1) */
    assert_int_equal(tlsc_out_len(k.c), 0);
    /* Nothing queued: a swap gives 0 and the buffers trade places again. */
    assert_int_equal(tlsc_swap_out(k.c, &mine, &cap), 0);
    free(mine);
    conn_fini(&k);
    tlsc_config_destroy(cfg);
    server_fini(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_handshake_and_data_every_cut),
        cmocka_unit_test(resumption_with_the_saved_ticket),
        cmocka_unit_test(full_queue_retries_with_the_same_bytes),
        cmocka_unit_test(read_that_wants_write_loses_nothing),
        cmocka_unit_test(certificate_verification),
        cmocka_unit_test(swap_out_hands_buffers_over),
    };
    return cmocka_run_group_tests_name("bench_tls", tests, gen_certs, rm_certs);
}
