/* SPDX-License-Identifier: MIT */
/*
 * ringcast-bench's plan and raw protocol (tools/bench/plan.c, proto_raw.c): command line and
 * defaults, the loopback-only rule, URLs, source address ranges, room geometry and expected
 * deliveries, and the payload layout (seq + timestamp + publisher) both ways.
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

static int parse(struct bench_opts *o, const char *line)
{
    char buf[1024], *argv[64], err[256];
    int argc = 0;
    snprintf(buf, sizeof(buf), "ringcast-bench %s", line);
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    return plan_parse(o, argc, argv, err, sizeof(err));
}

static void defaults_per_scenario(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:8080/room/"), 0);
    assert_int_equal(o.scenario, SC_CHAT);
    assert_int_equal(o.connections, 1000);
    assert_int_equal(o.room_size, 50);
    assert_true(o.rate == 1000 && o.duration == 10);
    assert_int_equal(o.payload, 100);
    assert_int_equal(o.workers, 1);
    assert_true(o.src_first == 0x7f000002u && o.src_last == 0x7f0000feu);
    assert_ptr_equal(o.proto, &proto_raw);
    assert_false(o.stamp_schedule); /* the actual send time, by default */
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:8080/room/ --stamp schedule"), 0);
    assert_true(o.stamp_schedule);
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:8080/room/ --stamp send"), 0);
    assert_false(o.stamp_schedule);
    assert_int_equal(o.poll_us, 30); /* a short poll before blocking, by default */
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:8080/room/ --poll-us 0"), 0);
    assert_int_equal(o.poll_us, 0);

    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:8080/room/lobby --connections 100000"),
                     0);
    /* Enough workers that none holds more than 15,000. */
    assert_int_equal(o.workers, 7);
    assert_true(o.rate == 0);

    assert_int_equal(parse(&o, "ramp --url ws://localhost:8080/room/x"), 0);
    assert_true(o.rate == 5000 && o.duration == 60 && o.connections == 100000);

    assert_int_equal(parse(&o, "fanout --url ws://127.0.0.1:1/room/ --connections 500"), 0);
    assert_int_equal(o.inflight, 16);
    assert_int_equal(o.room_size, 500);
}

static void bad_command_lines(void **state)
{
    (void)state;
    struct bench_opts o;
    static const char *const bad[] = {
        "chat",                                      /* no --url */
        "--url ws://127.0.0.1:1/",                   /* no scenario */
        "storm --url ws://127.0.0.1:1/",             /* unknown scenario */
        "chat --url http://127.0.0.1:1/",            /* not ws:// */
        "chat --url wss:/127.0.0.1:1/",              /* malformed scheme */
        "chat --url ws://127.0.0.1:1/ --tls-resume", /* TLS options need wss */
        "chat --url ws://127.0.0.1:1/ --tls-verify ca.pem",
        "chat --url ws://127.0.0.1:0/", /* port */
        "chat --url ws://127.0.0.1:1/ --connections 0",
        "chat --url ws://127.0.0.1:1/ --connections 2000000", /* bounded */
        "chat --url ws://127.0.0.1:1/ --duration 100000",     /* bounded */
        "chat --url ws://127.0.0.1:1/ --room-size 1",
        "chat --url ws://127.0.0.1:1/ --payload 20", /* under the header */
        "chat --url ws://127.0.0.1:1/ --rate -5",
        "chat --url ws://127.0.0.1:1/ --stamp later",
        "chat --url ws://127.0.0.1:1/ --poll-us 1001",
        "chat --url ws://127.0.0.1:1/ --poll-us -1",
        "chat --url ws://127.0.0.1:1/ --workers 0",
        "hold --url ws://127.0.0.1:1/ --connections 100000 --workers 1", /* > a ring */
        "chat --url ws://127.0.0.1:1/ --bogus",
        "chat --url ws://127.0.0.1:1/ --protocol mqtt",
        "chat --url ws://127.0.0.1:1/ --source-ips 10.0.0.1-10.0.0.9",
        "chat --url ws://127.0.0.1:1/ extra",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(&o, bad[i]) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
}

/* Loopback only, unless asked: a load generator pointed at someone else's server by a typo
 * is an attack. */
static void loopback_only_without_allow_remote(void **state)
{
    (void)state;
    struct bench_opts o;
    char err[256];
    memset(&o, 0, sizeof(o));
    assert_int_equal(plan_parse_url(&o, "ws://10.1.2.3:80/room/", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "--allow-remote"));
    assert_int_equal(plan_parse_url(&o, "ws://example.org/room/", err, sizeof(err)), -EINVAL);
    assert_int_equal(plan_parse_url(&o, "ws://127.9.8.7:80/x", err, sizeof(err)), 0);
    o.allow_remote = true;
    assert_int_equal(plan_parse_url(&o, "ws://10.1.2.3:80/room/", err, sizeof(err)), 0);
    assert_int_equal(parse(&o, "chat --allow-remote --url ws://10.1.2.3:80/room/"), 0);
    /* No 127.x sources towards a remote target unless given. */
    assert_true(o.src_first == 0 && plan_source_ip(&o, 5) == 0);
}

static void url_parts(void **state)
{
    (void)state;
    struct bench_opts o;
    char err[256];
    memset(&o, 0, sizeof(o));
    assert_int_equal(plan_parse_url(&o, "ws://127.0.0.1:8080/room/?token=x", err, sizeof(err)), 0);
    assert_string_equal(o.host, "127.0.0.1:8080");
    assert_string_equal(o.path, "/room/");
    assert_string_equal(o.query, "token=x");
    assert_int_equal(ntohs(o.target.sin_port), 8080);
    assert_int_equal(ntohl(o.target.sin_addr.s_addr), 0x7f000001);
    assert_int_equal(plan_parse_url(&o, "ws://localhost", err, sizeof(err)), 0);
    assert_string_equal(o.path, "/");
    assert_int_equal(ntohs(o.target.sin_port), 80);
    assert_string_equal(o.query, "");
    assert_false(o.tls);

    /* wss: port 443 by default; SNI is the host name, or localhost for an address. */
    assert_int_equal(plan_parse_url(&o, "wss://127.0.0.1:8443/room/x", err, sizeof(err)), 0);
    assert_true(o.tls);
    assert_string_equal(o.host, "127.0.0.1:8443");
    assert_string_equal(o.path, "/room/x");
    assert_string_equal(o.tls_sni, "localhost");
    assert_int_equal(ntohs(o.target.sin_port), 8443);
    assert_int_equal(plan_parse_url(&o, "wss://localhost/", err, sizeof(err)), 0);
    assert_int_equal(ntohs(o.target.sin_port), 443);
    assert_string_equal(o.tls_sni, "localhost");
    assert_string_equal(o.host, "localhost");

    assert_int_equal(parse(&o, "hold --url wss://127.0.0.1:1/ --tls-resume --tls-verify ca.pem"),
                     0);
    assert_true(o.tls && o.tls_resume);
    assert_string_equal(o.tls_ca, "ca.pem");
    assert_int_equal(parse(&o, "hold --url wss://127.0.0.1:1/"), 0);
    assert_true(o.tls && !o.tls_resume && o.tls_ca[0] == '\0');
}

static void source_ranges(void **state)
{
    (void)state;
    uint32_t a, b;
    assert_int_equal(plan_parse_ips("127.0.0.2-127.0.0.254", &a, &b), 0);
    assert_true(a == 0x7f000002 && b == 0x7f0000fe);
    assert_int_equal(plan_parse_ips("127.0.0.9", &a, &b), 0);
    assert_true(a == 0x7f000009 && b == a);
    assert_int_equal(plan_parse_ips("none", &a, &b), 0);
    assert_true(a == 0 && b == 0);
    assert_int_equal(plan_parse_ips("127.0.0.9-127.0.0.2", &a, &b), -EINVAL);
    assert_int_equal(plan_parse_ips("127.0.0.x", &a, &b), -EINVAL);

    struct bench_opts o;
    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:1/ --source-ips 127.0.0.2-127.0.0.4"), 0);
    /* Round robin over the range, by client number. */
    assert_int_equal(ntohl(plan_source_ip(&o, 0)), 0x7f000002);
    assert_int_equal(ntohl(plan_source_ip(&o, 1)), 0x7f000003);
    assert_int_equal(ntohl(plan_source_ip(&o, 2)), 0x7f000004);
    assert_int_equal(ntohl(plan_source_ip(&o, 3)), 0x7f000002);
}

/* 25 clients in rooms of 10: rooms of 10, 10 and 5; a publish reaches everyone else. */
static void chat_geometry(void **state)
{
    (void)state;
    struct bench_opts o;
    char s[64];
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/room/ --connections 25 "
                               "--room-size 10"),
                     0);
    assert_int_equal(plan_nr_rooms(&o), 3);
    assert_int_equal(plan_room_members(&o, 0), 10);
    assert_int_equal(plan_room_members(&o, 2), 5);
    assert_int_equal(plan_room_of(&o, 19), 1);
    assert_int_equal(plan_room_first(&o, 2), 20);
    assert_int_equal(plan_receivers(&o, 3), 9);
    assert_int_equal(plan_receivers(&o, 24), 4);
    uint64_t expected = 0;
    for (uint32_t g = 0; g < 25; g++)
        expected += plan_receivers(&o, g);
    assert_int_equal(expected, 10 * 9 + 10 * 9 + 5 * 4);
    assert_int_equal(plan_room_suffix(&o, 24, s, sizeof(s)), 6);
    assert_string_equal(s, "chat-2");
    assert_int_equal(proto_raw.path(&o, 24, s, sizeof(s)), 12);
    assert_string_equal(s, "/room/chat-2");
    /* Sequence slots: position in the room; nothing from yourself or another room. */
    assert_int_equal(plan_seq_slots(&o), 10);
    assert_int_equal(plan_seq_slot(&o, 12, 17), 7);
    assert_int_equal(plan_seq_slot(&o, 12, 12), -1);
    assert_int_equal(plan_seq_slot(&o, 12, 3), -1);
    assert_int_equal(plan_seq_slot(&o, 12, 99), -1);

    /* A path without a trailing '/' names the rooms after itself. */
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/room/lobby --connections 25 "
                               "--room-size 10"),
                     0);
    assert_int_equal(proto_raw.path(&o, 24, s, sizeof(s)), 13);
    assert_string_equal(s, "/room/lobby-2");
}

static void other_geometries(void **state)
{
    (void)state;
    struct bench_opts o;
    char s[64];
    assert_int_equal(parse(&o, "fanout --url ws://127.0.0.1:1/room/ --connections 100"), 0);
    assert_int_equal(plan_nr_rooms(&o), 1);
    assert_int_equal(plan_receivers(&o, 0), 99);
    assert_true(plan_is_publisher(&o, 0) && !plan_is_publisher(&o, 1));
    proto_raw.path(&o, 0, s, sizeof(s));
    assert_string_equal(s, "/room/fanout?echo=1"); /* the publisher hears itself */
    proto_raw.path(&o, 1, s, sizeof(s));
    assert_string_equal(s, "/room/fanout");

    assert_int_equal(parse(&o, "echo --url ws://127.0.0.1:1/echo --connections 10"), 0);
    assert_int_equal(plan_receivers(&o, 3), 1);
    assert_int_equal(plan_seq_slot(&o, 3, 3), 0);
    assert_int_equal(plan_seq_slot(&o, 3, 4), -1);
    proto_raw.path(&o, 3, s, sizeof(s));
    assert_string_equal(s, "/echo");

    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:1/room/lobby --connections 10"), 0);
    proto_raw.path(&o, 7, s, sizeof(s));
    assert_string_equal(s, "/room/lobby");
    assert_int_equal(plan_receivers(&o, 7), 0);
    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:1/room/ --connections 10 "
                               "--room-size 4"),
                     0);
    proto_raw.path(&o, 9, s, sizeof(s));
    assert_string_equal(s, "/room/hold-2");
}

static void workers_partition_clients(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, "hold --url ws://127.0.0.1:1/ --connections 100001 --workers 9"), 0);
    uint32_t prev_hi = 0, lo, hi;
    for (uint32_t w = 0; w < 9; w++) {
        plan_worker_range(&o, w, &lo, &hi);
        assert_int_equal(lo, prev_hi);
        assert_true(hi - lo == 11111 || hi - lo == 11112);
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, 100001);
}

/* Every payload size from the minimum up: exact length, JSON-shaped, and it decodes back. */
static void raw_payload_round_trip(void **state)
{
    (void)state;
    struct bench_opts o;
    uint8_t buf[512];
    assert_int_equal(parse(&o, "chat --url ws://127.0.0.1:1/room/"), 0);
    for (uint32_t n = (uint32_t)proto_raw.min_payload; n <= 300; n++) {
        o.payload = n;
        struct bench_msg m = {.pub = 0xabcdef01u, .seq = 77, .ts_ns = 0x1234567890abcdefull}, d;
        size_t len = proto_raw.publish(&o, &m, buf, sizeof(buf));
        assert_int_equal(len, n);
        assert_true(buf[0] == '{' && buf[len - 1] == '}');
        for (size_t i = 0; i < len; i++)
            assert_true(buf[i] >= 0x20 && buf[i] < 0x7f);
        assert_int_equal(proto_raw.rx(&o, buf, len, len, &d), PROTO_RX_DELIVERY);
        assert_true(d.pub == m.pub && d.seq == m.seq && d.ts_ns == m.ts_ns);
        /* The leading rx_need bytes are enough: that is all a split message keeps. */
        assert_int_equal(proto_raw.rx(&o, buf, proto_raw.rx_need, len, &d), PROTO_RX_DELIVERY);
    }
    assert_int_equal(proto_raw.rx(&o, (const uint8_t *)"hello", 5, 5, NULL), PROTO_RX_BAD);
    memcpy(buf, "{\"rcb\":\"zz", 10);
    assert_int_equal(proto_raw.rx(&o, buf, 100, 100, NULL), PROTO_RX_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_per_scenario),
        cmocka_unit_test(bad_command_lines),
        cmocka_unit_test(loopback_only_without_allow_remote),
        cmocka_unit_test(url_parts),
        cmocka_unit_test(source_ranges),
        cmocka_unit_test(chat_geometry),
        cmocka_unit_test(other_geometries),
        cmocka_unit_test(workers_partition_clients),
        cmocka_unit_test(raw_payload_round_trip),
    };
    return cmocka_run_group_tests_name("bench_plan", tests, NULL, NULL);
}
