/* SPDX-License-Identifier: MIT */
/*
 * The offloaded TLS 1.2 AEAD record layer: RFC 5246 section 6.2.3.3 (AEAD ciphers), RFC 5288
 * (AES-GCM suites), RFC 7905 (ChaCha20-Poly1305 suites).
 *
 * Why no AEAD context is kept per connection: measured here (mbedtls 2.28.3, AES-NI), an
 * mbedtls_gcm_context is 424 bytes and its AES key schedule another 288 on the heap, per
 * direction, so keeping them would cost an idle connection about 1.4 KiB, ten times its keys.
 * Building the context from the raw key costs about 190 ns for AES-GCM (key expansion, the
 * GHASH table and one small malloc) and 20 ns for ChaCha20-Poly1305, against 500 to 750 ns to
 * seal a 100-byte record and 3 to 4 us for the TCP send that carries it (PLATFORM.md section 7).
 * So every seal or open call builds a context on the stack, uses it for all the records of that
 * call (a flush that carries several frames pays once) and wipes it.
 */
#include "record.h"

#include <errno.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>
#include <string.h>

/* ---- AEAD context, one per call ---------------------------------------------------------- */

struct aead_ctx {
    enum tls_aead aead;
    union {
        mbedtls_gcm_context gcm;
        mbedtls_chachapoly_context cp;
    } u;
};

static int aead_start(struct aead_ctx *c, enum tls_aead aead, const uint8_t *key)
{
    c->aead = aead;
    switch (aead) {
    case TLS_AEAD_AES_128_GCM:
    case TLS_AEAD_AES_256_GCM:
        mbedtls_gcm_init(&c->u.gcm);
        if (mbedtls_gcm_setkey(&c->u.gcm, MBEDTLS_CIPHER_ID_AES, key,
                               (unsigned int)tls_aead_key_len(aead) * 8) != 0) {
            /* Only an allocation failure inside mbedtls_cipher_setup gets here. */
            mbedtls_gcm_free(&c->u.gcm);
            return -ENOMEM;
        }
        return 0;
    case TLS_AEAD_CHACHA20_POLY1305:
        mbedtls_chachapoly_init(&c->u.cp);
        mbedtls_chachapoly_setkey(&c->u.cp, key);
        return 0;
    case TLS_AEAD_NONE:
        break;
    }
    return -EINVAL;
}

static void aead_end(struct aead_ctx *c)
{
    if (c->aead == TLS_AEAD_CHACHA20_POLY1305)
        mbedtls_chachapoly_free(&c->u.cp);
    else
        mbedtls_gcm_free(&c->u.gcm);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* RFC 5246 section 6.2.3.3: additional_data = seq_num + TLSCompressed.type +
 * TLSCompressed.version + TLSCompressed.length (the plaintext length). */
static void make_aad(uint8_t aad[13], uint64_t seq, uint8_t type, size_t plain_len)
{
    put_be64(aad, seq);
    aad[8] = type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = (uint8_t)(plain_len >> 8);
    aad[12] = (uint8_t)plain_len;
}

/* GCM: salt || explicit nonce, where we send the sequence number as the explicit part
 * (RFC 5288 section 3 only asks that it never repeat; this is also what mbedtls and the
 * kernel do). ChaCha20-Poly1305: IV XOR the sequence number left-padded to 12 bytes (RFC 7905
 * section 2). For receiving, <explicit> is the 8 bytes the peer sent. */
static void make_nonce(uint8_t nonce[12], const struct tls_record_dir *d, enum tls_aead aead,
                       const uint8_t *explicit)
{
    if (aead == TLS_AEAD_CHACHA20_POLY1305) {
        uint8_t s[8];

        put_be64(s, d->seq);
        memcpy(nonce, d->iv, 12);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= s[i];
    } else {
        memcpy(nonce, d->iv, 4);
        memcpy(nonce + 4, explicit, 8);
    }
}

static int aead_seal(struct aead_ctx *c, const uint8_t nonce[12], const uint8_t aad[13],
                     const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[16])
{
    if (c->aead == TLS_AEAD_CHACHA20_POLY1305)
        return mbedtls_chachapoly_encrypt_and_tag(&c->u.cp, len, nonce, aad, 13, in, out, tag);
    return mbedtls_gcm_crypt_and_tag(&c->u.gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, 12, aad, 13, in,
                                     out, 16, tag);
}

static int aead_open(struct aead_ctx *c, const uint8_t nonce[12], const uint8_t aad[13],
                     uint8_t *buf, size_t len, const uint8_t tag[16])
{
    if (c->aead == TLS_AEAD_CHACHA20_POLY1305)
        return mbedtls_chachapoly_auth_decrypt(&c->u.cp, len, nonce, aad, 13, tag, buf, buf);
    return mbedtls_gcm_auth_decrypt(&c->u.gcm, len, nonce, 12, aad, 13, tag, 16, buf, buf);
}

/* ---- API --------------------------------------------------------------------------------- */

enum tls_aead tls_aead_from_suite(uint16_t suite)
{
    switch (suite) {
    case 0xC02B: /* TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, RFC 5289 */
    case 0xC02F: /* TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 */
        return TLS_AEAD_AES_128_GCM;
    case 0xC02C: /* TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 */
    case 0xC030: /* TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 */
        return TLS_AEAD_AES_256_GCM;
    case 0xCCA8: /* TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, RFC 7905 */
    case 0xCCA9: /* TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 */
        return TLS_AEAD_CHACHA20_POLY1305;
    default:
        return TLS_AEAD_NONE;
    }
}

size_t tls_aead_key_len(enum tls_aead aead)
{
    switch (aead) {
    case TLS_AEAD_AES_128_GCM:
        return 16;
    case TLS_AEAD_AES_256_GCM:
    case TLS_AEAD_CHACHA20_POLY1305:
        return 32;
    case TLS_AEAD_NONE:
        break;
    }
    return 0;
}

size_t tls_aead_iv_len(enum tls_aead aead)
{
    switch (aead) {
    case TLS_AEAD_AES_128_GCM:
    case TLS_AEAD_AES_256_GCM:
        return 4;
    case TLS_AEAD_CHACHA20_POLY1305:
        return 12;
    case TLS_AEAD_NONE:
        break;
    }
    return 0;
}

int tls_record_set_keys(struct tls_record *r, enum tls_aead aead, const uint8_t *tx_key,
                        const uint8_t *tx_iv, const uint8_t *rx_key, const uint8_t *rx_iv)
{
    size_t kl = tls_aead_key_len(aead), il = tls_aead_iv_len(aead);

    if (kl == 0)
        return -EINVAL;
    memset(r->tx.key, 0, sizeof(r->tx.key));
    memset(r->tx.iv, 0, sizeof(r->tx.iv));
    memset(r->rx.key, 0, sizeof(r->rx.key));
    memset(r->rx.iv, 0, sizeof(r->rx.iv));
    memcpy(r->tx.key, tx_key, kl);
    memcpy(r->tx.iv, tx_iv, il);
    memcpy(r->rx.key, rx_key, kl);
    memcpy(r->rx.iv, rx_iv, il);
    r->aead = (uint8_t)aead;
    return 0;
}

void tls_record_wipe(struct tls_record *r)
{
    mbedtls_platform_zeroize(r, sizeof(*r));
}

size_t tls_record_overhead(const struct tls_record *r)
{
    if (r->aead == TLS_AEAD_CHACHA20_POLY1305)
        return TLS_RECORD_HEADER + TLS_RECORD_TAG;
    return TLS_RECORD_MAX_OVERHEAD;
}

static size_t max_plain(const struct tls_record *r)
{
    if (r->max_plain == 0 || r->max_plain > TLS_RECORD_MAX_PLAIN)
        return TLS_RECORD_MAX_PLAIN;
    return r->max_plain;
}

size_t tls_record_bound(const struct tls_record *r, size_t plain_len)
{
    size_t m = max_plain(r);

    return plain_len + (plain_len + m - 1) / m * tls_record_overhead(r);
}

/* Walks the gather list: the next <want> bytes, either as one borrowed pointer when they lie in
 * a single piece, or copied into <dst>. */
struct gather {
    const struct iovec *iov;
    int iovcnt;
    int i;
    size_t off;
};

static const uint8_t *gather_next(struct gather *g, size_t want, uint8_t *dst)
{
    size_t got = 0;

    while (g->i < g->iovcnt && g->off == g->iov[g->i].iov_len) {
        g->i++;
        g->off = 0;
    }
    if (g->iov[g->i].iov_len - g->off >= want) {
        const uint8_t *p = (const uint8_t *)g->iov[g->i].iov_base + g->off;

        g->off += want;
        return p;
    }
    while (got < want) {
        size_t n = g->iov[g->i].iov_len - g->off;

        if (n > want - got)
            n = want - got;
        memcpy(dst + got, (const uint8_t *)g->iov[g->i].iov_base + g->off, n);
        got += n;
        g->off += n;
        if (g->off == g->iov[g->i].iov_len) {
            g->i++;
            g->off = 0;
        }
    }
    return dst;
}

ssize_t tls_record_seal(struct tls_record *r, uint8_t type, const struct iovec *iov, int iovcnt,
                        uint8_t *dst, size_t cap)
{
    size_t total = 0, m = max_plain(r), nrec, need, explicit_len;
    struct gather g = {iov, iovcnt, 0, 0};
    uint64_t seq0 = r->tx.seq;
    struct aead_ctx c;
    uint8_t *p = dst;
    int err;

    if (tls_aead_key_len(r->aead) == 0)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    nrec = (total + m - 1) / m;
    need = tls_record_bound(r, total);
    if (cap < need)
        return -ENOBUFS;
    if (nrec > UINT64_MAX - r->tx.seq)
        return -EOVERFLOW;
    err = aead_start(&c, r->aead, r->tx.key);
    if (err)
        return err;

    explicit_len = r->aead == TLS_AEAD_CHACHA20_POLY1305 ? 0 : TLS_RECORD_GCM_EXPLICIT;
    while (total > 0) {
        size_t n = total < m ? total : m, frag = explicit_len + n + TLS_RECORD_TAG;
        uint8_t *body = p + TLS_RECORD_HEADER + explicit_len, nonce[12], aad[13];
        const uint8_t *in;

        p[0] = type;
        p[1] = 3;
        p[2] = 3;
        p[3] = (uint8_t)(frag >> 8);
        p[4] = (uint8_t)frag;
        if (explicit_len)
            put_be64(p + TLS_RECORD_HEADER, r->tx.seq);
        make_nonce(nonce, &r->tx, (enum tls_aead)r->aead, p + TLS_RECORD_HEADER);
        make_aad(aad, r->tx.seq, type, n);
        /* A record cut from one piece is encrypted straight from it; one spanning pieces is
         * first gathered into its place in <dst> and encrypted in place. */
        in = gather_next(&g, n, body);
        err = aead_seal(&c, nonce, aad, in, body, n, body + n);
        if (err) {
            /* Cannot happen with valid lengths; <dst> holds garbage, <r> is as it was. */
            aead_end(&c);
            r->tx.seq = seq0;
            return -EINVAL;
        }
        r->tx.seq++;
        p += TLS_RECORD_HEADER + frag;
        total -= n;
    }
    aead_end(&c);
    return (ssize_t)(p - dst);
}

ssize_t tls_record_frame(const uint8_t hdr[TLS_RECORD_HEADER])
{
    size_t len = (size_t)hdr[3] << 8 | hdr[4];

    if (hdr[1] != 3 || hdr[2] != 3)
        return -EPROTO;
    if (len > TLS_RECORD_MAX_FRAGMENT)
        return -EMSGSIZE;
    return (ssize_t)len;
}

ssize_t tls_record_open(struct tls_record *r, uint8_t type, uint8_t *frag, size_t frag_len,
                        uint8_t **plain)
{
    size_t explicit_len, n;
    uint8_t nonce[12], aad[13], *body;
    struct aead_ctx c;
    int err;

    if (tls_aead_key_len(r->aead) == 0)
        return -EINVAL;
    explicit_len = r->aead == TLS_AEAD_CHACHA20_POLY1305 ? 0 : TLS_RECORD_GCM_EXPLICIT;
    if (frag_len < explicit_len + TLS_RECORD_TAG)
        return -EBADMSG;
    n = frag_len - explicit_len - TLS_RECORD_TAG;
    if (n > TLS_RECORD_MAX_PLAIN)
        return -EMSGSIZE;
    if (r->rx.seq == UINT64_MAX)
        return -EOVERFLOW;
    body = frag + explicit_len;
    make_nonce(nonce, &r->rx, (enum tls_aead)r->aead, frag);
    make_aad(aad, r->rx.seq, type, n);
    err = aead_start(&c, r->aead, r->rx.key);
    if (err)
        return err;
    err = aead_open(&c, nonce, aad, body, n, body + n);
    aead_end(&c);
    if (err)
        return -EBADMSG;
    r->rx.seq++;
    *plain = body;
    return (ssize_t)n;
}
