/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for tls/: a real mbedtls client, with its own record layer, against ringcast's
 * server session, all in memory. The client's transport injects faults (short reads and writes,
 * WANT_READ/WANT_WRITE before success) and the server is fed and drained in random pieces, as
 * receives and sends cut them. After the handshake the offloaded record layer must interoperate
 * with mbedtls's in both directions, for every suite, sequence number range and record size.
 *
 * Certificates come from tools/gen-certs.sh, run at start into a temporary directory (found
 * through RINGCAST_SOURCE_DIR, else relative to this file). Test hooks (fault injection on the
 * server's mbedtls, sequence numbers) come through tls/tls_internal.h.
 */
#include "record.h"
#include "tls.h"
#include "tls_internal.h"
#include "transport.h"

#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs <setjmp.h>, <stdarg.h> and <stddef.h> included before it. */
#include <cmocka.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>

/* ---- certificates ------------------------------------------------------------------------ */

static char cert_dir[256];
static char ec_crt[300], ec_key[300], ec2_crt[300], ec2_key[300], rsa_crt[300], rsa_key[300];

static int gen_certs(void **state)
{
    char script[512], cmd[1024];
    const char *src = getenv("RINGCAST_SOURCE_DIR");

    (void)state;
    if (src) {
        snprintf(script, sizeof(script), "%s/tools/gen-certs.sh", src);
    } else {
        /* This file is tests/unit/test_tls.c: the script is ../../tools/ from here. */
        char *slash;

        snprintf(script, sizeof(script), "%s", __FILE__);
        for (int i = 0; i < 3 && (slash = strrchr(script, '/')); i++)
            *slash = '\0';
        if (strcmp(script, __FILE__) == 0)
            snprintf(script, sizeof(script), ".");
        strncat(script, "/tools/gen-certs.sh", sizeof(script) - strlen(script) - 1);
    }
    snprintf(cert_dir, sizeof(cert_dir), "%s/ringcast-tls-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(cert_dir))
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", script, cert_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls: '%s' failed\n", cmd);
        return -1;
    }
    snprintf(ec_crt, sizeof(ec_crt), "%s/ec.crt", cert_dir);
    snprintf(ec_key, sizeof(ec_key), "%s/ec.key", cert_dir);
    snprintf(ec2_crt, sizeof(ec2_crt), "%s/ec2.crt", cert_dir);
    snprintf(ec2_key, sizeof(ec2_key), "%s/ec2.key", cert_dir);
    snprintf(rsa_crt, sizeof(rsa_crt), "%s/rsa.crt", cert_dir);
    snprintf(rsa_key, sizeof(rsa_key), "%s/rsa.key", cert_dir);
    return 0;
}

static int rm_certs(void **state)
{
    const char *names[] = {"ec.crt",  "ec.key",  "ec2.crt", "ec2.key",
                           "rsa.crt", "rsa.key", "junk.pem"};
    char p[320];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", cert_dir, names[i]);
        unlink(p);
    }
    rmdir(cert_dir);
    return 0;
}

static struct tls_config *make_config(const char *crt, const char *key, bool offload)
{
    struct tls_config_opts o = {.cert_file = crt, .key_file = key, .no_offload = !offload};
    char err[256];
    struct tls_config *cfg = tls_config_create(&o, err, sizeof(err));

    if (!cfg)
        fail_msg("%s", err);
    return cfg;
}

/* ---- byte queues ------------------------------------------------------------------------- */

struct bytes {
    uint8_t *p;
    size_t len, cap;
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

static void bytes_drop(struct bytes *b, size_t n)
{
    if (n == 0)
        return;
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- faults ------------------------------------------------------------------------------ */

/* Seed 0: no faults, whole transfers. Otherwise pieces of 1..max_chunk bytes and, for the
 * client, a WANT_READ or WANT_WRITE now and then, never twice in a row. */
struct fault {
    unsigned seed;
    size_t max_chunk;
    bool was_want;
    bool want;
};

static size_t chunk(struct fault *f, size_t avail)
{
    size_t n;

    if (!f->seed || !f->max_chunk)
        return avail;
    n = 1 + (size_t)rand_r(&f->seed) % f->max_chunk;
    return n < avail ? n : avail;
}

static bool want_now(struct fault *f)
{
    if (!f->seed || !f->want || f->was_want || rand_r(&f->seed) % 4) {
        f->was_want = false;
        return false;
    }
    f->was_want = true;
    return true;
}

/* ---- the mbedtls client ------------------------------------------------------------------ */

static mbedtls_entropy_context cli_entropy;
static mbedtls_ctr_drbg_context cli_drbg;

struct copts {
    const char *ca;    /* trusted certificate; NULL: no verification */
    const int *suites; /* NULL: mbedtls's defaults */
    int max_minor;     /* 0: TLS 1.2 */
    const mbedtls_ecp_group_id *curves;
    const char **alpn; /* NULL: "http/1.1" */
    bool no_alpn;
    bool renegotiation;
    mbedtls_ssl_session *resume;
};

struct client {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt ca;
    struct bytes *in, *out;
    struct fault f;
    uint8_t kb[88];
    size_t keylen, ivlen;
};

static int cli_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct client *c = ctx;
    size_t n;

    if (want_now(&c->f))
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    n = chunk(&c->f, len);
    bytes_push(c->out, buf, n);
    return (int)n;
}

static int cli_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct client *c = ctx;
    size_t n;

    if (c->in->len == 0 || want_now(&c->f))
        return MBEDTLS_ERR_SSL_WANT_READ;
    n = chunk(&c->f, len < c->in->len ? len : c->in->len);
    memcpy(buf, c->in->p, n);
    bytes_drop(c->in, n);
    return (int)n;
}

static int cli_export(void *p, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                      size_t keylen, size_t ivlen, const unsigned char cr[32],
                      const unsigned char sr[32], mbedtls_tls_prf_types prf)
{
    struct client *c = p;

    (void)ms, (void)maclen, (void)cr, (void)sr, (void)prf;
    if (2 * keylen + 2 * ivlen <= sizeof(c->kb)) {
        memcpy(c->kb, kb, 2 * keylen + 2 * ivlen);
        c->keylen = keylen;
        c->ivlen = ivlen;
    }
    return 0;
}

static const char *default_alpn[] = {"http/1.1", NULL};

static void client_init(struct client *c, const struct copts *o, struct bytes *in,
                        struct bytes *out)
{
    memset(c, 0, sizeof(*c));
    c->in = in;
    c->out = out;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_ssl_init(&c->ssl);
    mbedtls_x509_crt_init(&c->ca);
    assert_int_equal(mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &cli_drbg);
    if (o->ca) {
        assert_int_equal(mbedtls_x509_crt_parse_file(&c->ca, o->ca), 0);
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    mbedtls_ssl_conf_min_version(&c->conf, 3, 1);
    mbedtls_ssl_conf_max_version(&c->conf, 3, o->max_minor ? o->max_minor : 3);
    if (o->suites)
        mbedtls_ssl_conf_ciphersuites(&c->conf, o->suites);
    if (o->curves)
        mbedtls_ssl_conf_curves(&c->conf, o->curves);
    if (!o->no_alpn)
        assert_int_equal(
            mbedtls_ssl_conf_alpn_protocols(&c->conf, o->alpn ? o->alpn : default_alpn), 0);
    mbedtls_ssl_conf_session_tickets(&c->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_renegotiation(&c->conf, o->renegotiation ? MBEDTLS_SSL_RENEGOTIATION_ENABLED
                                                              : MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_export_keys_ext_cb(&c->conf, cli_export, c);
    assert_int_equal(mbedtls_ssl_setup(&c->ssl, &c->conf), 0);
    assert_int_equal(mbedtls_ssl_set_hostname(&c->ssl, "localhost"), 0);
    if (o->resume)
        assert_int_equal(mbedtls_ssl_set_session(&c->ssl, o->resume), 0);
    mbedtls_ssl_set_bio(&c->ssl, c, cli_send, cli_recv, NULL);
}

static void client_fini(struct client *c)
{
    mbedtls_ssl_free(&c->ssl);
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
}

/* ---- a client and a server session joined through memory ---------------------------------- */

struct link {
    struct tls_session *srv;
    struct client cli;
    struct bytes c2s, s2c;
    struct bytes got;    /* plaintext the server read */
    struct bytes flight; /* everything the server sent during the handshake */
    struct fault sf;     /* how the server is fed and drained */
    ssize_t srv_rc;      /* 1 while running, else the read's final result */
    bool recording;      /* copy what the server sends into <flight> */
};

static void link_init(struct link *l, struct tls_config *cfg, const struct copts *o)
{
    memset(l, 0, sizeof(*l));
    l->srv = tls_session_create(cfg);
    assert_non_null(l->srv);
    l->srv_rc = 1;
    client_init(&l->cli, o, &l->s2c, &l->c2s);
}

static void link_fini(struct link *l)
{
    tls_session_destroy(l->srv);
    client_fini(&l->cli);
    bytes_free(&l->c2s);
    bytes_free(&l->s2c);
    bytes_free(&l->got);
    bytes_free(&l->flight);
}

/* Moves what the server queued to the client, in pieces. */
static bool drain_server(struct link *l)
{
    bool moved = false;
    size_t n;

    while ((n = tls_session_pending(l->srv)) > 0) {
        uint8_t *buf;

        n = chunk(&l->sf, n);
        buf = malloc(n);
        assert_int_equal(tls_session_take(l->srv, buf, n), n);
        bytes_push(&l->s2c, buf, n);
        if (l->recording)
            bytes_push(&l->flight, buf, n);
        free(buf);
        moved = true;
    }
    return moved;
}

/* Feeds <n> bytes to the server as one receive, in a buffer of exactly that size so that the
 * sanitizer sees any overrun; collects plaintext. Returns the last read's result. */
static ssize_t srv_feed(struct link *l, const uint8_t *p, size_t n)
{
    uint8_t *buf = malloc(n ? n : 1);
    struct tls_input in = {buf, n};
    ssize_t r;

    memcpy(buf, p, n);
    for (;;) {
        const uint8_t *plain;

        r = tls_session_read(l->srv, &in, &plain);
        if (r > 0) {
            bytes_push(&l->got, plain, (size_t)r);
            continue;
        }
        if (r == -EAGAIN)
            assert_int_equal(in.len, 0);
        else
            l->srv_rc = r;
        break;
    }
    free(buf);
    drain_server(l);
    return r;
}

static bool pump_server(struct link *l)
{
    bool moved = false;

    while (l->c2s.len > 0 && l->srv_rc == 1) {
        size_t n = chunk(&l->sf, l->c2s.len);
        uint8_t *p = malloc(n);

        memcpy(p, l->c2s.p, n);
        bytes_drop(&l->c2s, n);
        srv_feed(l, p, n);
        free(p);
        moved = true;
    }
    return drain_server(l) || moved;
}

/* Runs both handshakes to the end. 0, the client's mbedtls error, or -1 if the server
 * failed. */
static int link_handshake(struct link *l)
{
    int rc = 1;

    l->recording = true;
    for (int i = 0; i < 100000 && rc; i++) {
        rc = mbedtls_ssl_handshake(&l->cli.ssl);
        pump_server(l);
        if (rc != 0 && rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (l->srv_rc != 1) {
            rc = -1;
            break;
        }
    }
    l->recording = false;
    if (rc == 0 && (!tls_session_established(l->srv) || l->c2s.len != 0))
        rc = -2;
    return rc;
}

/* mbedtls_ssl_write() to the end, retrying after WANT_* with the same bytes, as mbedtls
 * requires. */
static void cli_write(struct link *l, const uint8_t *buf, size_t len)
{
    size_t off = 0;

    for (;;) {
        int rc = mbedtls_ssl_write(&l->cli.ssl, buf + off, len - off);

        if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ)
            continue;
        if (rc < 0)
            fail_msg("client write: -0x%04x", (unsigned)-rc);
        off += (size_t)rc;
        if (off == len)
            break;
    }
}

/* Reads exactly <want> bytes with mbedtls_ssl_read(), pumping the server as needed. A
 * WANT_WRITE from mbedtls_ssl_read() means: call it again. */
static void cli_read(struct link *l, uint8_t *out, size_t want)
{
    size_t got = 0;
    int idle = 0;

    while (got < want) {
        int rc = mbedtls_ssl_read(&l->cli.ssl, out + got, want - got);

        if (rc > 0) {
            got += (size_t)rc;
            idle = 0;
            continue;
        }
        if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
            fail_msg("client read: -0x%04x after %zu of %zu", (unsigned)-rc, got, want);
        if (!pump_server(l) && l->s2c.len == 0 && ++idle > 100)
            fail_msg("client read stalled after %zu of %zu", got, want);
    }
}

/* Seals through the session and hands the result to the client, as the engine's send path
 * would. */
static void srv_send(struct link *l, const struct iovec *iov, int iovcnt)
{
    size_t total = 0, bound;
    uint8_t *buf;
    ssize_t w;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    bound = tls_session_seal_bound(l->srv, total);
    buf = malloc(bound ? bound : 1);
    w = tls_session_seal(l->srv, iov, iovcnt, buf, bound);
    if (w < 0)
        fail_msg("seal: %zd", w);
    assert_true((size_t)w <= bound);
    bytes_push(&l->s2c, buf, (size_t)w);
    free(buf);
    drain_server(l);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 13 + seed * 101 + (i >> 9));
}

/* One message each way, checked. */
static void exchange(struct link *l, size_t n, unsigned seed)
{
    uint8_t *a = calloc(1, n + 1), *b = malloc(n + 1);
    struct iovec iov = {a, n};

    fill(a, n, seed);
    cli_write(l, a, n);
    pump_server(l);
    assert_int_equal(l->srv_rc, 1);
    assert_int_equal(l->got.len, n);
    assert_memory_equal(l->got.p, a, n);
    bytes_drop(&l->got, n);

    fill(a, n, seed + 1);
    srv_send(l, &iov, 1);
    cli_read(l, b, n);
    assert_memory_equal(a, b, n);
    free(a);
    free(b);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The client's side as a struct tls_record (write = client keys), from the keys the client
 * exported: crafts records mbedtls would never send and reads the server's alerts. From here
 * on the mbedtls client must not be used in the direction(s) taken over. */
static void client_record(struct link *l, struct tls_record *r)
{
    struct client *c = &l->cli;
    enum tls_aead aead = tls_aead_from_suite((uint16_t)c->ssl.session->ciphersuite);
    const uint8_t *ck = c->kb, *sk = c->kb + c->keylen, *civ = c->kb + 2 * c->keylen;

    memset(r, 0, sizeof(*r));
    assert_int_equal(tls_record_set_keys(r, aead, ck, civ, sk, civ + c->ivlen), 0);
    r->tx.seq = be64(c->ssl.cur_out_ctr);
    r->rx.seq = be64(c->ssl.in_ctr);
}

/* Seals <n> bytes of content <type> with <r> and feeds the record to the server. */
static ssize_t send_record(struct link *l, struct tls_record *r, uint8_t type, const void *p,
                           size_t n)
{
    struct iovec iov = {(void *)p, n};
    uint8_t buf[TLS_RECORD_MAX_PLAIN + TLS_RECORD_MAX_OVERHEAD];
    ssize_t w = tls_record_seal(r, type, &iov, 1, buf, sizeof(buf));

    assert_true(w > 0);
    return srv_feed(l, buf, (size_t)w);
}

/* Opens the next record the server sent, with <r>. Returns its plaintext length (type in
 * *<type>) or -1 when there is none. */
static ssize_t next_record(struct link *l, struct tls_record *r, uint8_t *type, uint8_t *out)
{
    ssize_t flen, n;
    uint8_t *p;

    if (l->s2c.len < TLS_RECORD_HEADER)
        return -1;
    flen = tls_record_frame(l->s2c.p);
    assert_true(flen >= 0);
    assert_true(l->s2c.len >= TLS_RECORD_HEADER + (size_t)flen);
    *type = l->s2c.p[0];
    n = tls_record_open(r, *type, l->s2c.p + TLS_RECORD_HEADER, (size_t)flen, &p);
    assert_true(n >= 0);
    memcpy(out, p, (size_t)n);
    bytes_drop(&l->s2c, TLS_RECORD_HEADER + (size_t)flen);
    return n;
}

static void expect_alert(struct link *l, struct tls_record *r, uint8_t level, uint8_t desc)
{
    uint8_t type, out[TLS_RECORD_MAX_PLAIN];

    assert_int_equal(next_record(l, r, &type, out), 2);
    assert_int_equal(type, TLS_CT_ALERT);
    assert_int_equal(out[0], level);
    assert_int_equal(out[1], desc);
}

/* Handshake message types (RFC 5246 section 7.4) in the plaintext part of a server flight, as
 * a bitmask, and the named curve of its ServerKeyExchange. */
static unsigned flight_types(const struct bytes *f, unsigned *curve)
{
    unsigned mask = 0;
    size_t off = 0;

    while (off + TLS_RECORD_HEADER <= f->len) {
        size_t len = (size_t)f->p[off + 3] << 8 | f->p[off + 4];
        const uint8_t *m = f->p + off + TLS_RECORD_HEADER;

        if (f->p[off] == TLS_CT_CHANGE_CIPHER_SPEC)
            break;
        for (size_t k = 0; f->p[off] == TLS_CT_HANDSHAKE && k + 4 <= len;) {
            size_t mlen = (size_t)m[k + 1] << 16 | (size_t)m[k + 2] << 8 | m[k + 3];

            mask |= 1u << (m[k] & 31);
            /* ServerKeyExchange, ECParameters: curve_type named_curve(3), NamedCurve. */
            if (m[k] == 12 && curve && m[k + 4] == 3)
                *curve = (unsigned)m[k + 5] << 8 | m[k + 6];
            k += 4 + mlen;
        }
        off += TLS_RECORD_HEADER + len;
    }
    return mask;
}

#define HS_CERTIFICATE         (1u << 11)
#define HS_SERVER_KEY_EXCHANGE (1u << 12)
#define HS_SERVER_HELLO        (1u << 2)
#define HS_NEW_SESSION_TICKET  (1u << 4)

static const struct copts plain_opts;

/* ---- config and transport ---------------------------------------------------------------- */

static void test_config_errors(void **state)
{
    struct tls_config_opts o = {0};
    char err[256], junk[320];
    FILE *f;

    (void)state;
    o.cert_file = "/nonexistent/cert.pem";
    o.key_file = ec_key;
    assert_null(tls_config_create(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));

    o.cert_file = ec_crt;
    o.key_file = ec2_key;
    assert_null(tls_config_create(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "does not match"));

    o.key_file = rsa_key;
    assert_null(tls_config_create(&o, err, sizeof(err)));

    snprintf(junk, sizeof(junk), "%s/junk.pem", cert_dir);
    f = fopen(junk, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    o.cert_file = junk;
    o.key_file = ec_key;
    assert_null(tls_config_create(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "junk.pem"));
    o.cert_file = ec_crt;
    o.key_file = junk;
    assert_null(tls_config_create(&o, NULL, 0));

    o.key_file = NULL;
    assert_null(tls_config_create(&o, err, sizeof(err)));

    o.cert_file = rsa_crt;
    o.key_file = rsa_key;
    tls_config_unref(tls_config_create(&o, err, sizeof(err)));
}

static void test_transport_plain(void **state)
{
    struct transport t = {0};
    uint8_t buf[] = "GET / HTTP/1.1\r\n\r\n", out[64];
    struct tls_input in = {buf, sizeof(buf) - 1};
    struct iovec iov[2] = {{buf, 4}, {buf + 4, 2}};
    const uint8_t *p;

    (void)state;
    assert_false(transport_is_tls(&t));
    assert_true(transport_established(&t));
    assert_int_equal(transport_read(&t, &in, &p), sizeof(buf) - 1);
    assert_ptr_equal(p, buf);
    assert_int_equal(in.len, 0);
    assert_int_equal(transport_read(&t, &in, &p), -EAGAIN);
    assert_int_equal(transport_pending(&t), 0);
    assert_int_equal(transport_seal_bound(&t, 6), 6);
    assert_int_equal(transport_seal(&t, iov, 2, out, 5), -ENOBUFS);
    assert_int_equal(transport_seal(&t, iov, 2, out, sizeof(out)), 6);
    assert_memory_equal(out, "GET / ", 6);
    assert_int_equal(transport_close(&t), 0);
    assert_string_equal(transport_reason(&t), "none");
    transport_fini(&t);
}

/* ---- handshakes -------------------------------------------------------------------------- */

static const size_t sizes[] = {0,    1,    2,    15,    16,    17,    100,   1000, 1400,
                               4096, 8191, 8192, 16383, 16384, 16385, 32768, 40000};

/* Full handshakes for each certificate type and suite, then data both ways at every size and
 * a clean close, offloaded, with no faults. */
static void test_handshake_suites(void **state)
{
    /* The first three for the ECDSA certificate, the last three for the RSA one. */
    static const struct {
        int suite;
        const char *name;
    } cases[] = {
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
         "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
         "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
         "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"},
        {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
        {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"},
        {MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
         "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"},
    };
    struct tls_config *ec = make_config(ec_crt, ec_key, true);
    struct tls_config *rsa = make_config(rsa_crt, rsa_key, true);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool is_rsa = i >= 3;
        int suites[] = {cases[i].suite, 0};
        struct copts o = {.ca = is_rsa ? rsa_crt : ec_crt, .suites = suites};
        struct link l;
        uint8_t buf[8];

        link_init(&l, is_rsa ? rsa : ec, &o);
        assert_int_equal(link_handshake(&l), 0);
        assert_true(tls_session_established(l.srv));
        assert_true(tls_session_offloaded(l.srv));
        assert_false(tls_session_resumed(l.srv));
        assert_string_equal(tls_session_suite(l.srv), cases[i].name);
        assert_string_equal(mbedtls_ssl_get_alpn_protocol(&l.cli.ssl), "http/1.1");
        assert_true(flight_types(&l.flight, NULL) & HS_CERTIFICATE);
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
            exchange(&l, sizes[k], (unsigned)k);

        /* The server closes: its close_notify reaches the client's mbedtls. */
        assert_int_equal(tls_session_close(l.srv), 0);
        drain_server(&l);
        assert_int_equal(mbedtls_ssl_read(&l.cli.ssl, buf, sizeof(buf)),
                         MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
        link_fini(&l);
    }
    tls_config_unref(ec);
    tls_config_unref(rsa);
}

/* X25519 whenever the client offers it, even last; P-256 when that is all it has. */
static void test_curve_preference(void **state)
{
    static const mbedtls_ecp_group_id p256_first[] = {
        MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519,
        MBEDTLS_ECP_DP_NONE};
    static const mbedtls_ecp_group_id p256_only[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct copts o = {.ca = ec_crt, .curves = p256_first};
    struct link l;
    unsigned curve = 0;

    (void)state;
    link_init(&l, cfg, &o);
    assert_int_equal(link_handshake(&l), 0);
    assert_true(flight_types(&l.flight, &curve) & HS_SERVER_KEY_EXCHANGE);
    assert_int_equal(curve, 0x001d); /* x25519, RFC 8422 section 5.1.1 */
    link_fini(&l);

    o.curves = p256_only;
    link_init(&l, cfg, &o);
    assert_int_equal(link_handshake(&l), 0);
    flight_types(&l.flight, &curve);
    assert_int_equal(curve, 0x0017); /* secp256r1 */
    link_fini(&l);
    tls_config_unref(cfg);
}

/* RFC 7301 section 3.2: a client whose protocols do not include http/1.1 is refused with
 * no_application_protocol; one that sends no ALPN at all is served. */
static void test_alpn(void **state)
{
    static const char *h2_only[] = {"h2", NULL};
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct copts o = {.ca = ec_crt, .alpn = h2_only};
    struct link l;

    (void)state;
    link_init(&l, cfg, &o);
    assert_int_not_equal(link_handshake(&l), 0);
    assert_int_equal(l.srv_rc, -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_BAD_HANDSHAKE);
    link_fini(&l);

    o.alpn = NULL;
    o.no_alpn = true;
    link_init(&l, cfg, &o);
    assert_int_equal(link_handshake(&l), 0);
    assert_null(mbedtls_ssl_get_alpn_protocol(&l.cli.ssl));
    exchange(&l, 10, 1);
    link_fini(&l);
    tls_config_unref(cfg);
}

/*
 * Faults everywhere: the client's transport cuts reads and writes short and says WANT_READ or
 * WANT_WRITE before succeeding; the server is fed and drained in pieces of 1..N bytes; the
 * server's mbedtls gets WANT_WRITE from its send callback every few calls. Handshake, messages
 * of random sizes both ways, close. Offloaded and not.
 */
static void test_faults(void **state)
{
    struct tls_config *cfgs[2] = {make_config(ec_crt, ec_key, true),
                                  make_config(rsa_crt, rsa_key, false)};

    (void)state;
    for (unsigned seed = 1; seed <= 12; seed++) {
        for (int mode = 0; mode < 2; mode++) {
            struct copts o = {.ca = mode ? rsa_crt : ec_crt};
            unsigned r = seed;
            struct link l;
            uint8_t buf[8];

            link_init(&l, cfgs[mode], &o);
            l.cli.f = (struct fault){seed * 7919, 1 + (size_t)rand_r(&r) % 64, false, true};
            l.sf = (struct fault){seed * 104729, 1 + (size_t)rand_r(&r) % 100, false, false};
            tls__session_fault_writes(l.srv, 2 + seed % 3);
            assert_int_equal(link_handshake(&l), 0);
            assert_int_equal(tls_session_offloaded(l.srv), mode == 0);
            for (int k = 0; k < 12; k++)
                exchange(&l, (size_t)rand_r(&r) % (k % 4 == 0 ? 20000 : 300), seed + (unsigned)k);

            /* The client closes; the server answers with its own close_notify. */
            while (mbedtls_ssl_close_notify(&l.cli.ssl) == MBEDTLS_ERR_SSL_WANT_WRITE)
                ;
            pump_server(&l);
            assert_int_equal(l.srv_rc, 0);
            assert_int_equal(tls_session_reason(l.srv), TLS_R_CLOSE_NOTIFY);
            for (int k = 0; k < 1000; k++) {
                int rc = mbedtls_ssl_read(&l.cli.ssl, buf, sizeof(buf));

                if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
                    break;
                assert_true(rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
                assert_true(k < 999);
            }
            link_fini(&l);
        }
    }
    tls_config_unref(cfgs[0]);
    tls_config_unref(cfgs[1]);
}

/* ---- refusals ---------------------------------------------------------------------------- */

/* Does the server's plaintext output contain the fatal alert <desc>? */
static bool sent_fatal_alert(const struct link *l, uint8_t desc)
{
    for (size_t off = 0; off + 7 <= l->flight.len;) {
        const uint8_t *p = l->flight.p + off;
        size_t len = (size_t)p[3] << 8 | p[4];

        if (p[0] == TLS_CT_ALERT && len == 2 && p[5] == TLS_ALERT_FATAL && p[6] == desc)
            return true;
        off += TLS_RECORD_HEADER + len;
    }
    return false;
}

static void test_refuse_tls11(void **state)
{
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct copts o = {.max_minor = 2};
    struct link l;

    (void)state;
    link_init(&l, cfg, &o);
    assert_int_not_equal(link_handshake(&l), 0);
    assert_int_equal(l.srv_rc, -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_PROTOCOL_VERSION);
    assert_true(sent_fatal_alert(&l, TLS_ALERT_PROTOCOL_VERSION));
    assert_false(tls_session_established(l.srv));
    /* A failed session takes and refuses everything after. */
    assert_int_equal(srv_feed(&l, (const uint8_t *)"more", 4), -EPROTO);
    link_fini(&l);
    tls_config_unref(cfg);
}

static void test_refuse_no_common_suite(void **state)
{
    static const int cbc[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, 0};
    static const int static_rsa[] = {MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256, 0};
    struct tls_config *ec = make_config(ec_crt, ec_key, true);
    struct tls_config *rsa = make_config(rsa_crt, rsa_key, true);
    struct copts o = {.suites = cbc};
    struct link l;
    char why[200];

    (void)state;
    link_init(&l, ec, &o);
    assert_int_not_equal(link_handshake(&l), 0);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_NO_SHARED_CIPHER);
    assert_true(sent_fatal_alert(&l, TLS_ALERT_HANDSHAKE_FAILURE));
    assert_non_null(strstr(tls_session_describe(l.srv, why, sizeof(why)), "no_shared_cipher"));
    link_fini(&l);

    /* Static RSA key exchange: no forward secrecy, not offered. */
    o.suites = static_rsa;
    link_init(&l, rsa, &o);
    assert_int_not_equal(link_handshake(&l), 0);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_NO_SHARED_CIPHER);
    link_fini(&l);
    tls_config_unref(ec);
    tls_config_unref(rsa);
}

static void test_refuse_garbage(void **state)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct link l;

    (void)state;
    link_init(&l, cfg, &plain_opts);
    assert_int_equal(srv_feed(&l, (const uint8_t *)http, sizeof(http) - 1), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_BAD_HANDSHAKE);
    link_fini(&l);

    /* Three stray bytes, then a genuine ClientHello. */
    link_init(&l, cfg, &plain_opts);
    assert_int_equal(mbedtls_ssl_handshake(&l.cli.ssl), MBEDTLS_ERR_SSL_WANT_READ);
    srv_feed(&l, (const uint8_t *)"xyz", 3);
    pump_server(&l);
    assert_int_equal(l.srv_rc, -EPROTO);
    assert_false(tls_session_established(l.srv));
    link_fini(&l);
    tls_config_unref(cfg);
}

/* ---- resumption and reload --------------------------------------------------------------- */

static void test_resumption(void **state)
{
    struct tls_config *cfg = make_config(ec_crt, ec_key, true), *reloaded;
    mbedtls_ssl_session saved;
    struct copts o = {.ca = ec_crt};
    struct link l;
    size_t full_len;
    char err[200];

    (void)state;
    mbedtls_ssl_session_init(&saved);
    link_init(&l, cfg, &o);
    assert_int_equal(link_handshake(&l), 0);
    assert_false(tls_session_resumed(l.srv));
    assert_true(flight_types(&l.flight, NULL) & HS_NEW_SESSION_TICKET);
    assert_int_equal(mbedtls_ssl_get_session(&l.cli.ssl, &saved), 0);
    full_len = l.flight.len;
    link_fini(&l);

    /* Abbreviated handshake (RFC 5077 section 3.1): ServerHello, maybe a fresh ticket, then
     * ChangeCipherSpec; no Certificate, no key exchange. */
    o.resume = &saved;
    link_init(&l, cfg, &o);
    assert_int_equal(link_handshake(&l), 0);
    assert_true(tls_session_resumed(l.srv));
    assert_true(tls_session_offloaded(l.srv));
    assert_true(flight_types(&l.flight, NULL) & HS_SERVER_HELLO);
    assert_false(flight_types(&l.flight, NULL) & (HS_CERTIFICATE | HS_SERVER_KEY_EXCHANGE));
    assert_true(l.flight.len * 3 < full_len);
    exchange(&l, 5000, 3);
    link_fini(&l);

    /* In an abbreviated handshake the client speaks last: its Finished and its first data
     * arrive in one receive, and come out of one read. */
    link_init(&l, cfg, &o);
    for (int rc = 1; rc != 0;) {
        rc = mbedtls_ssl_handshake(&l.cli.ssl);
        assert_true(rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ);
        if (rc)
            pump_server(&l);
    }
    cli_write(&l, (const uint8_t *)"GET / HTTP/1.1\r\n", 16);
    assert_false(tls_session_established(l.srv));
    assert_int_equal(srv_feed(&l, l.c2s.p, l.c2s.len), -EAGAIN);
    assert_true(tls_session_resumed(l.srv));
    assert_true(tls_session_offloaded(l.srv));
    assert_int_equal(l.got.len, 16);
    link_fini(&l);

    /* Tickets survive a certificate reload: the keys are per process. */
    reloaded = tls_config_reload(cfg, ec2_crt, ec2_key, err, sizeof(err));
    assert_non_null(reloaded);
    link_init(&l, reloaded, &o);
    assert_int_equal(link_handshake(&l), 0);
    assert_true(tls_session_resumed(l.srv));
    exchange(&l, 100, 4);
    link_fini(&l);

    mbedtls_ssl_session_free(&saved);
    tls_config_unref(reloaded);
    tls_config_unref(cfg);
}

/* SIGHUP: a new config serves the new certificate to new connections, while a connection made
 * with the old one, and the old config's last reference, carry on. */
static void test_reload(void **state)
{
    char err[200];

    (void)state;
    for (int offload = 0; offload < 2; offload++) {
        struct tls_config *old = make_config(ec_crt, ec_key, offload), *cur;
        struct copts o_old = {.ca = ec_crt}, o_new = {.ca = ec2_crt};
        struct link l1, l2, l3;

        link_init(&l1, old, &o_old);
        assert_int_equal(link_handshake(&l1), 0);
        cur = tls_config_reload(old, ec2_crt, ec2_key, err, sizeof(err));
        assert_non_null(cur);
        assert_null(tls_config_reload(old, ec2_crt, ec_key, err, sizeof(err)));
        tls_config_unref(old); /* the engine drops its reference; l1 may still hold one */

        /* Only a client that trusts the new certificate gets through now. */
        link_init(&l2, cur, &o_new);
        assert_int_equal(link_handshake(&l2), 0);
        assert_int_equal(tls_session_offloaded(l2.srv), offload);
        link_init(&l3, cur, &o_old);
        assert_int_equal(link_handshake(&l3), MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
        assert_int_equal(tls_session_reason(l3.srv), TLS_R_PEER_ALERT);

        exchange(&l1, 3000, 1);
        exchange(&l2, 3000, 2);
        link_fini(&l1);
        link_fini(&l2);
        link_fini(&l3);
        tls_config_unref(cur);
    }
}

/* ---- the offloaded record layer against mbedtls's ------------------------------------------ */

/* Thousands of records, then the sequence numbers moved on both sides to where bytes carry
 * and to just short of the end, for every suite. */
static void test_offload_sequence_numbers(void **state)
{
    static const int suites[][2] = {
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0},
    };
    static const uint64_t jumps[] = {0xfd, 0xfffffffd, 0x00fffffffffffffd, 0xfffffffffffffff0};
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct copts o = {.suites = suites[i]};
        struct link l;

        link_init(&l, cfg, &o);
        assert_int_equal(link_handshake(&l), 0);
        /* Both counters are 1 after the Finished messages. */
        assert_int_equal(tls__session_record(l.srv)->tx.seq, 1);
        assert_int_equal(tls__session_record(l.srv)->rx.seq, 1);
        for (unsigned k = 0; k < 1500; k++)
            exchange(&l, 1 + k % 97, k);
        assert_int_equal(tls__session_record(l.srv)->tx.seq, 1501);
        for (size_t j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
            struct tls_record *r = tls__session_record(l.srv);

            put_be64(l.cli.ssl.cur_out_ctr, jumps[j]);
            r->rx.seq = jumps[j];
            put_be64(l.cli.ssl.in_ctr, jumps[j] + 1);
            r->tx.seq = jumps[j] + 1;
            for (unsigned k = 0; k < 6; k++)
                exchange(&l, k == 3 ? 16384 : 200 + k, k);
            assert_int_equal(be64(l.cli.ssl.cur_out_ctr), jumps[j] + 6);
        }
        link_fini(&l);
    }
    tls_config_unref(cfg);
}

/* Captures the record the client's mbedtls makes for <msg>, without delivering it. */
static void capture(struct link *l, const char *msg, struct bytes *rec)
{
    cli_write(l, (const uint8_t *)msg, strlen(msg));
    bytes_push(rec, l->c2s.p, l->c2s.len);
    bytes_drop(&l->c2s, l->c2s.len);
}

/* A bit flipped in the explicit nonce, the ciphertext, the tag, or the header's type: the
 * server answers bad_record_mac, fatal, and stops. */
static void test_tamper(void **state)
{
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct tls_config *mb = make_config(ec_crt, ec_key, false);

    (void)state;
    /* The four places offloaded, then one with mbedtls's record layer for comparison. */
    for (int where = 0; where < 5; where++) {
        struct link l;
        struct bytes rec = {0};
        struct tls_record cr;
        size_t pos[] = {0, TLS_RECORD_HEADER + 3, TLS_RECORD_HEADER + 8 + 2, 0, 0};

        link_init(&l, where < 4 ? cfg : mb, &plain_opts);
        assert_int_equal(link_handshake(&l), 0);
        client_record(&l, &cr);
        capture(&l, "tamper with me", &rec);
        pos[3] = pos[4] = rec.len - 1;
        rec.p[pos[where]] ^= where == 0 ? 0x01 : 0x40; /* type 23 -> 22 */
        assert_int_equal(srv_feed(&l, rec.p, rec.len), -EPROTO);
        assert_int_equal(tls_session_reason(l.srv), TLS_R_BAD_RECORD_MAC);
        assert_int_equal(l.got.len, 0);
        expect_alert(&l, &cr, TLS_ALERT_FATAL, TLS_ALERT_BAD_RECORD_MAC);
        assert_int_equal(tls_session_seal(l.srv, NULL, 0, rec.p, rec.len), -EPROTO);
        bytes_free(&rec);
        link_fini(&l);
    }
    tls_config_unref(cfg);
    tls_config_unref(mb);
}

static void test_replay_reorder(void **state)
{
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct bytes r1 = {0}, r2 = {0};
    struct link l;

    (void)state;
    /* Replay: the same record twice. */
    link_init(&l, cfg, &plain_opts);
    assert_int_equal(link_handshake(&l), 0);
    capture(&l, "pay alice 10", &r1);
    assert_int_equal(srv_feed(&l, r1.p, r1.len), -EAGAIN);
    assert_int_equal(l.got.len, 12);
    assert_int_equal(srv_feed(&l, r1.p, r1.len), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_BAD_RECORD_MAC);
    assert_int_equal(l.got.len, 12);
    link_fini(&l);

    /* Reorder: the second record first. */
    bytes_free(&r1);
    link_init(&l, cfg, &plain_opts);
    assert_int_equal(link_handshake(&l), 0);
    capture(&l, "first", &r1);
    capture(&l, "second", &r2);
    assert_int_equal(srv_feed(&l, r2.p, r2.len), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_BAD_RECORD_MAC);
    assert_int_equal(l.got.len, 0);
    link_fini(&l);
    bytes_free(&r1);
    bytes_free(&r2);
    tls_config_unref(cfg);
}

/* close_notify both ways, offloaded and with mbedtls's record layer. */
static void test_close_notify(void **state)
{
    (void)state;
    for (int offload = 0; offload < 2; offload++) {
        struct tls_config *cfg = make_config(ec_crt, ec_key, offload);
        struct iovec iov = {(void *)"late", 4};
        uint8_t buf[64];
        struct link l;

        /* Client first: the server reports the end (0), answers, and refuses to send. */
        link_init(&l, cfg, &plain_opts);
        assert_int_equal(link_handshake(&l), 0);
        exchange(&l, 10, 1);
        /* An empty record and data, received together. */
        cli_write(&l, (const uint8_t *)"", 0);
        cli_write(&l, (const uint8_t *)"abc", 3);
        pump_server(&l);
        assert_int_equal(l.got.len, 3);
        bytes_drop(&l.got, 3);
        assert_int_equal(mbedtls_ssl_close_notify(&l.cli.ssl), 0);
        pump_server(&l);
        assert_int_equal(l.srv_rc, 0);
        assert_int_equal(tls_session_reason(l.srv), TLS_R_CLOSE_NOTIFY);
        assert_int_equal(mbedtls_ssl_read(&l.cli.ssl, buf, sizeof(buf)),
                         MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
        assert_int_equal(tls_session_seal(l.srv, &iov, 1, buf, sizeof(buf)), -EPIPE);
        assert_int_equal(srv_feed(&l, buf, 10), 0); /* anything after is ignored */
        link_fini(&l);

        /* Server first: the client sees it; data from the client still arrives until its
         * own close_notify. */
        link_init(&l, cfg, &plain_opts);
        assert_int_equal(link_handshake(&l), 0);
        assert_int_equal(tls_session_close(l.srv), 0);
        assert_int_equal(tls_session_close(l.srv), 0);
        drain_server(&l);
        assert_int_equal(tls_session_seal(l.srv, &iov, 1, buf, sizeof(buf)), -EPIPE);
        assert_int_equal(mbedtls_ssl_read(&l.cli.ssl, buf, sizeof(buf)),
                         MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
        cli_write(&l, (const uint8_t *)"bye", 3);
        assert_int_equal(mbedtls_ssl_close_notify(&l.cli.ssl), 0);
        pump_server(&l);
        assert_int_equal(l.got.len, 3);
        assert_int_equal(l.srv_rc, 0);
        assert_int_equal(tls_session_pending(l.srv), 0); /* no second close_notify */
        link_fini(&l);
        tls_config_unref(cfg);
    }
}

/*
 * A renegotiating ClientHello after the handshake gets a no_renegotiation warning and the
 * connection carries on (RFC 5246 section 7.2.2). With mbedtls's record layer and WANT_WRITE
 * injected on the server, this is the path where mbedtls_ssl_read() returns WANT_WRITE; the data
 * sealed next must still arrive whole.
 */
static void test_renegotiation_refused(void **state)
{
    (void)state;
    for (int offload = 0; offload < 2; offload++) {
        struct tls_config *cfg = make_config(ec_crt, ec_key, offload);
        struct copts o = {.renegotiation = true};
        uint8_t type, out[TLS_RECORD_MAX_PLAIN];
        struct iovec iov = {(void *)"still here", 10};
        struct tls_record cr;
        struct link l;
        int rc;

        link_init(&l, cfg, &o);
        assert_int_equal(link_handshake(&l), 0);
        exchange(&l, 100, 1);
        if (!offload)
            tls__session_fault_writes(l.srv, 1);
        rc = mbedtls_ssl_renegotiate(&l.cli.ssl);
        assert_true(rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
        client_record(&l, &cr);
        pump_server(&l);
        assert_int_equal(l.srv_rc, 1);
        expect_alert(&l, &cr, TLS_ALERT_WARNING, TLS_ALERT_NO_RENEGOTIATION);
        assert_int_equal(l.s2c.len, 0);

        /* The connection goes on, both ways (the client side now crafted by hand, as the
         * mbedtls client sits in its renegotiation). */
        srv_send(&l, &iov, 1);
        assert_int_equal(next_record(&l, &cr, &type, out), 10);
        assert_int_equal(type, TLS_CT_APPLICATION_DATA);
        assert_memory_equal(out, "still here", 10);
        assert_int_equal(send_record(&l, &cr, TLS_CT_APPLICATION_DATA, "ok", 2), -EAGAIN);
        assert_int_equal(l.got.len, 2);
        link_fini(&l);
        tls_config_unref(cfg);
    }
}

/* Records no mbedtls client would send, crafted with the client's keys. */
static void test_records_after_handshake(void **state)
{
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct tls_record cr;
    struct link l;
    uint8_t big[TLS_RECORD_HEADER + TLS_RECORD_MAX_FRAGMENT + 1] = {0};

    (void)state;
#define FRESH()                                                                                    \
    do {                                                                                           \
        link_init(&l, cfg, &plain_opts);                                                           \
        assert_int_equal(link_handshake(&l), 0);                                                   \
        client_record(&l, &cr);                                                                    \
    } while (0)

    /* Empty application data: allowed (RFC 5246 section 6.2.1), but not forever. Our sealer
     * never makes empty records; mbedtls's does. */
    FRESH();
    for (int i = 0; i < 3; i++) {
        cli_write(&l, (const uint8_t *)"", 0);
        assert_int_equal(l.c2s.len, TLS_RECORD_HEADER + 8 + 16);
        pump_server(&l);
    }
    cli_write(&l, (const uint8_t *)"x", 1);
    for (int i = 0; i < 4; i++)
        cli_write(&l, (const uint8_t *)"", 0);
    client_record(&l, &cr);
    pump_server(&l);
    assert_int_equal(l.got.len, 1);
    assert_int_equal(l.srv_rc, -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_UNEXPECTED_MESSAGE);
    expect_alert(&l, &cr, TLS_ALERT_FATAL, TLS_ALERT_UNEXPECTED_MESSAGE);
    link_fini(&l);

    /* ChangeCipherSpec belongs to handshakes only. */
    FRESH();
    assert_int_equal(send_record(&l, &cr, TLS_CT_CHANGE_CIPHER_SPEC, "\x01", 1), -EPROTO);
    expect_alert(&l, &cr, TLS_ALERT_FATAL, TLS_ALERT_UNEXPECTED_MESSAGE);
    link_fini(&l);

    /* A handshake message other than ClientHello (here a Finished). */
    FRESH();
    assert_int_equal(send_record(&l, &cr, TLS_CT_HANDSHAKE, "\x14\x00\x00\x00", 4), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_UNEXPECTED_MESSAGE);
    link_fini(&l);

    /* A fatal alert from the client ends it, with nothing sent back. */
    FRESH();
    assert_int_equal(send_record(&l, &cr, TLS_CT_ALERT, "\x02\x28", 2), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_PEER_ALERT);
    assert_int_equal(l.s2c.len, 0);
    link_fini(&l);

    /* A warning is shrugged off; a malformed alert is not. */
    FRESH();
    assert_int_equal(send_record(&l, &cr, TLS_CT_ALERT, "\x01\x5a", 2), -EAGAIN);
    assert_int_equal(send_record(&l, &cr, TLS_CT_APPLICATION_DATA, "on", 2), -EAGAIN);
    assert_int_equal(l.got.len, 2);
    assert_int_equal(send_record(&l, &cr, TLS_CT_ALERT, "\x01\x00\x00", 3), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_DECODE_ERROR);
    expect_alert(&l, &cr, TLS_ALERT_FATAL, TLS_ALERT_DECODE_ERROR);
    link_fini(&l);

    /* Record version other than {3, 3}. */
    FRESH();
    assert_int_equal(srv_feed(&l, (const uint8_t *)"\x17\x03\x01\x00\x20", 5), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_PROTOCOL_VERSION);
    expect_alert(&l, &cr, TLS_ALERT_FATAL, TLS_ALERT_PROTOCOL_VERSION);
    link_fini(&l);

    /* Over 2^14 + 2048 in the header; over 2^14 of plaintext in the fragment. */
    FRESH();
    big[0] = TLS_CT_APPLICATION_DATA, big[1] = 3, big[2] = 3;
    big[3] = (TLS_RECORD_MAX_FRAGMENT + 1) >> 8, big[4] = (TLS_RECORD_MAX_FRAGMENT + 1) & 0xff;
    assert_int_equal(srv_feed(&l, big, 5), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_RECORD_OVERFLOW);
    expect_alert(&l, &cr, TLS_ALERT_FATAL, TLS_ALERT_RECORD_OVERFLOW);
    link_fini(&l);
    FRESH();
    big[3] = (16384 + 8 + 16 + 1) >> 8, big[4] = (16384 + 8 + 16 + 1) & 0xff;
    assert_int_equal(srv_feed(&l, big, TLS_RECORD_HEADER + 16384 + 8 + 16 + 1), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_RECORD_OVERFLOW);
    link_fini(&l);
#undef FRESH
    tls_config_unref(cfg);
}

static void test_seq_exhausted(void **state)
{
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct iovec iov = {(void *)"x", 1};
    uint8_t buf[64];
    struct tls_record cr;
    struct link l;

    (void)state;
    link_init(&l, cfg, &plain_opts);
    assert_int_equal(link_handshake(&l), 0);
    tls__session_record(l.srv)->tx.seq = UINT64_MAX - 1;
    assert_int_equal(tls_session_seal(l.srv, &iov, 1, buf, sizeof(buf)), 1 + 29);
    assert_int_equal(tls_session_seal(l.srv, &iov, 1, buf, sizeof(buf)), -EOVERFLOW);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_SEQ_EXHAUSTED);
    link_fini(&l);

    link_init(&l, cfg, &plain_opts);
    assert_int_equal(link_handshake(&l), 0);
    client_record(&l, &cr);
    tls__session_record(l.srv)->rx.seq = UINT64_MAX;
    assert_int_equal(send_record(&l, &cr, TLS_CT_APPLICATION_DATA, "x", 1), -EPROTO);
    assert_int_equal(tls_session_reason(l.srv), TLS_R_SEQ_EXHAUSTED);
    link_fini(&l);
    tls_config_unref(cfg);
}

/* ---- sealing for a broadcast ------------------------------------------------------------- */

/* One frame, shared, sealed once per recipient into that recipient's buffer; gathered pieces;
 * the exact bound; all or nothing when the buffer is short; queued bytes go first. */
static void test_broadcast_seal(void **state)
{
    enum { N = 4, TOTAL = 40000 };
    static const int suites[N][2] = {
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0},
        {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0},
    };
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct tls_config *mb = make_config(ec_crt, ec_key, false);
    uint8_t *frame = malloc(TOTAL), *out = malloc(TOTAL);
    struct link l[N];

    (void)state;
    fill(frame, TOTAL, 77);
    for (int i = 0; i < N; i++) {
        struct copts o = {.suites = suites[i]};

        link_init(&l[i], i == N - 1 ? mb : cfg, &o);
        assert_int_equal(link_handshake(&l[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        struct iovec iov[5] = {
            {frame, 10}, {frame + 10, 0}, {frame + 10, 20000}, {frame + 20010, 3}, {NULL, 0}};
        size_t bound;
        uint8_t *dst;

        iov[4].iov_base = frame + 20013;
        iov[4].iov_len = TOTAL - 20013;
        bound = tls_session_seal_bound(l[i].srv, TOTAL);
        dst = malloc(bound);
        assert_int_equal(tls_session_seal(l[i].srv, iov, 5, dst, bound - 1), -ENOBUFS);
        assert_int_equal(tls_session_seal(l[i].srv, iov, 5, dst, bound), (ssize_t)bound);
        bytes_push(&l[i].s2c, dst, bound);
        free(dst);
        cli_read(&l[i], out, TOTAL);
        assert_memory_equal(out, frame, TOTAL);
    }
    /* Queued bytes (a close_notify) come out ahead of the records of the same seal... which
     * then cannot be sealed at all: after close there is nothing more to send. */
    assert_int_equal(tls_session_close(l[0].srv), 0);
    assert_true(tls_session_pending(l[0].srv) > 0);
    assert_int_equal(tls_session_seal_bound(l[0].srv, 0), tls_session_pending(l[0].srv));
    for (int i = 0; i < N; i++)
        link_fini(&l[i]);
    free(frame);
    free(out);
    tls_config_unref(cfg);
    tls_config_unref(mb);
}

/* ---- memory ------------------------------------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__)
/* From the sanitizer's allocator interface: exact bytes in use by the program. */
size_t __sanitizer_get_current_allocated_bytes(void);
#define EXACT_HEAP 1
static size_t heap_used(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#define EXACT_HEAP 0
static size_t heap_used(void)
{
    /* glibc: includes chunk headers and what the per-thread cache holds: an upper bound. */
    return mallinfo2().uordblks;
}
#endif

/* Heap per established session, with the clients gone: mbedtls kept, or offloaded. */
static size_t per_session(struct tls_config *cfg, int n, struct link *l)
{
    size_t before, after;

    tls_thread_release_all(); /* spare buffers of earlier handshakes would be counted */
    before = heap_used();

    for (int i = 0; i < n; i++) {
        link_init(&l[i], cfg, &plain_opts);
        assert_int_equal(link_handshake(&l[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        client_fini(&l[i].cli);
        bytes_free(&l[i].c2s);
        bytes_free(&l[i].s2c);
        bytes_free(&l[i].got);
        bytes_free(&l[i].flight);
    }
    tls_thread_release_all(); /* the offloaded handshakes' spare buffers are not the sessions' */
    after = heap_used();
    for (int i = 0; i < n; i++)
        tls_session_destroy(l[i].srv);
    return after > before ? (after - before) / (size_t)n : 0;
}

static void test_memory(void **state)
{
    enum { N = 16 };
    struct tls_config *off = make_config(ec_crt, ec_key, true);
    struct tls_config *kept = make_config(ec_crt, ec_key, false);
    struct link *l = calloc(N, sizeof(*l)), warm;
    struct tls_session *s[N];
    struct bytes hello = {0};
    size_t base, during, with_mbedtls, offloaded, partial;
    struct tls_record cr;
    uint8_t rec[200];
    struct iovec iov = {(void *)"0123456789", 10};
    ssize_t w;

    (void)state;
    /* Warm up what is made once per thread or process (random generator, ticket key). */
    link_init(&warm, off, &plain_opts);
    assert_int_equal(link_handshake(&warm), 0);
    exchange(&warm, 10, 1);
    link_fini(&warm);

    /* During the handshake: each session has read a ClientHello and answered it. */
    link_init(&warm, off, &plain_opts);
    assert_int_equal(mbedtls_ssl_handshake(&warm.cli.ssl), MBEDTLS_ERR_SSL_WANT_READ);
    bytes_push(&hello, warm.c2s.p, warm.c2s.len);
    link_fini(&warm);
    tls_thread_release_all();
    base = heap_used();
    for (int i = 0; i < N; i++) {
        struct tls_input in;
        const uint8_t *p;
        uint8_t *copy = malloc(hello.len), sink[4096];

        memcpy(copy, hello.p, hello.len);
        in = (struct tls_input){copy, hello.len};
        s[i] = tls_session_create(off);
        assert_int_equal(tls_session_read(s[i], &in, &p), -EAGAIN);
        while (tls_session_take(s[i], sink, sizeof(sink)) > 0)
            ;
        free(copy);
    }
    during = (heap_used() - base) / N;
    for (int i = 0; i < N; i++)
        tls_session_destroy(s[i]);
    bytes_free(&hello);

    with_mbedtls = per_session(kept, N, l);
    offloaded = per_session(off, N, l);
    print_message("heap per session: handshaking %zu B, established with mbedtls %zu B, "
                  "offloaded %zu B%s\n",
                  during, with_mbedtls, offloaded, EXACT_HEAP ? "" : " (glibc upper bounds)");
    assert_true(during > 30000);
    assert_true(with_mbedtls > 30000);
    assert_true(offloaded < (EXACT_HEAP ? 256 : 1024));

    /* A partial record is buffered exactly while pending, then the buffer goes. */
    link_init(&warm, off, &plain_opts);
    assert_int_equal(link_handshake(&warm), 0);
    offloaded = tls_session_memory(warm.srv);
    print_message("idle offloaded session: %zu B, of which keys and sequence numbers %zu B\n",
                  offloaded, sizeof(struct tls_record));
    assert_true(offloaded < 256);
    client_record(&warm, &cr);
    w = tls_record_seal(&cr, TLS_CT_APPLICATION_DATA, &iov, 1, rec, sizeof(rec));
    assert_int_equal(srv_feed(&warm, rec, 3), -EAGAIN);
    assert_int_equal(tls_session_memory(warm.srv), offloaded);
    assert_int_equal(srv_feed(&warm, rec + 3, 10), -EAGAIN);
    partial = tls_session_memory(warm.srv);
    assert_int_equal(partial, offloaded + (size_t)w - TLS_RECORD_HEADER);
    assert_int_equal(srv_feed(&warm, rec + 13, (size_t)w - 13), -EAGAIN);
    assert_int_equal(warm.got.len, 10);
    srv_feed(&warm, rec, 0);
    assert_int_equal(tls_session_memory(warm.srv), offloaded);
    link_fini(&warm);

    free(l);
    tls_config_unref(off);
    tls_config_unref(kept);
}

/* The record buffers of finished handshakes: kept for the next ones, reused, and given back
 * to the system by the low-water trim; a handshake on dropped (zeroed) pages still works. */
static void test_spare_buffers(void **state)
{
    enum { N = 48 };
    struct tls_config *cfg = make_config(ec_crt, ec_key, true);
    struct link *l = calloc(N, sizeof(*l)), warm;
    struct tls_session *s[N];
    struct bytes hello = {0};

    (void)state;
    tls_thread_release_all();
    assert_int_equal(tls_thread_spares(), 0);
    /* One after another, each handshake reuses the buffers of the one before. */
    for (int i = 0; i < 3; i++) {
        link_init(&l[i], cfg, &plain_opts);
        assert_int_equal(link_handshake(&l[i]), 0);
        assert_int_equal(tls_thread_spares(), 2);
    }
    for (int i = 0; i < 3; i++)
        link_fini(&l[i]);
    /* A storm: N handshakes under way at once (each has answered a ClientHello), then all
     * gone: their buffers stay on the list. */
    link_init(&warm, cfg, &plain_opts);
    assert_int_equal(mbedtls_ssl_handshake(&warm.cli.ssl), MBEDTLS_ERR_SSL_WANT_READ);
    bytes_push(&hello, warm.c2s.p, warm.c2s.len);
    link_fini(&warm);
    for (int i = 0; i < N; i++) {
        uint8_t *copy = malloc(hello.len), sink[4096];
        struct tls_input in = {copy, hello.len};
        const uint8_t *p;

        memcpy(copy, hello.p, hello.len);
        s[i] = tls_session_create(cfg);
        assert_int_equal(tls_session_read(s[i], &in, &p), -EAGAIN);
        while (tls_session_take(s[i], sink, sizeof(sink)) > 0)
            ;
        free(copy);
    }
    assert_int_equal(tls_thread_spares(), 0);
    for (int i = 0; i < N; i++)
        tls_session_destroy(s[i]);
    bytes_free(&hello);
    assert_int_equal(tls_thread_spares(), 2 * N);
    /* A tick keeps what was needed since the last one (the low-water mark) ... */
    tls_thread_tick();
    assert_int_equal(tls_thread_release(1000), 0);
    assert_int_equal(tls_thread_spares(), 2 * N);
    /* ... and after a period in which none was needed, all but 64 go, as few at a time as
     * the caller asks. */
    tls_thread_tick();
    assert_int_equal(tls_thread_release(8), 2 * N - 64 - 8);
    assert_int_equal(tls_thread_spares(), 2 * N - 8);
    assert_int_equal(tls_thread_release(1000), 0);
    assert_int_equal(tls_thread_spares(), 64);
    /* Handshakes and data on buffers whose pages were dropped. */
    for (int i = 0; i < N; i++) {
        link_init(&l[i], cfg, &plain_opts);
        assert_int_equal(link_handshake(&l[i]), 0);
        exchange(&l[i], 3000, (unsigned)i);
    }
    tls_thread_tick();
    tls_thread_tick();
    tls_thread_release(1000);
    tls_thread_release_all();
    assert_int_equal(tls_thread_spares(), 0);
    for (int i = 0; i < N; i++)
        link_fini(&l[i]);
    tls_thread_release_all();
    free(l);
    tls_config_unref(cfg);
}

static int setup_group(void **state)
{
    static const char pers[] = "test_tls client";

    mbedtls_entropy_init(&cli_entropy);
    mbedtls_ctr_drbg_init(&cli_drbg);
    if (mbedtls_ctr_drbg_seed(&cli_drbg, mbedtls_entropy_func, &cli_entropy,
                              (const unsigned char *)pers, sizeof(pers)) != 0)
        return -1;
    return gen_certs(state);
}

static int teardown_group(void **state)
{
    mbedtls_ctr_drbg_free(&cli_drbg);
    mbedtls_entropy_free(&cli_entropy);
    return rm_certs(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_spare_buffers),
        cmocka_unit_test(test_transport_plain),
        cmocka_unit_test(test_handshake_suites),
        cmocka_unit_test(test_curve_preference),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_refuse_tls11),
        cmocka_unit_test(test_refuse_no_common_suite),
        cmocka_unit_test(test_refuse_garbage),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_offload_sequence_numbers),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_replay_reorder),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_records_after_handshake),
        cmocka_unit_test(test_seq_exhausted),
        cmocka_unit_test(test_broadcast_seal),
        cmocka_unit_test(test_memory),
    };

    return cmocka_run_group_tests_name("tls", tests, setup_group, teardown_group);
}
