/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for engine/ws_frame.
 *
 * Input layout: byte 0 picks the side (bit 0: server), the max_message (bits 1-3) and whether
 * the close payload check runs (bit 4); byte 1 picks how the stream is cut into receives; the
 * rest is the frame stream. The stream is decoded three times, whole, byte by byte and cut as
 * byte 1 says; the runs must agree on every message, control frame and error, and the error
 * must come from the call given the byte that the byte-by-byte run failed on. A naive
 * whole-stream validator says independently which error that is and on which byte. Each receive is
 * copied into an exact-size heap buffer, so ASan catches a read past what the decoder was given.
 *
 * Invariants checked on every call: consumed <= given; a chunk lies inside the bytes the call
 * consumed and ends where they end; every call consumes a byte or produces a chunk until the
 * buffer is used up (no progress-less loop); an error is sticky and maps to 1002, 1007 or
 * 1009; chunk flags follow the message sequencing; control payloads stay within 125 bytes,
 * messages within max_message, and text messages are valid UTF-8 by a naive reference.
 * utf8_validate() and ws_mask() are also checked against naive references on the raw input.
 */
#include "ws_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() rather than assert(): the check must hold in release builds of the target too. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static const uint64_t max_messages[8] = {0, 1, 2, 16, 125, 126, 65535, 65536};

/* ---------------------------------------------------------------------------------------------
 * Naive UTF-8 reference (RFC 3629 as written, one code point at a time)
 * -------------------------------------------------------------------------------------------*/

/* Can a code point whose leading bits are <cp>, <left> 6-bit groups to go, still be valid? */
static int ref_possible(uint32_t cp, unsigned left, uint32_t min)
{
    uint32_t lo = cp << (6 * left), hi = lo | ((1u << (6 * left)) - 1);
    if (lo < min)
        lo = min;
    if (hi > 0x10ffff)
        hi = 0x10ffff;
    return lo <= hi && !(lo >= 0xd800 && hi <= 0xdfff);
}

/* 'A' complete, 'I' cut in a sequence, 'R' invalid with *<bad> the first impossible byte. */
static char ref_utf8(const uint8_t *s, size_t len, size_t *bad)
{
    for (size_t i = 0; i < len;) {
        uint8_t b = s[i];
        unsigned n;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xc0 && b < 0xe0) {
            n = 1, cp = b & 0x1f, min = 0x80;
        } else if (b >= 0xe0 && b < 0xf0) {
            n = 2, cp = b & 0x0f, min = 0x800;
        } else if (b >= 0xf0 && b < 0xf8) {
            n = 3, cp = b & 0x07, min = 0x10000;
        } else {
            *bad = i;
            return 'R';
        }
        if (!ref_possible(cp, n, min)) {
            *bad = i;
            return 'R';
        }
        for (unsigned j = 1; j <= n; j++) {
            if (i + j >= len)
                return 'I';
            uint8_t c = s[i + j];
            cp = cp << 6 | (c & 0x3f);
            if ((c & 0xc0) != 0x80 || !ref_possible(cp, n - j, min)) {
                *bad = i + j;
                return 'R';
            }
        }
        i += n + 1;
    }
    return 'A';
}

static char classify(uint32_t st)
{
    return st == UTF8_ACCEPT ? 'A' : st == UTF8_REJECT ? 'R' : 'I';
}

static void check_utf8(const uint8_t *s, size_t len, size_t cut)
{
    size_t bad = 0;
    char ref = ref_utf8(s, len, &bad);
    REQUIRE(classify(utf8_validate(UTF8_ACCEPT, s, len)) == ref);
    uint32_t st = utf8_validate(UTF8_ACCEPT, s, cut);
    REQUIRE(classify(utf8_validate(st, s + cut, len - cut)) == ref);
    if (ref == 'R') {
        REQUIRE(utf8_validate(UTF8_ACCEPT, s, bad) != UTF8_REJECT);
        REQUIRE(utf8_validate(UTF8_ACCEPT, s, bad + 1) == UTF8_REJECT);
    }
}

static void check_mask(const uint8_t *s, size_t len, unsigned off)
{
    static const uint8_t key[4] = {0x5a, 0x01, 0xff, 0x80};
    uint8_t *a = malloc(len ? len : 1);
    REQUIRE(a);
    if (len)
        memcpy(a, s, len);
    REQUIRE(ws_mask(a, len, key, off) == (off + len) % 4);
    for (size_t i = 0; i < len; i++)
        REQUIRE((a[i] ^ key[(off + i) % 4]) == s[i]);
    free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Naive reference frame validator
 * -------------------------------------------------------------------------------------------*/

/* Length of the sequence a lead byte starts (only called on bytes ref_utf8 let through). */
static unsigned seq_total(uint8_t lead)
{
    return lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/*
 * Walks the whole stream at once, the way RFC 6455 §5 reads, with no state machine and no
 * chunks. Returns 0 (valid so far) or the errno, and sets *<at> to the byte that decides the
 * error: the header byte that breaks a rule, the last length byte for a size or a length that
 * cannot finish the pending UTF-8 sequence, or the payload byte that makes the text invalid
 * (including a lead byte with fewer bytes left in the final fragment than it needs).
 */
static int ref_frames(const uint8_t *s, size_t len, bool server, uint64_t max, size_t *at)
{
    uint8_t msg_op = 0, seq[4];
    uint64_t msg_len = 0;
    unsigned seq_len = 0;
    for (size_t h = 0; h < len;) {
        uint8_t b0 = s[h], op = b0 & 0x0f;
        bool fin = b0 & 0x80, ctl = op & 0x08;
        *at = h;
        if (b0 & 0x70)
            return EPROTO;
        if (op == WS_OP_CONT && !msg_op)
            return EPROTO;
        if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
            if (msg_op)
                return EPROTO;
            msg_op = op, msg_len = 0, seq_len = 0;
        } else if (op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG) {
            if (!fin)
                return EPROTO;
        } else if (op != WS_OP_CONT) {
            return EPROTO;
        }
        if (h + 1 >= len)
            return 0;
        uint8_t b1 = s[h + 1];
        *at = h + 1;
        if (!(b1 & 0x80) != !server || (ctl && (b1 & 0x7f) > WS_CONTROL_MAX))
            return EPROTO;
        unsigned ext = (b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0;
        uint64_t n = ext ? 0 : b1 & 0x7f;
        for (unsigned i = 0; i < ext; i++) {
            if (h + 2 + i >= len)
                return 0;
            *at = h + 2 + i;
            if (ext == 8 && i == 0 && (s[*at] & 0x80))
                return EPROTO;
            n = n << 8 | s[*at];
        }
        bool text = !ctl && msg_op == WS_OP_TEXT;
        if (!ctl) {
            if (max && msg_len + n > max)
                return EMSGSIZE;
            msg_len += n;
            if (fin && text && seq_len && seq_total(seq[0]) - seq_len > n)
                return EILSEQ;
        }
        size_t p = h + 2 + ext;
        uint8_t key[4] = {0};
        if (server) {
            if (len - p < 4)
                return 0;
            memcpy(key, s + p, 4);
            p += 4;
        }
        for (uint64_t i = 0; text && i < n; i++) {
            if (p + i >= len)
                return 0;
            *at = p + (size_t)i;
            seq[seq_len++] = s[*at] ^ key[i % 4];
            size_t bad;
            char k = ref_utf8(seq, seq_len, &bad);
            if (k == 'R')
                return EILSEQ;
            if (k == 'A')
                seq_len = 0;
            else if (fin && seq_total(seq[0]) - seq_len > n - 1 - i)
                return EILSEQ;
        }
        if (n > len - p)
            return 0;
        h = p + (size_t)n;
        if (!ctl && fin)
            msg_op = 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding runs
 * -------------------------------------------------------------------------------------------*/

struct run {
    bool server, check_close;
    uint64_t max_message;
    int err;
    /* Stream offsets of the bytes given to the call that failed. */
    size_t err_lo, err_hi;
    /* Everything delivered, folded in order: both runs must end with the same value. */
    uint64_t hash;
    size_t nr_events;
    /* Reassembly of the message and control frame in progress. */
    uint8_t *msg;
    size_t msg_len;
    uint8_t ctl[WS_CONTROL_MAX];
    size_t ctl_len;
    bool in_msg, in_ctl;
    uint8_t msg_op;
};

static uint64_t fold(uint64_t h, const uint8_t *p, size_t len)
{
    /* FNV-1a; collisions only weaken the comparison, they cannot fail it. */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void deliver(struct run *r, uint8_t op, const uint8_t *p, size_t len)
{
    uint8_t hdr[9] = {op};
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    r->hash = fold(fold(r->hash, hdr, sizeof(hdr)), p, len);
    r->nr_events++;
}

static void on_chunk(struct run *r, const struct ws_chunk *c)
{
    if (c->control) {
        REQUIRE(c->opcode == WS_OP_CLOSE || c->opcode == WS_OP_PING || c->opcode == WS_OP_PONG);
        REQUIRE(c->msg_start == c->frame_start && c->msg_end == c->frame_end);
        REQUIRE(c->frame_start == !r->in_ctl);
        REQUIRE(r->ctl_len + c->len <= WS_CONTROL_MAX);
        memcpy(r->ctl + r->ctl_len, c->data, c->len);
        r->ctl_len += c->len;
        r->in_ctl = !c->frame_end;
        if (c->frame_end) {
            if (c->opcode == WS_OP_CLOSE && r->check_close) {
                uint16_t code = 0;
                uint16_t rc = ws_close_payload_check(r->ctl, r->ctl_len, &code);
                REQUIRE(rc == 0 || rc == WS_CLOSE_PROTOCOL || rc == WS_CLOSE_BAD_DATA);
                REQUIRE(rc != 0 || r->ctl_len == 0 || code >= 1000);
            }
            deliver(r, c->opcode, r->ctl, r->ctl_len);
            r->ctl_len = 0;
        }
        return;
    }
    REQUIRE(c->opcode == WS_OP_TEXT || c->opcode == WS_OP_BINARY);
    REQUIRE(!r->in_ctl);
    REQUIRE(c->msg_start == !r->in_msg);
    REQUIRE(!c->msg_start || c->frame_start);
    REQUIRE(!c->msg_end || c->frame_end);
    REQUIRE(!r->in_msg || c->opcode == r->msg_op);
    r->msg_op = c->opcode;
    r->in_msg = !c->msg_end;
    if (c->len) {
        uint8_t *nb = realloc(r->msg, r->msg_len + c->len);
        REQUIRE(nb);
        memcpy(nb + r->msg_len, c->data, c->len);
        r->msg = nb;
        r->msg_len += c->len;
    }
    REQUIRE(!r->max_message || r->msg_len <= r->max_message);
    if (c->msg_end) {
        size_t bad;
        if (c->opcode == WS_OP_TEXT)
            REQUIRE(ref_utf8(r->msg, r->msg_len, &bad) == 'A');
        deliver(r, c->opcode, r->msg, r->msg_len);
        free(r->msg);
        r->msg = NULL;
        r->msg_len = 0;
    }
}

/* Feeds one receive of <n> bytes at stream offset <at>; returns false once the parser failed. */
static bool feed(struct run *r, struct ws_parser *p, const uint8_t *src, size_t n, size_t at)
{
    uint8_t *buf = malloc(n ? n : 1);
    REQUIRE(buf);
    if (n)
        memcpy(buf, src, n);
    size_t off = 0;
    bool ok = true;
    /* Each call consumes at least one byte or stops, so n + 1 calls always suffice. */
    for (size_t calls = 0;; calls++) {
        REQUIRE(calls <= n + 1);
        struct ws_chunk c;
        bool got = true;
        ssize_t rc = ws_parser_feed(p, buf + off, n - off, &c, &got);
        if (rc < 0) {
            REQUIRE(!got);
            REQUIRE(rc == -EPROTO || rc == -EILSEQ || rc == -EMSGSIZE);
            uint16_t code = ws_close_code_for_error((int)rc);
            REQUIRE(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_BAD_DATA ||
                    code == WS_CLOSE_TOO_BIG);
            REQUIRE(ws_parser_feed(p, buf, n, &c, &got) == rc && !got);
            r->err = (int)-rc;
            r->err_lo = at + off;
            r->err_hi = at + n;
            ok = false;
            break;
        }
        REQUIRE((size_t)rc <= n - off);
        if (got) {
            REQUIRE(rc > 0);
            REQUIRE(c.data >= buf + off && c.data + c.len == buf + off + (size_t)rc);
            on_chunk(r, &c);
        } else {
            /* Without a chunk, everything given is consumed (header bytes are kept inside). */
            REQUIRE((size_t)rc == n - off);
        }
        off += (size_t)rc;
        if (rc == 0 && !got)
            break;
    }
    if (ok)
        REQUIRE(off == n);
    free(buf);
    return ok;
}

static void run_stream(struct run *r, const uint8_t *s, size_t len, uint8_t pattern)
{
    struct ws_parser p = {.max_message = r->max_message, .server = r->server};
    uint64_t rng = pattern * 0x9e3779b97f4a7c15ull + 1;
    size_t off = 0;
    while (off < len) {
        size_t n;
        switch (pattern & 3) {
        case 0: /* whole */
            n = len - off;
            break;
        case 1: /* byte by byte */
            n = 1;
            break;
        case 2: /* fixed steps of 1..64 */
            n = (size_t)(pattern >> 2) + 1;
            break;
        default: /* pseudo-random steps of 0..31, empty receives included */
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            n = (size_t)(rng % 32);
            break;
        }
        if (n > len - off)
            n = len - off;
        if (!feed(r, &p, s + off, n, off))
            break;
        off += n;
    }
    free(r->msg);
    r->msg = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t cfg = data[0], pattern = data[1];
    const uint8_t *s = data + 2;
    size_t len = size - 2;

    check_utf8(s, len, pattern % (len + 1));
    check_mask(s, len, pattern & 3);

    struct run whole = {
        .server = cfg & 1,
        .check_close = cfg & 0x10,
        .max_message = max_messages[(cfg >> 1) & 7],
    };
    struct run bytes = whole, cut = whole;
    run_stream(&whole, s, len, 0);
    run_stream(&bytes, s, len, 1);
    run_stream(&cut, s, len, pattern);
    REQUIRE(whole.err == bytes.err && whole.err == cut.err);
    REQUIRE(whole.nr_events == bytes.nr_events && whole.nr_events == cut.nr_events);
    REQUIRE(whole.hash == bytes.hash && whole.hash == cut.hash);
    size_t at = 0;
    REQUIRE(ref_frames(s, len, whole.server, whole.max_message, &at) == whole.err);
    REQUIRE(!whole.err || bytes.err_lo == at);
    if (whole.err) {
        /*
         * Fail fast: fed byte by byte, the decoder names the offending byte. Fed any other
         * way, the call that fails must be the one given that byte: not an earlier one, and
         * not a later one after a chunk holding it went out.
         */
        size_t bad = bytes.err_lo;
        REQUIRE(whole.err_lo <= bad && bad < whole.err_hi);
        REQUIRE(cut.err_lo <= bad && bad < cut.err_hi);
    }
    return 0;
}
