/* SPDX-License-Identifier: MIT */
/*
 * tlsclient: the client side of TLS 1.2 for ringcast-bench's wss:// targets, mbedtls 2.28 behind
 * memory callbacks. No sockets and no io_uring: the worker hands in what its receives brought
 * (tlsc_feed), runs the handshake or reads plaintext, and sends whatever ciphertext the session
 * queued (tlsc_swap_out), so the TLS clients ride on the same io_uring receive path as plain
 * ones.
 *
 * struct tlsc_config is what one worker process shares among its connections: the mbedtls
 * configuration (TLS 1.2 only, ECDHE with AEAD suites, X25519 first, ALPN http/1.1, session
 * tickets on, no certificate verification unless a CA file is given), one CTR-DRBG seeded in
 * that process, and the session saved for resumption (--tls-resume). struct tlsc is one
 * connection: an mbedtls context (about 34 KiB with its two record buffers, plus the peer
 * certificate) and a queue of ciphertext to send.
 *
 * mbedtls results become negative errno values: WANT_READ is -EAGAIN (feed more bytes), WANT_WRITE
 * is -ENOBUFS (the ciphertext queue is full: send it, then call again), anything fatal is -EPROTO
 * with the mbedtls code kept for tlsc_error(). The queue is bounded (TLSC_OUT_MAX by default), so
 * WANT_WRITE is a real state here, with mbedtls's rule that a write which returned it must be
 * called again with the same bytes (tlsc_write).
 *
 * Keeps every mbedtls call of ringcast-bench in this file. Not thread-safe: a config and its
 * sessions belong to one thread of one process (make the config after fork()).
 */
#ifndef RINGCAST_BENCH_TLSCLIENT_H
#define RINGCAST_BENCH_TLSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ciphertext queued per connection before a write reports -ENOBUFS: four full records. */
#define TLSC_OUT_MAX (64u * 1024u)
/* Plaintext one tlsc_read() can return: one record (RFC 5246 section 6.2.1). */
#define TLSC_PLAIN_MAX 16384u

struct tlsc_config;
struct tlsc;

struct tlsc_config_opts {
    /* PEM file of trusted certificates: verify the server's chain and its name against <sni>.
     * NULL: no verification (a load generator usually talks to a self-signed test server). */
    const char *ca_file;
    /* Server name for SNI (RFC 6066 section 3) and, with <ca_file>, the name checked. NULL: none
     * sent. */
    const char *sni;
};

/*
 * A config for the calling process, with a CTR-DRBG seeded from the kernel. Returns NULL on
 * failure with a one-line reason in <err>: an unreadable or unparsable CA file, or no memory.
 * The caller owns the result; <o>'s strings are copied.
 */
struct tlsc_config *tlsc_config_create(const struct tlsc_config_opts *o, char *err, size_t err_len);

/* Frees <cfg> and its saved session. Every session made from it must be destroyed first.
 * NULL is allowed. Cannot fail. */
void tlsc_config_destroy(struct tlsc_config *cfg);

/*
 * Keeps the session of <t> (established) in <cfg> so that sessions created later with
 * <resume> offer it: its ticket (RFC 5077) or session id. Replaces any saved one. Returns 0, or
 * -ENOTCONN before the handshake is over, -ENOENT when the server gave neither a ticket nor a
 * session id (nothing to resume), -ENOMEM.
 */
int tlsc_config_save_session(struct tlsc_config *cfg, const struct tlsc *t);

/* Whether <cfg> holds a session to offer. Cannot fail. */
bool tlsc_config_has_session(const struct tlsc_config *cfg);

/*
 * A client session on <cfg> (borrowed for the session's life), offering <cfg>'s saved session
 * when <resume> is set and there is one. The ClientHello is produced by the first
 * tlsc_handshake(). NULL when out of memory.
 */
struct tlsc *tlsc_create(struct tlsc_config *cfg, bool resume);

/* Frees everything <t> owns. Sends nothing. NULL is allowed. Cannot fail. */
void tlsc_destroy(struct tlsc *t);

/*
 * Lends <t> the <len> received bytes at <data> until tlsc_feed_end(): the handshake and reads
 * take their input from there (after any bytes kept by an earlier tlsc_feed_end()).
 */
void tlsc_feed(struct tlsc *t, const uint8_t *data, size_t len);

/* Ends the loan of tlsc_feed(): copies whatever mbedtls did not take yet (it stopped on
 * -ENOBUFS, or the caller stopped reading) so that the caller may reuse its buffer. Aborts the
 * process when out of memory. */
void tlsc_feed_end(struct tlsc *t);

/*
 * Runs the handshake as far as the input allows. Returns 0 once it is complete (and on every
 * later call), -EAGAIN when it needs more input, -ENOBUFS when the ciphertext queue is full
 * (send it, then call again), -EPROTO when it failed (a fatal alert may be queued: sending it is
 * optional). Produces ciphertext to send in every case but -EAGAIN with nothing new to say.
 */
int tlsc_handshake(struct tlsc *t);

/*
 * Decrypts the next plaintext into <buf> (<cap> bytes; TLSC_PLAIN_MAX takes a whole record).
 * Returns the byte count, -EAGAIN when the input is used up, -ENOBUFS when mbedtls must send
 * something (an alert) and the queue is full: send it, then call again. 0: the server sent
 * close_notify. -EPROTO: the connection failed (bad record, fatal alert).
 */
int tlsc_read(struct tlsc *t, uint8_t *buf, size_t cap);

/*
 * Encrypts up to one record of the <len> bytes at <buf> into the ciphertext queue. Returns the
 * bytes taken (> 0; call again for the rest), 0 when <len> is 0, -ENOBUFS when the queue is
 * full: then the caller must call again, after sending, with the same bytes at the start of
 * <buf> (at least as many as before; mbedtls has already sealed them into a record and only
 * flushes it on the next call, reporting the count of that call as written), -ENOTCONN before
 * the handshake is over, -EPROTO on failure.
 */
int tlsc_write(struct tlsc *t, const uint8_t *buf, size_t len);

/* Bytes of ciphertext queued to send. Cannot fail. */
size_t tlsc_out_len(const struct tlsc *t);

/*
 * Gives the queued ciphertext: on return *<buf> (*<cap> bytes of capacity) holds it and the
 * session keeps the caller's former buffer (may be NULL) as its empty queue. Returns the number
 * of bytes given. Swapping instead of copying lets the caller send one buffer while the session
 * fills the other. Cannot fail.
 */
size_t tlsc_swap_out(struct tlsc *t, uint8_t **buf, uint32_t *cap);

/* True when the last tlsc_handshake() or tlsc_read() returned -ENOBUFS: once the queue has
 * been sent, call it again. Cannot fail. */
bool tlsc_blocked(const struct tlsc *t);

/* True once the handshake is complete. Cannot fail. */
bool tlsc_established(const struct tlsc *t);

/* True when the completed handshake was abbreviated (a resumed session). Cannot fail. */
bool tlsc_resumed(const struct tlsc *t);

/* True when <t> offered a saved session. Cannot fail. */
bool tlsc_offered(const struct tlsc *t);

/* The negotiated suite ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256") or "" before the handshake is
 * over; the ALPN protocol agreed ("http/1.1") or "" without one. Static or session storage. */
const char *tlsc_suite(const struct tlsc *t);
const char *tlsc_alpn(const struct tlsc *t);

/* The mbedtls error code of the last failure (negative), 0 when none. Cannot fail. */
int tlsc_error(const struct tlsc *t);

/* mbedtls's text for <code> into <buf> (NUL-terminated). Returns <buf>. Cannot fail. */
const char *tlsc_strerror(int code, char *buf, size_t len);

/* Test and tuning hook: the ciphertext queue's bound (TLSC_OUT_MAX by default; 0 makes every
 * write block). Cannot fail. */
void tlsc_set_out_max(struct tlsc *t, size_t max);

/* Heap bytes of <t>, mbedtls's record buffers included (an estimate). Cannot fail. */
size_t tlsc_memory(const struct tlsc *t);

#endif
