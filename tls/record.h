/* SPDX-License-Identifier: MIT */
/*
 * record: the TLS 1.2 AEAD record layer (RFC 5246 section 6.2.3.3) that takes over a connection
 * once mbedtls has finished its handshake, the way kernel TLS takes over a socket.
 *
 * A struct tls_record owns the traffic keys, the fixed IVs and the two sequence numbers of one
 * connection, about 120 bytes, and nothing else: no buffers and no AEAD contexts (an AES-GCM
 * context is 424 bytes plus a 288-byte key schedule on the heap, per direction; see record.c for
 * the measured trade-off). It seals plaintext into records written straight into a caller's
 * buffer and opens one complete record in place. Framing across receives, alerts and the state
 * of the connection belong to the session (tls.c).
 *
 * Suites: AES-128-GCM and AES-256-GCM (nonce = 4-byte salt || 8-byte explicit nonce, RFC 5288
 * section 3) and ChaCha20-Poly1305 (nonce = 12-byte IV XOR sequence number, RFC 7905 section 2).
 *
 * Shard rule: a struct tls_record belongs to the shard of its connection; the functions keep no
 * global state and may run on any thread.
 */
#ifndef RINGCAST_TLS_RECORD_H
#define RINGCAST_TLS_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* RFC 5246 section 6.2.1: TLSPlaintext.length <= 2^14. */
#define TLS_RECORD_MAX_PLAIN 16384
/* RFC 5246 section 6.2.3: TLSCiphertext.length <= 2^14 + 2048. */
#define TLS_RECORD_MAX_FRAGMENT (16384 + 2048)
#define TLS_RECORD_HEADER       5
#define TLS_RECORD_TAG          16
/* RFC 5288 section 3: GCM records carry an 8-byte explicit nonce before the ciphertext. */
#define TLS_RECORD_GCM_EXPLICIT 8
/* Largest per-record expansion of any suite here: header, explicit nonce and tag. */
#define TLS_RECORD_MAX_OVERHEAD (TLS_RECORD_HEADER + TLS_RECORD_GCM_EXPLICIT + TLS_RECORD_TAG)

/* RFC 5246 section 6.2.1, ContentType. */
enum tls_content_type {
    TLS_CT_CHANGE_CIPHER_SPEC = 20,
    TLS_CT_ALERT = 21,
    TLS_CT_HANDSHAKE = 22,
    TLS_CT_APPLICATION_DATA = 23,
};

/* RFC 5246 section 7.2, AlertLevel and AlertDescription (the ones this code sends or names). */
enum tls_alert {
    TLS_ALERT_WARNING = 1,
    TLS_ALERT_FATAL = 2,

    TLS_ALERT_CLOSE_NOTIFY = 0,
    TLS_ALERT_UNEXPECTED_MESSAGE = 10,
    TLS_ALERT_BAD_RECORD_MAC = 20,
    TLS_ALERT_RECORD_OVERFLOW = 22,
    TLS_ALERT_HANDSHAKE_FAILURE = 40,
    TLS_ALERT_DECODE_ERROR = 50,
    TLS_ALERT_PROTOCOL_VERSION = 70,
    TLS_ALERT_INTERNAL_ERROR = 80,
    TLS_ALERT_USER_CANCELED = 90,
    TLS_ALERT_NO_RENEGOTIATION = 100,
};

enum tls_aead {
    TLS_AEAD_NONE = 0,
    TLS_AEAD_AES_128_GCM,
    TLS_AEAD_AES_256_GCM,
    TLS_AEAD_CHACHA20_POLY1305,
};

/* One direction of a connection. */
struct tls_record_dir {
    /* The next sequence number (RFC 5246 section 6.1). UINT64_MAX means exhausted: the value
     * is never used, so that "wrapping" can be told apart from "fresh". */
    uint64_t seq;
    uint8_t key[32];
    /* GCM: the 4-byte salt (client_write_IV / server_write_IV); ChaCha20-Poly1305: 12 bytes. */
    uint8_t iv[12];
};

/*
 * Embeddable; the all-zero value is "no keys" (every operation fails with -EINVAL). Fields are
 * public so that a session can take the sequence numbers over from mbedtls and tests can move
 * them, but only tls_record_set_keys() may fill keys and <aead>.
 */
struct tls_record {
    struct tls_record_dir tx;
    struct tls_record_dir rx;
    uint8_t aead; /* enum tls_aead */
    uint8_t _pad;
    /* Largest plaintext per sealed record: 16384 unless the peer negotiated a smaller
     * max_fragment_length (RFC 6066 section 4). 0 reads as 16384. */
    uint16_t max_plain;
};

/* The AEAD of an IANA cipher suite number (0xC02B, 0xCCA8, ...), or TLS_AEAD_NONE for any suite
 * this record layer does not run. Cannot fail. */
enum tls_aead tls_aead_from_suite(uint16_t suite);

/* Key and fixed-IV lengths of <aead> in bytes (0 for TLS_AEAD_NONE). Cannot fail. */
size_t tls_aead_key_len(enum tls_aead aead);
size_t tls_aead_iv_len(enum tls_aead aead);

/*
 * Sets <aead> and copies the write key and IV of each direction (lengths from tls_aead_*_len).
 * Sequence numbers are left as they are. Returns 0, or -EINVAL for TLS_AEAD_NONE or an unknown
 * value. Borrows the key pointers for the call only.
 */
int tls_record_set_keys(struct tls_record *r, enum tls_aead aead, const uint8_t *tx_key,
                        const uint8_t *tx_iv, const uint8_t *rx_key, const uint8_t *rx_iv);

/* Wipes keys, IVs and sequence numbers (before the memory is freed). Cannot fail. */
void tls_record_wipe(struct tls_record *r);

/* Per-record expansion (header, explicit nonce, tag) of <r>'s suite. Cannot fail. */
size_t tls_record_overhead(const struct tls_record *r);

/* Exact ciphertext size that tls_record_seal() writes for <plain_len> bytes. Cannot fail. */
size_t tls_record_bound(const struct tls_record *r, size_t plain_len);

/*
 * Seals the concatenation of <iov>[0..<iovcnt>) as records of content <type>, each holding up to
 * max_plain bytes, into <dst>. All or nothing: returns the bytes written (tls_record_bound() of
 * the total; 0 for empty input, which writes no record), or -ENOBUFS if <cap> is smaller than
 * that, -EOVERFLOW if the sequence numbers would run out (RFC 5246 section 6.1: they must not
 * wrap, and renegotiation is off), -EINVAL without keys. On error nothing is written and the
 * sequence number is unchanged. <dst> must not overlap the input. Borrows everything for the
 * call only.
 */
ssize_t tls_record_seal(struct tls_record *r, uint8_t type, const struct iovec *iov, int iovcnt,
                        uint8_t *dst, size_t cap);

/*
 * Length of the fragment announced by the 5-byte record header <hdr>: 0..2^14+2048. Returns
 * -EPROTO if the version is not TLS 1.2 ({3, 3}, RFC 5246 appendix E.1: fixed after the
 * handshake; alert protocol_version), -EMSGSIZE if the length is over the limit (alert
 * record_overflow). Cannot fail otherwise.
 */
ssize_t tls_record_frame(const uint8_t hdr[TLS_RECORD_HEADER]);

/*
 * Authenticates and decrypts, in place, the fragment <frag> of <frag_len> bytes of one record of
 * content <type> with the next receive sequence number, then advances it. On success returns the
 * plaintext length and sets *<plain> to its start inside <frag>. Errors: -EBADMSG when the
 * fragment is too short or the tag does not verify (alert bad_record_mac: RFC 5246 section
 * 6.2.3.3 gives the same alert for both, so nothing tells them apart), -EMSGSIZE for plaintext
 * over 2^14 (record_overflow), -EOVERFLOW when the sequence numbers are exhausted, -EINVAL
 * without keys. On error the sequence number is unchanged and <frag> may be overwritten.
 */
ssize_t tls_record_open(struct tls_record *r, uint8_t type, uint8_t *frag, size_t frag_len,
                        uint8_t **plain);

#endif
