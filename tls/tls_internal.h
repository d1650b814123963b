/* SPDX-License-Identifier: MIT */
/*
 * tls_internal: what tls_config.c and tls.c share, and the hooks the unit tests reach (nothing
 * outside tls/ and tests/unit/test_tls*.c includes this file). mbedtls 2.28 types appear here,
 * never in tls.h, so that moving to mbedtls 3.x touches this directory only.
 */
#ifndef RINGCAST_TLS_INTERNAL_H
#define RINGCAST_TLS_INTERNAL_H

#include "record.h"
#include "tls.h"

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Ticket keys: one set per process, shared by a config and all its reloads so that a ticket
 * issued before SIGHUP still resumes after it. mbedtls rotates the key every lifetime and
 * accepts the previous one (ssl_ticket.c keeps two); its mutex makes it safe from all shards. */
struct tls_tickets {
    mbedtls_ssl_ticket_context ctx;
    atomic_uint refs;
};

struct tls_config {
    mbedtls_ssl_config conf; /* read-only once built: mbedtls allows sharing it across threads */
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    struct tls_tickets *tickets;
    atomic_uint refs;
    bool offload;
    uint32_t ticket_lifetime_s;
};

/* The random generator given to mbedtls: a CTR-DRBG per thread, seeded from one process-wide
 * entropy pool, so shards never contend on a lock in handshakes. <unused> is ignored. */
int tls__rng(void *unused, unsigned char *out, size_t len);

/* mbedtls's key export callback (tls.c): hands the key block to the session whose handshake
 * is running on this thread. */
int tls__export_keys(void *unused, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                     size_t keylen, size_t ivlen, const unsigned char client_random[32],
                     const unsigned char server_random[32], mbedtls_tls_prf_types prf);

/* Test hook: make mbedtls's send callback for <s> answer MBEDTLS_ERR_SSL_WANT_WRITE on every
 * <every>-th call (0: never), so the retry paths run. Only matters while mbedtls runs <s>. */
void tls__session_fault_writes(struct tls_session *s, unsigned every);

/* Test hook: the offloaded record state of <s> (keys and sequence numbers). */
struct tls_record *tls__session_record(struct tls_session *s);

#endif
