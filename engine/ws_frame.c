/* SPDX-License-Identifier: MIT */
/*
 * ws_frame: RFC 6455 frame decoder and encoder. See ws_frame.h for the contract.
 *
 * The decoder is a byte-driven state machine over the frame header (no header buffer: length
 * and key bytes are shifted straight into the parser), with a fast path that decodes a header
 * in one go when all of it is in the buffer, which is the common case. Payload is never copied:
 * it is unmasked in place and handed out as a chunk pointing into the caller's buffer. Every
 * rule is checked on the first byte that can break it, so a bad peer is failed before the rest
 * of its frame (or the rest of a huge announced payload) is read.
 */
#include "ws_frame.h"

#include <errno.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * UTF-8 (RFC 3629 §4)
 * -------------------------------------------------------------------------------------------*/

/*
 * Byte classes. The lead bytes E0, ED, F0 and F4 get classes of their own because each one
 * restricts its first continuation byte: that is how overlongs (E0 80..9F, F0 80..8F),
 * surrogates (ED A0..BF) and code points past U+10FFFF (F4 90..BF) are rejected on the byte
 * that makes them invalid rather than at the end of the sequence.
 */
enum {
    C_ASCII, /* 00..7F */
    C_CONT0, /* 80..8F */
    C_CONT1, /* 90..9F */
    C_CONT2, /* A0..BF */
    C_LEAD2, /* C2..DF */
    C_E0,
    C_LEAD3, /* E1..EC, EE..EF */
    C_ED,
    C_F0,
    C_LEAD4, /* F1..F3 */
    C_F4,
    C_BAD, /* C0, C1 (always overlong), F5..FF (past U+10FFFF) */
    NR_CLASSES
};

/*
 * A shift DFA (Per Vognsen's layout): each state is the bit offset of a 6-bit field, and each
 * byte class has one 64-bit row holding the next state for every current state. A step is
 * "row[class] >> state & 63": the row load does not depend on the state, so the serial chain
 * per byte is a shift and a mask rather than a dependent table load. The states are the
 * classic ones; D_REJ is reported as UTF8_REJECT (1), the others as themselves.
 */
enum {
    D_ACC = 0, /* between sequences: UTF8_ACCEPT */
    D_REJ = 6, /* sticky failure */
    D_N1 = 12, /* one continuation byte left */
    D_N2 = 18, /* two left, any continuation first */
    D_E0 = 24, /* two left, first must be A0..BF */
    D_ED = 30, /* two left, first must be 80..9F */
    D_N3 = 36, /* three left, any continuation first */
    D_F0 = 42, /* three left, first must be 90..BF */
    D_F4 = 48, /* three left, first must be 80..8F */
};

/* The C_ classes by value: 0 ASCII, 1-3 continuations, 4-10 leads, 11 never valid. */
/* clang-format off */
static const uint8_t utf8_class[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 10 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 20 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 30 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 40 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 50 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 60 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 70 */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1, /* 80 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* 90 */
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3, /* A0 */
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3, /* B0 */
    11, 11,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* C0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* D0 */
     5,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  7,  6,  6, /* E0 */
     8,  9,  9,  9, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, /* F0 */
};
/* clang-format on */

#define X D_REJ
#define ROW(acc, n1, n2, e0, ed, n3, f0, f4)                                                       \
    ((uint64_t)(acc) << D_ACC | (uint64_t)D_REJ << D_REJ | (uint64_t)(n1) << D_N1 |                \
     (uint64_t)(n2) << D_N2 | (uint64_t)(e0) << D_E0 | (uint64_t)(ed) << D_ED |                    \
     (uint64_t)(n3) << D_N3 | (uint64_t)(f0) << D_F0 | (uint64_t)(f4) << D_F4)
/* clang-format off */
static const uint64_t utf8_row[NR_CLASSES] = {
    /*  state:       ACC   N1     N2    E0    ED    N3    F0    F4 */
    [C_ASCII] = ROW(D_ACC, X,     X,    X,    X,    X,    X,    X),
    [C_CONT0] = ROW(X,     D_ACC, D_N1, X,    D_N1, D_N2, X,    D_N2),
    [C_CONT1] = ROW(X,     D_ACC, D_N1, X,    D_N1, D_N2, D_N2, X),
    [C_CONT2] = ROW(X,     D_ACC, D_N1, D_N1, X,    D_N2, D_N2, X),
    [C_LEAD2] = ROW(D_N1,  X,     X,    X,    X,    X,    X,    X),
    [C_E0]    = ROW(D_E0,  X,     X,    X,    X,    X,    X,    X),
    [C_LEAD3] = ROW(D_N2,  X,     X,    X,    X,    X,    X,    X),
    [C_ED]    = ROW(D_ED,  X,     X,    X,    X,    X,    X,    X),
    [C_F0]    = ROW(D_F0,  X,     X,    X,    X,    X,    X,    X),
    [C_LEAD4] = ROW(D_N3,  X,     X,    X,    X,    X,    X,    X),
    [C_F4]    = ROW(D_F4,  X,     X,    X,    X,    X,    X,    X),
    [C_BAD]   = ROW(X,     X,     X,    X,    X,    X,    X,    X),
};
/* clang-format on */
#undef ROW
#undef X

/* Continuation bytes a state still needs; lets a final fragment fail as soon as too few remain. */
static const uint8_t utf8_need[D_F4 + 1] = {
    [D_N1] = 1, [D_N2] = 2, [D_E0] = 2, [D_ED] = 2, [D_N3] = 3, [D_F0] = 3, [D_F4] = 3,
};

#define HIGH_BITS 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

uint32_t utf8_validate(uint32_t state, const uint8_t *buf, size_t len)
{
    /* Anything but a state this function returned (UTF8_REJECT included) stays rejected. */
    if (state == UTF8_REJECT || state == D_REJ || state > D_F4 || state % 6)
        return UTF8_REJECT;
    if (len == 0)
        return state;
    uint64_t s = state;
    const uint8_t *p = buf, *end = buf + len;
    while (p < end) {
        if (s == D_ACC) {
            /*
             * Between sequences, skip ASCII 16 bytes at a time; chat text is mostly ASCII. A
             * word with a high bit set is skipped up to its first non-ASCII byte, which then
             * goes through the DFA.
             */
            while (end - p >= 16 && !((load64(p) | load64(p + 8)) & HIGH_BITS))
                p += 16;
            if (end - p >= 8) {
                uint64_t high = load64(p) & HIGH_BITS;
                if (!high) {
                    p += 8;
                    continue;
                }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                p += (unsigned)__builtin_ctzll(high) / 8;
#endif
            }
            if (p == end)
                break;
        }
        s = utf8_row[utf8_class[*p++]] >> s & 63;
        if (s == D_REJ)
            return UTF8_REJECT;
    }
    return (uint32_t)s;
}

/* ---------------------------------------------------------------------------------------------
 * Masking (RFC 6455 §5.3)
 * -------------------------------------------------------------------------------------------*/

unsigned ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], unsigned offset)
{
    offset &= 3;
    /*
     * The key rotated to start at <offset>, repeated twice: XORing 8 bytes at a time keeps the
     * key phase unchanged, since 8 is a multiple of 4. Loads and stores go through memcpy, so
     * any alignment of <buf> is fine.
     */
    uint8_t k[8];
    for (unsigned i = 0; i < 8; i++)
        k[i] = mask[(offset + i) & 3];
    uint64_t key = load64(k);
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        uint64_t a = load64(buf + i) ^ key, b = load64(buf + i + 8) ^ key;
        uint64_t c = load64(buf + i + 16) ^ key, d = load64(buf + i + 24) ^ key;
        memcpy(buf + i, &a, 8);
        memcpy(buf + i + 8, &b, 8);
        memcpy(buf + i + 16, &c, 8);
        memcpy(buf + i + 24, &d, 8);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t a = load64(buf + i) ^ key;
        memcpy(buf + i, &a, 8);
    }
    for (; i < len; i++)
        buf[i] ^= k[i & 7];
    return (unsigned)((offset + len) & 3);
}

/* ---------------------------------------------------------------------------------------------
 * Encoder (RFC 6455 §5.2)
 * -------------------------------------------------------------------------------------------*/

size_t ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mbit = mask ? 0x80 : 0;
    /* §5.2: the minimal number of bytes must be used to encode the length. */
    if (len <= WS_CONTROL_MAX) {
        out[1] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Close codes (RFC 6455 §7.4)
 * -------------------------------------------------------------------------------------------*/

uint16_t ws_close_code_for_error(int err)
{
    switch (err) {
    case -EPROTO:
    case EPROTO:
        return WS_CLOSE_PROTOCOL;
    case -EILSEQ:
    case EILSEQ:
        return WS_CLOSE_BAD_DATA;
    case -EMSGSIZE:
    case EMSGSIZE:
        return WS_CLOSE_TOO_BIG;
    default:
        return WS_CLOSE_INTERNAL;
    }
}

/*
 * §7.4.1 defines 1000-1015; 1004 is reserved, and 1005, 1006 and 1015 must never be sent.
 * 1012-1014 were registered with IANA later (§11.7) and peers do send them. 1016-2999 are
 * reserved for future RFCs, 3000-3999 are IANA-registered and 4000-4999 private (§7.4.2).
 */
static bool close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

uint16_t ws_close_payload_check(const uint8_t *payload, size_t len, uint16_t *code)
{
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    /* §5.5.1: a body starts with a 2-byte code; §5.5: control payloads are at most 125. */
    if (len == 1 || len > WS_CONTROL_MAX)
        return WS_CLOSE_PROTOCOL;
    uint16_t c = (uint16_t)(payload[0] << 8 | payload[1]);
    if (!close_code_valid(c))
        return WS_CLOSE_PROTOCOL;
    /* §5.5.1: the reason is UTF-8; §8.1 makes invalid text data a 1007 failure. */
    if (utf8_validate(UTF8_ACCEPT, payload + 2, len - 2) != UTF8_ACCEPT)
        return WS_CLOSE_BAD_DATA;
    *code = c;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoder (RFC 6455 §5)
 * -------------------------------------------------------------------------------------------*/

/* All-zero is P_HDR0, so a zeroed parser waits for the first header byte. */
enum {
    P_HDR0,    /* FIN, RSV, opcode */
    P_HDR1,    /* MASK, 7-bit length */
    P_LEN,     /* _hdr_left extended length bytes to go, shifted into _remaining */
    P_KEY,     /* _hdr_left masking key bytes to go */
    P_PAYLOAD, /* _remaining payload bytes to go */
    P_FAILED,  /* _err holds the errno, returned again on every call */
};

enum {
    F_FIN = 1 << 0,           /* the current frame is final */
    F_FRAME_STARTED = 1 << 1, /* a chunk of the current frame has been handed out */
    F_MSG_STARTED = 1 << 2,   /* a chunk of the current data message has been handed out */
};

_Static_assert(sizeof(struct ws_parser) <= 64, "ws_parser lives in every connection");

static bool is_control(uint8_t opcode)
{
    return opcode & 0x08;
}

static ssize_t fail(struct ws_parser *p, int err)
{
    p->_state = P_FAILED;
    p->_err = (uint8_t)err;
    return -err;
}

/* First header byte: everything here can be checked before any other byte arrives. */
static int on_byte0(struct ws_parser *p, uint8_t b0)
{
    uint8_t op = b0 & 0x0f;
    bool fin = b0 & 0x80;

    /* §5.2: RSV1-3 must be 0 unless an extension defines them; we negotiate none. */
    if (b0 & 0x70)
        return EPROTO;
    switch (op) {
    case WS_OP_CONT:
        /* §5.4: a continuation only continues a message that is still open. */
        if (!p->_msg_opcode)
            return EPROTO;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        /* §5.4: data messages do not interleave; only control frames may. */
        if (p->_msg_opcode)
            return EPROTO;
        p->_msg_opcode = op;
        p->_msg_len = 0;
        p->_utf8 = UTF8_ACCEPT;
        p->_flags &= (uint8_t)~F_MSG_STARTED;
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        /* §5.5: control frames must not be fragmented. */
        if (!fin)
            return EPROTO;
        break;
    default:
        /* §5.2: 0x3-0x7 and 0xB-0xF are reserved. */
        return EPROTO;
    }
    p->_opcode = op;
    p->_flags = (uint8_t)((p->_flags & F_MSG_STARTED) | (fin ? F_FIN : 0));
    return 0;
}

/* Second header byte. Returns the number of extended length bytes (0, 2, 8) or -errno. */
static int on_byte1(struct ws_parser *p, uint8_t b1)
{
    /* §5.1: a client masks every frame, a server never does. */
    if (!(b1 & 0x80) != !p->server)
        return -EPROTO;
    uint8_t len7 = b1 & 0x7f;
    /* §5.5: control payloads are at most 125 bytes, so never an extended length. */
    if (len7 > WS_CONTROL_MAX && is_control(p->_opcode))
        return -EPROTO;
    return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

/*
 * The whole payload length is known. §5.2 tells senders to use the minimal length encoding but
 * does not tell receivers to refuse others; they are accepted, as most peers do.
 */
static int on_length(struct ws_parser *p, uint64_t len)
{
    /* §5.2: the most significant bit of a 64-bit length must be 0. */
    if (len >> 63)
        return EPROTO;
    if (!is_control(p->_opcode)) {
        /* Checked on the header, so an oversized message is refused before its payload. */
        if (p->max_message && len > p->max_message - p->_msg_len)
            return EMSGSIZE;
        p->_msg_len += len;
        /* A final text fragment too short to finish the pending sequence is already bad. */
        if ((p->_flags & F_FIN) && p->_msg_opcode == WS_OP_TEXT && utf8_need[p->_utf8] > len)
            return EILSEQ;
    }
    p->_remaining = len;
    return 0;
}

static void start_payload(struct ws_parser *p)
{
    p->_state = P_PAYLOAD;
    p->_mask_off = 0;
    p->_flags &= (uint8_t)~F_FRAME_STARTED;
}

/*
 * Decodes a header that lies whole in <b> (at most <avail> bytes). Returns the header length,
 * 0 if it is not all there yet, or -errno.
 */
static int header_fast(struct ws_parser *p, const uint8_t *b, size_t avail)
{
    if (avail < 2)
        return 0;
    unsigned ext = (b[1] & 0x7f) == 126 ? 2 : (b[1] & 0x7f) == 127 ? 8 : 0;
    unsigned total = 2 + ext + (b[1] & 0x80 ? 4 : 0);
    if (avail < total)
        return 0;
    int err = on_byte0(p, b[0]);
    if (err)
        return -err;
    int r = on_byte1(p, b[1]);
    if (r < 0)
        return r;
    uint64_t len = b[1] & 0x7f;
    if (ext) {
        len = 0;
        for (unsigned i = 0; i < ext; i++)
            len = len << 8 | b[2 + i];
    }
    err = on_length(p, len);
    if (err)
        return -err;
    if (p->server)
        memcpy(p->_mask, b + 2 + ext, 4);
    start_payload(p);
    return (int)total;
}

/*
 * Takes header bytes one at a time from <b>, up to <avail>. Returns the bytes consumed (the
 * header may still be incomplete) or -errno. Each rule is checked on the byte that decides it.
 */
static ssize_t header_slow(struct ws_parser *p, const uint8_t *b, size_t avail)
{
    size_t i = 0;
    int err = 0;
    while (i < avail && p->_state != P_PAYLOAD) {
        uint8_t c = b[i++];
        switch (p->_state) {
        case P_HDR0:
            err = on_byte0(p, c);
            p->_state = P_HDR1;
            break;
        case P_HDR1: {
            int ext = on_byte1(p, c);
            if (ext < 0)
                return ext;
            p->_hdr_left = (uint8_t)ext;
            p->_remaining = 0;
            if (ext) {
                p->_state = P_LEN;
                break;
            }
            err = on_length(p, c & 0x7f);
            p->_hdr_left = 4;
            p->_state = P_KEY;
            break;
        }
        case P_LEN:
            /* §5.2: fail on the first 64-bit length byte if its top bit is set. */
            if (p->_hdr_left == 8 && (c & 0x80))
                return -EPROTO;
            p->_remaining = p->_remaining << 8 | c;
            if (--p->_hdr_left)
                break;
            err = on_length(p, p->_remaining);
            p->_hdr_left = 4;
            p->_state = P_KEY;
            break;
        case P_KEY:
            p->_mask[4 - p->_hdr_left--] = c;
            break;
        default:
            return -EPROTO;
        }
        if (err)
            return -err;
        if (p->_state == P_KEY && (!p->server || !p->_hdr_left))
            start_payload(p);
    }
    return (ssize_t)i;
}

ssize_t ws_parser_feed(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_chunk *chunk,
                       bool *got)
{
    *got = false;
    if (p->_state == P_FAILED)
        return -(ssize_t)p->_err;
    if (len == 0)
        return 0;

    size_t pos = 0;
    if (p->_state != P_PAYLOAD) {
        ssize_t r = p->_state == P_HDR0 ? header_fast(p, buf, len) : 0;
        if (r == 0)
            r = header_slow(p, buf, len);
        if (r < 0)
            return fail(p, (int)-r);
        pos = (size_t)r;
        if (p->_state != P_PAYLOAD)
            return (ssize_t)pos;
    }

    /* A zero-length frame gets its (empty) chunk as soon as its header is complete. */
    size_t avail = len - pos;
    size_t n = p->_remaining < avail ? (size_t)p->_remaining : avail;
    if (n == 0 && p->_remaining)
        return (ssize_t)pos;

    uint8_t *data = buf + pos;
    if (p->server)
        p->_mask_off = (uint8_t)ws_mask(data, n, p->_mask, p->_mask_off);
    p->_remaining -= n;

    bool control = is_control(p->_opcode);
    bool frame_end = p->_remaining == 0;
    bool msg_end = frame_end && (p->_flags & F_FIN);
    if (!control && p->_msg_opcode == WS_OP_TEXT) {
        /*
         * §8.1: invalid UTF-8 fails the connection. Checking each chunk as it goes by, with
         * the DFA state carried across chunks and fragments, rejects the first bad byte, and a
         * final fragment whose remaining bytes cannot complete the pending sequence.
         */
        uint32_t s = utf8_validate(p->_utf8, data, n);
        p->_utf8 = (uint8_t)s;
        if (s == UTF8_REJECT || ((p->_flags & F_FIN) && utf8_need[s] > p->_remaining))
            return fail(p, EILSEQ);
    }

    chunk->data = data;
    chunk->len = n;
    chunk->control = control;
    chunk->frame_start = !(p->_flags & F_FRAME_STARTED);
    chunk->frame_end = frame_end;
    if (control) {
        chunk->opcode = p->_opcode;
        chunk->msg_start = chunk->frame_start;
        chunk->msg_end = frame_end;
    } else {
        chunk->opcode = p->_msg_opcode;
        chunk->msg_start = !(p->_flags & F_MSG_STARTED);
        chunk->msg_end = msg_end;
        p->_flags |= F_MSG_STARTED;
        if (msg_end)
            p->_msg_opcode = 0;
    }
    p->_flags |= F_FRAME_STARTED;
    if (frame_end)
        p->_state = P_HDR0;
    *got = true;
    return (ssize_t)(pos + n);
}
