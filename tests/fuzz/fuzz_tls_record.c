/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tls/record: opening records an attacker has tampered with.
 *
 * The keys are fixed (below), as a client and a server would hold them after a handshake. Byte 0
 * of the input picks the suite (bits 0-1), the mode (bit 2), the first sequence number (bits
 * 3-4) and the largest plaintext per record (bits 5-7).
 *
 * Sealed mode (bit 2 clear): byte 1 holds the number of edits (low 4 bits), the content type
 * (bits 4-5) and how the plaintext is cut into seal calls (bits 6-7); then come the edits, 3 bytes
 * each (a 16-bit position and an XOR mask, where a zero mask cuts the stream there); the rest is
 * plaintext. The harness seals it with the sender's keys, checks what seal promises (exact length,
 * record count, all or nothing), applies the edits and opens the result as the receiver would:
 * frame each header, open each fragment from an exact-size heap copy. A record identical to the one
 * sealed must open to the plaintext sealed; any other must be refused, with the sequence number
 * unchanged, and the genuine record must then open in its place. Every later record of the
 * genuine stream must open too, so the whole plaintext comes back.
 *
 * Raw mode (bit 2 set): the rest of the input is a record stream from the peer. Whatever opens
 * must be exactly what the sender would have sealed at that sequence number (seal the
 * plaintext again and compare every byte): the fuzzer cannot forge a tag, so anything else that
 * opens is a forgery the record layer let through. Seeds hold genuine records for it to mutate.
 */
#include "record.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define MAX_EDITS 15
/* Seal calls per input: each one builds an AEAD context, which is the slow part. */
#define MAX_CALLS   64
#define MAX_RECORDS 1024

static const enum tls_aead aeads[4] = {
    TLS_AEAD_AES_128_GCM,
    TLS_AEAD_AES_256_GCM,
    TLS_AEAD_CHACHA20_POLY1305,
    TLS_AEAD_AES_128_GCM,
};
/* Around the byte carries of the explicit nonce and at the very end (RFC 5246 section 6.1). */
static const uint64_t first_seqs[4] = {0, 0xff, 0xffffffff, UINT64_MAX - 3};
/* 0 reads as 16384; the others as after a max_fragment_length extension, or smaller. */
static const uint16_t max_plains[8] = {0, 1, 2, 7, 16, 64, 512, 16384};
static const uint8_t types[4] = {TLS_CT_APPLICATION_DATA, TLS_CT_ALERT, TLS_CT_HANDSHAKE,
                                 TLS_CT_APPLICATION_DATA};

/*
 * The key schedule of test_tls_record.c: <a> is the client (writes with key 1), <b> the server.
 * Raw seeds were sealed with these, so they must not change.
 */
static void make_pair(enum tls_aead aead, uint64_t seq, uint16_t max_plain, struct tls_record *a,
                      struct tls_record *b)
{
    uint8_t k1[32], k2[32], iv1[12], iv2[12];

    for (int i = 0; i < 32; i++) {
        k1[i] = (uint8_t)(0x11 * i + 1);
        k2[i] = (uint8_t)(0x27 * i + 3);
    }
    for (int i = 0; i < 12; i++) {
        iv1[i] = (uint8_t)(0x35 * i + 5);
        iv2[i] = (uint8_t)(0x49 * i + 7);
    }
    memset(a, 0, sizeof(*a));
    memset(b, 0, sizeof(*b));
    CHECK(tls_record_set_keys(a, aead, k1, iv1, k2, iv2) == 0);
    CHECK(tls_record_set_keys(b, aead, k2, iv2, k1, iv1) == 0);
    a->tx.seq = a->rx.seq = b->tx.seq = b->rx.seq = seq;
    a->max_plain = b->max_plain = max_plain;
}

/* Opens <frag> from an exact-size copy, so that ASan sees any read or write past it. */
static ssize_t open_copy(struct tls_record *r, uint8_t type, const uint8_t *frag, size_t len,
                         uint8_t *out)
{
    uint8_t *copy = malloc(len ? len : 1), *plain = NULL;
    ssize_t n;

    CHECK(copy != NULL);
    memcpy(copy, frag, len);
    n = tls_record_open(r, type, copy, len, &plain);
    if (n >= 0) {
        CHECK(plain >= copy && plain + n <= copy + len);
        memcpy(out, plain, (size_t)n);
    }
    free(copy);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Sealed mode
 * -------------------------------------------------------------------------------------------*/

struct sealed {
    uint8_t *wire;
    size_t len;
    size_t nr;
    size_t rec_off[MAX_RECORDS + 1]; /* record i is wire[rec_off[i] .. rec_off[i + 1]) */
    size_t plain_off[MAX_RECORDS + 1];
};

/* Seals <p> in calls cut as <cut> says; returns false when the input is too big to bother. */
static bool seal_all(struct tls_record *r, const uint8_t *p, size_t len, uint8_t cut,
                     struct sealed *s)
{
    size_t off = 0, calls = 0;
    uint8_t type = types[cut & 3];

    s->wire = NULL;
    s->len = s->nr = 0;
    s->rec_off[0] = s->plain_off[0] = 0;
    while (off < len) {
        size_t n = len - off, bound, m = r->max_plain ? r->max_plain : TLS_RECORD_MAX_PLAIN;
        uint64_t seq0 = r->tx.seq;
        struct iovec iov[3];
        int iovcnt = 0;
        ssize_t w;
        uint8_t *dst;

        /* Whole (0), or calls of 37, 74 or 111 bytes, the last one taking what is left. */
        if ((cut >> 2) != 0 && calls + 1 < MAX_CALLS && n > (size_t)(cut >> 2) * 37)
            n = (size_t)(cut >> 2) * 37;
        bound = tls_record_bound(r, n);
        if (s->nr + (n + m - 1) / m > MAX_RECORDS)
            return false;
        /* Gathered from up to three pieces, one of them empty, the way a send queue holds it. */
        iov[iovcnt].iov_base = (void *)(p + off);
        iov[iovcnt++].iov_len = n / 3;
        iov[iovcnt].iov_base = (void *)(p + off + n / 3);
        iov[iovcnt++].iov_len = 0;
        iov[iovcnt].iov_base = (void *)(p + off + n / 3);
        iov[iovcnt++].iov_len = n - n / 3;

        /* All or nothing: one byte short writes nothing and spends no sequence number. */
        dst = malloc(bound);
        CHECK(dst != NULL);
        memset(dst, 0xa5, bound);
        w = tls_record_seal(r, type, iov, iovcnt, dst, bound - 1);
        CHECK(w == -ENOBUFS || w == -EOVERFLOW);
        CHECK(r->tx.seq == seq0);
        for (size_t i = 0; i < bound; i++)
            CHECK(dst[i] == 0xa5);
        free(dst);

        dst = malloc(bound); /* exact size: ASan sees a write past the bound */
        CHECK(dst != NULL);
        w = tls_record_seal(r, type, iov, iovcnt, dst, bound);
        if (w == -EOVERFLOW) {
            /* RFC 5246 section 6.1: the numbers must not wrap; UINT64_MAX is never used. */
            CHECK(r->tx.seq == seq0 && (n + m - 1) / m > UINT64_MAX - seq0);
            free(dst);
            break;
        }
        CHECK(w == (ssize_t)bound);
        CHECK(r->tx.seq - seq0 == (n + m - 1) / m);
        s->wire = realloc(s->wire, s->len + bound);
        CHECK(s->wire != NULL);
        memcpy(s->wire + s->len, dst, bound);
        free(dst);
        /* Note each record's place, from its header. */
        for (size_t at = s->len; at < s->len + bound;) {
            ssize_t flen = tls_record_frame(s->wire + at);

            CHECK(s->wire[at] == type && flen > 0);
            at += TLS_RECORD_HEADER + (size_t)flen;
            s->nr++;
            s->rec_off[s->nr] = at;
            s->plain_off[s->nr] = s->plain_off[s->nr - 1] + (size_t)flen -
                                  (tls_record_overhead(r) - TLS_RECORD_HEADER);
        }
        CHECK(s->rec_off[s->nr] == s->len + bound);
        s->len += bound;
        off += n;
        calls++;
    }
    CHECK(s->plain_off[s->nr] == off);
    return true;
}

static void run_sealed(enum tls_aead aead, uint64_t seq, uint16_t max_plain, const uint8_t *data,
                       size_t size)
{
    struct tls_record tx, rx, rx_genuine;
    size_t nr_edits, off = 0, i = 0, plain_len;
    const uint8_t *edits, *plain;
    uint8_t cut, *wire, *out;
    struct sealed *s;

    if (size < 1)
        return;
    nr_edits = data[0] & MAX_EDITS;
    cut = data[0] >> 4;
    if (size < 1 + 3 * nr_edits)
        return;
    edits = data + 1;
    plain = data + 1 + 3 * nr_edits;
    plain_len = size - 1 - 3 * nr_edits;

    make_pair(aead, seq, max_plain, &tx, &rx);
    s = malloc(sizeof(*s));
    CHECK(s != NULL);
    if (!seal_all(&tx, plain, plain_len, cut, s)) {
        free(s->wire);
        free(s);
        return;
    }
    plain_len = s->plain_off[s->nr]; /* less when the sequence numbers ran out */

    /* The attacker's copy. */
    wire = malloc(s->len ? s->len : 1);
    CHECK(wire != NULL);
    if (s->len > 0)
        memcpy(wire, s->wire, s->len);
    size_t wire_len = s->len;
    for (size_t e = 0; e < nr_edits && wire_len > 0; e++) {
        size_t pos = ((size_t)edits[3 * e] << 8 | edits[3 * e + 1]) % wire_len;
        uint8_t x = edits[3 * e + 2];

        if (x == 0)
            wire_len = pos;
        else
            wire[pos] ^= x;
    }

    /* The receiver: frame, open; stop at the first record refused, as a session would. */
    out = malloc(plain_len ? plain_len : 1);
    CHECK(out != NULL);
    while (i < s->nr && off + TLS_RECORD_HEADER <= wire_len) {
        const uint8_t *hdr = wire + off;
        size_t genuine_len = s->rec_off[i + 1] - s->rec_off[i];
        uint8_t buf[TLS_RECORD_MAX_FRAGMENT];
        ssize_t flen = tls_record_frame(hdr), n;
        uint64_t seq0 = rx.rx.seq;

        CHECK(off == s->rec_off[i]);
        if (flen < 0) {
            CHECK(flen == -EPROTO || flen == -EMSGSIZE);
            CHECK(hdr[1] != 3 || hdr[2] != 3 || (size_t)(hdr[3] << 8 | hdr[4]) > 18432);
            break;
        }
        if (off + TLS_RECORD_HEADER + (size_t)flen > wire_len)
            break; /* incomplete: a session waits for more */
        memcpy(&rx_genuine, &rx, sizeof(rx));
        n = open_copy(&rx, hdr[0], hdr + TLS_RECORD_HEADER, (size_t)flen, buf);
        if (TLS_RECORD_HEADER + (size_t)flen == genuine_len &&
            memcmp(hdr, s->wire + off, genuine_len) == 0) {
            size_t want = s->plain_off[i + 1] - s->plain_off[i];

            CHECK(n == (ssize_t)want);
            CHECK(memcmp(buf, plain + s->plain_off[i], want) == 0);
            CHECK(rx.rx.seq == seq0 + 1);
            off += genuine_len;
            i++;
            continue;
        }
        /* Tampered: refused, as bad_record_mac or record_overflow, and nothing advanced. */
        CHECK(n == -EBADMSG || n == -EMSGSIZE);
        CHECK(n != -EMSGSIZE || (size_t)flen > TLS_RECORD_MAX_PLAIN + TLS_RECORD_TAG);
        CHECK(rx.rx.seq == seq0);
        CHECK(memcmp(&rx, &rx_genuine, sizeof(rx)) == 0);
        break;
    }
    /* The genuine stream from where the attacker's stopped: every record opens, in order. */
    for (; i < s->nr; i++) {
        size_t want = s->plain_off[i + 1] - s->plain_off[i];
        uint8_t buf[TLS_RECORD_MAX_FRAGMENT];
        const uint8_t *hdr = s->wire + s->rec_off[i];
        ssize_t flen = tls_record_frame(hdr);

        CHECK(flen >= 0 && s->rec_off[i] + TLS_RECORD_HEADER + (size_t)flen == s->rec_off[i + 1]);
        CHECK(open_copy(&rx, hdr[0], hdr + TLS_RECORD_HEADER, (size_t)flen, buf) == (ssize_t)want);
        memcpy(out + s->plain_off[i], buf, want);
        CHECK(memcmp(out + s->plain_off[i], plain + s->plain_off[i], want) == 0);
    }
    CHECK(rx.rx.seq == tx.tx.seq);
    free(out);
    free(wire);
    free(s->wire);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Raw mode
 * -------------------------------------------------------------------------------------------*/

static void run_raw(enum tls_aead aead, uint64_t seq, const uint8_t *data, size_t size)
{
    struct tls_record peer, rx;
    size_t off = 0;

    make_pair(aead, seq, 0, &peer, &rx);
    while (off + TLS_RECORD_HEADER <= size) {
        uint8_t buf[TLS_RECORD_MAX_FRAGMENT], again[TLS_RECORD_MAX_FRAGMENT + 64];
        const uint8_t *hdr = data + off;
        ssize_t flen = tls_record_frame(hdr), n, w;
        uint64_t seq0 = rx.rx.seq;
        struct iovec iov;

        if (flen < 0 || off + TLS_RECORD_HEADER + (size_t)flen > size)
            break;
        n = open_copy(&rx, hdr[0], hdr + TLS_RECORD_HEADER, (size_t)flen, buf);
        if (n < 0) {
            CHECK(n == -EBADMSG || n == -EMSGSIZE || n == -EOVERFLOW);
            CHECK(rx.rx.seq == seq0);
            break;
        }
        CHECK(rx.rx.seq == seq0 + 1 && n <= TLS_RECORD_MAX_PLAIN);
        /* It opened: it must be byte for byte what the peer seals at this number. */
        CHECK(peer.tx.seq == seq0);
        iov.iov_base = buf;
        iov.iov_len = (size_t)n;
        w = tls_record_seal(&peer, hdr[0], &iov, 1, again, sizeof(again));
        if (n == 0) {
            /* Seal writes no record for nothing; an empty record still has a genuine form. */
            uint8_t nonce[8];

            CHECK(w == 0);
            CHECK((size_t)flen == tls_record_overhead(&rx) - TLS_RECORD_HEADER);
            for (int k = 0; k < 8; k++)
                nonce[k] = (uint8_t)(seq0 >> (56 - 8 * k));
            CHECK(aead == TLS_AEAD_CHACHA20_POLY1305 ||
                  memcmp(hdr + TLS_RECORD_HEADER, nonce, 8) == 0);
            peer.tx.seq++;
        } else {
            CHECK(w == TLS_RECORD_HEADER + flen);
            CHECK(memcmp(again, hdr, (size_t)w) == 0);
        }
        off += TLS_RECORD_HEADER + (size_t)flen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum tls_aead aead;
    uint64_t seq;

    if (size < 1)
        return 0;
    aead = aeads[data[0] & 3];
    seq = first_seqs[(data[0] >> 3) & 3];
    if (data[0] & 4)
        run_raw(aead, seq, data + 1, size - 1);
    else
        run_sealed(aead, seq, max_plains[data[0] >> 5], data + 1, size - 1);
    return 0;
}
