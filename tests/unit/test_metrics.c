/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/metrics.c, through the public header, on a fake engine whose shards
 * have only their counters set: every contract metric is present, sums over shards are right,
 * the Prometheus text is well formed, the JSON parses (with jansson, strict about duplicate
 * keys; the engine links it already), frames_per_send = delivered / sends, and the truncation
 * contract (the full length comes back whatever <cap> is; that length + 1 is enough).
 *
 * The two process figures (RSS, CPU seconds) are the only parts that may change from one
 * call to the next; comparisons of whole texts stop before them.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "metrics.h"
#include "shard.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Fake engine
 * -------------------------------------------------------------------------------------------*/

static struct shard g_shards[SHARDS_MAX];
static struct engine g_eng;

#define SET(sh, field, v)                                                                          \
    atomic_store_explicit(&g_shards[sh].stats.field, (v), memory_order_relaxed)

static void make_engine(unsigned nr_shards)
{
    memset(g_shards, 0, sizeof(g_shards));
    memset(&g_eng, 0, sizeof(g_eng));
    g_eng.nr_shards = nr_shards;
    g_eng.shards = g_shards;
    g_eng.max_conns = 100000;
    for (unsigned i = 0; i < nr_shards; i++) {
        g_shards[i].id = i;
        g_shards[i].eng = &g_eng;
    }
    metrics_sample_process(); /* what main.c does once a second */
}

/* Two shards with distinct counters; bytes_out passes 2^32 so that 64-bit printing shows. */
static int setup_two_shards(void **state)
{
    (void)state;
    make_engine(2);
    SET(0, conns, 3);
    SET(0, accepted, 10);
    SET(0, handshakes_failed, 1);
    SET(0, hs_failed[HS_FAIL_NOT_FOUND], 1);
    SET(0, msgs_in, 100);
    SET(0, msgs_out, 1000);
    SET(0, bytes_in, 5000);
    SET(0, bytes_out, 70000);
    SET(0, sends, 400);
    SET(0, slow_close, 2);
    SET(0, slow_drop, 5);
    SET(0, paused, 7);
    SET(0, xshard_msgs, 30);
    SET(0, rooms, 4);
    SET(0, queued_bytes, 123);
    SET(0, turns, 77);
    SET(0, tls_handshaking, 5);
    SET(0, tls_waiting, 2);
    SET(0, cqes, 88);
    SET(0, upgrades, 9);
    SET(0, closes, 6);
    SET(0, cpu_ns, 1500000000ull);
    SET(1, conns, 7);
    SET(1, accepted, 20);
    SET(1, handshakes_failed, 2);
    SET(1, hs_failed[HS_FAIL_NOT_FOUND], 1);
    SET(1, hs_failed[HS_FAIL_TIMEOUT], 1);
    SET(1, msgs_in, 200);
    SET(1, msgs_out, 500);
    SET(1, bytes_in, 6000);
    SET(1, bytes_out, 5000000000ull);
    SET(1, sends, 200);
    SET(1, slow_close, 1);
    SET(1, slow_drop, 6);
    SET(1, paused, 8);
    SET(1, xshard_msgs, 40);
    SET(1, rooms, 5);
    SET(1, queued_bytes, 877);
    SET(1, turns, 23);
    SET(1, tls_handshaking, 1);
    SET(1, cqes, 12);
    SET(1, upgrades, 17);
    SET(1, closes, 10);
    SET(1, cpu_ns, 250000000ull);
    return 0;
}

typedef size_t (*render_fn)(const struct engine *e, char *out, size_t cap);

/*
 * The length needed, asked with a cap of 0. <out> is a real buffer: the header does not allow
 * NULL, and NULL + 0 in the renderer is undefined (clang's UBSan reports it).
 */
static size_t size_of(render_fn fn)
{
    char dummy = 'x';
    size_t n = fn(&g_eng, &dummy, 0);
    assert_int_equal(dummy, 'x');
    return n;
}

/* Renders into a heap buffer of exactly the size asked for, so ASan sees any overrun. */
static char *render(render_fn fn, size_t *len_out)
{
    size_t n = size_of(fn);
    for (int tries = 0; tries < 5; tries++) {
        char *buf = malloc(n + 1);
        assert_non_null(buf);
        size_t m = fn(&g_eng, buf, n + 1);
        if (m <= n) {
            assert_int_equal(strlen(buf), m);
            *len_out = m;
            return buf;
        }
        free(buf); /* the process figures grew a digit in between */
        n = m;
    }
    fail_msg("the rendered length never settled");
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Prometheus text: a line-by-line check and a sample lookup
 * -------------------------------------------------------------------------------------------*/

/* Value of the sample line whose name and labels are exactly <sample>; false when absent. */
static bool prom_sample(const char *text, const char *sample, double *value)
{
    size_t n = strlen(sample);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, sample, n) == 0 && line[n] == ' ') {
            char *end;
            *value = strtod(line + n + 1, &end);
            assert_true(end > line + n + 1 && *end == '\n');
            return true;
        }
    }
    return false;
}

static uint64_t prom_u64(const char *text, const char *sample)
{
    double v;
    if (!prom_sample(text, sample, &v))
        fail_msg("sample missing: %s", sample);
    return (uint64_t)v;
}

static bool is_name_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':' ||
           (!first && isdigit((unsigned char)c));
}

struct prom_family {
    char name[80];
    bool histogram;
};

/* Whether sample name <p>[0..<len>) belongs to <f>: its own name, or a histogram's series. */
static bool in_family(const struct prom_family *f, const char *p, size_t len)
{
    static const char *const series[] = {"_bucket", "_sum", "_count"};
    size_t n = strlen(f->name);
    if (len < n || memcmp(p, f->name, n) != 0)
        return false;
    if (len == n)
        return !f->histogram;
    for (size_t i = 0; f->histogram && i < 3; i++)
        if (len - n == strlen(series[i]) && memcmp(p + n, series[i], len - n) == 0)
            return true;
    return false;
}

/* `{name="value",...}` at <p>; returns the character after it. */
static const char *prom_labels(const char *p, const char *eol)
{
    do {
        p++;
        assert_true(is_name_char(*p, true));
        while (is_name_char(*p, false))
            p++;
        assert_true(p[0] == '=' && p[1] == '"');
        p += 2;
        while (*p != '"' && p < eol)
            p++;
        assert_int_equal(*p, '"');
        p++;
    } while (*p == ',');
    assert_int_equal(*p, '}');
    return p + 1;
}

/*
 * Exposition format 0.0.4: every line is a comment (# HELP, or # TYPE name counter|gauge|
 * histogram) or `name{label="value",...} number`; every sample belongs to a family TYPEd before
 * it, and no family is TYPEd twice. Returns the number of samples.
 */
static unsigned prom_check_format(const char *text)
{
    struct prom_family fam[64];
    unsigned nr_fam = 0, nr_samples = 0;
    assert_true(*text);
    assert_int_equal(text[strlen(text) - 1], '\n');
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        if (strncmp(line, "# HELP ", 7) == 0) {
            line = eol + 1;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            const char *name = line + 7, *sp = strchr(name, ' ');
            size_t n = sp ? (size_t)(sp - name) : 0;
            assert_true(sp && sp < eol && n < sizeof(fam[0].name) && nr_fam < 64);
            bool hist = strncmp(sp + 1, "histogram\n", 10) == 0;
            assert_true(hist || strncmp(sp + 1, "counter\n", 8) == 0 ||
                        strncmp(sp + 1, "gauge\n", 6) == 0);
            for (unsigned i = 0; i < nr_fam; i++)
                assert_false(strlen(fam[i].name) == n && memcmp(fam[i].name, name, n) == 0);
            memcpy(fam[nr_fam].name, name, n);
            fam[nr_fam].name[n] = '\0';
            fam[nr_fam++].histogram = hist;
            line = eol + 1;
            continue;
        }
        assert_int_not_equal(line[0], '#');
        const char *p = line;
        assert_true(is_name_char(*p, true));
        while (is_name_char(*p, false))
            p++;
        bool known = false;
        for (unsigned i = 0; i < nr_fam; i++)
            known |= in_family(&fam[i], line, (size_t)(p - line));
        if (!known)
            fail_msg("sample without # TYPE: %.*s", (int)(p - line), line);
        if (*p == '{')
            p = prom_labels(p, eol);
        assert_int_equal(*p, ' ');
        char *end;
        strtod(p + 1, &end);
        assert_true(end > p + 1 && end == eol);
        nr_samples++;
        line = eol + 1;
    }
    return nr_samples;
}

/* The format check takes the families metrics.c writes and histograms, which it may. */
static void prom_checker_sanity(void **state)
{
    (void)state;
    static const char text[] = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
                               "# TYPE g gauge\ng{shard=\"0\"} 2\ng{shard=\"1\",x=\"y\"} 3.5\n"
                               "# TYPE h_seconds histogram\n"
                               "h_seconds_bucket{le=\"0.001\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n"
                               "h_seconds_sum 0.25\nh_seconds_count 2\n";
    assert_int_equal(prom_check_format(text), 7);
    double v;
    assert_true(prom_sample(text, "g{shard=\"1\",x=\"y\"}", &v));
    assert_true(v == 3.5);
    assert_false(prom_sample(text, "g", &v));
}

/* ---------------------------------------------------------------------------------------------
 * Prometheus
 * -------------------------------------------------------------------------------------------*/

static void prometheus_has_every_contract_metric(void **state)
{
    (void)state;
    static const char *const families[] = {
        "ringcast_connections",
        "ringcast_connections_accepted_total",
        "ringcast_handshakes_failed_total",
        "ringcast_messages_received_total",
        "ringcast_messages_delivered_total",
        "ringcast_bytes_received_total",
        "ringcast_bytes_sent_total",
        "ringcast_rooms",
        "ringcast_slow_consumer_total",
        "ringcast_send_queue_bytes",
        "ringcast_xshard_messages_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    };
    size_t len;
    char *text = render(metrics_prometheus, &len);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char type_line[128];
        snprintf(type_line, sizeof(type_line), "# TYPE %s ", families[i]);
        if (!strstr(text, type_line))
            fail_msg("no # TYPE for %s", families[i]);
        /* A sample of the family: its name then a space or a label set, at a line start. */
        bool found = false;
        size_t n = strlen(families[i]);
        for (const char *p = text; (p = strstr(p, families[i])) != NULL; p += n)
            found |= (p == text || p[-1] == '\n') && (p[n] == ' ' || p[n] == '{');
        if (!found)
            fail_msg("no sample for %s", families[i]);
    }
    double v;
    assert_true(prom_sample(text, "ringcast_connections{shard=\"0\"}", &v));
    assert_true(prom_sample(text, "ringcast_connections{shard=\"1\"}", &v));
    assert_false(prom_sample(text, "ringcast_connections{shard=\"2\"}", &v));
    assert_true(prom_sample(text, "ringcast_slow_consumer_total{action=\"close\"}", &v));
    assert_true(prom_sample(text, "ringcast_slow_consumer_total{action=\"drop\"}", &v));
    assert_non_null(strstr(text, "# TYPE ringcast_connections gauge\n"));
    assert_non_null(strstr(text, "# TYPE ringcast_rooms gauge\n"));
    assert_non_null(strstr(text, "# TYPE ringcast_send_queue_bytes gauge\n"));
    assert_non_null(strstr(text, "# TYPE ringcast_bytes_sent_total counter\n"));
    free(text);
}

/* The contract's ringcast_publish_latency_seconds histogram. */
static void prometheus_has_publish_latency_histogram(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_prometheus, &len);
    SET(0, lat_buckets[0], 2);
    SET(1, lat_buckets[3], 1);
    SET(1, lat_buckets[LAT_NR_BUCKETS - 1], 1);
    free(text);
    text = render(metrics_prometheus, &len);
    /* Buckets are cumulative across buckets and summed across shards. */
    assert_int_equal(prom_u64(text, "ringcast_publish_latency_seconds_bucket{le=\"0.0001\"}"), 2);
    assert_int_equal(prom_u64(text, "ringcast_publish_latency_seconds_bucket{le=\"0.001\"}"), 3);
    assert_int_equal(prom_u64(text, "ringcast_publish_latency_seconds_bucket{le=\"5\"}"), 3);
    assert_int_equal(prom_u64(text, "ringcast_publish_latency_seconds_bucket{le=\"+Inf\"}"), 4);
    assert_int_equal(prom_u64(text, "ringcast_publish_latency_seconds_count"), 4);
    bool found = strstr(text, "# TYPE ringcast_publish_latency_seconds histogram\n") != NULL &&
                 strstr(text, "ringcast_publish_latency_seconds_bucket{le=\"+Inf\"} ") != NULL &&
                 strstr(text, "ringcast_publish_latency_seconds_count ") != NULL;
    free(text);
    assert_true(found);
}

static void prometheus_is_well_formed(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_prometheus, &len);
    assert_int_equal(len, strlen(text));
    /* 2 connection lines, 9 failed-handshake reasons, 2 slow-consumer lines, 2 TLS handshake
     * lines, one sample for each other counter and gauge (publisher pauses included), and the
     * latency histogram's 16 buckets, sum and count. */
    assert_int_equal(prom_check_format(text), 46);
    free(text);
}

static void prometheus_sums_over_shards(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_prometheus, &len);
    assert_int_equal(prom_u64(text, "ringcast_connections{shard=\"0\"}"), 3);
    assert_int_equal(prom_u64(text, "ringcast_connections{shard=\"1\"}"), 7);
    assert_int_equal(prom_u64(text, "ringcast_connections_accepted_total"), 30);
    /* Every reason has a sample, zeros included, and they sum to the total. */
    static const char *const reasons[] = {"bad_request",   "forbidden",    "not_found",
                                          "not_websocket", "per_ip_limit", "unavailable",
                                          "timeout",       "tls",          "other"};
    uint64_t failed = 0;
    for (size_t r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
        char sample[96];
        snprintf(sample, sizeof(sample), "ringcast_handshakes_failed_total{reason=\"%s\"}",
                 reasons[r]);
        failed += prom_u64(text, sample);
    }
    assert_int_equal(failed, 3);
    assert_int_equal(prom_u64(text, "ringcast_handshakes_failed_total{reason=\"not_found\"}"), 2);
    assert_int_equal(prom_u64(text, "ringcast_handshakes_failed_total{reason=\"timeout\"}"), 1);
    assert_int_equal(prom_u64(text, "ringcast_messages_received_total"), 300);
    assert_int_equal(prom_u64(text, "ringcast_messages_delivered_total"), 1500);
    assert_int_equal(prom_u64(text, "ringcast_bytes_received_total"), 11000);
    assert_int_equal(prom_u64(text, "ringcast_bytes_sent_total"), 5000070000ull);
    assert_int_equal(prom_u64(text, "ringcast_sends_total"), 600);
    assert_int_equal(prom_u64(text, "ringcast_rooms"), 9);
    assert_int_equal(prom_u64(text, "ringcast_slow_consumer_total{action=\"close\"}"), 3);
    assert_int_equal(prom_u64(text, "ringcast_slow_consumer_total{action=\"drop\"}"), 11);
    assert_int_equal(prom_u64(text, "ringcast_publisher_pauses_total"), 15);
    assert_int_equal(prom_u64(text, "ringcast_send_queue_bytes"), 1000);
    assert_int_equal(prom_u64(text, "ringcast_xshard_messages_total"), 70);
    assert_int_equal(prom_u64(text, "ringcast_loop_turns_total"), 100);
    assert_int_equal(prom_u64(text, "ringcast_tls_handshakes{state=\"active\"}"), 6);
    assert_int_equal(prom_u64(text, "ringcast_tls_handshakes{state=\"waiting\"}"), 2);
    /* The process figures are this process's own: a resident size in whole pages, CPU >= 0. */
    uint64_t rss = prom_u64(text, "process_resident_memory_bytes");
    assert_true(rss > 0);
    assert_int_equal(rss % (uint64_t)sysconf(_SC_PAGESIZE), 0);
    double cpu;
    assert_true(prom_sample(text, "process_cpu_seconds_total", &cpu));
    assert_true(cpu >= 0.0);
    free(text);
}

/* Every shard gets its own connections line, up to SHARDS_MAX. */
static void prometheus_one_line_per_shard(void **state)
{
    (void)state;
    make_engine(SHARDS_MAX);
    for (unsigned i = 0; i < SHARDS_MAX; i++) {
        SET(i, conns, 1000 + i);
        SET(i, accepted, 1);
    }
    size_t len;
    char *text = render(metrics_prometheus, &len);
    for (unsigned i = 0; i < SHARDS_MAX; i++) {
        char sample[64];
        snprintf(sample, sizeof(sample), "ringcast_connections{shard=\"%u\"}", i);
        assert_int_equal(prom_u64(text, sample), 1000 + i);
    }
    assert_int_equal(prom_u64(text, "ringcast_connections_accepted_total"), SHARDS_MAX);
    assert_int_equal(prom_check_format(text), SHARDS_MAX + 44);
    free(text);
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 * -------------------------------------------------------------------------------------------*/

/* The flat figures before the nested parts: what /stats has always said, in the same place. */
static const char *const JSON_FLAT_KEYS[] = {
    "shards",
    "connections",
    "max_connections",
    "accepted",
    "handshakes_failed",
    "messages_received",
    "messages_delivered",
    "bytes_received",
    "bytes_sent",
    "sends",
    "frames_per_send",
    "rooms",
    "slow_consumer_close",
    "slow_consumer_drop",
    "send_queue_bytes",
    "xshard_messages",
    "loop_turns",
    "completions",
    "tls_handshakes_active",
    "tls_handshakes_waiting",
    "rss_bytes",
    "cpu_seconds",
    "upgrades",
    "closes",
};
#define JSON_NR_FLAT (sizeof(JSON_FLAT_KEYS) / sizeof(JSON_FLAT_KEYS[0]))

static double jnum(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("%s: missing or not a number", key);
    return json_number_value(v);
}

/* Parses <text> with jansson; fails the test unless it is one object. The caller decrefs. */
static json_t *jparse(const char *text)
{
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!root || !json_is_object(root))
        fail_msg("not a JSON object (%s at %d): %s", err.text, err.position, text);
    return root;
}

static void json_parses_and_sums(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_json, &len);
    json_t *root = jparse(text);
    for (size_t i = 0; i < JSON_NR_FLAT; i++)
        (void)jnum(root, JSON_FLAT_KEYS[i]);
    assert_true(jnum(root, "shards") == 2);
    assert_true(jnum(root, "connections") == 10);
    assert_true(jnum(root, "max_connections") == 100000);
    assert_true(jnum(root, "accepted") == 30);
    assert_true(jnum(root, "handshakes_failed") == 3);
    assert_true(jnum(root, "messages_received") == 300);
    assert_true(jnum(root, "messages_delivered") == 1500);
    assert_true(jnum(root, "bytes_received") == 11000);
    assert_true(jnum(root, "bytes_sent") == 5000070000.0);
    assert_true(jnum(root, "sends") == 600);
    assert_true(jnum(root, "frames_per_send") == 2.5); /* 1500 / 600 */
    assert_true(jnum(root, "rooms") == 9);
    assert_true(jnum(root, "slow_consumer_close") == 3);
    assert_true(jnum(root, "slow_consumer_drop") == 11);
    assert_true(jnum(root, "publisher_pauses") == 15);
    assert_true(jnum(root, "send_queue_bytes") == 1000);
    assert_true(jnum(root, "xshard_messages") == 70);
    assert_true(jnum(root, "loop_turns") == 100);
    assert_true(jnum(root, "completions") == 100);
    assert_true(jnum(root, "tls_handshakes_active") == 6);
    assert_true(jnum(root, "tls_handshakes_waiting") == 2);
    assert_true(jnum(root, "rss_bytes") > 0);
    assert_true(jnum(root, "cpu_seconds") >= 0);
    assert_true(jnum(root, "upgrades") == 26);
    assert_true(jnum(root, "closes") == 16);
    json_t *why = json_object_get(root, "handshakes_failed_by_reason");
    assert_true(json_is_object(why));
    assert_int_equal(json_object_size(why), HS_FAIL_NR);
    assert_true(jnum(why, "not_found") == 2 && jnum(why, "timeout") == 1);
    assert_true(jnum(why, "bad_request") == 0 && jnum(why, "tls") == 0);
    json_decref(root);
    free(text);
}

/* The histogram: bounds in seconds, non-cumulative counts summed over shards, +Inf last. */
static void json_latency_buckets(void **state)
{
    (void)state;
    SET(0, lat_buckets[0], 40);
    SET(0, lat_buckets[3], 2);
    SET(0, lat_sum_ns, 3000000);
    SET(1, lat_buckets[0], 10);
    SET(1, lat_buckets[LAT_NR_BUCKETS - 1], 1);
    SET(1, lat_sum_ns, 7000000000ull);
    size_t len;
    char *text = render(metrics_json, &len);
    json_t *root = jparse(text);
    json_t *lat = json_object_get(root, "publish_latency");
    assert_true(json_is_object(lat));
    json_t *le = json_object_get(lat, "le_seconds"), *counts = json_object_get(lat, "counts");
    assert_true(json_is_array(le) && json_is_array(counts));
    assert_int_equal(json_array_size(le), LAT_NR_BUCKETS - 1);
    assert_int_equal(json_array_size(counts), LAT_NR_BUCKETS);
    for (size_t b = 0; b < LAT_NR_BUCKETS - 1; b++)
        assert_true(json_number_value(json_array_get(le, b)) == (double)LAT_BOUNDS_NS[b] / 1e9);
    assert_true(json_number_value(json_array_get(counts, 0)) == 50);
    assert_true(json_number_value(json_array_get(counts, 1)) == 0);
    assert_true(json_number_value(json_array_get(counts, 3)) == 2);
    assert_true(json_number_value(json_array_get(counts, LAT_NR_BUCKETS - 1)) == 1);
    assert_true(jnum(lat, "sum_seconds") == 7.003);
    json_decref(root);
    free(text);
}

/* One object per shard, in shard order, with that shard's own figures. */
static void json_per_shard(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_json, &len);
    json_t *root = jparse(text);
    json_t *per = json_object_get(root, "per_shard");
    assert_true(json_is_array(per));
    assert_int_equal(json_array_size(per), 2);
    json_t *a = json_array_get(per, 0), *b = json_array_get(per, 1);
    assert_true(jnum(a, "shard") == 0 && jnum(b, "shard") == 1);
    assert_true(jnum(a, "connections") == 3 && jnum(b, "connections") == 7);
    assert_true(jnum(a, "accepted") == 10 && jnum(b, "accepted") == 20);
    assert_true(jnum(a, "upgrades") == 9 && jnum(b, "upgrades") == 17);
    assert_true(jnum(a, "closes") == 6 && jnum(b, "closes") == 10);
    assert_true(jnum(a, "messages_received") == 100 && jnum(b, "messages_received") == 200);
    assert_true(jnum(a, "messages_delivered") == 1000 && jnum(b, "messages_delivered") == 500);
    assert_true(jnum(a, "sends") == 400 && jnum(b, "sends") == 200);
    assert_true(jnum(a, "send_queue_bytes") == 123 && jnum(b, "send_queue_bytes") == 877);
    assert_true(jnum(a, "slow_consumer_close") == 2 && jnum(b, "slow_consumer_close") == 1);
    assert_true(jnum(a, "slow_consumer_drop") == 5 && jnum(b, "slow_consumer_drop") == 6);
    assert_true(jnum(a, "loop_turns") == 77 && jnum(b, "loop_turns") == 23);
    assert_true(jnum(a, "completions") == 88 && jnum(b, "completions") == 12);
    assert_true(jnum(a, "tls_handshakes_active") == 5 && jnum(b, "tls_handshakes_active") == 1);
    assert_true(jnum(a, "cpu_seconds") == 1.5 && jnum(b, "cpu_seconds") == 0.25);
    json_decref(root);
    free(text);
}

/* delivered / sends, rounded to 2 decimals; 0 before any send rather than a division by 0. */
static void json_frames_per_send(void **state)
{
    (void)state;
    static const struct {
        uint64_t delivered, sends;
        const char *expect;
    } rows[] = {
        {0, 0, "\"frames_per_send\":0.00,"}, {5, 0, "\"frames_per_send\":0.00,"},
        {7, 7, "\"frames_per_send\":1.00,"}, {10, 3, "\"frames_per_send\":3.33,"},
        {2, 3, "\"frames_per_send\":0.67,"}, {1000000, 1, "\"frames_per_send\":1000000.00,"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        make_engine(2);
        SET(0, msgs_out, rows[i].delivered / 2);
        SET(1, msgs_out, rows[i].delivered - rows[i].delivered / 2);
        SET(1, sends, rows[i].sends);
        size_t len;
        char *text = render(metrics_json, &len);
        if (!strstr(text, rows[i].expect))
            fail_msg("row %zu: %s not in %s", i, rows[i].expect, text);
        json_decref(jparse(text));
        free(text);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Truncation
 * -------------------------------------------------------------------------------------------*/

/* The part of <text> that cannot change between two calls: all before the process figures. */
static size_t stable_len(const char *text, const char *first_process_key)
{
    const char *p = strstr(text, first_process_key);
    assert_non_null(p);
    return (size_t)(p - text);
}

static void check_truncation(render_fn fn, const char *first_process_key)
{
    size_t full_len;
    char *full = render(fn, &full_len);
    size_t stable = stable_len(full, first_process_key);

    /* cap 0: nothing written, the full length still comes back. */
    char canary[4] = {'x', 'x', 'x', 'x'};
    size_t n = fn(&g_eng, canary, 0);
    assert_true(n >= stable);
    assert_memory_equal(canary, "xxxx", 4);

    /* Small caps: a NUL-terminated prefix of the full text. */
    static const size_t caps[] = {1, 2, 16, 100};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        char *buf = malloc(caps[i]);
        assert_non_null(buf);
        n = fn(&g_eng, buf, caps[i]);
        assert_true(n >= caps[i]);
        assert_int_equal(strlen(buf), caps[i] - 1);
        assert_memory_equal(buf, full, caps[i] - 1);
        free(buf);
    }

    /* The exact length is one short (the NUL); length + 1 holds the same text. */
    for (int tries = 0;; tries++) {
        assert_true(tries < 5);
        n = size_of(fn);
        char *buf = malloc(n + 1);
        assert_non_null(buf);
        size_t cut = fn(&g_eng, buf, n);
        size_t m = fn(&g_eng, buf, n + 1);
        if (cut != n || m != n) {
            free(buf); /* the process figures changed length in between: again */
            continue;
        }
        assert_int_equal(strlen(buf), n);
        assert_memory_equal(buf, full, stable);
        assert_int_equal(stable_len(buf, first_process_key), stable);
        free(buf);
        break;
    }
    free(full);
}

static void prometheus_truncation_contract(void **state)
{
    (void)state;
    check_truncation(metrics_prometheus, "# TYPE process_resident_memory_bytes");
}

static void json_truncation_contract(void **state)
{
    (void)state;
    check_truncation(metrics_json, "\"rss_bytes\":");
}

/*
 * The process figures can grow a digit between the sizing call and the filling call, so a
 * retry at the first length + 1 can itself be cut: the second return value must be checked
 * again (and the retry repeated). Forced here by growing the resident set past the next power
 * of ten between the two calls.
 */
static void retry_can_still_be_cut(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_prometheus, &len);
    uint64_t rss = prom_u64(text, "process_resident_memory_bytes");
    free(text);
    uint64_t next_pow10 = 1;
    while (next_pow10 <= rss)
        next_pow10 *= 10;
    size_t grow = (size_t)(next_pow10 - rss) + (8u << 20);
    if (grow > (512u << 20))
        skip(); /* too far from the next power of ten to force cheaply */

    size_t n = size_of(metrics_prometheus);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    uint8_t *mem = mmap(NULL, grow, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    for (size_t off = 0; off < grow; off += 4096)
        mem[off] = 1;
    metrics_sample_process();
    size_t m = metrics_prometheus(&g_eng, buf, n + 1);
    assert_true(m > n);               /* longer now: one more RSS digit */
    assert_int_equal(strlen(buf), n); /* so what came back was cut ... */
    char *again = malloc(m + 1);      /* ... and one more try fits */
    assert_non_null(again);
    assert_int_equal(metrics_prometheus(&g_eng, again, m + 1), m);
    assert_int_equal(strlen(again), m);
    munmap(mem, grow);
    free(again);
    free(buf);
}

/*
 * Rendering reads no file: the process figures come from the last sample. Checked by leaving
 * the process no descriptor to open (RLIMIT_NOFILE at the lowest free one) while rendering;
 * before, /proc/self/statm was opened on every request, on the shard, and the resident size
 * came back 0 here. A later sample sees the process grow; rendering alone does not.
 */
static void process_figures_come_from_the_sample(void **state)
{
    (void)state;
    make_engine(1);
    size_t len;
    char *text = render(metrics_prometheus, &len);
    uint64_t rss = prom_u64(text, "process_resident_memory_bytes");
    double cpu;
    assert_true(prom_sample(text, "process_cpu_seconds_total", &cpu));
    free(text);
    assert_true(rss > 0);

    char *buf = malloc(len + 4096);
    assert_non_null(buf);
    int fd = dup(0);
    assert_true(fd >= 0);
    close(fd);
    struct rlimit old, none;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    none = old;
    none.rlim_cur = (rlim_t)fd; /* descriptors 0..fd-1 stay; no new one can be made */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
    size_t n = metrics_prometheus(&g_eng, buf, len + 4096);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_true(n < len + 4096);
    assert_int_equal(prom_u64(buf, "process_resident_memory_bytes"), rss);

    /* Grow by 64 MiB: rendering still shows the sampled value, a new sample the new one. */
    size_t grow = 64u << 20;
    uint8_t *mem = mmap(NULL, grow, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    for (size_t off = 0; off < grow; off += 4096)
        mem[off] = 1;
    metrics_prometheus(&g_eng, buf, len + 4096);
    assert_int_equal(prom_u64(buf, "process_resident_memory_bytes"), rss);
    metrics_sample_process();
    metrics_prometheus(&g_eng, buf, len + 4096);
    assert_true(prom_u64(buf, "process_resident_memory_bytes") >= rss + grow / 2);
    double cpu2;
    assert_true(prom_sample(buf, "process_cpu_seconds_total", &cpu2));
    assert_true(cpu2 >= cpu);
    munmap(mem, grow);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(process_figures_come_from_the_sample),
        cmocka_unit_test(prom_checker_sanity),
        cmocka_unit_test_setup_teardown(prometheus_has_every_contract_metric, setup_two_shards,
                                        NULL),
        cmocka_unit_test_setup_teardown(prometheus_has_publish_latency_histogram, setup_two_shards,
                                        NULL),
        cmocka_unit_test_setup_teardown(prometheus_is_well_formed, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(prometheus_sums_over_shards, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(prometheus_one_line_per_shard, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(json_parses_and_sums, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(json_latency_buckets, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(json_per_shard, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(json_frames_per_send, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(prometheus_truncation_contract, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(json_truncation_contract, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(retry_can_still_be_cut, setup_two_shards, NULL),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
