/* SPDX-License-Identifier: MIT */
/*
 * tls: server-side TLS 1.2 for wss://, mbedtls behind a byte pipe. No io_uring, no sockets.
 *
 * struct tls_config holds what every connection of a listener shares: the certificate chain and
 * key, the mbedtls configuration (TLS 1.2 only, ECDHE with AEAD suites, X25519 first, ALPN
 * http/1.1, renegotiation off) and the session-ticket keys. It is read-only once created and
 * reference-counted, so all shards use one, and a reload (SIGHUP) makes a new one that new
 * connections use while older ones keep theirs.
 *
 * struct tls_session is one connection. The engine feeds it received ciphertext and gets
 * plaintext back, asks it to seal plaintext into the connection's send buffer, and sends what it
 * has to say on its own (handshake flights, alerts). mbedtls runs the handshake through memory
 * callbacks; once it is complete the session exports the traffic keys, frees the whole mbedtls
 * context (about 40 KiB with its two 16 KiB record buffers) and runs the record layer itself
 * (record.h), so that an idle established session is one small heap object (about 190 bytes,
 * measured by the tests) and holds a buffer only while a partial record is pending.
 *
 * Does not: touch sockets, time anything (the engine's handshake timer covers the TLS
 * handshake), or act as a client.
 *
 * Shard rule: a session is used by one thread at a time (its shard). Configs may be used and
 * reference-counted from any thread.
 */
#ifndef RINGCAST_TLS_H
#define RINGCAST_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tls_config;
struct tls_session;

/* ---- config ------------------------------------------------------------------------------ */

struct tls_config_opts {
    const char *cert_file; /* PEM: leaf certificate first, then any intermediates */
    const char *key_file;  /* PEM: RSA or EC private key, unencrypted */
    /* Keep mbedtls's record layer after the handshake instead of the offloaded one, to compare
     * the two. Costs about 40 KiB per connection. */
    bool no_offload;
    /* Seconds a session ticket stays valid; the ticket key rotates on the same period. 0 means
     * 3600. */
    uint32_t ticket_lifetime_s;
};

/*
 * Loads <o>->cert_file and <o>->key_file and builds a config with one reference, owned by the
 * caller. The ticket key is random per process (made here, shared by reloads of this config).
 * Returns NULL on failure, with a one-line reason in <err> (<err_len> bytes, may be 0): an
 * unreadable or unparsable file, a key that does not match the certificate, or no memory. Does
 * not keep <o> or its strings.
 */
struct tls_config *tls_config_create(const struct tls_config_opts *o, char *err, size_t err_len);

/*
 * A new config with <cert_file> and <key_file> and every other setting of <old>, sharing its
 * ticket keys so that tickets issued before the reload stay valid. <old> is not changed and keeps
 * its reference; the caller owns the returned one. Meant for SIGHUP, from any thread. NULL on
 * failure, as tls_config_create().
 */
struct tls_config *tls_config_reload(const struct tls_config *old, const char *cert_file,
                                     const char *key_file, char *err, size_t err_len);

/* Reference counting, atomic, from any thread. The last unref frees. Cannot fail. */
void tls_config_ref(struct tls_config *cfg);
void tls_config_unref(struct tls_config *cfg);

/* ---- session ----------------------------------------------------------------------------- */

/* Why a session stopped or failed; tls_reason_name() gives a metrics label. */
enum tls_reason {
    TLS_R_NONE = 0,
    TLS_R_CLOSE_NOTIFY,       /* the peer closed cleanly */
    TLS_R_PEER_ALERT,         /* the peer sent a fatal alert */
    TLS_R_PROTOCOL_VERSION,   /* client without TLS 1.2, or a record not marked TLS 1.2 */
    TLS_R_NO_SHARED_CIPHER,   /* no common ECDHE AEAD suite or curve */
    TLS_R_BAD_HANDSHAKE,      /* malformed handshake, not TLS at all, bad ALPN, ... */
    TLS_R_BAD_RECORD_MAC,     /* a record failed authentication (tampered, replayed, reordered) */
    TLS_R_RECORD_OVERFLOW,    /* a record over the RFC 5246 limits */
    TLS_R_UNEXPECTED_MESSAGE, /* a record type or message not allowed now */
    TLS_R_DECODE_ERROR,       /* a malformed alert */
    TLS_R_SEQ_EXHAUSTED,      /* 2^64 - 1 records: RFC 5246 section 6.1 forbids wrapping */
    TLS_R_NO_MEMORY,
    TLS_R_INTERNAL,
};

/* A short, stable, metrics-label-safe name ("bad_record_mac"). Cannot fail. */
const char *tls_reason_name(enum tls_reason r);

/* A cursor over received bytes, owned by the caller. Writable: offloaded records are decrypted
 * in place. */
struct tls_input {
    uint8_t *data;
    size_t len;
};

/*
 * A server session using <cfg> (takes a reference, given back once the handshake is over unless
 * <cfg> has no_offload). Nothing is allocated for mbedtls until the first bytes arrive. NULL
 * when out of memory.
 */
struct tls_session *tls_session_create(struct tls_config *cfg);

/* Frees everything <s> owns, wiping keys. Sends nothing (call tls_session_close() first for a
 * clean close). Cannot fail; NULL is allowed. */
void tls_session_destroy(struct tls_session *s);

/*
 * Takes ciphertext from <in> and gives the next piece of plaintext: runs the handshake while it
 * lasts, then decrypts. Returns:
 *   > 0      bytes of plaintext at *<plain>, borrowed until the next tls_session_read() on this
 *            thread, of any session, or until <in>'s buffer is reused: it may point into that
 *            buffer, decrypted in place. Call again: <in> may hold more.
 *   -EAGAIN  all of <in> is taken and no plaintext is ready (a partial record, if any, is kept).
 *   0        the peer sent close_notify; our close_notify is queued (tls_session_pending()).
 *   -EPROTO  the connection failed; tls_session_reason() says why. A fatal alert may be queued:
 *            send it (best effort), then close.
 *   -ENOMEM  out of memory; the session is failed as for -EPROTO.
 * After 0 or an error, every later call returns the same value and takes all of <in>. Any call
 * can queue bytes to send: check tls_session_pending() after a batch of reads. Never calls back.
 */
ssize_t tls_session_read(struct tls_session *s, struct tls_input *in, const uint8_t **plain);

/* Bytes the session has queued to send on its own: handshake flights and alerts. Cannot fail. */
size_t tls_session_pending(const struct tls_session *s);

/* Copies up to <cap> of them into <dst> and drops them from the queue; returns the count. The
 * engine must send them before anything tls_session_seal() writes later. Cannot fail. */
size_t tls_session_take(struct tls_session *s, uint8_t *dst, size_t cap);

/* Room tls_session_seal() needs for <plain_len> bytes of plaintext, pending bytes included; an
 * offloaded session writes exactly this much. Cannot fail. */
size_t tls_session_seal_bound(const struct tls_session *s, size_t plain_len);

/*
 * Writes the pending bytes, then the concatenation of <iov>[0..<iovcnt>) as application data
 * records (up to 16 KiB of plaintext each), into <dst>: the way a broadcast frame shared by many
 * connections is encrypted once per recipient, straight into that recipient's send buffer. All
 * or nothing: returns the bytes written, or -ENOBUFS if <cap> < tls_session_seal_bound(),
 * -ENOTCONN before the handshake is over, -EPIPE after close (ours or the peer's), -EPROTO after
 * a failure, -EOVERFLOW when sequence numbers run out (the session is then failed). Borrows
 * <iov> and <dst> for the call only.
 */
ssize_t tls_session_seal(struct tls_session *s, const struct iovec *iov, int iovcnt, uint8_t *dst,
                         size_t cap);

/* Queues our close_notify (RFC 5246 section 7.2.1); later seals fail with -EPIPE. Returns 0, or
 * -ENOTCONN if the handshake is not over (nothing to say: just close). Idempotent. */
int tls_session_close(struct tls_session *s);

/* True once the handshake is complete (application data may flow). Cannot fail. */
bool tls_session_established(const struct tls_session *s);

/* True when the offloaded record layer runs this session (the mbedtls context is freed). */
bool tls_session_offloaded(const struct tls_session *s);

/* True when the handshake resumed a session from a ticket (abbreviated handshake). */
bool tls_session_resumed(const struct tls_session *s);

/* The negotiated suite's name ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"), or "" before the
 * handshake is over. Static storage. */
const char *tls_session_suite(const struct tls_session *s);

enum tls_reason tls_session_reason(const struct tls_session *s);

/* A one-line description of the failure for logs (the reason plus mbedtls's error text or the
 * peer's alert number), NUL-terminated in <buf>. Returns <buf>. */
const char *tls_session_describe(const struct tls_session *s, char *buf, size_t len);

/*
 * Handshake buffers. The record buffers of handshakes that ended on this thread are kept for
 * its next handshakes instead of going back to the heap. A thread that runs sessions calls
 * tls_thread_tick() about once a second: it marks for release those that no handshake needed
 * since the previous tick, beyond a few dozen. tls_thread_release() gives the pages of at most
 * <max> of them back to the system and returns how many remain marked, so that the caller can
 * spread the work (each release costs a TLB flush); tls_thread_release_all() frees every one,
 * before the thread exits (the list is per-thread). None can fail.
 */
void tls_thread_tick(void);
unsigned tls_thread_release(unsigned max);
void tls_thread_release_all(void);

/* Buffers the calling thread keeps now (for tests and metrics). Cannot fail. */
unsigned tls_thread_spares(void);

/* Heap bytes the session holds now: the session itself, any pending buffers and, before offload,
 * an estimate of mbedtls's context and record buffers. For metrics. Cannot fail. */
size_t tls_session_memory(const struct tls_session *s);

#endif
