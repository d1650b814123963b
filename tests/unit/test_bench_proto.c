/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's protocol adapters (tools/bench/proto_raw.c, proto_socketio.c): the request
 * path of each client, the hello, published payloads of exact sizes that decode back, the
 * classification of every packet a server may send (table-driven, one named row each), the
 * answer to an Engine.IO ping, and garbage or truncated input, which must give PROTO_RX_BAD and
 * never read past what it was given: every input is placed at the end of a page followed by an
 * inaccessible one.
 *
 * The modules are compiled in by including their .c files (see test_bench_hist.c).
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../../tools/bench/plan.c"
#include "../../tools/bench/proto_centrifugo.c"
#include "../../tools/bench/proto_raw.c"
#include "../../tools/bench/proto_socketio.c"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int parse_err(struct bench_opts *o, const char *line, char *err, size_t cap)
{
    char buf[1024], *argv[64];
    int argc = 0;
    snprintf(buf, sizeof(buf), "ringcast-bench %s", line);
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    return plan_parse(o, argc, argv, err, cap);
}

static int parse(struct bench_opts *o, const char *line)
{
    char err[256];
    return parse_err(o, line, err, sizeof(err));
}

/* ---------------------------------------------------------------------------------------------
 * Inputs that end where readable memory ends
 * -------------------------------------------------------------------------------------------*/

struct guarded {
    uint8_t *map;
    size_t map_len;
    uint8_t *p; /* the copy: its last byte is the last readable one */
};

static struct guarded guard(const void *src, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct guarded g;
    g.map_len = ((n + page - 1) / page + 1) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + g.map_len - page, page, PROT_NONE), 0);
    g.p = g.map + g.map_len - page - n;
    if (n)
        memcpy(g.p, src, n);
    return g;
}

static void unguard(struct guarded *g)
{
    munmap(g->map, g->map_len);
}

/* rx() on a copy of <s> whose end is the end of readable memory, as a whole message. */
static enum proto_rx rx_whole(const struct proto_ops *ops, const struct bench_opts *o,
                              const void *s, size_t n, struct bench_msg *m)
{
    struct guarded g = guard(s, n);
    enum proto_rx r = ops->rx(o, g.p, n, n, m);
    unguard(&g);
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Raw room mode
 * -------------------------------------------------------------------------------------------*/

static void raw_path_and_hello(void **state)
{
    (void)state;
    struct bench_opts o;
    char s[128];
    uint8_t hello[16];
    uint32_t joins = 1;
    assert_ptr_equal(proto_find("raw"), &proto_raw);
    assert_null(proto_find("nope"));
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/room/?t=1 --connections 25 "
                               "--room-size 10"),
                     0);
    assert_int_equal(proto_raw.path(&o, 24, s, sizeof(s)), 16);
    assert_string_equal(s, "/room/chat-2?t=1");
    assert_int_equal(proto_raw.path(&o, 24, s, 16), -ENOSPC);
    assert_int_equal(parse(&o, "fanout --url ws://127.0.0.1:1/room/ --connections 10"), 0);
    proto_raw.path(&o, 0, s, sizeof(s));
    assert_string_equal(s, "/room/fanout?echo=1");
    /* Raw mode has no hello: a client is a member once upgraded. */
    assert_int_equal(proto_raw.hello(&o, 3, hello, sizeof(hello), &joins), 0);
    assert_int_equal(joins, 0);
    assert_null(proto_raw.reply);
    assert_null(proto_raw.split);
    assert_false(proto_raw.self_delivery);
}

/* The encoder shared with the other adapters writes the layout raw mode always wrote. */
static void raw_layout_is_stable(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *want;
    } rows[] = {
        {42, "{\"rcb\":\"00000001000000020000000000000003\"}"},
        {45, "{\"rcb\":\"00000001000000020000000000000003\"   }"},
        {48, "{\"rcb\":\"00000001000000020000000000000003\"      }"},
        {49, "{\"rcb\":\"00000001000000020000000000000003\",\"p\":\"\"}"},
        {52, "{\"rcb\":\"00000001000000020000000000000003\",\"p\":\"abc\"}"},
    };
    struct bench_msg m = {.pub = 1, .seq = 2, .ts_ns = 3};
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(strlen(rows[i].want), rows[i].len);
        assert_int_equal(proto__raw_encode(&m, buf, rows[i].len), rows[i].len);
        assert_memory_equal(buf, rows[i].want, rows[i].len);
    }
}

static void raw_publish_sizes(void **state)
{
    (void)state;
    struct bench_opts o;
    static uint8_t buf[4096];
    static const uint32_t sizes[] = {42, 100, 4096};
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/room/"), 0);
    assert_int_equal(proto_raw.min_payload, 42);
    assert_int_equal(proto_raw.rx_need, 41);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        o.payload = sizes[i];
        struct bench_msg m = {.pub = 7, .seq = 0xfffffffeu, .ts_ns = UINT64_MAX - 5}, d = {0};
        size_t len = proto_raw.publish(&o, &m, buf, sizeof(buf));
        assert_int_equal(len, sizes[i]);
        assert_int_equal(rx_whole(&proto_raw, &o, buf, len, &d), PROTO_RX_DELIVERY);
        assert_true(d.pub == m.pub && d.seq == m.seq && d.ts_ns == m.ts_ns);
        /* A message split across receives: the client keeps only the first rx_need bytes. */
        struct guarded g = guard(buf, proto_raw.rx_need);
        assert_int_equal(proto_raw.rx(&o, g.p, proto_raw.rx_need, len, &d), PROTO_RX_DELIVERY);
        unguard(&g);
    }
}

static void raw_rx_bad(void **state)
{
    (void)state;
    struct bench_opts o;
    struct bench_msg d;
    uint8_t buf[100];
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/room/"), 0);
    o.payload = 100;
    struct bench_msg m = {.pub = 1, .seq = 1, .ts_ns = 1};
    size_t len = proto_raw.publish(&o, &m, buf, sizeof(buf));
    /* Every truncation of a good payload is too short to be one. */
    for (size_t n = 0; n < proto_raw.min_payload; n++)
        assert_int_equal(rx_whole(&proto_raw, &o, buf, n, &d), PROTO_RX_BAD);
    buf[20] = 'x'; /* not hex */
    assert_int_equal(rx_whole(&proto_raw, &o, buf, len, &d), PROTO_RX_BAD);
    assert_int_equal(rx_whole(&proto_raw, &o, "hello", 5, &d), PROTO_RX_BAD);
}

/* ---------------------------------------------------------------------------------------------
 * Socket.IO
 * -------------------------------------------------------------------------------------------*/

static void socketio_paths(void **state)
{
    (void)state;
    struct bench_opts o;
    char s[256];
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio "
                               "--connections 25 --room-size 10"),
                     0);
    assert_ptr_equal(o.proto, &proto_socketio);
    assert_ptr_equal(proto_find("socketio"), &proto_socketio);
    assert_int_equal(proto_socketio.path(&o, 24, s, sizeof(s)), 49);
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket&room=chat-2");
    assert_int_equal(proto_socketio.path(&o, 24, s, 49), -ENOSPC);
    /* The user's query is kept, after ours. */
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/?token=x --protocol "
                               "socketio --connections 25 --room-size 10"),
                     0);
    proto_socketio.path(&o, 3, s, sizeof(s));
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket&room=chat-0&token=x");

    /* Fanout: one room named after the scenario; the publisher hears itself. */
    assert_int_equal(parse(&o, "fanout --url ws://127.0.0.1:1/socket.io/ --protocol socketio "
                               "--connections 10"),
                     0);
    proto_socketio.path(&o, 0, s, sizeof(s));
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket&room=fanout&echo=1");
    proto_socketio.path(&o, 1, s, sizeof(s));
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket&room=fanout");
    assert_int_equal(parse(&o, "fanout --url ws://127.0.0.1:1/socket.io/?a=b --protocol "
                               "socketio --connections 10"),
                     0);
    proto_socketio.path(&o, 0, s, sizeof(s));
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket&room=fanout&a=b&echo=1");

    /* Echo: no room, so the server sends every event back. */
    assert_int_equal(parse(&o, "echo --url ws://127.0.0.1:1/socket.io/ --protocol socketio"), 0);
    proto_socketio.path(&o, 5, s, sizeof(s));
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket");

    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:1/socket.io/ --protocol socketio "
                               "--connections 10 --room-size 4"),
                     0);
    proto_socketio.path(&o, 9, s, sizeof(s));
    assert_string_equal(s, "/socket.io/?EIO=4&transport=websocket&room=hold-2");
}

static void socketio_command_line(void **state)
{
    (void)state;
    struct bench_opts o;
    char err[256];
    assert_int_equal(parse_err(&o,
                               "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio "
                               "--binary",
                               err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "--binary"));
    static const char *const bad[] = {
        /* Engine.IO only answers under its own path, which ends in '/'. */
        "chat --url ws://127.0.0.1:1/socket.io --protocol socketio",
        "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio --payload 56",
        "chat --url ws://127.0.0.1:1/socket.io/ --protocol socket.io",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(&o, bad[i]) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio "
                               "--payload 57"),
                     0);
    assert_int_equal(proto_socketio.min_payload, 57);
    assert_int_equal(proto_socketio.rx_need, 48);
}

static void socketio_hello(void **state)
{
    (void)state;
    struct bench_opts o;
    uint8_t out[16];
    uint32_t joins = 0;
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio"), 0);
    /* Engine.IO message + Socket.IO CONNECT to the main namespace; a member once answered. */
    assert_int_equal(proto_socketio.hello(&o, 0, out, sizeof(out), &joins), 2);
    assert_memory_equal(out, "40", 2);
    assert_int_equal(joins, 1);
    assert_int_equal(proto_socketio.hello(&o, 0, out, 1, &joins), 0);
    assert_null(proto_socketio.split);
    assert_false(proto_socketio.self_delivery);
}

/*
 * Every size from the minimum up, and 4096: exactly --payload bytes, an EVENT "m" whose
 * argument is JSON as JSON.stringify writes it (no padding spaces, so the server's re-encoding
 * is byte for byte the same), and it decodes back, whole or from its first rx_need bytes.
 */
static void socketio_publish_sizes(void **state)
{
    (void)state;
    struct bench_opts o;
    static uint8_t buf[4096];
    static const char head[] = "42[\"m\",{\"rcb\":\"";
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio"), 0);
    for (uint32_t n = 57; n <= 4096; n = n < 300 ? n + 1 : 4096) {
        o.payload = n;
        struct bench_msg m = {.pub = 0xabcdef01u, .seq = n, .ts_ns = 0x1234567890abcdefull}, d;
        memset(&d, 0, sizeof(d));
        size_t len = proto_socketio.publish(&o, &m, buf, sizeof(buf));
        assert_int_equal(len, n);
        assert_memory_equal(buf, head, sizeof(head) - 1);
        assert_memory_equal(buf + len - 2, "}]", 2);
        for (size_t i = 0; i < len; i++)
            assert_true(buf[i] > 0x20 && buf[i] < 0x7f);
        assert_int_equal(rx_whole(&proto_socketio, &o, buf, len, &d), PROTO_RX_DELIVERY);
        assert_true(d.pub == m.pub && d.seq == m.seq && d.ts_ns == m.ts_ns);
        struct guarded g = guard(buf, proto_socketio.rx_need);
        memset(&d, 0, sizeof(d));
        assert_int_equal(proto_socketio.rx(&o, g.p, proto_socketio.rx_need, len, &d),
                         PROTO_RX_DELIVERY);
        assert_true(d.pub == m.pub && d.seq == m.seq && d.ts_ns == m.ts_ns);
        unguard(&g);
        if (n == 57)
            assert_memory_equal(buf + 48, ",\"p\":\"\"}]", 9);
        if (n == 4096)
            break;
    }
}

#define EVENT_M "42[\"m\",{\"rcb\":\"0000000a0000000b000000000000000c\",\"p\":\"abcdefgh\"}]"

static const struct socketio_row {
    const char *name;
    const char *in;
    enum proto_rx want;
} socketio_rows[] = {
    {"open",
     "0{\"sid\":\"x\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,"
     "\"maxPayload\":65536}",
     PROTO_RX_IGNORE},
    {"open without its data", "0", PROTO_RX_BAD},
    {"close", "1", PROTO_RX_IGNORE},
    {"ping", "2", PROTO_RX_REPLY},
    {"ping with data", "2probe", PROTO_RX_REPLY},
    {"pong", "3", PROTO_RX_IGNORE},
    {"upgrade", "5", PROTO_RX_BAD},
    {"noop", "6", PROTO_RX_IGNORE},
    {"unknown packet type", "7", PROTO_RX_BAD},
    {"not a packet", "hello", PROTO_RX_BAD},
    {"message without a packet", "4", PROTO_RX_BAD},
    {"connect answered", "40{\"sid\":\"YiaehB6Ymv__guGsAAAA\"}", PROTO_RX_JOINED},
    {"connect answered, v4 style", "40", PROTO_RX_JOINED},
    {"connect to another namespace", "40/admin,{\"sid\":\"x\"}", PROTO_RX_BAD},
    {"disconnect", "41", PROTO_RX_IGNORE},
    {"event m", EVENT_M, PROTO_RX_DELIVERY},
    {"event of another name", "42[\"x\",{\"rcb\":\"0000000a0000000b000000000000000c\"}]",
     PROTO_RX_BAD},
    {"event with an ack id", "421[\"m\",{\"rcb\":\"0000000a0000000b000000000000000c\"}]",
     PROTO_RX_BAD},
    {"event of another namespace", "42/a,[\"m\",{\"rcb\":\"0000000a0000000b000000000000000c\"}]",
     PROTO_RX_BAD},
    {"event without bench fields", "42[\"m\",{\"text\":\"hello there, how are you doing?\"}]",
     PROTO_RX_BAD},
    {"event with a bad hex digit", "42[\"m\",{\"rcb\":\"0000000a0000000b00000000000g000c\"}]",
     PROTO_RX_BAD},
    {"event cut short", "42[\"m\",{\"rcb\":\"0000000a0000", PROTO_RX_BAD},
    {"ack", "43[\"ok\"]", PROTO_RX_BAD},
    {"connect error", "44{\"message\":\"bad room name\"}", PROTO_RX_BAD},
    {"binary event", "451-[\"m\",{\"_placeholder\":true,\"num\":0}]", PROTO_RX_BAD},
    {"binary ack", "461-[{\"_placeholder\":true,\"num\":0}]", PROTO_RX_BAD},
    {"unknown socket.io type", "47", PROTO_RX_BAD},
    {"empty", "", PROTO_RX_BAD},
};
#define NR_ROWS (sizeof(socketio_rows) / sizeof(socketio_rows[0]))

/* Every row whole, then every proper prefix of it (nothing may read past its end). An event
 * is read from its fixed-size head only, as in raw mode, so a prefix that holds the whole
 * head still decodes; a shorter one must not. */
static void socketio_rx_packets(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio"), 0);
    for (size_t i = 0; i < NR_ROWS; i++) {
        const struct socketio_row *r = &socketio_rows[i];
        struct bench_msg d = {0};
        enum proto_rx got = rx_whole(&proto_socketio, &o, r->in, strlen(r->in), &d);
        if (got != r->want)
            fail_msg("%s: got %d, want %d", r->name, (int)got, (int)r->want);
        if (got == PROTO_RX_DELIVERY)
            assert_true(d.pub == 10 && d.seq == 11 && d.ts_ns == 12);
        for (size_t n = 0; n < strlen(r->in); n++) {
            got = rx_whole(&proto_socketio, &o, r->in, n, &d);
            if (got == PROTO_RX_DELIVERY && n < proto_socketio.rx_need)
                fail_msg("%s cut to %zu bytes: a delivery", r->name, n);
        }
    }
}

static void socketio_ping_reply(void **state)
{
    (void)state;
    struct bench_opts o;
    uint8_t out[PROTO_REPLY_MAX];
    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:1/socket.io/ --protocol socketio"), 0);
    struct guarded g = guard("2", 1);
    assert_int_equal(proto_socketio.rx(&o, g.p, 1, 1, NULL), PROTO_RX_REPLY);
    assert_int_equal(proto_socketio.reply(&o, g.p, 1, 1, out, sizeof(out)), 1);
    assert_int_equal(out[0], '3');
    unguard(&g);
    g = guard("2probe", 6);
    assert_int_equal(proto_socketio.reply(&o, g.p, 6, 6, out, sizeof(out)), 6);
    assert_memory_equal(out, "3probe", 6);
    /* What rx() would not have called a ping to answer gets no answer. */
    assert_int_equal(proto_socketio.reply(&o, g.p, 6, 6, out, 5), 0);
    assert_int_equal(proto_socketio.reply(&o, g.p, 3, 6, out, sizeof(out)), 0);
    unguard(&g);
    g = guard("3", 1);
    assert_int_equal(proto_socketio.reply(&o, g.p, 1, 1, out, sizeof(out)), 0);
    unguard(&g);
    /* A ping too long to answer in one reply, or split, is not one this client answers. */
    char long_ping[PROTO_REPLY_MAX + 2];
    memset(long_ping, 'x', sizeof(long_ping));
    long_ping[0] = '2';
    assert_int_equal(rx_whole(&proto_socketio, &o, long_ping, sizeof(long_ping), NULL),
                     PROTO_RX_BAD);
    g = guard("2", 1);
    assert_int_equal(proto_socketio.rx(&o, g.p, 1, 9, NULL), PROTO_RX_BAD);
    unguard(&g);
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random bytes, and good packets with random bytes changed: any verdict, never a crash or a
 * read past the end (the guard page), whole or as a split message's first bytes. */
static void socketio_rx_garbage(void **state)
{
    (void)state;
    struct bench_opts o;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint8_t buf[96];
    uint8_t out[PROTO_REPLY_MAX];
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio"), 0);
    for (int k = 0; k < 20000; k++) {
        size_t n;
        if (k % 2) {
            const char *base = socketio_rows[next_rand(&seed) % NR_ROWS].in;
            n = strlen(base);
            memcpy(buf, base, n);
            if (n)
                buf[next_rand(&seed) % n] = (uint8_t)next_rand(&seed);
        } else {
            /* Half of these from the characters packets are made of, to get further in. */
            static const char alphabet[] = "0123456{}[]\"m,";
            n = next_rand(&seed) % sizeof(buf);
            for (size_t i = 0; i < n; i++) {
                uint64_t x = next_rand(&seed);
                buf[i] = k % 4 ? (uint8_t)alphabet[x % (sizeof(alphabet) - 1)] : (uint8_t)x;
            }
        }
        size_t have = n < proto_socketio.rx_need ? n : proto_socketio.rx_need;
        size_t total = n + (k % 3 == 0 ? next_rand(&seed) % 1000 : 0);
        struct guarded g = guard(buf, have);
        struct bench_msg d;
        enum proto_rx r = proto_socketio.rx(&o, g.p, have, total, &d);
        assert_true(r == PROTO_RX_DELIVERY || r == PROTO_RX_JOINED || r == PROTO_RX_IGNORE ||
                    r == PROTO_RX_REPLY || r == PROTO_RX_BAD);
        if (r == PROTO_RX_REPLY)
            assert_true(proto_socketio.reply(&o, g.p, have, total, out, sizeof(out)) > 0);
        unguard(&g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(raw_path_and_hello),  cmocka_unit_test(raw_layout_is_stable),
        cmocka_unit_test(raw_publish_sizes),   cmocka_unit_test(raw_rx_bad),
        cmocka_unit_test(socketio_paths),      cmocka_unit_test(socketio_command_line),
        cmocka_unit_test(socketio_hello),      cmocka_unit_test(socketio_publish_sizes),
        cmocka_unit_test(socketio_rx_packets), cmocka_unit_test(socketio_ping_reply),
        cmocka_unit_test(socketio_rx_garbage),
    };
    return cmocka_run_group_tests_name("bench_proto", tests, NULL, NULL);
}
