/* SPDX-License-Identifier: MIT */
/*
 * ws_frame: RFC 6455 framing, both directions.
 *
 * The decoder is an incremental, zero-copy, allocation-free state machine. It is fed whatever
 * bytes a receive produced, in any split, unmasks payload bytes in place, and hands payload out
 * as chunks that point into the caller's buffer. It validates everything RFC 6455 requires of a
 * frame stream: reserved bits (no extension is negotiated), opcodes, control frame rules,
 * fragmentation sequencing (control frames may interleave), the masking rule of its side, the
 * 64-bit length rule, the message size limit (checked on headers, before payload arrives) and
 * UTF-8 of text messages across fragments, failing as soon as the first bad byte is seen.
 *
 * It owns nothing but its own state (the struct below, 40 bytes, all-zero plus the two
 * settings is a fresh parser). It does not buffer payload: the caller decides whether a chunk
 * is a whole message it can use in place or a piece it must copy aside. It knows nothing about
 * sockets or rooms. Any thread may use a parser, one at a time.
 *
 * The encoder writes frame headers (server side unmasked, client side masked) and masks.
 */
#ifndef RINGCAST_WS_FRAME_H
#define RINGCAST_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* RFC 6455 §7.4.1 close codes used by ringcast. */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent on the wire */
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* RFC 6455 §5.5: control frame payloads are at most 125 bytes. */
#define WS_CONTROL_MAX 125
/* Largest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define WS_HEADER_MAX 14

/*
 * One chunk of payload handed out by ws_parser_feed().
 * - <opcode> is the frame's own opcode for control frames, and the message's opcode
 *   (TEXT or BINARY, never CONT) for data frames.
 * - <data>/<len> point into the buffer passed to ws_parser_feed(), already unmasked. <len> may
 *   be 0 (an empty frame or message still produces a chunk with the flags below).
 * - <frame_start>: first chunk of a frame; <frame_end>: last chunk of that frame.
 * - <msg_start>: first chunk of a data message; <msg_end>: last chunk of a data message (the
 *   final fragment's last chunk). For control frames both equal <frame_start>/<frame_end>.
 * - <control>: true for CLOSE, PING and PONG.
 * - A chunk with frame_start && frame_end (and msg_start && msg_end for data) carries the
 *   whole frame (message) contiguously: the caller can use it without copying.
 */
struct ws_chunk {
    const uint8_t *data;
    size_t len;
    uint8_t opcode;
    bool control;
    bool frame_start, frame_end;
    bool msg_start, msg_end;
};

/*
 * Decoder state. Set <max_message> and <server> after zeroing; everything else is private.
 * <server>: true when decoding frames from a client (they must be masked); false when
 * decoding frames from a server (they must not be).
 * <max_message>: largest data message in bytes (all fragments together); 0 means no limit.
 */
struct ws_parser {
    uint64_t max_message;
    bool server;
    /* private */
    uint8_t _state;
    uint8_t _hdr_left;   /* extended length or key bytes still to come */
    uint8_t _opcode;     /* opcode of the frame being read */
    uint8_t _msg_opcode; /* TEXT/BINARY while a data message is open, else 0 */
    uint8_t _flags;
    uint8_t _mask_off;
    uint8_t _utf8; /* utf8_validate() state of the open text message */
    uint8_t _err;  /* errno once failed */
    uint8_t _mask[4];
    uint64_t _remaining; /* payload bytes left in the current frame */
    uint64_t _msg_len;   /* payload bytes announced so far for the current message */
};

/*
 * Feeds bytes to the decoder. <buf> is modified in place (payload is unmasked).
 * Returns the number of bytes consumed (>= 0) and, when it returns a chunk, sets *<got> = true
 * and fills *<chunk>, which borrows <buf> until the caller reuses that memory. Call again with
 * the rest of the buffer until it returns 0 with *<got> false (it needs more bytes).
 * At most one chunk is produced per call; the call may consume header bytes without producing
 * a chunk.
 * Errors (the connection must be failed; the parser is then unusable):
 *   -EPROTO   protocol violation (close 1002)
 *   -EILSEQ   invalid UTF-8 in a text message (close 1007), reported on the first byte that
 *             cannot be part of valid UTF-8, a sequence the final fragment is too short to
 *             finish included
 *   -EMSGSIZE message larger than <max_message> (close 1009)
 * Control payloads are handed out unchecked: reassemble a CLOSE payload and pass it to
 * ws_close_payload_check().
 */
ssize_t ws_parser_feed(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_chunk *chunk,
                       bool *got);

/* Maps a ws_parser_feed() error to the close code to send (1002, 1007, 1009; 1011 otherwise). */
uint16_t ws_close_code_for_error(int err);

/*
 * Checks a complete close frame payload (RFC 6455 §5.5.1, §7.4): empty is fine; 1 byte is a
 * protocol error; otherwise the code must be one a peer may send (1000-1003, 1007-1014,
 * 3000-4999) and the reason valid UTF-8.
 * Returns 0 and sets *<code> (1005 for an empty payload), or the close code to fail with
 * (1002 for a bad code or length, 1007 for a bad reason). Cannot fail otherwise.
 */
uint16_t ws_close_payload_check(const uint8_t *payload, size_t len, uint16_t *code);

/*
 * Writes a frame header for a payload of <len> bytes into <out> (at least WS_HEADER_MAX bytes).
 * <fin>: final fragment. <mask>: NULL for a server frame, else the 4-byte key (client frame).
 * Returns the header length (2 to 14). Cannot fail.
 */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, bool fin, uint64_t len, const uint8_t *mask);

/*
 * XORs <len> bytes of <buf> with <mask>, starting at key position <offset> (0..3), in place.
 * Returns the key position after the last byte ((offset + len) % 4). Cannot fail.
 */
unsigned ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], unsigned offset);

/*
 * Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF). <state> starts at 0 (UTF8_ACCEPT). Returns the new state: UTF8_ACCEPT after a
 * complete sequence, UTF8_REJECT (sticky) as soon as a byte cannot start or continue a valid
 * sequence, anything else in the middle of a sequence. Cannot fail.
 */
#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u
uint32_t utf8_validate(uint32_t state, const uint8_t *buf, size_t len);

#endif
