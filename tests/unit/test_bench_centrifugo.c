/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's Centrifugo adapter (tools/bench/proto_centrifugo.c): channel names, the
 * hello (connect and its subscribes in one frame), publish commands of exact sizes whose data
 * comes back decodable in a push, the classification of every reply and push a server may
 * send (table-driven, one named row each: members in any order, fields added around the data,
 * strings holding brackets and escaped quotes), how batched frames are cut apart, the answer to
 * a ping, the command line, and garbage or truncated input, which must never read past what it
 * was given: every input is placed at the end of a page followed by an inaccessible one.
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

#define URL " --url ws://127.0.0.1:1/connection/websocket --protocol centrifugo"

/* A copy of <n> bytes of <src> whose last byte is the last readable one. */
struct guarded {
    uint8_t *map;
    size_t map_len;
    uint8_t *p;
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

static enum proto_rx rx_whole(const struct bench_opts *o, const void *s, size_t n,
                              struct bench_msg *m)
{
    struct guarded g = guard(s, n);
    enum proto_rx r = proto_centrifugo.rx(o, g.p, n, n, m);
    unguard(&g);
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * What the client sends
 * -------------------------------------------------------------------------------------------*/

static void paths_and_hello(void **state)
{
    (void)state;
    struct bench_opts o;
    char s[256];
    uint8_t out[1024];
    uint32_t joins = 0;
    assert_ptr_equal(proto_find("centrifugo"), &proto_centrifugo);
    assert_int_equal(parse(&o, "chat --connections 25 --room-size 10" URL), 0);
    assert_ptr_equal(o.proto, &proto_centrifugo);
    assert_true(proto_centrifugo.self_delivery);
    assert_non_null(proto_centrifugo.split);
    assert_int_equal(proto_centrifugo.rx_need, SIZE_MAX);
    /* The URL's path as it is: the channel travels in the protocol. */
    assert_int_equal(proto_centrifugo.path(&o, 24, s, sizeof(s)), 21);
    assert_string_equal(s, "/connection/websocket");
    assert_int_equal(proto_centrifugo.path(&o, 24, s, 21), -ENOSPC);

    static const char chat[] = "{\"connect\":{\"name\":\"bench\"},\"id\":1}\n"
                               "{\"subscribe\":{\"channel\":\"chat-2\"},\"id\":2}";
    assert_int_equal(proto_centrifugo.hello(&o, 24, out, sizeof(out), &joins), sizeof(chat) - 1);
    assert_memory_equal(out, chat, sizeof(chat) - 1);
    assert_int_equal(joins, 1);
    /* Too small a buffer: nothing rather than half a command. */
    assert_int_equal(proto_centrifugo.hello(&o, 24, out, sizeof(chat) - 1, &joins), 0);

    /* --personal: a second subscription, answered too before the client is a member. */
    assert_int_equal(parse(&o, "chat --connections 25 --room-size 10 --personal" URL), 0);
    static const char personal[] = "{\"connect\":{\"name\":\"bench\"},\"id\":1}\n"
                                   "{\"subscribe\":{\"channel\":\"chat-1\"},\"id\":2}\n"
                                   "{\"subscribe\":{\"channel\":\"personal-17\"},\"id\":3}";
    assert_int_equal(proto_centrifugo.hello(&o, 17, out, sizeof(out), &joins),
                     sizeof(personal) - 1);
    assert_memory_equal(out, personal, sizeof(personal) - 1);
    assert_int_equal(joins, 2);
    assert_int_equal(proto_centrifugo.hello(&o, 17, out, sizeof(personal) - 1, &joins), 0);

    /* A token and the URL's query; one room takes the scenario's name; echo: one each. */
    assert_int_equal(parse(&o, "fanout --connections 10 --token aa.bb-_.cc --url "
                               "ws://127.0.0.1:1/connection/websocket?cf_ws_frame_ping_pong=true "
                               "--protocol centrifugo"),
                     0);
    proto_centrifugo.path(&o, 0, s, sizeof(s));
    assert_string_equal(s, "/connection/websocket?cf_ws_frame_ping_pong=true");
    static const char token[] = "{\"connect\":{\"name\":\"bench\",\"token\":\"aa.bb-_.cc\"},"
                                "\"id\":1}\n{\"subscribe\":{\"channel\":\"fanout\"},\"id\":2}";
    assert_int_equal(proto_centrifugo.hello(&o, 0, out, sizeof(out), &joins), sizeof(token) - 1);
    assert_memory_equal(out, token, sizeof(token) - 1);
    assert_int_equal(parse(&o, "echo --connections 10" URL), 0);
    proto_centrifugo.hello(&o, 7, out, sizeof(out), &joins);
    assert_non_null(strstr((char *)out, "{\"channel\":\"echo-7\"}"));
    assert_int_equal(parse(&o, "hold --connections 10" URL), 0);
    proto_centrifugo.hello(&o, 7, out, sizeof(out), &joins);
    assert_non_null(strstr((char *)out, "{\"channel\":\"hold\"}"));
}

/* A push as a server writes it around the data of publish command <cmd>: the data cut out of
 * the command by its known framing, with <before> and <after> members around it in "pub". */
static size_t push_of(const uint8_t *cmd, size_t n, const char *channel, const char *before,
                      const char *after, uint8_t *out, size_t cap)
{
    size_t head = sizeof(PUB_OPEN) - 1 + strlen(channel) + sizeof(PUB_DATA) - 1;
    size_t data_len = n - head - (sizeof(PUB_CLOSE) - 1);
    int a = snprintf((char *)out, cap,
                     "{\"push\":{\"channel\":\"%s\",\"pub\":{%s\"data\":", channel, before);
    assert_true(a > 0 && (size_t)a + data_len < cap);
    memcpy(out + a, cmd + head, data_len);
    int b = snprintf((char *)out + a + data_len, cap - (size_t)a - data_len, "%s}}}", after);
    assert_true(b > 0);
    return (size_t)a + data_len + (size_t)b;
}

/*
 * Every size from the minimum up, and 4096: exactly --payload bytes, printable, framed as a
 * publish to the client's channel, and its data, handed back in a push, decodes back.
 */
static void publish_sizes(void **state)
{
    (void)state;
    struct bench_opts o;
    static uint8_t buf[4096], push[4400];
    static const char head[] = "{\"publish\":{\"channel\":\"chat-3\",\"data\":{\"rcb\":\"";
    assert_int_equal(parse(&o, "chat --connections 200 --room-size 50" URL), 0);
    assert_int_equal(proto_centrifugo.min_payload, 94);
    assert_int_equal(proto__centrifugo_min_payload(&o), 96); /* chat-3 */
    for (uint32_t n = 96; n <= 4096; n = n < 300 ? n + 1 : 4096) {
        o.payload = n;
        struct bench_msg m = {.pub = 199, .seq = n, .ts_ns = 0x1234567890abcdefull}, d;
        size_t len = proto_centrifugo.publish(&o, &m, buf, n);
        assert_int_equal(len, n);
        assert_memory_equal(buf, head, sizeof(head) - 1);
        assert_memory_equal(buf + len - 11, "\"}},\"id\":4}", 11);
        for (size_t i = 0; i < len; i++)
            assert_true(buf[i] > 0x20 && buf[i] < 0x7f);
        size_t pn = push_of(buf, len, "chat-3", "", ",\"info\":{\"user\":\"\",\"client\":\"c1\"}",
                            push, sizeof(push));
        memset(&d, 0, sizeof(d));
        assert_int_equal(rx_whole(&o, push, pn, &d), PROTO_RX_DELIVERY);
        assert_true(d.pub == m.pub && d.seq == m.seq && d.ts_ns == m.ts_ns);
        if (n == 96)
            assert_memory_equal(buf + 38 + 41, ",\"p\":\"\"}", 8);
        if (n == 4096)
            break;
    }
    /* A buffer the command does not fit: nothing is written. */
    o.payload = 96;
    struct bench_msg m = {.pub = 1, .seq = 1, .ts_ns = 1};
    assert_int_equal(proto_centrifugo.publish(&o, &m, buf, 95), 0);
}

/* ---------------------------------------------------------------------------------------------
 * What the client receives
 * -------------------------------------------------------------------------------------------*/

#define DATA       "{\"rcb\":\"0000000a0000000b000000000000000c\",\"p\":\"abc\"}"
#define PUB(inner) "{\"push\":{\"channel\":\"chat-1\",\"pub\":{" inner "}}}"

static const struct cf_row {
    const char *name;
    const char *in;
    enum proto_rx want;
} rows[] = {
    {"connect reply",
     "{\"id\":1,\"connect\":{\"client\":\"694afad6-da2e\",\"version\":\"6.9.1\",\"ping\":25,"
     "\"pong\":true}}",
     PROTO_RX_IGNORE},
    {"subscribe reply", "{\"id\":2,\"subscribe\":{}}", PROTO_RX_JOINED},
    {"subscribe reply, id last",
     "{\"subscribe\":{\"recoverable\":true,\"epoch\":\"a55d\",\"positioned\":true},\"id\":3}",
     PROTO_RX_JOINED},
    {"publish reply", "{\"id\":4,\"publish\":{}}", PROTO_RX_IGNORE},
    {"error reply", "{\"id\":2,\"error\":{\"code\":103,\"message\":\"permission denied\"}}",
     PROTO_RX_BAD},
    {"error reply, error first",
     "{\"error\":{\"code\":106,\"message\":\"limit exceeded\"},\"id\":3}", PROTO_RX_BAD},
    {"ping", "{}", PROTO_RX_REPLY},
    {"ping with blanks", " { } ", PROTO_RX_REPLY},
    {"id 0 is no reply: a ping", "{\"id\":0}", PROTO_RX_REPLY},
    {"pub", PUB("\"data\":" DATA), PROTO_RX_DELIVERY},
    {"pub with info and offset",
     PUB("\"data\":" DATA ",\"info\":{\"user\":\"\",\"client\":\"c\"},"
         "\"offset\":5"),
     PROTO_RX_DELIVERY},
    {"pub, data last",
     PUB("\"offset\":18446744073709551615,\"tags\":{\"a\":\"}]\"},\"info\":{\"user\":\"u\\\"}\","
         "\"client\":\"c\",\"conn_info\":{\"data\":[1,{\"x\":\"{\"}]}},\"data\":" DATA),
     PROTO_RX_DELIVERY},
    {"pub, blanks around",
     "{ \"push\" : { \"channel\" : \"chat-1\" , \"pub\" : { \"data\" : " DATA " } } }",
     PROTO_RX_DELIVERY},
    {"pub by channel id (compaction)", "{\"push\":{\"id\":7,\"pub\":{\"data\":" DATA "}}}",
     PROTO_RX_DELIVERY},
    {"pub, channel last", "{\"push\":{\"pub\":{\"data\":" DATA "},\"channel\":\"chat-1\"}}",
     PROTO_RX_DELIVERY},
    {"pub without bench fields", PUB("\"data\":{\"text\":\"hello there, how are you doing?\"}"),
     PROTO_RX_BAD},
    {"pub with a bad hex digit",
     PUB("\"data\":{\"rcb\":\"0000000a0000000b00000000000g000c\",\"p\":\"abc\"}"), PROTO_RX_BAD},
    {"pub with string data",
     PUB("\"data\":\"{\\\"rcb\\\":\\\"0000000a0000000b000000000000000c\\\"}\""), PROTO_RX_BAD},
    {"pub without data", PUB("\"offset\":5"), PROTO_RX_BAD},
    {"join",
     "{\"push\":{\"channel\":\"chat-1\",\"join\":{\"info\":{\"user\":\"\",\"client\":\"c\"}}}}",
     PROTO_RX_IGNORE},
    {"leave",
     "{\"push\":{\"channel\":\"chat-1\",\"leave\":{\"info\":{\"user\":\"\",\"client\":\"c\"}}}}",
     PROTO_RX_IGNORE},
    {"message", "{\"push\":{\"message\":{\"data\":{\"hi\":1}}}}", PROTO_RX_IGNORE},
    {"unsubscribe push",
     "{\"push\":{\"channel\":\"chat-1\",\"unsubscribe\":{\"code\":2000,\"reason\":\"server "
     "unsubscribe\"}}}",
     PROTO_RX_BAD},
    {"disconnect push", "{\"push\":{\"disconnect\":{\"code\":3001,\"reason\":\"shutdown\"}}}",
     PROTO_RX_BAD},
    {"trailing bytes", "{\"id\":2,\"subscribe\":{}}x", PROTO_RX_BAD},
    {"two objects", "{\"id\":2,\"subscribe\":{}}{}", PROTO_RX_BAD},
    {"array", "[]", PROTO_RX_BAD},
    {"not json", "hello", PROTO_RX_BAD},
    {"empty", "", PROTO_RX_BAD},
    {"unclosed", "{", PROTO_RX_BAD},
    {"unclosed string", "{\"id\":2,\"subscribe\":{\"x\":\"\\\"}}", PROTO_RX_BAD},
    {"key without value", "{\"push\"}", PROTO_RX_BAD},
};
#define NR_ROWS (sizeof(rows) / sizeof(rows[0]))

/* Every row whole, then every proper prefix of it: a message is classified only whole, so no
 * prefix is a delivery, a membership or a ping. */
static void rx_rows(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, "chat" URL), 0);
    for (size_t i = 0; i < NR_ROWS; i++) {
        const struct cf_row *r = &rows[i];
        struct bench_msg d = {0};
        enum proto_rx got = rx_whole(&o, r->in, strlen(r->in), &d);
        if (got != r->want)
            fail_msg("%s: got %d, want %d", r->name, (int)got, (int)r->want);
        if (got == PROTO_RX_DELIVERY)
            assert_true(d.pub == 10 && d.seq == 11 && d.ts_ns == 12);
        for (size_t n = 0; r->want != PROTO_RX_BAD && n < strlen(r->in); n++) {
            got = rx_whole(&o, r->in, n, &d);
            if (got != PROTO_RX_BAD && r->in[n] != ' ')
                fail_msg("%s cut to %zu bytes: %d", r->name, n, (int)got);
        }
        /* A message only partly here is not classified. */
        struct guarded g = guard(r->in, strlen(r->in));
        assert_int_equal(proto_centrifugo.rx(&o, g.p, strlen(r->in), strlen(r->in) + 1, &d),
                         PROTO_RX_BAD);
        unguard(&g);
    }
}

/* Cuts <frame> as the client does (client.c, deliver()) and classifies each part. Returns the
 * number of parts, their verdicts in <got>. */
static size_t classify_frame(const struct bench_opts *o, const char *frame, enum proto_rx *got,
                             size_t cap)
{
    size_t len = strlen(frame), nr = 0;
    struct guarded g = guard(frame, len);
    const uint8_t *p = g.p;
    while (len) {
        size_t n = proto_centrifugo.split(p, len);
        assert_true(n <= len);
        if (n) {
            struct bench_msg d;
            assert_true(nr < cap);
            got[nr++] = proto_centrifugo.rx(o, p, n, n, &d);
        }
        size_t skip = n < len ? n + 1 : n;
        p += skip;
        len -= skip;
    }
    unguard(&g);
    return nr;
}

static void batched_frames(void **state)
{
    (void)state;
    struct bench_opts o;
    enum proto_rx got[8];
    assert_int_equal(parse(&o, "chat" URL), 0);
    /* §2: the connect and subscribe replies in one frame, in either order, with pushes. */
    assert_int_equal(
        classify_frame(&o,
                       "{\"id\":2,\"subscribe\":{}}\n{\"id\":1,\"connect\":{\"client\":"
                       "\"x\"}}\n" PUB("\"data\":" DATA) "\n" PUB("\"data\":" DATA),
                       got, 8),
        4);
    assert_int_equal(got[0], PROTO_RX_JOINED);
    assert_int_equal(got[1], PROTO_RX_IGNORE);
    assert_int_equal(got[2], PROTO_RX_DELIVERY);
    assert_int_equal(got[3], PROTO_RX_DELIVERY);
    /* A trailing separator and an empty line are skipped; a ping rides along. */
    assert_int_equal(classify_frame(&o, "{}\n\n{\"id\":4,\"publish\":{}}\n", got, 8), 2);
    assert_int_equal(got[0], PROTO_RX_REPLY);
    assert_int_equal(got[1], PROTO_RX_IGNORE);
    assert_int_equal(classify_frame(&o, "\n", got, 8), 0);
    /* A newline inside a string would be escaped (RFC 8259 §7), so every '\n' separates. */
    assert_int_equal(proto_centrifugo.split((const uint8_t *)"{}", 2), 2);
    assert_int_equal(proto_centrifugo.split((const uint8_t *)"{}\n{}", 5), 2);
}

static void ping_reply(void **state)
{
    (void)state;
    struct bench_opts o;
    uint8_t out[PROTO_REPLY_MAX];
    assert_int_equal(parse(&o, "hold" URL), 0);
    struct guarded g = guard("{}", 2);
    assert_int_equal(proto_centrifugo.rx(&o, g.p, 2, 2, NULL), PROTO_RX_REPLY);
    assert_int_equal(proto_centrifugo.reply(&o, g.p, 2, 2, out, sizeof(out)), 2);
    assert_memory_equal(out, "{}", 2);
    assert_int_equal(proto_centrifugo.reply(&o, g.p, 2, 2, out, 1), 0);
    unguard(&g);
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random bytes, and good messages with random bytes changed: any verdict, never a crash or a
 * read past the end (the guard page); a delivery only from a message that holds bench fields. */
static void rx_garbage(void **state)
{
    (void)state;
    struct bench_opts o;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint8_t buf[256];
    assert_int_equal(parse(&o, "chat" URL), 0);
    for (int k = 0; k < 40000; k++) {
        size_t n;
        if (k % 2) {
            const char *base = rows[next_rand(&seed) % NR_ROWS].in;
            n = strlen(base);
            memcpy(buf, base, n);
            for (int j = 0; n && j < 1 + k % 3; j++)
                buf[next_rand(&seed) % n] = (uint8_t)next_rand(&seed);
        } else {
            /* Mostly from the characters JSON is made of, to get further in. */
            static const char alphabet[] = "{}[]\":,\\ 0a\n";
            n = next_rand(&seed) % sizeof(buf);
            for (size_t i = 0; i < n; i++) {
                uint64_t x = next_rand(&seed);
                buf[i] = k % 4 ? (uint8_t)alphabet[x % (sizeof(alphabet) - 1)] : (uint8_t)x;
            }
        }
        struct bench_msg d;
        enum proto_rx r = rx_whole(&o, buf, n, &d);
        assert_true(r == PROTO_RX_DELIVERY || r == PROTO_RX_JOINED || r == PROTO_RX_IGNORE ||
                    r == PROTO_RX_REPLY || r == PROTO_RX_BAD);
        if (r == PROTO_RX_DELIVERY)
            assert_non_null(memmem(buf, n, "{\"rcb\":\"", 8));
        struct guarded g = guard(buf, n);
        assert_true(n == 0 || proto_centrifugo.split(g.p, n) <= n);
        unguard(&g);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Command line and geometry
 * -------------------------------------------------------------------------------------------*/

static void command_line(void **state)
{
    (void)state;
    struct bench_opts o;
    char err[256];
    assert_int_equal(parse_err(&o, "chat --binary" URL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "--binary"));
    /* A raw or Socket.IO connection is in one room: no second subscription, no token. */
    assert_int_equal(
        parse_err(&o, "chat --url ws://127.0.0.1:1/room/ --personal", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "--protocol centrifugo"));
    static const char *const bad[] = {
        "chat --url ws://127.0.0.1:1/room/ --token a.b.c",
        "chat --url ws://127.0.0.1:1/socket.io/ --protocol socketio --personal",
        "chat --token a\"b" URL,
        "chat --token a\\b" URL,
        "chat --token" URL,
        /* 10,000 rooms: chat-9999 needs 99 bytes. */
        "chat --connections 100000 --room-size 10 --payload 98" URL,
        "chat --payload 93" URL,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(&o, bad[i]) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(parse(&o, "chat --connections 100000 --room-size 10 --payload 99" URL), 0);
    assert_int_equal(parse(&o, "chat --personal --token aa.bb.cc" URL), 0);
    assert_true(o.personal);
    assert_string_equal(o.token, "aa.bb.cc");
    /* The default payload fits a million clients in rooms of 10 (chat-99999). */
    assert_int_equal(parse(&o, "chat --connections 1000000 --room-size 10 --workers 100" URL), 0);
    assert_int_equal(proto__centrifugo_min_payload(&o), 100);
}

/* The publisher is a subscriber: in chat it gets its own publish, counted as a delivery; the
 * fanout publisher's own copies stay its window, never deliveries. */
static void self_delivery(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, "chat --connections 25 --room-size 10" URL), 0);
    assert_int_equal(plan_receivers(&o, 3), 10);
    assert_int_equal(plan_receivers(&o, 24), 5);
    assert_int_equal(plan_seq_slot(&o, 3, 3), 3);
    assert_int_equal(plan_seq_slot(&o, 13, 13), 3);
    assert_int_equal(plan_seq_slot(&o, 13, 3), -1);
    assert_int_equal(parse(&o, "chat --connections 25 --room-size 10 --url ws://127.0.0.1:1/r/"),
                     0);
    assert_int_equal(plan_receivers(&o, 3), 9);
    assert_int_equal(plan_seq_slot(&o, 3, 3), -1);
    assert_int_equal(parse(&o, "fanout --connections 25" URL), 0);
    assert_int_equal(plan_receivers(&o, 0), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths_and_hello), cmocka_unit_test(publish_sizes),
        cmocka_unit_test(rx_rows),         cmocka_unit_test(batched_frames),
        cmocka_unit_test(ping_reply),      cmocka_unit_test(rx_garbage),
        cmocka_unit_test(command_line),    cmocka_unit_test(self_delivery),
    };
    return cmocka_run_group_tests_name("bench_centrifugo", tests, NULL, NULL);
}
