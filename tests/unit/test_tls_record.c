/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for tls/record.c, the offloaded TLS 1.2 AEAD record layer, through its public
 * header: two record states with mirrored keys talk to each other. The check against mbedtls's
 * own record layer, with keys from real handshakes, is in test_tls.c.
 */
#include "record.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs <setjmp.h>, <stdarg.h> and <stddef.h> included before it. */
#include <cmocka.h>

static const enum tls_aead aeads[] = {
    TLS_AEAD_AES_128_GCM,
    TLS_AEAD_AES_256_GCM,
    TLS_AEAD_CHACHA20_POLY1305,
};

/* <a> writes with key 1 and reads with key 2, <b> the other way round, as a client and a server
 * would. Sequence numbers start at <seq>. */
static void make_pair(enum tls_aead aead, uint64_t seq, struct tls_record *a, struct tls_record *b)
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
    assert_int_equal(tls_record_set_keys(a, aead, k1, iv1, k2, iv2), 0);
    assert_int_equal(tls_record_set_keys(b, aead, k2, iv2, k1, iv1), 0);
    a->tx.seq = a->rx.seq = b->tx.seq = b->rx.seq = seq;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

/* Opens every record in <buf> with <r>, appending plaintext to <out>; returns its length. */
static size_t open_all(struct tls_record *r, uint8_t *buf, size_t len, uint8_t *out, uint8_t type)
{
    size_t off = 0, got = 0;

    while (off < len) {
        ssize_t flen, n;
        uint8_t *p;

        assert_true(len - off >= TLS_RECORD_HEADER);
        assert_int_equal(buf[off], type);
        flen = tls_record_frame(buf + off);
        assert_true(flen >= 0);
        assert_true(off + TLS_RECORD_HEADER + (size_t)flen <= len);
        n = tls_record_open(r, buf[off], buf + off + TLS_RECORD_HEADER, (size_t)flen, &p);
        assert_true(n >= 0);
        memcpy(out + got, p, (size_t)n);
        got += (size_t)n;
        off += TLS_RECORD_HEADER + (size_t)flen;
    }
    return got;
}

static void test_lengths(void **state)
{
    (void)state;
    assert_int_equal(tls_aead_key_len(TLS_AEAD_AES_128_GCM), 16);
    assert_int_equal(tls_aead_key_len(TLS_AEAD_AES_256_GCM), 32);
    assert_int_equal(tls_aead_key_len(TLS_AEAD_CHACHA20_POLY1305), 32);
    assert_int_equal(tls_aead_iv_len(TLS_AEAD_AES_128_GCM), 4);
    assert_int_equal(tls_aead_iv_len(TLS_AEAD_CHACHA20_POLY1305), 12);
    assert_int_equal(tls_aead_from_suite(0xC02B), TLS_AEAD_AES_128_GCM);
    assert_int_equal(tls_aead_from_suite(0xC030), TLS_AEAD_AES_256_GCM);
    assert_int_equal(tls_aead_from_suite(0xCCA9), TLS_AEAD_CHACHA20_POLY1305);
    assert_int_equal(tls_aead_from_suite(0xC023), TLS_AEAD_NONE); /* CBC */
    /* An idle offloaded connection keeps this and nothing else of the record layer. */
    assert_true(sizeof(struct tls_record) <= 128);
}

static void test_no_keys(void **state)
{
    struct tls_record r;
    uint8_t buf[64], *p;
    struct iovec iov = {buf, 4};

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(tls_record_seal(&r, TLS_CT_APPLICATION_DATA, &iov, 1, buf + 8, 48), -EINVAL);
    assert_int_equal(tls_record_open(&r, TLS_CT_APPLICATION_DATA, buf, 40, &p), -EINVAL);
    assert_int_equal(tls_record_set_keys(&r, TLS_AEAD_NONE, buf, buf, buf, buf), -EINVAL);
}

/* Sizes around every boundary that matters: AES blocks, one record, two records. */
static const size_t sizes[] = {
    0,    1,    2,    15,   16,   17,    31,    32,    33,    100,   255,   256,   1000,
    1400, 4095, 4096, 8191, 8192, 12345, 16383, 16384, 16385, 16400, 32767, 32768, 32769,
};

static void test_roundtrip_sizes(void **state)
{
    uint8_t *plain = malloc(3 * TLS_RECORD_MAX_PLAIN), *wire, *out;

    (void)state;
    wire = malloc(3 * TLS_RECORD_MAX_PLAIN + 4 * TLS_RECORD_MAX_OVERHEAD);
    out = malloc(3 * TLS_RECORD_MAX_PLAIN);
    for (size_t a = 0; a < sizeof(aeads) / sizeof(aeads[0]); a++) {
        struct tls_record c, s;

        make_pair(aeads[a], 0, &c, &s);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = sizes[i], bound = tls_record_bound(&c, n);
            struct iovec iov = {plain, n};
            ssize_t w;

            fill(plain, n, (unsigned)n);
            w = tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 1, wire, bound);
            assert_int_equal(w, (ssize_t)bound);
            assert_int_equal(open_all(&s, wire, (size_t)w, out, TLS_CT_APPLICATION_DATA), n);
            assert_memory_equal(out, plain, n);
            /* And back. */
            w = tls_record_seal(&s, TLS_CT_APPLICATION_DATA, &iov, 1, wire, bound);
            assert_int_equal(w, (ssize_t)bound);
            assert_int_equal(open_all(&c, wire, (size_t)w, out, TLS_CT_APPLICATION_DATA), n);
            assert_memory_equal(out, plain, n);
        }
        assert_int_equal(c.tx.seq, s.rx.seq);
        assert_int_equal(s.tx.seq, c.rx.seq);
    }
    free(plain);
    free(wire);
    free(out);
}

/* Gathered input: many pieces, some empty, records cut across them. */
static void test_scatter(void **state)
{
    enum { TOTAL = 40000 };
    uint8_t *plain = malloc(TOTAL), *wire = malloc(TOTAL + 100 * TLS_RECORD_MAX_OVERHEAD);
    uint8_t *out = malloc(TOTAL);
    unsigned seed = 7;

    (void)state;
    fill(plain, TOTAL, 3);
    for (size_t a = 0; a < sizeof(aeads) / sizeof(aeads[0]); a++) {
        for (int round = 0; round < 20; round++) {
            struct iovec iov[64];
            struct tls_record c, s;
            size_t off = 0;
            int n = 0;
            ssize_t w;

            make_pair(aeads[a], (uint64_t)round * 1000, &c, &s);
            if (round == 1)
                c.max_plain = 512; /* as after a max_fragment_length extension */
            while (off < TOTAL && n < 63) {
                size_t len = round == 2 ? 1 : (size_t)rand_r(&seed) % 3000;

                if (len > TOTAL - off)
                    len = TOTAL - off;
                iov[n].iov_base = plain + off;
                iov[n++].iov_len = len;
                off += len;
            }
            iov[n].iov_base = plain + off;
            iov[n++].iov_len = TOTAL - off;
            w = tls_record_seal(&c, TLS_CT_APPLICATION_DATA, iov, n, wire,
                                tls_record_bound(&c, TOTAL));
            assert_int_equal(w, (ssize_t)tls_record_bound(&c, TOTAL));
            if (round == 1)
                assert_int_equal(c.tx.seq, 1000 + (TOTAL + 511) / 512);
            assert_int_equal(open_all(&s, wire, (size_t)w, out, TLS_CT_APPLICATION_DATA), TOTAL);
            assert_memory_equal(out, plain, TOTAL);
        }
    }
    free(plain);
    free(wire);
    free(out);
}

/* Flipping any single bit of a record's fragment, or its type, fails authentication and
 * leaves the receiver as it was: the genuine record still opens afterwards. */
static void test_tamper(void **state)
{
    (void)state;
    for (size_t a = 0; a < sizeof(aeads) / sizeof(aeads[0]); a++) {
        struct tls_record c, s;
        uint8_t msg[21] = "attack at dawn, twice", wire[128], copy[128], *p;
        struct iovec iov = {msg, sizeof(msg)};
        ssize_t w, flen;

        make_pair(aeads[a], 5, &c, &s);
        w = tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 1, wire, sizeof(wire));
        assert_true(w > 0);
        flen = w - TLS_RECORD_HEADER;
        for (ssize_t i = 0; i < flen; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                memcpy(copy, wire, (size_t)w);
                copy[TLS_RECORD_HEADER + i] ^= (uint8_t)(1u << bit);
                assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA,
                                                 copy + TLS_RECORD_HEADER, (size_t)flen, &p),
                                 -EBADMSG);
            }
        }
        /* The content type is authenticated too (additional data). */
        memcpy(copy, wire, (size_t)w);
        assert_int_equal(
            tls_record_open(&s, TLS_CT_HANDSHAKE, copy + TLS_RECORD_HEADER, (size_t)flen, &p),
            -EBADMSG);
        /* Truncated: shorter than nonce and tag. */
        assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, copy + TLS_RECORD_HEADER,
                                         TLS_RECORD_TAG - 1, &p),
                         -EBADMSG);
        assert_int_equal(s.rx.seq, 5);
        assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, wire + TLS_RECORD_HEADER,
                                         (size_t)flen, &p),
                         (ssize_t)sizeof(msg));
        assert_memory_equal(p, msg, sizeof(msg));
        assert_int_equal(s.rx.seq, 6);
    }
}

/* The sequence number is in the additional data: a replayed or reordered record fails. */
static void test_replay_reorder(void **state)
{
    (void)state;
    for (size_t a = 0; a < sizeof(aeads) / sizeof(aeads[0]); a++) {
        struct tls_record c, s;
        uint8_t m1[] = "first", m2[] = "second", w1[64], w2[64], copy[64], *p;
        struct iovec i1 = {m1, sizeof(m1)}, i2 = {m2, sizeof(m2)};
        ssize_t n1, n2;

        make_pair(aeads[a], 0, &c, &s);
        n1 = tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &i1, 1, w1, sizeof(w1));
        n2 = tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &i2, 1, w2, sizeof(w2));
        assert_true(n1 > 0 && n2 > 0);
        /* Second before first. */
        memcpy(copy, w2, (size_t)n2);
        assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, copy + TLS_RECORD_HEADER,
                                         (size_t)n2 - TLS_RECORD_HEADER, &p),
                         -EBADMSG);
        memcpy(copy, w1, (size_t)n1);
        assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, copy + TLS_RECORD_HEADER,
                                         (size_t)n1 - TLS_RECORD_HEADER, &p),
                         (ssize_t)sizeof(m1));
        /* First again. */
        memcpy(copy, w1, (size_t)n1);
        assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, copy + TLS_RECORD_HEADER,
                                         (size_t)n1 - TLS_RECORD_HEADER, &p),
                         -EBADMSG);
        assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, w2 + TLS_RECORD_HEADER,
                                         (size_t)n2 - TLS_RECORD_HEADER, &p),
                         (ssize_t)sizeof(m2));
    }
}

/* Sequence numbers across byte carries and up to the end: they may not wrap (RFC 5246
 * section 6.1), and UINT64_MAX is never used. */
static void test_sequence_numbers(void **state)
{
    static const uint64_t starts[] = {
        0xfe, 0xfffffffe, 0xfffffffffffe, 0x00fffffffffffffe, 0xfffffffffffffff0,
    };
    uint8_t msg[100], wire[256], out[256];
    struct iovec iov = {msg, sizeof(msg)};

    (void)state;
    fill(msg, sizeof(msg), 9);
    for (size_t a = 0; a < sizeof(aeads) / sizeof(aeads[0]); a++) {
        for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
            struct tls_record c, s;

            make_pair(aeads[a], starts[i], &c, &s);
            for (int k = 0; k < 4; k++) {
                ssize_t w =
                    tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 1, wire, sizeof(wire));

                assert_true(w > 0);
                assert_int_equal(open_all(&s, wire, (size_t)w, out, TLS_CT_APPLICATION_DATA),
                                 sizeof(msg));
                assert_memory_equal(out, msg, sizeof(msg));
            }
            assert_int_equal(c.tx.seq, starts[i] + 4);
        }
        {
            struct tls_record c, s;
            uint8_t big[TLS_RECORD_MAX_PLAIN + 1] = {0}, *p;
            struct iovec bi = {big, sizeof(big)};
            static uint8_t bw[TLS_RECORD_MAX_PLAIN + 1 + 2 * TLS_RECORD_MAX_OVERHEAD];

            make_pair(aeads[a], UINT64_MAX - 1, &c, &s);
            /* Two records do not fit in the one number left: nothing is written. */
            assert_int_equal(tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &bi, 1, bw, sizeof(bw)),
                             -EOVERFLOW);
            assert_int_equal(c.tx.seq, UINT64_MAX - 1);
            assert_true(tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 1, wire, sizeof(wire)) >
                        0);
            assert_int_equal(c.tx.seq, UINT64_MAX);
            assert_int_equal(
                tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 1, out, sizeof(out)),
                -EOVERFLOW);
            assert_int_equal(
                open_all(&s, wire, tls_record_bound(&s, sizeof(msg)), out, TLS_CT_APPLICATION_DATA),
                sizeof(msg));
            assert_int_equal(s.rx.seq, UINT64_MAX);
            assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, wire + 5, 40, &p),
                             -EOVERFLOW);
        }
    }
}

static void test_bounds_and_frame(void **state)
{
    struct tls_record c, s;
    uint8_t msg[300], wire[512], *p;
    struct iovec iov = {msg, sizeof(msg)};
    uint8_t hdr[5] = {TLS_CT_APPLICATION_DATA, 3, 3, 0, 0};

    (void)state;
    make_pair(TLS_AEAD_AES_128_GCM, 0, &c, &s);
    assert_int_equal(tls_record_bound(&c, 0), 0);
    assert_int_equal(tls_record_bound(&c, 1), 1 + 29);
    assert_int_equal(tls_record_bound(&c, 16384), 16384 + 29);
    assert_int_equal(tls_record_bound(&c, 16385), 16385 + 2 * 29);
    /* All or nothing: too small a buffer writes nothing and uses no sequence number. */
    assert_int_equal(tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 1, wire,
                                     tls_record_bound(&c, sizeof(msg)) - 1),
                     -ENOBUFS);
    assert_int_equal(c.tx.seq, 0);
    assert_int_equal(tls_record_seal(&c, TLS_CT_APPLICATION_DATA, &iov, 0, wire, 0), 0);
    make_pair(TLS_AEAD_CHACHA20_POLY1305, 0, &c, &s);
    assert_int_equal(tls_record_bound(&c, 1), 1 + 21);

    /* Framing: RFC 5246 section 6.2.3 limit, version fixed at {3, 3}. */
    hdr[3] = (TLS_RECORD_MAX_FRAGMENT >> 8) & 0xff;
    hdr[4] = TLS_RECORD_MAX_FRAGMENT & 0xff;
    assert_int_equal(tls_record_frame(hdr), TLS_RECORD_MAX_FRAGMENT);
    hdr[4]++;
    assert_int_equal(tls_record_frame(hdr), -EMSGSIZE);
    hdr[2] = 1;
    hdr[4] = 10;
    assert_int_equal(tls_record_frame(hdr), -EPROTO);
    /* A fragment whose plaintext would pass 2^14 is refused before any decryption. */
    assert_int_equal(tls_record_open(&s, TLS_CT_APPLICATION_DATA, wire,
                                     TLS_RECORD_MAX_PLAIN + TLS_RECORD_TAG + 1, &p),
                     -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),          cmocka_unit_test(test_no_keys),
        cmocka_unit_test(test_roundtrip_sizes),  cmocka_unit_test(test_scatter),
        cmocka_unit_test(test_tamper),           cmocka_unit_test(test_replay_reorder),
        cmocka_unit_test(test_sequence_numbers), cmocka_unit_test(test_bounds_and_frame),
    };

    return cmocka_run_group_tests_name("tls_record", tests, NULL, NULL);
}
