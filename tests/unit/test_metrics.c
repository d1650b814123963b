/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/metrics.c, through the public header, on a fake engine whose shards
 * have only their counters set: every contract metric is present, sums over shards are right,
 * the Prometheus text is well formed, the JSON parses (a small strict parser below: the test
 * links nothing beyond the engine), frames_per_send = delivered / sends, and the truncation
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
    SET(0, msgs_in, 100);
    SET(0, msgs_out, 1000);
    SET(0, bytes_in, 5000);
    SET(0, bytes_out, 70000);
    SET(0, sends, 400);
    SET(0, slow_close, 2);
    SET(0, slow_drop, 5);
    SET(0, xshard_msgs, 30);
    SET(0, rooms, 4);
    SET(0, queued_bytes, 123);
    SET(0, turns, 77);
    SET(0, tls_handshaking, 5);
    SET(0, tls_waiting, 2);
    SET(0, cqes, 88);
    SET(1, conns, 7);
    SET(1, accepted, 20);
    SET(1, handshakes_failed, 2);
    SET(1, msgs_in, 200);
    SET(1, msgs_out, 500);
    SET(1, bytes_in, 6000);
    SET(1, bytes_out, 5000000000ull);
    SET(1, sends, 200);
    SET(1, slow_close, 1);
    SET(1, slow_drop, 6);
    SET(1, xshard_msgs, 40);
    SET(1, rooms, 5);
    SET(1, queued_bytes, 877);
    SET(1, turns, 23);
    SET(1, tls_handshaking, 1);
    SET(1, cqes, 12);
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

/* ---------------------------------------------------------------------------------------------
 * JSON: a strict parser for one flat object of numbers, which is all /stats is
 * -------------------------------------------------------------------------------------------*/

struct jfield {
    char key[40];
    double num;
};

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* RFC 8259 §7 string, without escapes (none are needed for these keys). */
static const char *json_key(const char *p, char *out, size_t cap)
{
    if (*p++ != '"')
        return NULL;
    size_t n = 0;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20 || *p == '\\' || n + 1 >= cap)
            return NULL;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return p + 1;
}

/* RFC 8259 §6 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static const char *json_number(const char *p, double *out)
{
    const char *start = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    char *end;
    *out = strtod(start, &end);
    return end == p ? p : NULL;
}

/* Parses `{ "key": number, ... }` and trailing whitespace; returns the count or -1. */
static int json_parse_flat(const char *text, struct jfield *f, size_t max)
{
    const char *p = skip_ws(text);
    size_t n = 0;
    if (*p++ != '{')
        return -1;
    p = skip_ws(p);
    if (*p == '}')
        return *skip_ws(p + 1) ? -1 : 0;
    for (;;) {
        if (n == max)
            return -1;
        p = json_key(skip_ws(p), f[n].key, sizeof(f[n].key));
        if (!p)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (strcmp(f[i].key, f[n].key) == 0)
                return -1; /* duplicate key */
        p = skip_ws(p);
        if (*p++ != ':')
            return -1;
        p = json_number(skip_ws(p), &f[n].num);
        if (!p)
            return -1;
        n++;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}')
            return -1;
        return *skip_ws(p) ? -1 : (int)n;
    }
}

static double json_get(const struct jfield *f, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0)
            return f[i].num;
    fail_msg("JSON key missing: %s", key);
    return 0;
}

/* The parser itself: what it must take and refuse, so that a pass above means something. */
static void json_parser_sanity(void **state)
{
    (void)state;
    struct jfield f[4];
    assert_int_equal(json_parse_flat("{}", f, 4), 0);
    assert_int_equal(json_parse_flat(" {\"a\":1,\"b\":-0.5e3}\n", f, 4), 2);
    assert_true(f[1].num == -500.0);
    static const char *const bad[] = {
        "",           "{",          "{\"a\":}",    "{\"a\":01}",        "{\"a\":1,}", "{\"a\":1}x",
        "{\"a\":1.}", "{\"a\":+1}", "{\"a\":nan}", "{\"a\":1,\"a\":2}", "{a:1}",      "{\"a\" 1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(json_parse_flat(bad[i], f, 4), -1);
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
    /* 2 connection lines, 2 slow-consumer lines, 2 TLS handshake lines, one sample for each
     * other counter and gauge, and the latency histogram's 16 buckets, sum and count. */
    assert_int_equal(prom_check_format(text), 37);
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
    assert_int_equal(prom_u64(text, "ringcast_handshakes_failed_total{reason=\"any\"}"), 3);
    assert_int_equal(prom_u64(text, "ringcast_messages_received_total"), 300);
    assert_int_equal(prom_u64(text, "ringcast_messages_delivered_total"), 1500);
    assert_int_equal(prom_u64(text, "ringcast_bytes_received_total"), 11000);
    assert_int_equal(prom_u64(text, "ringcast_bytes_sent_total"), 5000070000ull);
    assert_int_equal(prom_u64(text, "ringcast_sends_total"), 600);
    assert_int_equal(prom_u64(text, "ringcast_rooms"), 9);
    assert_int_equal(prom_u64(text, "ringcast_slow_consumer_total{action=\"close\"}"), 3);
    assert_int_equal(prom_u64(text, "ringcast_slow_consumer_total{action=\"drop\"}"), 11);
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
    assert_int_equal(prom_check_format(text), SHARDS_MAX + 35);
    free(text);
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 * -------------------------------------------------------------------------------------------*/

static void json_parses_and_sums(void **state)
{
    (void)state;
    size_t len;
    char *text = render(metrics_json, &len);
    struct jfield f[32];
    int n = json_parse_flat(text, f, 32);
    if (n < 0)
        fail_msg("not JSON: %s", text);
    assert_int_equal(n, 22);
    assert_true(json_get(f, n, "shards") == 2);
    assert_true(json_get(f, n, "connections") == 10);
    assert_true(json_get(f, n, "max_connections") == 100000);
    assert_true(json_get(f, n, "accepted") == 30);
    assert_true(json_get(f, n, "handshakes_failed") == 3);
    assert_true(json_get(f, n, "messages_received") == 300);
    assert_true(json_get(f, n, "messages_delivered") == 1500);
    assert_true(json_get(f, n, "bytes_received") == 11000);
    assert_true(json_get(f, n, "bytes_sent") == 5000070000.0);
    assert_true(json_get(f, n, "sends") == 600);
    assert_true(json_get(f, n, "frames_per_send") == 2.5); /* 1500 / 600 */
    assert_true(json_get(f, n, "rooms") == 9);
    assert_true(json_get(f, n, "slow_consumer_close") == 3);
    assert_true(json_get(f, n, "slow_consumer_drop") == 11);
    assert_true(json_get(f, n, "send_queue_bytes") == 1000);
    assert_true(json_get(f, n, "xshard_messages") == 70);
    assert_true(json_get(f, n, "loop_turns") == 100);
    assert_true(json_get(f, n, "completions") == 100);
    assert_true(json_get(f, n, "tls_handshakes_active") == 6);
    assert_true(json_get(f, n, "tls_handshakes_waiting") == 2);
    assert_true(json_get(f, n, "rss_bytes") > 0);
    assert_true(json_get(f, n, "cpu_seconds") >= 0);
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
        struct jfield f[32];
        assert_int_equal(json_parse_flat(text, f, 32), 22);
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
        cmocka_unit_test(json_parser_sanity),
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
        cmocka_unit_test_setup_teardown(json_frames_per_send, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(prometheus_truncation_contract, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(json_truncation_contract, setup_two_shards, NULL),
        cmocka_unit_test_setup_teardown(retry_can_still_be_cut, setup_two_shards, NULL),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
