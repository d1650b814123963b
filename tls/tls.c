/* SPDX-License-Identifier: MIT */
/*
 * tls_session: one server connection. mbedtls runs the handshake through memory callbacks; then
 * the session takes the record layer over (record.c) and frees mbedtls, or, with no_offload,
 * keeps mbedtls's record layer. See tls.h for the contract.
 *
 * Sections: types, mbedtls glue (callbacks, key export), queued output, handshake and offload,
 * the offloaded record reader, the mbedtls-mode reader and sealer, API.
 */
#include "tls.h"

#include "tls_internal.h"

#include <errno.h>
#include <mbedtls/error.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_internal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- types ------------------------------------------------------------------------------- */

enum phase {
    P_HANDSHAKE, /* mbedtls runs the handshake */
    P_MBEDTLS,   /* established, mbedtls's record layer (no_offload) */
    P_OFFLOAD,   /* established, record.c; no mbedtls state left */
};

enum {
    F_RX_CLOSED = 1 << 0, /* the peer's close_notify arrived */
    F_TX_CLOSED = 1 << 1, /* our close_notify or a fatal alert is queued: no more data out */
    F_FAILED = 1 << 2,
    F_RESUMED = 1 << 3,
    F_RX_HOLD = 1 << 4, /* <rx> holds the plaintext the last read handed out */
};

/* mbedtls 2.28 gives up after three consecutive empty records (its nb_zero); doing the same
 * keeps a peer from spinning us on records that carry nothing. */
#define MAX_EMPTY_RECORDS 3

/* mbedtls's state, alive only until offload. */
struct tls_hs {
    mbedtls_ssl_context ssl;
    struct tls_input *in; /* the caller's cursor, borrowed during a read */
    uint8_t *sink;        /* the caller's buffer, borrowed during a seal (mbedtls mode) */
    size_t sink_len, sink_cap;
    unsigned fault_every, fault_n;
    bool faulted; /* the previous send call was refused by the fault hook */
    bool have_keys;
    bool resumed;
    uint8_t keylen, ivlen;
    /* client_write_key | server_write_key | client_write_IV | server_write_IV: the AEAD key
     * block of RFC 5246 section 6.3 (no MAC keys for AEAD suites). */
    uint8_t kb[2 * 32 + 2 * 12];
};

struct tls_session {
    struct tls_record rec;  /* offloaded keys and sequence numbers */
    struct tls_config *cfg; /* held while mbedtls may still use it */
    struct tls_hs *hs;      /* NULL before the first bytes and after offload */
    uint8_t *ctl;           /* queued output ctl[ctl_off..ctl_len), NULL when empty */
    uint32_t ctl_off, ctl_len, ctl_cap;
    uint8_t *rx; /* a partial record's fragment, exactly rx_need bytes, NULL when none */
    uint16_t rx_len, rx_need;
    uint8_t hdr[TLS_RECORD_HEADER]; /* the header of the record being received */
    uint8_t hdr_len;
    uint8_t phase, flags, reason, nr_empty, peer_alert;
    uint16_t suite;
    int mbedtls_err; /* for tls_session_describe() */
};

/* The session whose handshake runs on this thread: mbedtls 2.28 has key export only per config
 * (mbedtls_ssl_conf_export_keys_ext_cb), and a config is shared by every connection, so the
 * callback finds its session here. Set only around mbedtls_ssl_handshake(). */
static _Thread_local struct tls_session *hs_current;

/* Plaintext out of mbedtls_ssl_read() (mbedtls mode), and the staging of gathered pieces for
 * mbedtls_ssl_write(): per thread rather than per connection, so that even the comparison mode
 * adds no buffer of ours to mbedtls's two. */
static _Thread_local uint8_t rd_scratch[TLS_RECORD_MAX_PLAIN];
static _Thread_local uint8_t wr_scratch[TLS_RECORD_MAX_PLAIN];

/* ---- queued output ----------------------------------------------------------------------- */

static void ctl_release(struct tls_session *s)
{
    free(s->ctl);
    s->ctl = NULL;
    s->ctl_off = s->ctl_len = s->ctl_cap = 0;
}

/* Room for <n> more bytes at the end of the queue, or NULL. */
static uint8_t *ctl_reserve(struct tls_session *s, size_t n)
{
    size_t used = s->ctl_len - s->ctl_off, cap;
    uint8_t *p;

    if (s->ctl_off > 0) {
        memmove(s->ctl, s->ctl + s->ctl_off, used);
        s->ctl_off = 0;
        s->ctl_len = (uint32_t)used;
    }
    if (s->ctl_cap - used >= n)
        return s->ctl + used;
    if (used + n > UINT32_MAX / 2)
        return NULL;
    cap = s->ctl_cap ? s->ctl_cap : 256;
    while (cap < used + n)
        cap *= 2;
    p = realloc(s->ctl, cap);
    if (!p)
        return NULL;
    s->ctl = p;
    s->ctl_cap = (uint32_t)cap;
    return s->ctl + used;
}

static int ctl_append(struct tls_session *s, const uint8_t *buf, size_t n)
{
    uint8_t *p = ctl_reserve(s, n);

    if (!p)
        return -ENOMEM;
    memcpy(p, buf, n);
    s->ctl_len += (uint32_t)n;
    return 0;
}

/* Seals one alert record into the queue (offloaded sessions only). Best effort: an alert that
 * cannot be sealed (no memory, sequence numbers exhausted) is not sent. */
static void queue_alert(struct tls_session *s, uint8_t level, uint8_t desc)
{
    uint8_t a[2] = {level, desc};
    struct iovec iov = {a, sizeof(a)};
    size_t need = tls_record_bound(&s->rec, sizeof(a));
    uint8_t *p = ctl_reserve(s, need);
    ssize_t n;

    if (!p)
        return;
    n = tls_record_seal(&s->rec, TLS_CT_ALERT, &iov, 1, p, need);
    if (n > 0)
        s->ctl_len += (uint32_t)n;
}

/* ---- mbedtls glue ------------------------------------------------------------------------ */

/* mbedtls reads ciphertext straight from the caller's cursor: it asks for a header, then for the
 * rest of the record, so whatever follows the record stays in the cursor for the next call. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_session *s = ctx;
    struct tls_input *in = s->hs->in;
    size_t n;

    if (!in || in->len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    n = len < in->len ? len : in->len;
    memcpy(buf, in->data, n);
    in->data += n;
    in->len -= n;
    return (int)n;
}

/* Writes go into the caller's buffer during a seal, else into the queue; neither ever refuses,
 * so MBEDTLS_ERR_SSL_WANT_WRITE comes only from the fault hook the tests use. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_session *s = ctx;
    struct tls_hs *hs = s->hs;

    if (hs->fault_every && !hs->faulted && ++hs->fault_n % hs->fault_every == 0) {
        hs->faulted = true;
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    hs->faulted = false;
    if (len > INT32_MAX)
        len = INT32_MAX;
    if (hs->sink) {
        size_t room = hs->sink_cap - hs->sink_len;

        if (room >= len) {
            memcpy(hs->sink + hs->sink_len, buf, len);
            hs->sink_len += len;
            return (int)len;
        }
        /* Cannot happen when the caller sized <dst> with tls_session_seal_bound(). Once a byte
         * goes to the queue, nothing more may go to the sink: the queue is sent after it. */
        hs->sink = NULL;
    }
    if (ctl_append(s, buf, len) != 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

int tls__export_keys(void *unused, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                     size_t keylen, size_t ivlen, const unsigned char client_random[32],
                     const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct tls_session *s = hs_current;
    struct tls_hs *hs;

    (void)unused, (void)ms, (void)client_random, (void)server_random, (void)prf;
    if (!s || !s->hs)
        return 0;
    hs = s->hs;
    /* AEAD suites have no MAC keys; anything else stays with mbedtls. 2.28 passes the length of
     * the fixed IV part: 4 for GCM (RFC 5288 salt), 12 for ChaCha20-Poly1305 (RFC 7905). */
    hs->have_keys = maclen == 0 && keylen <= 32 && ivlen <= 12;
    if (hs->have_keys) {
        memcpy(hs->kb, kb, 2 * keylen + 2 * ivlen);
        hs->keylen = (uint8_t)keylen;
        hs->ivlen = (uint8_t)ivlen;
    }
    /* The handshake parameters are freed when the handshake ends; this is the last moment
     * where "resumed from a ticket" can be read. */
    hs->resumed = hs->ssl.handshake && hs->ssl.handshake->resume;
    return 0;
}

/* Pushes out what mbedtls still holds after a WANT_WRITE. The send callback refuses at most
 * once in a row, so this ends; the bound is a guard against a bug, not a policy. */
static int hs_flush(struct tls_hs *hs)
{
    for (int i = 0; hs->ssl.out_left > 0; i++) {
        int rc = mbedtls_ssl_flush_output(&hs->ssl);

        if (rc != MBEDTLS_ERR_SSL_WANT_WRITE)
            return rc;
        if (i == 8)
            return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    return 0;
}

/*
 * Handshake memory after a storm. Each handshake has mbedtls allocate two ~16.7 KiB record
 * buffers, heap allocations below glibc's mmap threshold: once freed they would stay resident
 * in the heap, so after 1,000 concurrent handshakes the broker would keep their peak, about
 * 4 KiB per connection, however little each offloaded connection holds.
 *
 * So a thread keeps the buffers of the contexts it frees (wiped, as mbedtls would have) on a
 * LIFO list, hands two back to the heap right before each new context is set up (the heap then
 * gives those same chunks, still resident, to mbedtls's calloc: no page faults). Once a
 * second, tls_thread_tick() marks for release the buffers that no handshake needed since the
 * last tick (the list's low-water mark of the period, beyond SPARE_KEEP), and
 * tls_thread_release() gives their pages back to the system a few at a time, between the
 * loop's other work: a release is a TLB flush of every thread of the process, 25-50 us each on
 * that VM, so hundreds at once would stall the loop for tens of milliseconds (measured as a
 * p99 of 40 ms in a chat run right after its connection storm). During a storm the list keeps
 * emptying and nothing is released; one to two seconds after it, the memory is gone.
 *
 * Not at every free: pages dropped while handshakes go on are refaulted at once, and on the VM
 * this was measured on, a drop (a TLB flush of every thread) and its refaults cost ~300 us per
 * handshake, three times a whole resumed handshake. Not malloc_trim() either: it walks every
 * free chunk of the heap, 10-190 ms a call with 10,000 connections (measured).
 */
#define SPARE_KEEP 64 /* buffers: 32 handshakes' worth, ~1 MiB per thread */

struct spare_buf {
    struct spare_buf *next;
    size_t len;
};

static _Thread_local struct spare_buf *spare_head;
static _Thread_local unsigned spare_nr;
static _Thread_local unsigned spare_low; /* fewest on the list since the last tick */
static _Thread_local unsigned spare_due; /* to give back, as tls_thread_tick() found */

static void spare_push(unsigned char *p, size_t len)
{
    struct spare_buf *b = (struct spare_buf *)(void *)p;

    if (!p)
        return;
    mbedtls_platform_zeroize(p, len);
    b->next = spare_head;
    b->len = len;
    spare_head = b;
    spare_nr++;
}

static struct spare_buf *spare_pop(void)
{
    struct spare_buf *b = spare_head;

    if (b) {
        spare_head = b->next;
        spare_nr--;
        if (spare_nr < spare_low)
            spare_low = spare_nr;
    }
    return b;
}

/* Frees a spare buffer, its whole pages given back to the system first (they hold zeros). */
static void spare_drop(struct spare_buf *b)
{
    /* Per thread, like the spare list itself: every shard thread drops its own spares, and a
     * static shared by all of them would be a data race (benign, but a race). */
    static _Thread_local uintptr_t page;
    uintptr_t lo, hi;

    if (!page)
        page = (uintptr_t)sysconf(_SC_PAGESIZE);
    lo = ((uintptr_t)b + sizeof(*b) + page - 1) & ~(page - 1);
    hi = ((uintptr_t)b + b->len) & ~(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
    free(b);
}

void tls_thread_tick(void)
{
    /* The buffers below the low-water mark sat unused for the whole period. */
    spare_due = spare_low > SPARE_KEEP ? spare_low - SPARE_KEEP : 0;
    spare_low = spare_nr;
}

unsigned tls_thread_release(unsigned max)
{
    unsigned room = spare_nr > SPARE_KEEP ? spare_nr - SPARE_KEEP : 0;

    /* Handshakes since the tick may have taken some of them back. */
    if (spare_due > room)
        spare_due = room;
    while (spare_due && max--) {
        spare_drop(spare_pop());
        spare_due--;
    }
    return spare_due;
}

void tls_thread_release_all(void)
{
    while (spare_nr)
        spare_drop(spare_pop());
    spare_due = spare_low = 0;
}

unsigned tls_thread_spares(void)
{
    return spare_nr;
}

static int hs_create(struct tls_session *s)
{
    struct tls_hs *hs = calloc(1, sizeof(*hs));

    if (!hs)
        return -ENOMEM;
    /* Right before mbedtls's two callocs, so that they get these chunks back. */
    for (int i = 0; i < 2 && spare_head; i++)
        free(spare_pop());
    mbedtls_ssl_init(&hs->ssl);
    if (mbedtls_ssl_setup(&hs->ssl, &s->cfg->conf) != 0) {
        mbedtls_ssl_free(&hs->ssl);
        free(hs);
        return -ENOMEM;
    }
    mbedtls_ssl_set_bio(&hs->ssl, s, bio_send, bio_recv, NULL);
    s->hs = hs;
    return 0;
}

static void hs_destroy(struct tls_session *s)
{
    unsigned char *in, *out;

    if (!s->hs)
        return;
    /* Taken out of mbedtls_ssl_free()'s hands: the spare list wipes and keeps them. */
    in = s->hs->ssl.in_buf;
    out = s->hs->ssl.out_buf;
    s->hs->ssl.in_buf = NULL;
    s->hs->ssl.out_buf = NULL;
    mbedtls_ssl_free(&s->hs->ssl);
    spare_push(in, MBEDTLS_SSL_IN_BUFFER_LEN);
    spare_push(out, MBEDTLS_SSL_OUT_BUFFER_LEN);
    mbedtls_platform_zeroize(s->hs, sizeof(*s->hs));
    free(s->hs);
    s->hs = NULL;
}

static void cfg_release(struct tls_session *s)
{
    tls_config_unref(s->cfg);
    s->cfg = NULL;
}

/* ---- failure ----------------------------------------------------------------------------- */

static ssize_t fail(struct tls_session *s, enum tls_reason reason, int alert)
{
    if (alert >= 0 && !(s->flags & F_TX_CLOSED) && s->phase == P_OFFLOAD)
        queue_alert(s, TLS_ALERT_FATAL, (uint8_t)alert);
    s->flags |= F_FAILED | F_TX_CLOSED;
    if (!s->reason)
        s->reason = (uint8_t)reason;
    free(s->rx);
    s->rx = NULL;
    s->flags &= ~F_RX_HOLD;
    /* mbedtls has queued its own fatal alert, if any; its 40 KiB are of no further use. */
    hs_destroy(s);
    cfg_release(s);
    return s->reason == TLS_R_NO_MEMORY ? -ENOMEM : -EPROTO;
}

static ssize_t fail_mbedtls(struct tls_session *s, int rc)
{
    enum tls_reason r;

    s->mbedtls_err = rc;
    switch (rc) {
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
        r = TLS_R_PROTOCOL_VERSION;
        break;
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
    case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
        r = TLS_R_NO_SHARED_CIPHER;
        break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        r = TLS_R_PEER_ALERT;
        s->peer_alert = s->hs->ssl.in_msg[1];
        break;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
        r = TLS_R_NO_MEMORY;
        break;
    case MBEDTLS_ERR_SSL_INVALID_MAC:
        r = TLS_R_BAD_RECORD_MAC;
        break;
    case MBEDTLS_ERR_SSL_COUNTER_WRAPPING:
        r = TLS_R_SEQ_EXHAUSTED;
        break;
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
        r = s->phase == P_HANDSHAKE ? TLS_R_BAD_HANDSHAKE : TLS_R_UNEXPECTED_MESSAGE;
        break;
    default:
        r = s->phase == P_HANDSHAKE ? TLS_R_BAD_HANDSHAKE : TLS_R_DECODE_ERROR;
        break;
    }
    return fail(s, r, -1);
}

/* ---- handshake and offload --------------------------------------------------------------- */

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Offload needs the keys, a suite record.c runs, and mbedtls holding nothing half done: no
 * partly read record, nothing unsent, and no message left in the last record besides the
 * client's Finished (mbedtls 2.28 keeps that one as the current message, in_msglen ==
 * in_hslen, and only drops it on the next read). Otherwise the session stays on mbedtls. */
static bool can_offload(const struct tls_session *s)
{
    const struct tls_hs *hs = s->hs;
    const mbedtls_ssl_context *ssl = &hs->ssl;
    enum tls_aead aead = tls_aead_from_suite(s->suite);

    return s->cfg->offload && hs->have_keys && aead != TLS_AEAD_NONE &&
           hs->keylen == tls_aead_key_len(aead) && hs->ivlen == tls_aead_iv_len(aead) &&
           ssl->in_left == 0 && ssl->in_offt == NULL && ssl->keep_current_message == 0 &&
           (ssl->in_msglen == 0 ||
            (ssl->in_msgtype == MBEDTLS_SSL_MSG_HANDSHAKE && ssl->in_msglen == ssl->in_hslen)) &&
           ssl->out_left == 0;
}

/*
 * Takes the record layer over, as kernel TLS would with the same material: our write key and IV
 * are the server's, our read ones the client's (RFC 5246 section 6.3), and the sequence numbers
 * continue from mbedtls's (both 1 after the Finished messages). Then mbedtls goes.
 */
static void offload(struct tls_session *s)
{
    struct tls_hs *hs = s->hs;
    const uint8_t *ckey = hs->kb, *skey = hs->kb + hs->keylen;
    const uint8_t *civ = hs->kb + 2 * hs->keylen, *siv = civ + hs->ivlen;
    int max = mbedtls_ssl_get_max_out_record_payload(&hs->ssl);

    tls_record_set_keys(&s->rec, tls_aead_from_suite(s->suite), skey, siv, ckey, civ);
    s->rec.tx.seq = get_be64(hs->ssl.cur_out_ctr);
    s->rec.rx.seq = get_be64(hs->ssl.in_ctr);
    /* A client that negotiated max_fragment_length (RFC 6066) gets records it can take. */
    s->rec.max_plain = max > 0 && max < TLS_RECORD_MAX_PLAIN ? (uint16_t)max : 0;
    hs_destroy(s);
    cfg_release(s);
    s->phase = P_OFFLOAD;
}

/* Runs mbedtls's handshake over <in>. 0 once it is over (the session is established), -EAGAIN
 * when it needs more input, or a failure. */
static ssize_t handshake(struct tls_session *s, struct tls_input *in)
{
    struct tls_hs *hs;
    int rc;

    if (!s->hs && hs_create(s) != 0)
        return fail(s, TLS_R_NO_MEMORY, -1);
    hs = s->hs;
    hs->in = in;
    hs_current = s;
    /* WANT_WRITE only comes from the fault hook, which refuses once: mbedtls's handshake steps
     * start by flushing what is pending, so calling again is the retry. */
    do
        rc = mbedtls_ssl_handshake(&hs->ssl);
    while (rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    hs_current = NULL;
    hs->in = NULL;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ)
        return -EAGAIN;
    if (rc != 0)
        return fail_mbedtls(s, rc);

    s->suite = (uint16_t)hs->ssl.session->ciphersuite;
    if (hs->resumed)
        s->flags |= F_RESUMED;
    if (can_offload(s)) {
        offload(s);
    } else {
        s->phase = P_MBEDTLS;
        mbedtls_platform_zeroize(hs->kb, sizeof(hs->kb));
    }
    return 0;
}

/* ---- offloaded reader -------------------------------------------------------------------- */

/* RFC 5246 section 7.2: alerts after the handshake. */
static ssize_t on_alert(struct tls_session *s, const uint8_t *p, size_t n)
{
    /* An alert is two bytes; mbedtls refuses anything else as well. */
    if (n != 2)
        return fail(s, TLS_R_DECODE_ERROR, TLS_ALERT_DECODE_ERROR);
    if (p[1] == TLS_ALERT_CLOSE_NOTIFY) {
        /* Section 7.2.1: answer with our own close_notify, discard pending writes. */
        s->flags |= F_RX_CLOSED;
        s->reason = TLS_R_CLOSE_NOTIFY;
        if (!(s->flags & F_TX_CLOSED)) {
            queue_alert(s, TLS_ALERT_WARNING, TLS_ALERT_CLOSE_NOTIFY);
            s->flags |= F_TX_CLOSED;
        }
        return 0;
    }
    if (p[0] != TLS_ALERT_WARNING) {
        /* Section 7.2: a fatal alert ends the connection at once, with no answer. Unknown
         * levels are taken as fatal. */
        s->peer_alert = p[1];
        s->flags |= F_TX_CLOSED;
        return fail(s, TLS_R_PEER_ALERT, -1);
    }
    /* Section 7.2.2: after a warning the connection may continue (user_canceled is followed
     * by a close_notify, which ends it then). */
    return -EAGAIN;
}

/* A handshake record after the handshake can only be a renegotiating ClientHello: RFC 5246
 * section 7.2.2 has the server answer no_renegotiation, a warning, after which "the original
 * requester can decide whether to proceed with the connection", so this one stays open, as
 * mbedtls leaves it when it runs the record layer. Anything else is unexpected and fatal. */
static ssize_t on_handshake(struct tls_session *s, const uint8_t *p, size_t n)
{
    if (n >= 1 && p[0] == 1 /* client_hello */) {
        if (!(s->flags & F_TX_CLOSED))
            queue_alert(s, TLS_ALERT_WARNING, TLS_ALERT_NO_RENEGOTIATION);
        return -EAGAIN;
    }
    return fail(s, TLS_R_UNEXPECTED_MESSAGE, TLS_ALERT_UNEXPECTED_MESSAGE);
}

/* Handles one opened record: > 0 plaintext for the caller, -EAGAIN to go on, or an end. */
static ssize_t on_record(struct tls_session *s, uint8_t type, uint8_t *p, ssize_t n,
                         const uint8_t **plain)
{
    if (type == TLS_CT_APPLICATION_DATA) {
        if (n > 0) {
            s->nr_empty = 0;
            *plain = p;
            return n;
        }
        /* RFC 5246 section 6.2.1 allows empty application data records. */
        if (++s->nr_empty > MAX_EMPTY_RECORDS)
            return fail(s, TLS_R_UNEXPECTED_MESSAGE, TLS_ALERT_UNEXPECTED_MESSAGE);
        return -EAGAIN;
    }
    s->nr_empty = 0;
    if (type == TLS_CT_ALERT)
        return on_alert(s, p, (size_t)n);
    if (type == TLS_CT_HANDSHAKE)
        return on_handshake(s, p, (size_t)n);
    /* Section 6: an unexpected record type gets unexpected_message (ChangeCipherSpec
     * included: it only belongs in a handshake). */
    return fail(s, TLS_R_UNEXPECTED_MESSAGE, TLS_ALERT_UNEXPECTED_MESSAGE);
}

static ssize_t open_failed(struct tls_session *s, ssize_t err)
{
    switch (err) {
    case -EMSGSIZE:
        return fail(s, TLS_R_RECORD_OVERFLOW, TLS_ALERT_RECORD_OVERFLOW);
    case -EOVERFLOW:
        return fail(s, TLS_R_SEQ_EXHAUSTED, -1);
    case -ENOMEM:
        return fail(s, TLS_R_NO_MEMORY, TLS_ALERT_INTERNAL_ERROR);
    default:
        /* RFC 5246 section 6.2.3.3: any decryption failure is bad_record_mac. */
        return fail(s, TLS_R_BAD_RECORD_MAC, TLS_ALERT_BAD_RECORD_MAC);
    }
}

/* Completes the header of the next record from <in>; false when <in> ran out first. */
static bool take_header(struct tls_session *s, struct tls_input *in)
{
    size_t n = TLS_RECORD_HEADER - s->hdr_len;

    if (n > in->len)
        n = in->len;
    memcpy(s->hdr + s->hdr_len, in->data, n);
    s->hdr_len += (uint8_t)n;
    in->data += n;
    in->len -= n;
    return s->hdr_len == TLS_RECORD_HEADER;
}

/*
 * Records are opened in place in the caller's buffer when they arrived whole; a record cut by
 * the end of a receive has its fragment copied into a heap buffer of exactly its size, the only
 * receive memory an offloaded session ever holds, and only until the record completes.
 */
static ssize_t off_read(struct tls_session *s, struct tls_input *in, const uint8_t **plain)
{
    for (;;) {
        uint8_t *frag, *p;
        ssize_t flen, n;

        if (s->hdr_len < TLS_RECORD_HEADER) {
            if (!take_header(s, in))
                return -EAGAIN;
            flen = tls_record_frame(s->hdr);
            if (flen == -EPROTO)
                return fail(s, TLS_R_PROTOCOL_VERSION, TLS_ALERT_PROTOCOL_VERSION);
            if (flen < 0)
                return fail(s, TLS_R_RECORD_OVERFLOW, TLS_ALERT_RECORD_OVERFLOW);
            s->rx_need = (uint16_t)flen;
            s->rx_len = 0;
        }
        if (!s->rx && in->len >= s->rx_need) {
            frag = in->data;
            in->data += s->rx_need;
            in->len -= s->rx_need;
        } else {
            size_t want;

            if (!s->rx) {
                s->rx = malloc(s->rx_need ? s->rx_need : 1);
                if (!s->rx)
                    return fail(s, TLS_R_NO_MEMORY, TLS_ALERT_INTERNAL_ERROR);
            }
            want = s->rx_need - s->rx_len;
            if (want > in->len)
                want = in->len;
            memcpy(s->rx + s->rx_len, in->data, want);
            s->rx_len += (uint16_t)want;
            in->data += want;
            in->len -= want;
            if (s->rx_len < s->rx_need)
                return -EAGAIN;
            frag = s->rx;
            s->flags |= F_RX_HOLD;
        }
        s->hdr_len = 0;
        n = tls_record_open(&s->rec, s->hdr[0], frag, s->rx_need, &p);
        if (n < 0)
            return open_failed(s, n);
        n = on_record(s, s->hdr[0], p, n, plain);
        if (n > 0)
            return n; /* <rx>, if used, stays until the next read */
        if (s->flags & F_RX_HOLD) {
            free(s->rx);
            s->rx = NULL;
            s->flags &= ~F_RX_HOLD;
        }
        if (n != -EAGAIN)
            return n;
    }
}

/* ---- mbedtls mode (no_offload) ----------------------------------------------------------- */

static ssize_t mb_read(struct tls_session *s, struct tls_input *in, const uint8_t **plain)
{
    struct tls_hs *hs = s->hs;
    size_t last = SIZE_MAX;
    int rc;

    hs->in = in;
    for (;;) {
        rc = mbedtls_ssl_read(&hs->ssl, rd_scratch, sizeof(rd_scratch));
        if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            /*
             * mbedtls_ssl_read() can want to write (an alert, say no_renegotiation). Calling it
             * again is not enough: it may move on to the next record and leave the alert
             * unsent, and the next mbedtls_ssl_write() would then flush it and report our new
             * data as written. So flush first, then read again.
             */
            rc = hs_flush(hs);
            if (rc)
                break;
            continue;
        }
        /* 0 is an empty record (RFC 5246 section 6.2.1; mbedtls counts them itself): go on
         * while it keeps taking input. */
        if (rc == 0 && in->len > 0 && in->len != last) {
            last = in->len;
            continue;
        }
        break;
    }
    hs->in = NULL;
    if (rc > 0) {
        *plain = rd_scratch;
        return rc;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == 0)
        return -EAGAIN;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        s->flags |= F_RX_CLOSED;
        s->reason = TLS_R_CLOSE_NOTIFY;
        if (!(s->flags & F_TX_CLOSED)) {
            do
                rc = mbedtls_ssl_close_notify(&hs->ssl);
            while (rc == MBEDTLS_ERR_SSL_WANT_WRITE);
            s->flags |= F_TX_CLOSED;
        }
        return 0;
    }
    return fail_mbedtls(s, rc);
}

static size_t mb_max_plain(const struct tls_session *s)
{
    int m = mbedtls_ssl_get_max_out_record_payload(&s->hs->ssl);

    return m > 0 && m < TLS_RECORD_MAX_PLAIN ? (size_t)m : TLS_RECORD_MAX_PLAIN;
}

/* Writes one record's worth through mbedtls, honouring its rule that after WANT_WRITE the
 * same call must be repeated with the same bytes: <buf> is not touched until it succeeds. */
static int mb_write_all(struct tls_hs *hs, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        int rc = mbedtls_ssl_write(&hs->ssl, buf, len);

        if (rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (rc < 0)
            return rc;
        buf += rc;
        len -= (size_t)rc;
    }
    return 0;
}

static ssize_t mb_seal(struct tls_session *s, const struct iovec *iov, int iovcnt, uint8_t *dst,
                       size_t cap)
{
    struct tls_hs *hs = s->hs;
    size_t m = mb_max_plain(s), fill = 0, off;
    int rc = 0;

    off = tls_session_take(s, dst, cap);
    hs->sink = dst + off;
    hs->sink_len = 0;
    hs->sink_cap = cap - off;
    /* Pieces are staged into records of up to <m> bytes, the same records the offloaded path
     * makes, so that comparisons measure the record layers and nothing else. */
    for (int i = 0; i < iovcnt && rc == 0; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;

        while (left > 0 && rc == 0) {
            size_t n = m - fill < left ? m - fill : left;

            memcpy(wr_scratch + fill, p, n);
            fill += n;
            p += n;
            left -= n;
            if (fill == m) {
                rc = mb_write_all(hs, wr_scratch, fill);
                fill = 0;
            }
        }
    }
    if (rc == 0 && fill > 0)
        rc = mb_write_all(hs, wr_scratch, fill);
    off += hs->sink_len;
    hs->sink = NULL;
    if (rc)
        return fail_mbedtls(s, rc);
    return (ssize_t)off;
}

/* ---- API --------------------------------------------------------------------------------- */

const char *tls_reason_name(enum tls_reason r)
{
    static const char *const names[] = {
        [TLS_R_NONE] = "none",
        [TLS_R_CLOSE_NOTIFY] = "close_notify",
        [TLS_R_PEER_ALERT] = "peer_alert",
        [TLS_R_PROTOCOL_VERSION] = "protocol_version",
        [TLS_R_NO_SHARED_CIPHER] = "no_shared_cipher",
        [TLS_R_BAD_HANDSHAKE] = "bad_handshake",
        [TLS_R_BAD_RECORD_MAC] = "bad_record_mac",
        [TLS_R_RECORD_OVERFLOW] = "record_overflow",
        [TLS_R_UNEXPECTED_MESSAGE] = "unexpected_message",
        [TLS_R_DECODE_ERROR] = "decode_error",
        [TLS_R_SEQ_EXHAUSTED] = "seq_exhausted",
        [TLS_R_NO_MEMORY] = "no_memory",
        [TLS_R_INTERNAL] = "internal",
    };

    if ((unsigned)r < sizeof(names) / sizeof(names[0]) && names[r])
        return names[r];
    return "unknown";
}

struct tls_session *tls_session_create(struct tls_config *cfg)
{
    struct tls_session *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    tls_config_ref(cfg);
    s->cfg = cfg;
    s->phase = P_HANDSHAKE;
    return s;
}

void tls_session_destroy(struct tls_session *s)
{
    if (!s)
        return;
    hs_destroy(s);
    cfg_release(s);
    free(s->rx);
    ctl_release(s);
    tls_record_wipe(&s->rec);
    free(s);
}

ssize_t tls_session_read(struct tls_session *s, struct tls_input *in, const uint8_t **plain)
{
    ssize_t rc;

    if (s->flags & F_RX_HOLD) {
        free(s->rx);
        s->rx = NULL;
        s->flags &= ~F_RX_HOLD;
    }
    if (s->flags & (F_FAILED | F_RX_CLOSED)) {
        /* Section 7.2.1: whatever follows close_notify is ignored; after a failure there is
         * nothing left to read it with. */
        in->data += in->len;
        in->len = 0;
        if (s->flags & F_FAILED)
            return s->reason == TLS_R_NO_MEMORY ? -ENOMEM : -EPROTO;
        return 0;
    }
    if (s->phase == P_HANDSHAKE) {
        if (!s->hs && in->len == 0)
            return -EAGAIN; /* mbedtls's 40 KiB wait for the first byte */
        rc = handshake(s, in);
        if (rc != 0)
            return rc;
    }
    if (s->phase == P_OFFLOAD)
        return off_read(s, in, plain);
    return mb_read(s, in, plain);
}

size_t tls_session_pending(const struct tls_session *s)
{
    return s->ctl_len - s->ctl_off;
}

size_t tls_session_take(struct tls_session *s, uint8_t *dst, size_t cap)
{
    size_t n = s->ctl_len - s->ctl_off;

    if (n > cap)
        n = cap;
    if (n == 0)
        return 0;
    memcpy(dst, s->ctl + s->ctl_off, n);
    s->ctl_off += (uint32_t)n;
    /* An empty queue holds no memory: an idle connection keeps no buffer. */
    if (s->ctl_off == s->ctl_len)
        ctl_release(s);
    return n;
}

size_t tls_session_seal_bound(const struct tls_session *s, size_t plain_len)
{
    size_t pend = tls_session_pending(s), m;

    if (s->phase == P_OFFLOAD)
        return pend + tls_record_bound(&s->rec, plain_len);
    if (s->phase != P_MBEDTLS || !s->hs)
        return pend;
    m = mb_max_plain(s);
    return pend + plain_len +
           (plain_len + m - 1) / m * (size_t)mbedtls_ssl_get_record_expansion(&s->hs->ssl);
}

ssize_t tls_session_seal(struct tls_session *s, const struct iovec *iov, int iovcnt, uint8_t *dst,
                         size_t cap)
{
    size_t total = 0, pend = tls_session_pending(s);
    ssize_t n;

    if (s->flags & F_FAILED)
        return -EPROTO;
    if (s->flags & (F_TX_CLOSED | F_RX_CLOSED))
        return -EPIPE;
    if (s->phase == P_HANDSHAKE)
        return -ENOTCONN;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (cap < tls_session_seal_bound(s, total))
        return -ENOBUFS;
    if (s->phase == P_MBEDTLS)
        return mb_seal(s, iov, iovcnt, dst, cap);
    /* Records first, behind the room the queued bytes need, so that an error leaves both
     * the queue and <dst> as they were. */
    n = tls_record_seal(&s->rec, TLS_CT_APPLICATION_DATA, iov, iovcnt, dst + pend, cap - pend);
    if (n == -EOVERFLOW) {
        fail(s, TLS_R_SEQ_EXHAUSTED, -1);
        return -EOVERFLOW;
    }
    if (n < 0)
        return n;
    tls_session_take(s, dst, pend);
    return (ssize_t)pend + n;
}

int tls_session_close(struct tls_session *s)
{
    int rc;

    if (s->flags & F_TX_CLOSED)
        return 0;
    if (s->phase == P_HANDSHAKE)
        return -ENOTCONN;
    s->flags |= F_TX_CLOSED;
    if (s->phase == P_OFFLOAD) {
        queue_alert(s, TLS_ALERT_WARNING, TLS_ALERT_CLOSE_NOTIFY);
        return 0;
    }
    do
        rc = mbedtls_ssl_close_notify(&s->hs->ssl);
    while (rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    return 0;
}

bool tls_session_established(const struct tls_session *s)
{
    return s->phase != P_HANDSHAKE;
}

bool tls_session_offloaded(const struct tls_session *s)
{
    return s->phase == P_OFFLOAD;
}

bool tls_session_resumed(const struct tls_session *s)
{
    return s->flags & F_RESUMED;
}

const char *tls_session_suite(const struct tls_session *s)
{
    const char *name;

    if (s->phase == P_HANDSHAKE || s->suite == 0)
        return "";
    name = mbedtls_ssl_get_ciphersuite_name(s->suite);
    return name ? name : "";
}

enum tls_reason tls_session_reason(const struct tls_session *s)
{
    return (enum tls_reason)s->reason;
}

const char *tls_session_describe(const struct tls_session *s, char *buf, size_t len)
{
    char text[128] = "";

    if (len == 0)
        return buf;
    if (s->reason == TLS_R_PEER_ALERT) {
        snprintf(buf, len, "tls: %s (alert %u)", tls_reason_name(s->reason), s->peer_alert);
    } else if (s->mbedtls_err) {
        mbedtls_strerror(s->mbedtls_err, text, sizeof(text));
        snprintf(buf, len, "tls: %s (mbedtls -0x%04x: %s)", tls_reason_name(s->reason),
                 (unsigned)-s->mbedtls_err, text);
    } else {
        snprintf(buf, len, "tls: %s", tls_reason_name(s->reason));
    }
    return buf;
}

size_t tls_session_memory(const struct tls_session *s)
{
    size_t n = sizeof(*s) + s->ctl_cap + (s->rx ? s->rx_need : 0);

    /* mbedtls allocates its two record buffers, the session and the transform; the
     * handshake parameters come and go inside the handshake and are not counted. */
    if (s->hs)
        n += sizeof(*s->hs) + MBEDTLS_SSL_IN_BUFFER_LEN + MBEDTLS_SSL_OUT_BUFFER_LEN +
             sizeof(mbedtls_ssl_session) + sizeof(mbedtls_ssl_transform);
    return n;
}

/* ---- test hooks -------------------------------------------------------------------------- */

void tls__session_fault_writes(struct tls_session *s, unsigned every)
{
    if (!s->hs && s->phase == P_HANDSHAKE && hs_create(s) != 0)
        return;
    if (s->hs) {
        s->hs->fault_every = every;
        s->hs->fault_n = 0;
    }
}

struct tls_record *tls__session_record(struct tls_session *s)
{
    return &s->rec;
}
