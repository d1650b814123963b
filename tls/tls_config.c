/* SPDX-License-Identifier: MIT */
/*
 * tls_config: the shared, read-only server configuration, its reload, the per-thread random
 * generator and the process-wide ticket keys. See tls.h.
 */
#include "tls_internal.h"

#include <errno.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers ---------------------------------------------------------------------- */

/*
 * mbedtls_ctr_drbg_random() is thread-safe here (Debian builds MBEDTLS_THREADING_PTHREAD), but
 * through a mutex every handshake on every shard would take several times. One generator per
 * thread avoids that; the entropy pool (38 KB, with its own mutex) is shared and only touched when
 * a generator seeds or reseeds.
 */
static mbedtls_entropy_context entropy;
static pthread_once_t entropy_once = PTHREAD_ONCE_INIT;
static _Thread_local mbedtls_ctr_drbg_context drbg;
static _Thread_local bool drbg_ready;

static void entropy_init_once(void)
{
    mbedtls_entropy_init(&entropy);
}

int tls__rng(void *unused, unsigned char *out, size_t len)
{
    (void)unused;
    if (!drbg_ready) {
        /* The personalization string keeps two threads seeded in the same instant apart. */
        static const char pers[] = "ringcast tls";
        unsigned char p[sizeof(pers) + sizeof(void *)];
        void *self = &drbg;
        int err;

        pthread_once(&entropy_once, entropy_init_once);
        memcpy(p, pers, sizeof(pers));
        memcpy(p + sizeof(pers), &self, sizeof(self));
        mbedtls_ctr_drbg_init(&drbg);
        err = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, p, sizeof(p));
        if (err)
            return err;
        drbg_ready = true;
    }
    /* The _with_add variant takes no lock: this generator is used by its own thread only. */
    while (len > 0) {
        size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
        int err = mbedtls_ctr_drbg_random_with_add(&drbg, out, n, NULL, 0);

        if (err)
            return err;
        out += n;
        len -= n;
    }
    return 0;
}

/* ---- config ------------------------------------------------------------------------------ */

/*
 * Server preference order (mbedtls 2.28 servers pick from their own list): ECDHE only (forward
 * secrecy), AEAD only (what the offloaded record layer runs), AES-GCM first because AES-NI makes
 * it the cheapest here, ChaCha20-Poly1305 for clients without AES hardware. mbedtls drops the
 * suites whose signature does not match the certificate's key.
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

/* mbedtls 2.28's server walks its own list first and takes the first curve the client offers
 * (ssl_srv.c, ssl_write_server_key_exchange), so X25519 wins whenever the client has it. */
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};

/* RFC 7301: WebSocket over TLS starts as HTTP/1.1 (RFC 6455 section 4.1). */
static const char *alpn[] = {"http/1.1", NULL};

#define TICKET_LIFETIME_DEFAULT 3600

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static void set_mbedtls_err(char *err, size_t err_len, const char *what, const char *file, int code)
{
    char text[128];

    mbedtls_strerror(code, text, sizeof(text));
    set_err(err, err_len, "tls: %s '%s': %s", what, file, text);
}

static void tickets_unref(struct tls_tickets *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        mbedtls_ssl_ticket_free(&t->ctx);
        free(t);
    }
}

static struct tls_tickets *tickets_create(uint32_t lifetime, char *err, size_t err_len)
{
    struct tls_tickets *t = calloc(1, sizeof(*t));
    int rc;

    if (!t) {
        set_err(err, err_len, "tls: out of memory");
        return NULL;
    }
    mbedtls_ssl_ticket_init(&t->ctx);
    /* The key is drawn here from the generator, so it is random per process and never leaves
     * memory; mbedtls draws a new one every <lifetime> seconds. */
    rc = mbedtls_ssl_ticket_setup(&t->ctx, tls__rng, NULL, MBEDTLS_CIPHER_AES_256_GCM, lifetime);
    if (rc) {
        set_mbedtls_err(err, err_len, "cannot set up session tickets", "-", rc);
        mbedtls_ssl_ticket_free(&t->ctx);
        free(t);
        return NULL;
    }
    atomic_init(&t->refs, 1);
    return t;
}

static void config_free(struct tls_config *cfg)
{
    mbedtls_ssl_config_free(&cfg->conf);
    mbedtls_x509_crt_free(&cfg->chain);
    mbedtls_pk_free(&cfg->key);
    tickets_unref(cfg->tickets);
    free(cfg);
}

static int load_pair(struct tls_config *cfg, const char *cert_file, const char *key_file, char *err,
                     size_t err_len)
{
    int rc;

    rc = mbedtls_x509_crt_parse_file(&cfg->chain, cert_file);
    if (rc != 0) {
        /* A positive count means some certificates in the file failed to parse. */
        if (rc > 0)
            set_err(err, err_len, "tls: certificate '%s': %d certificate(s) did not parse",
                    cert_file, rc);
        else
            set_mbedtls_err(err, err_len, "cannot load certificate", cert_file, rc);
        return -EINVAL;
    }
    rc = mbedtls_pk_parse_keyfile(&cfg->key, key_file, NULL);
    if (rc != 0) {
        set_mbedtls_err(err, err_len, "cannot load key", key_file, rc);
        return -EINVAL;
    }
    if (!mbedtls_pk_can_do(&cfg->key, MBEDTLS_PK_RSA) &&
        !mbedtls_pk_can_do(&cfg->key, MBEDTLS_PK_ECDSA)) {
        set_err(err, err_len, "tls: key '%s': neither RSA nor ECDSA", key_file);
        return -EINVAL;
    }
    rc = mbedtls_pk_check_pair(&cfg->chain.pk, &cfg->key);
    if (rc != 0) {
        set_err(err, err_len, "tls: key '%s' does not match certificate '%s'", key_file, cert_file);
        return -EINVAL;
    }
    /* Shared by every shard without a lock of ours: an RSA key serializes its blinding state
     * behind its own mutex (MBEDTLS_THREADING_C), and an EC key parsed from PEM is an ECKEY that
     * mbedtls copies into a local ECDSA context for each signature (pk_wrap.c,
     * eckey_sign_wrap; Mbed-TLS/mbedtls#2034), so handshakes only ever read it. */
    return 0;
}

static int setup_conf(struct tls_config *cfg, char *err, size_t err_len)
{
    mbedtls_ssl_config *c = &cfg->conf;
    int rc;

    rc = mbedtls_ssl_config_defaults(c, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc)
        goto fail;
    /* TLS 1.0 and 1.1 are compiled into Debian's mbedtls: refuse them (RFC 8996). 1.3 is not
     * compiled in at all, so 1.2 is both floor and ceiling. */
    mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(c, suites);
    mbedtls_ssl_conf_curves(c, curves);
    mbedtls_ssl_conf_rng(c, tls__rng, NULL);
    mbedtls_ssl_conf_authmode(c, MBEDTLS_SSL_VERIFY_NONE);
    /* Renegotiation would need mbedtls back after offload; RFC 5746 section 4.4 lets a server
     * refuse it, and refusing legacy clients' unsafe renegotiation is mbedtls's default too. */
    mbedtls_ssl_conf_renegotiation(c, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_legacy_renegotiation(c, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
    rc = mbedtls_ssl_conf_alpn_protocols(c, alpn);
    if (rc)
        goto fail;
    rc = mbedtls_ssl_conf_own_cert(c, &cfg->chain, &cfg->key);
    if (rc)
        goto fail;
    mbedtls_ssl_conf_session_tickets_cb(c, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse,
                                        &cfg->tickets->ctx);
    mbedtls_ssl_conf_export_keys_ext_cb(c, tls__export_keys, NULL);
    return 0;
fail:
    set_mbedtls_err(err, err_len, "cannot configure", "-", rc);
    return -EINVAL;
}

static struct tls_config *config_build(const char *cert_file, const char *key_file, bool offload,
                                       uint32_t lifetime, struct tls_tickets *tickets, char *err,
                                       size_t err_len)
{
    struct tls_config *cfg;

    if (!cert_file || !key_file) {
        set_err(err, err_len, "tls: a certificate and a key file are both needed");
        return NULL;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        set_err(err, err_len, "tls: out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&cfg->conf);
    mbedtls_x509_crt_init(&cfg->chain);
    mbedtls_pk_init(&cfg->key);
    atomic_init(&cfg->refs, 1);
    cfg->offload = offload;
    cfg->ticket_lifetime_s = lifetime;
    if (tickets) {
        atomic_fetch_add_explicit(&tickets->refs, 1, memory_order_relaxed);
        cfg->tickets = tickets;
    } else {
        cfg->tickets = tickets_create(lifetime, err, err_len);
        if (!cfg->tickets)
            goto fail;
    }
    if (load_pair(cfg, cert_file, key_file, err, err_len) != 0)
        goto fail;
    if (setup_conf(cfg, err, err_len) != 0)
        goto fail;
    return cfg;
fail:
    config_free(cfg);
    return NULL;
}

struct tls_config *tls_config_create(const struct tls_config_opts *o, char *err, size_t err_len)
{
    uint32_t lifetime = o->ticket_lifetime_s ? o->ticket_lifetime_s : TICKET_LIFETIME_DEFAULT;

    return config_build(o->cert_file, o->key_file, !o->no_offload, lifetime, NULL, err, err_len);
}

struct tls_config *tls_config_reload(const struct tls_config *old, const char *cert_file,
                                     const char *key_file, char *err, size_t err_len)
{
    return config_build(cert_file, key_file, old->offload, old->ticket_lifetime_s, old->tickets,
                        err, err_len);
}

void tls_config_ref(struct tls_config *cfg)
{
    /* Relaxed: a new reference is always taken from an existing one. */
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

void tls_config_unref(struct tls_config *cfg)
{
    /* acq_rel: every earlier use by other threads happens before the free. */
    if (cfg && atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
        config_free(cfg);
}
