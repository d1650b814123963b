/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's RFC 6455 client side (tools/bench/wsclient.c): keys, the opening request,
 * the check of the server's answer (table-driven, each case whole and byte by byte), and masked
 * frames checked by decoding them with the engine's own server-side parser.
 *
 * The module is compiled in by including its .c file (see test_bench_hist.c); the codec it
 * builds on comes from ringcast_engine.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../../tools/bench/wsclient.c"

#include <stdlib.h>
#include <string.h>

/* RFC 6455 §1.3's example. */
#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void base64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char b[16];
        size_t n = wsc_base64((const uint8_t *)in[i], strlen(in[i]), b);
        assert_int_equal(n, strlen(out[i]));
        assert_string_equal(b, out[i]);
    }
}

static void keys_are_random_and_well_formed(void **state)
{
    (void)state;
    struct wsc_random r = {0};
    char a[WSC_KEY_LEN + 1], b[WSC_KEY_LEN + 1];
    wsc_make_key(&r, a);
    wsc_make_key(&r, b);
    assert_int_equal(strlen(a), 24);
    assert_string_equal(a + 22, "==");
    assert_string_not_equal(a, b);
    /* Enough bytes to cross the pool's refill. */
    for (int i = 0; i < 600; i++)
        wsc_make_key(&r, b);
    assert_string_not_equal(a, b);
}

static void request_has_what_rfc6455_requires(void **state)
{
    (void)state;
    char req[512];
    int n = wsc_request(req, sizeof(req), "127.0.0.1:8080", "/room/a?echo=1", KEY, NULL);
    assert_true(n > 0 && (size_t)n == strlen(req));
    assert_non_null(strstr(req, "GET /room/a?echo=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(req, "\r\nHost: 127.0.0.1:8080\r\n"));
    assert_non_null(strstr(req, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(req, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(req, "\r\nSec-WebSocket-Key: " KEY "\r\n"));
    assert_non_null(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_int_equal(memcmp(req + n - 4, "\r\n\r\n", 4), 0);
    /* The engine's own request parser accepts it as an upgrade. */
    struct http_request hr;
    memset(&hr, 0, sizeof(hr));
    assert_int_equal(http_request_parse(req, (size_t)n, &hr), n);
    assert_int_equal(ws_upgrade_check(&hr), WS_UPGRADE_OK);
    volatile size_t small = 40; /* not a constant, or gcc warns about the truncation */
    assert_int_equal(wsc_request(req, small, "h", "/", KEY, NULL), -ENOSPC);
}

struct resp_case {
    const char *name;
    const char *resp;
    int want; /* > 0: the head length is strlen(resp) - <tail> */
    int status;
    int tail; /* frame bytes after the head */
};

#define OK_HEAD                                                                                    \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"

static const struct resp_case resp_cases[] = {
    {"ok", OK_HEAD, 1, 101, 0},
    {"ok, frames follow", OK_HEAD "\x81\x02hi", 1, 101, 4},
    {"ok, case and token lists",
     "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\n"
     "sec-websocket-accept:   " ACCEPT "  \r\nServer: x\r\n\r\n",
     1, 101, 0},
    {"ok, empty reason",
     "HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     1, 101, 0},
    {"refused 503", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nfull\n",
     -ECONNREFUSED, 503, 0},
    {"refused 400", "HTTP/1.1 400 Bad Request\r\n\r\n", -ECONNREFUSED, 400, 0},
    {"wrong accept",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOX=\r\n\r\n",
     -EPROTO, 101, 0},
    {"missing accept", "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     -EPROTO, 101, 0},
    {"duplicate accept",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     -EPROTO, 101, 0},
    {"missing upgrade",
     "HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     -EPROTO, 101, 0},
    {"missing connection",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     -EPROTO, 101, 0},
    {"extension not asked for",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
     -EPROTO, 101, 0},
    {"subprotocol not asked for",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT
     "\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
     -EPROTO, 101, 0},
    {"not http", "SSH-2.0-OpenSSH\r\n\r\n", -EPROTO, 0, 0},
    {"bare LF", "HTTP/1.1 101 x\nUpgrade: websocket\r\n\r\n", -EPROTO, 0, 0},
    {"space before colon", "HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n", -EPROTO, 101, 0},
    {"incomplete", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", -EAGAIN, 0, 0},
};

static void response_check_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        const struct resp_case *c = &resp_cases[i];
        size_t len = strlen(c->resp);
        int want = c->want > 0 ? (int)(len - (size_t)c->tail) : c->want;
        /* Whole, at the end of a heap block so that reads past the end are caught by ASan. */
        char *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        memcpy(buf, c->resp, len);
        int status = -1;
        int r = wsc_response_check(buf, len, KEY, &status);
        if (r != want)
            fail_msg("case '%s': got %d, want %d", c->name, r, want);
        if (want != -EAGAIN && status != c->status)
            fail_msg("case '%s': status %d, want %d", c->name, status, c->status);
        /* Byte by byte: incomplete until the head is, then the same answer. */
        const char *end = strstr(c->resp, "\r\n\r\n");
        size_t head = end ? (size_t)(end - c->resp) + 4 : len;
        for (size_t n = 1; n <= len; n++) {
            r = wsc_response_check(buf, n, KEY, &status);
            int expect = n < head ? -EAGAIN : want;
            if (r != expect)
                fail_msg("case '%s' at %zu bytes: got %d, want %d", c->name, n, r, expect);
        }
        free(buf);
    }
}

static void oversized_head_is_refused(void **state)
{
    (void)state;
    size_t len = WSC_RESPONSE_MAX + 10;
    char *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 'a', len);
    memcpy(buf, "HTTP/1.1 101 x\r\nX: ", 19);
    int status;
    assert_int_equal(wsc_response_check(buf, len, KEY, &status), -EPROTO);
    assert_int_equal(wsc_response_check(buf, 100, KEY, &status), -EAGAIN);
    free(buf);
}

/* Masked frames of every length class decode, with the engine's server-side parser (which
 * insists on the mask), to the original payload. */
static void frames_are_masked_and_decode(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 100, 125, 126, 1000, 65535, 65536, 70000};
    struct wsc_random rnd = {0};
    for (size_t t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
        size_t n = lens[t];
        uint8_t *payload = malloc(n + 1), *frame = malloc(n + WS_HEADER_MAX);
        assert_non_null(payload);
        assert_non_null(frame);
        for (size_t i = 0; i < n; i++)
            payload[i] = (uint8_t)('a' + i % 26);
        uint8_t mask[4];
        wsc_random_bytes(&rnd, mask, sizeof(mask));
        size_t fl = wsc_frame(frame, WS_OP_TEXT, payload, n, mask);
        assert_int_equal(fl, wsc_header_len(n) + n);
        assert_true(frame[0] == 0x81);
        assert_true(frame[1] & 0x80); /* MASK bit */
        if (n >= 4 && (mask[0] | mask[1] | mask[2] | mask[3]))
            assert_memory_not_equal(frame + wsc_header_len(n), payload, 4);

        struct ws_parser p;
        memset(&p, 0, sizeof(p));
        p.server = true;
        size_t off = 0, got_len = 0;
        bool done = false;
        while (!done) {
            struct ws_chunk ch;
            bool got = false;
            ssize_t r = ws_parser_feed(&p, frame + off, fl - off, &ch, &got);
            assert_true(r >= 0);
            off += (size_t)r;
            if (got) {
                assert_int_equal(ch.opcode, WS_OP_TEXT);
                assert_memory_equal(ch.data, payload + got_len, ch.len);
                got_len += ch.len;
                done = ch.msg_end;
            } else {
                assert_true(r > 0);
            }
        }
        assert_int_equal(got_len, n);
        assert_int_equal(off, fl);
        free(payload);
        free(frame);
    }
}

/* In place: the payload already sits after the header room and is masked where it is. */
static void frame_in_place(void **state)
{
    (void)state;
    uint8_t frame[64];
    const uint8_t mask[4] = {1, 2, 3, 4};
    memcpy(frame + wsc_header_len(5), "hello", 5);
    size_t fl = wsc_frame(frame, WS_OP_BINARY, NULL, 5, mask);
    assert_int_equal(fl, 11);
    assert_true(frame[0] == 0x82 && frame[1] == (0x80 | 5));
    assert_memory_equal(frame + 2, mask, 4);
    assert_true(frame[6] == ('h' ^ 1) && frame[10] == ('o' ^ 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_vectors),
        cmocka_unit_test(keys_are_random_and_well_formed),
        cmocka_unit_test(request_has_what_rfc6455_requires),
        cmocka_unit_test(response_check_table),
        cmocka_unit_test(oversized_head_is_refused),
        cmocka_unit_test(frames_are_masked_and_decode),
        cmocka_unit_test(frame_in_place),
    };
    return cmocka_run_group_tests_name("bench_wsclient", tests, NULL, NULL);
}
