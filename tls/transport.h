/* SPDX-License-Identifier: MIT */
/*
 * transport: the seam between a connection's bytes and the WebSocket code, chosen once at accept
 * as nginx swaps c->recv. A struct transport is one pointer in the connection slot: NULL for
 * plain TCP, a tls_session for TLS. Every function is inline and the plain branch is a few
 * instructions with no copy, so the plain path costs nothing; the engine may also test
 * transport_is_tls() once and skip the seam for plain connections (for instance to writev shared
 * frames directly instead of copying them).
 *
 * The engine's side of the contract, for both kinds:
 *   receive: for each received buffer (writable: TLS decrypts in place), call
 *            transport_read() until it returns -EAGAIN, handing each plaintext chunk to the
 *            HTTP/WebSocket parser at once (a chunk is borrowed until the next transport_read()
 *            on this thread); 0 means the peer closed cleanly, a negative errno means close (log
 *            transport_reason()).
 *   send:    before sending plaintext, size the room with transport_seal_bound() and write with
 *            transport_seal(); when nothing else is queued but transport_pending() > 0 (handshake
 *            flights, alerts), copy those out with transport_take(). Bytes go out in the order
 *            these calls produced them.
 *   close:   transport_close() queues close_notify; send what is pending, then shut the socket.
 *
 * Owns: nothing beyond the tls_session it points to. Shard rule: every call on the shard that
 * owns the connection.
 */
#ifndef RINGCAST_TLS_TRANSPORT_H
#define RINGCAST_TLS_TRANSPORT_H

#include "tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

struct transport {
    struct tls_session *tls; /* NULL: plain TCP */
};

/* A plain transport (the all-zero value is one too). */
static inline void transport_init_plain(struct transport *t)
{
    t->tls = NULL;
}

/* A TLS transport: takes <s>. Cannot fail. */
static inline void transport_init_tls(struct transport *t, struct tls_session *s)
{
    t->tls = s;
}

/* Frees the TLS session, if any. Cannot fail. */
static inline void transport_fini(struct transport *t)
{
    tls_session_destroy(t->tls);
    t->tls = NULL;
}

static inline bool transport_is_tls(const struct transport *t)
{
    return t->tls != NULL;
}

/* True once application bytes may flow (plain: always). */
static inline bool transport_established(const struct transport *t)
{
    return !t->tls || tls_session_established(t->tls);
}

/*
 * The next plaintext chunk from <in>, as tls_session_read(). Plain: all of <in>, borrowed in
 * place, or -EAGAIN when <in> is empty.
 */
static inline ssize_t transport_read(struct transport *t, struct tls_input *in,
                                     const uint8_t **plain)
{
    size_t n = in->len;

    if (t->tls)
        return tls_session_read(t->tls, in, plain);
    if (n == 0)
        return -EAGAIN;
    *plain = in->data;
    in->data += n;
    in->len = 0;
    return (ssize_t)n;
}

/* Bytes the transport wants to send on its own (plain: never). */
static inline size_t transport_pending(const struct transport *t)
{
    return t->tls ? tls_session_pending(t->tls) : 0;
}

/* Moves up to <cap> of them into <dst>; returns the count. */
static inline size_t transport_take(struct transport *t, uint8_t *dst, size_t cap)
{
    return t->tls ? tls_session_take(t->tls, dst, cap) : 0;
}

/* Room transport_seal() needs for <plain_len> bytes (plain: <plain_len>). */
static inline size_t transport_seal_bound(const struct transport *t, size_t plain_len)
{
    return t->tls ? tls_session_seal_bound(t->tls, plain_len) : plain_len;
}

/*
 * Writes <iov> into <dst> as it goes on the wire: sealed records for TLS (tls_session_seal()),
 * a copy for plain. All or nothing; returns bytes written or a negative errno.
 */
static inline ssize_t transport_seal(struct transport *t, const struct iovec *iov, int iovcnt,
                                     uint8_t *dst, size_t cap)
{
    size_t n = 0;

    if (t->tls)
        return tls_session_seal(t->tls, iov, iovcnt, dst, cap);
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    if (n > cap)
        return -ENOBUFS;
    n = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(dst + n, iov[i].iov_base, iov[i].iov_len);
        n += iov[i].iov_len;
    }
    return (ssize_t)n;
}

/* Starts a clean close: TLS queues close_notify. Returns 0 or -ENOTCONN (handshake not over:
 * nothing to send). Plain: 0. */
static inline int transport_close(struct transport *t)
{
    return t->tls ? tls_session_close(t->tls) : 0;
}

/* Why the transport failed or closed, as a metrics label ("none" for plain). */
static inline const char *transport_reason(const struct transport *t)
{
    return tls_reason_name(t->tls ? tls_session_reason(t->tls) : TLS_R_NONE);
}

#endif
