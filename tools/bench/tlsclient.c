/* SPDX-License-Identifier: MIT */
/*
 * tlsclient: mbedtls 2.28 client sessions over memory callbacks. See tlsclient.h.
 *
 * The receive callback takes bytes from what tlsc_feed() lent (after any kept by
 * tlsc_feed_end()) and says WANT_READ when there are none; the send callback appends to the
 * ciphertext queue up to its bound and says WANT_WRITE beyond it. So mbedtls never blocks and
 * never touches a socket: the worker's io_uring receives and sends are the transport.
 */
#include "tlsclient.h"

#include <errno.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_internal.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tlsc_config {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_ssl_session saved;
    bool have_saved;
    char sni[300];
};

struct tlsc {
    mbedtls_ssl_context ssl;
    struct tlsc_config *cfg;
    const uint8_t *in; /* lent by tlsc_feed() */
    size_t in_len;
    uint8_t *stash; /* input kept by tlsc_feed_end(), read before <in> */
    size_t stash_off, stash_len, stash_cap;
    uint8_t *out; /* ciphertext queue */
    uint32_t out_len, out_cap;
    size_t out_max;
    size_t wlen; /* length of the write that met a full queue: the retry must repeat it */
    int err;
    bool established;
    bool resumed;
    bool offered;
    bool blocked;
};

/*
 * What the client offers, as the broker's server list (tls/tls_config.c): ECDHE only, AEAD only,
 * AES-GCM first. The server picks from its own order.
 */
static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

/* X25519 first, as browsers offer it; P-256 for servers without it. */
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};

/* RFC 7301: a WebSocket opening handshake is an HTTP/1.1 request (RFC 6455 section 4.1). */
static const char *alpn[] = {"http/1.1", NULL};

/* ---------------------------------------------------------------------------------------------
 * Config
 * -------------------------------------------------------------------------------------------*/

static void set_err(char *err, size_t len, const char *what, int code)
{
    char text[128];
    if (!len)
        return;
    mbedtls_strerror(code, text, sizeof(text));
    snprintf(err, len, "%s: %s", what, text);
}

struct tlsc_config *tlsc_config_create(const struct tlsc_config_opts *o, char *err, size_t err_len)
{
    struct tlsc_config *cfg = calloc(1, sizeof(*cfg));
    char pers[64];
    int r;

    if (!cfg) {
        snprintf(err, err_len, "tls: out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&cfg->conf);
    mbedtls_entropy_init(&cfg->entropy);
    mbedtls_ctr_drbg_init(&cfg->drbg);
    mbedtls_x509_crt_init(&cfg->ca);
    mbedtls_ssl_session_init(&cfg->saved);
    if (o->sni && strlen(o->sni) >= sizeof(cfg->sni)) {
        snprintf(err, err_len, "tls: server name too long");
        goto fail;
    }
    snprintf(cfg->sni, sizeof(cfg->sni), "%s", o->sni ? o->sni : "");

    /* Personalised with the pid: every worker is a fork of one parent, and each must draw its
     * own randomness (client randoms, ECDHE keys). */
    int pn = snprintf(pers, sizeof(pers), "ringcast-bench %ld", (long)getpid());
    r = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
                              (const unsigned char *)pers, (size_t)pn);
    if (r) {
        set_err(err, err_len, "tls: seeding the random generator", r);
        goto fail;
    }
    r = mbedtls_ssl_config_defaults(&cfg->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT);
    if (r) {
        set_err(err, err_len, "tls: configuring", r);
        goto fail;
    }
    /* Debian's mbedtls has TLS 1.0 and 1.1 compiled in and no TLS 1.3: 1.2 is floor and
     * ceiling (PLATFORM.md section 3). */
    mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&cfg->conf, suites);
    mbedtls_ssl_conf_curves(&cfg->conf, curves);
    mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
    mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_renegotiation(&cfg->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    r = mbedtls_ssl_conf_alpn_protocols(&cfg->conf, alpn);
    if (r) {
        set_err(err, err_len, "tls: ALPN", r);
        goto fail;
    }
    if (o->ca_file) {
        r = mbedtls_x509_crt_parse_file(&cfg->ca, o->ca_file);
        if (r) {
            char what[600];
            snprintf(what, sizeof(what), "tls: CA file '%s'", o->ca_file);
            if (r > 0)
                snprintf(err, err_len, "%s: %d certificate(s) did not parse", what, r);
            else
                set_err(err, err_len, what, r);
            goto fail;
        }
        mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
        mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    return cfg;
fail:
    tlsc_config_destroy(cfg);
    return NULL;
}

void tlsc_config_destroy(struct tlsc_config *cfg)
{
    if (!cfg)
        return;
    mbedtls_ssl_session_free(&cfg->saved);
    mbedtls_x509_crt_free(&cfg->ca);
    mbedtls_ssl_config_free(&cfg->conf);
    mbedtls_ctr_drbg_free(&cfg->drbg);
    mbedtls_entropy_free(&cfg->entropy);
    free(cfg);
}

int tlsc_config_save_session(struct tlsc_config *cfg, const struct tlsc *t)
{
    mbedtls_ssl_session s;
    if (!t->established)
        return -ENOTCONN;
    mbedtls_ssl_session_init(&s);
    if (mbedtls_ssl_get_session(&t->ssl, &s) != 0) {
        mbedtls_ssl_session_free(&s);
        return -ENOMEM;
    }
    if (s.ticket_len == 0 && s.id_len == 0) {
        mbedtls_ssl_session_free(&s);
        return -ENOENT;
    }
    mbedtls_ssl_session_free(&cfg->saved);
    /* A plain struct owning its heap pointers (ticket, peer certificate): moving it is fine. */
    cfg->saved = s;
    cfg->have_saved = true;
    return 0;
}

bool tlsc_config_has_session(const struct tlsc_config *cfg)
{
    return cfg->have_saved;
}

/* ---------------------------------------------------------------------------------------------
 * Memory callbacks
 * -------------------------------------------------------------------------------------------*/

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tlsc *t = ctx;
    size_t room = t->out_max > t->out_len ? t->out_max - t->out_len : 0;
    if (room == 0)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (len > room)
        len = room; /* a partial write: mbedtls keeps the rest and asks again */
    if ((size_t)t->out_len + len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 1024;
        while (cap < (size_t)t->out_len + len)
            cap *= 2;
        uint8_t *p = realloc(t->out, cap);
        if (!p)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        t->out = p;
        t->out_cap = (uint32_t)cap;
    }
    memcpy(t->out + t->out_len, buf, len);
    t->out_len += (uint32_t)len;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tlsc *t = ctx;
    if (t->stash_off < t->stash_len) {
        size_t n = t->stash_len - t->stash_off;
        if (n > len)
            n = len;
        memcpy(buf, t->stash + t->stash_off, n);
        t->stash_off += n;
        if (t->stash_off == t->stash_len) {
            /* Kept input is rare: give its memory back rather than hold it per connection. */
            free(t->stash);
            t->stash = NULL;
            t->stash_off = t->stash_len = t->stash_cap = 0;
        }
        return (int)n;
    }
    if (t->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > t->in_len)
        len = t->in_len;
    memcpy(buf, t->in, len);
    t->in += len;
    t->in_len -= len;
    return (int)len;
}

/* ---------------------------------------------------------------------------------------------
 * Sessions
 * -------------------------------------------------------------------------------------------*/

struct tlsc *tlsc_create(struct tlsc_config *cfg, bool resume)
{
    struct tlsc *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    mbedtls_ssl_init(&t->ssl);
    t->cfg = cfg;
    t->out_max = TLSC_OUT_MAX;
    if (mbedtls_ssl_setup(&t->ssl, &cfg->conf) != 0)
        goto fail;
    if (cfg->sni[0] && mbedtls_ssl_set_hostname(&t->ssl, cfg->sni) != 0)
        goto fail;
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    if (resume && cfg->have_saved) {
        if (mbedtls_ssl_set_session(&t->ssl, &cfg->saved) != 0)
            goto fail;
        t->offered = true;
    }
    return t;
fail:
    tlsc_destroy(t);
    return NULL;
}

void tlsc_destroy(struct tlsc *t)
{
    if (!t)
        return;
    mbedtls_ssl_free(&t->ssl);
    free(t->out);
    free(t->stash);
    free(t);
}

void tlsc_feed(struct tlsc *t, const uint8_t *data, size_t len)
{
    t->in = data;
    t->in_len = len;
}

void tlsc_feed_end(struct tlsc *t)
{
    if (t->in_len) {
        size_t keep = t->stash_len - t->stash_off;
        if (t->stash_off) {
            memmove(t->stash, t->stash + t->stash_off, keep);
            t->stash_off = 0;
            t->stash_len = keep;
        }
        if (keep + t->in_len > t->stash_cap) {
            size_t cap = keep + t->in_len;
            uint8_t *p = realloc(t->stash, cap);
            if (!p) {
                fputs("ringcast-bench: out of memory\n", stderr);
                _exit(3);
            }
            t->stash = p;
            t->stash_cap = cap;
        }
        memcpy(t->stash + keep, t->in, t->in_len);
        t->stash_len = keep + t->in_len;
    }
    t->in = NULL;
    t->in_len = 0;
}

/* WANT_READ and WANT_WRITE of a handshake or read become -EAGAIN and -ENOBUFS; the rest is
 * fatal and sticky. */
static int map_io(struct tlsc *t, int r)
{
    if (r == MBEDTLS_ERR_SSL_WANT_READ)
        return -EAGAIN;
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        t->blocked = true;
        return -ENOBUFS;
    }
    t->err = r;
    return -EPROTO;
}

int tlsc_handshake(struct tlsc *t)
{
    mbedtls_ssl_context *ssl = &t->ssl;
    t->blocked = false;
    if (t->established)
        return 0;
    if (t->err)
        return -EPROTO;
    while (ssl->state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        /* mbedtls_ssl_set_session() sets <resume>; the ServerHello clears it when the server
         * does not take the offer (2.28 ssl_cli.c, ssl_parse_server_hello), and the wrap-up step
         * frees the handshake state: so read it before every step, the way
         * mbedtls_ssl_handshake() runs them. */
        if (ssl->handshake)
            t->resumed = ssl->handshake->resume != 0;
        int r = mbedtls_ssl_handshake_step(ssl);
        if (r)
            return map_io(t, r);
    }
    t->established = true;
    return 0;
}

int tlsc_read(struct tlsc *t, uint8_t *buf, size_t cap)
{
    t->blocked = false;
    if (t->err)
        return -EPROTO;
    if (!t->established)
        return -ENOTCONN;
    int r = mbedtls_ssl_read(&t->ssl, buf, cap);
    if (r > 0)
        return r;
    /* 0 would be the transport's EOF, which these callbacks never report; the worker sees the
     * TCP FIN itself. */
    if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return 0;
    return map_io(t, r);
}

int tlsc_write(struct tlsc *t, const uint8_t *buf, size_t len)
{
    int r;
    if (t->err)
        return -EPROTO;
    if (!t->established)
        return -ENOTCONN;
    if (t->wlen) {
        /* mbedtls sealed this write's first record already and flushes it on the next call,
         * returning that call's length as written (2.28 ssl_msg.c, ssl_write_real): only the
         * same length over the same bytes keeps the count true. */
        if (len < t->wlen) {
            t->err = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
            return -EPROTO;
        }
        len = t->wlen;
    } else {
        if (len == 0)
            return 0;
        if (t->ssl.out_left) {
            /* A record that a read queued (an alert) is still waiting: by the same rule a write
             * now would flush it and report our bytes written without sealing them. */
            r = mbedtls_ssl_flush_output(&t->ssl);
            if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
                return -ENOBUFS;
            if (r) {
                t->err = r;
                return -EPROTO;
            }
        }
    }
    r = mbedtls_ssl_write(&t->ssl, buf, len);
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        t->wlen = len;
        return -ENOBUFS;
    }
    if (r < 0) {
        t->err = r;
        return -EPROTO;
    }
    t->wlen = 0;
    return r;
}

size_t tlsc_out_len(const struct tlsc *t)
{
    return t->out_len;
}

size_t tlsc_swap_out(struct tlsc *t, uint8_t **buf, uint32_t *cap)
{
    uint8_t *b = *buf;
    uint32_t c = *cap;
    size_t n = t->out_len;
    *buf = t->out;
    *cap = t->out_cap;
    t->out = b;
    t->out_cap = b ? c : 0;
    t->out_len = 0;
    return n;
}

bool tlsc_blocked(const struct tlsc *t)
{
    return t->blocked;
}

bool tlsc_established(const struct tlsc *t)
{
    return t->established;
}

bool tlsc_resumed(const struct tlsc *t)
{
    return t->established && t->resumed;
}

bool tlsc_offered(const struct tlsc *t)
{
    return t->offered;
}

const char *tlsc_suite(const struct tlsc *t)
{
    const char *s = t->established ? mbedtls_ssl_get_ciphersuite(&t->ssl) : NULL;
    return s ? s : "";
}

const char *tlsc_alpn(const struct tlsc *t)
{
    const char *s = t->established ? mbedtls_ssl_get_alpn_protocol(&t->ssl) : NULL;
    return s ? s : "";
}

int tlsc_error(const struct tlsc *t)
{
    return t->err;
}

const char *tlsc_strerror(int code, char *buf, size_t len)
{
    if (len)
        mbedtls_strerror(code, buf, len);
    return buf;
}

void tlsc_set_out_max(struct tlsc *t, size_t max)
{
    t->out_max = max;
}

size_t tlsc_memory(const struct tlsc *t)
{
    size_t n = sizeof(*t) + t->out_cap + t->stash_cap;
    if (t->ssl.in_buf)
        n += MBEDTLS_SSL_IN_BUFFER_LEN;
    if (t->ssl.out_buf)
        n += MBEDTLS_SSL_OUT_BUFFER_LEN;
    return n;
}
