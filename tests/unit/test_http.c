/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/http.c without io_uring: the route table (http_route_find), keep-alive
 * and pipelining, request bodies, HEAD, refusals and the handler's timer.
 *
 * http.c is compiled into this file by including it (h2o style), which reaches its static
 * functions and struct http_state. Its calls into the transport are replaced by the test
 * doubles below: conn_enqueue and conn_close_after record each answer in order (the second
 * with "closed after"), conn_close and conn_kill record how the connection ended, conn_timer_arm
 * records the deadline; the set-aside bytes are the real ones (conn_rx_append is rxbuf.c's,
 * inline in conn.h). The route table (http_routes, http_nr_routes) and the handler registry
 * (conn_handlers) are this file's: routes that record each call (method, path, body) and
 * answer with what they saw.
 *
 * Linking: http.o, conn.o and routes.o are also in libringcast_engine.a. A static library
 * member is only pulled in to resolve a symbol still undefined, and this file defines every
 * symbol http.o exports, the conn_* functions it calls and the three tables routes.o defines,
 * so none of the three is linked: the archive gives ws_handshake.o (the parser and
 * http_response_write), rxbuf.o, msg.o, ws_frame.o and log.o only. Were one of them pulled after
 * all, the link would fail with a multiple definition, not silently test the wrong code.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../../engine/http.c"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Fake engine, shard and connection
 * -------------------------------------------------------------------------------------------*/

#define MAX_MESSAGE       1000
#define HANDSHAKE_TIMEOUT 5
#define NOW               100
/* The deadline http.c arms after each answer. */
#define NEXT_DEADLINE (NOW + HANDSHAKE_TIMEOUT + 1)

static struct config g_cfg;
static struct engine g_eng;
static struct shard g_s;
static struct conn g_c;

static uint64_t failed_handshakes(void)
{
    return atomic_load_explicit(&g_s.stats.handshakes_failed, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------------
 * Test doubles: the transport
 * -------------------------------------------------------------------------------------------*/

/* One answer as the transport got it. */
struct answer {
    char *raw; /* NUL-terminated copy of the bytes */
    size_t len;
    bool close_after; /* given to conn_close_after, not conn_enqueue */
    int status;
    char *head; /* NUL-terminated copy of the head, with its blank line */
    size_t head_len;
    long clen; /* Content-Length, -1 when absent */
    const char *body;
    size_t body_len; /* bytes after the head */
};

#define MAX_ANSWERS 1024

static struct answer g_ans[MAX_ANSWERS];
static size_t g_nr_ans;
static unsigned g_nr_close, g_nr_kill, g_nr_timer_arms;
static uint32_t g_timer_when;
static uint16_t g_close_code;

static void record_answer(const struct msg *m, bool close_after)
{
    assert_true(g_nr_ans < MAX_ANSWERS);
    struct answer *a = &g_ans[g_nr_ans++];
    memset(a, 0, sizeof(*a));
    a->raw = malloc(m->len + 1);
    assert_non_null(a->raw);
    memcpy(a->raw, m->data, m->len);
    a->raw[m->len] = '\0';
    a->len = m->len;
    a->close_after = close_after;
    assert_true(a->len > 12);
    assert_memory_equal(a->raw, "HTTP/1.1 ", 9);
    a->status = atoi(a->raw + 9);
    const char *end = strstr(a->raw, "\r\n\r\n");
    assert_non_null(end);
    a->head_len = (size_t)(end - a->raw) + 4;
    a->head = strndup(a->raw, a->head_len);
    assert_non_null(a->head);
    const char *cl = strstr(a->head, "\r\nContent-Length: ");
    a->clen = cl ? atol(cl + 18) : -1;
    a->body = a->raw + a->head_len;
    a->body_len = a->len - a->head_len;
}

void conn_enqueue(struct shard *s, struct conn *c, struct msg *m)
{
    assert_ptr_equal(s, &g_s);
    assert_ptr_equal(c, &g_c);
    if (c->state != CONN_OPEN) {
        msg_unref(m);
        return;
    }
    record_answer(m, false);
    msg_unref(m);
}

void conn_close_after(struct shard *s, struct conn *c, struct msg *last)
{
    assert_ptr_equal(s, &g_s);
    if (c->state != CONN_OPEN) {
        msg_unref(last);
        return;
    }
    record_answer(last, true);
    msg_unref(last);
    c->state = CONN_CLOSING;
}

void conn_close(struct shard *s, struct conn *c, uint16_t code, const char *reason)
{
    (void)reason;
    assert_ptr_equal(s, &g_s);
    if (c->state != CONN_OPEN)
        return;
    g_nr_close++;
    g_close_code = code;
    c->state = CONN_CLOSING;
}

void conn_kill(struct shard *s, struct conn *c)
{
    assert_ptr_equal(s, &g_s);
    if (c->state == CONN_FREE || c->state >= CONN_DEAD)
        return;
    g_nr_kill++;
    /* As free_buffers() in conn.c. */
    free(c->rx);
    c->rx = NULL;
    c->state = CONN_DEAD;
}

void conn_timer_arm(struct shard *s, struct conn *c, uint32_t when)
{
    assert_ptr_equal(s, &g_s);
    assert_ptr_equal(c, &g_c);
    g_nr_timer_arms++;
    g_timer_when = when;
}

/* ---------------------------------------------------------------------------------------------
 * Test routes and the handler registry
 * -------------------------------------------------------------------------------------------*/

struct call {
    char method[16];
    char path[128];
    uint8_t *body;
    size_t body_len;
};

#define MAX_CALLS 1024

static struct call g_calls[MAX_CALLS];
static size_t g_nr_calls;

static void record_call(const struct http_request *req, const uint8_t *body, size_t body_len)
{
    assert_true(g_nr_calls < MAX_CALLS);
    struct call *k = &g_calls[g_nr_calls++];
    memset(k, 0, sizeof(*k));
    assert_true(req->method.len < sizeof(k->method));
    assert_true(req->path.len < sizeof(k->path));
    memcpy(k->method, req->method.p, req->method.len);
    memcpy(k->path, req->path.p, req->path.len);
    k->body = malloc(body_len + 1);
    assert_non_null(k->body);
    if (body_len)
        memcpy(k->body, body, body_len);
    k->body_len = body_len;
}

/* Records the call and answers 200 "<method> <path> <body bytes>\n". */
static void route_rec(struct shard *s, struct conn *c, const struct http_request *req,
                      const uint8_t *body, size_t body_len)
{
    char text[256];
    record_call(req, body, body_len);
    int n = snprintf(text, sizeof(text), "%.*s %.*s %zu\n", (int)req->method.len, req->method.p,
                     (int)req->path.len, req->path.p, body_len);
    http_respond(s, c, req, 200, NULL, NULL, text, (size_t)n);
}

/* A body that does not depend on the method, for HEAD. */
static const char hello_body[] = "hello, world\n";

static void route_hello(struct shard *s, struct conn *c, const struct http_request *req,
                        const uint8_t *body, size_t body_len)
{
    record_call(req, body, body_len);
    http_respond(s, c, req, 200, "X-Test: yes\r\n", "text/x-test", hello_body,
                 sizeof(hello_body) - 1);
}

static void route_refuse(struct shard *s, struct conn *c, const struct http_request *req,
                         const uint8_t *body, size_t body_len)
{
    record_call(req, body, body_len);
    http_refuse(s, c, 500, NULL, "boom");
}

/* The upgraded handler's input, and the route that switches to it (as ws_upgrade would). */
static uint8_t g_up_input[256];
static size_t g_up_len;
static unsigned g_up_calls;

static void up_on_input(struct shard *s, struct conn *c, uint8_t *p, size_t len)
{
    (void)s;
    (void)c;
    g_up_calls++;
    assert_true(g_up_len + len <= sizeof(g_up_input));
    memcpy(g_up_input + g_up_len, p, len);
    g_up_len += len;
}

static void route_upgrade(struct shard *s, struct conn *c, const struct http_request *req,
                          const uint8_t *body, size_t body_len)
{
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    record_call(req, body, body_len);
    struct msg *m = msg_create(sizeof(sw) - 1, 0);
    assert_non_null(m);
    memcpy(m->data, sw, sizeof(sw) - 1);
    m->len = sizeof(sw) - 1;
    conn_set_handler(c, HANDLER_ECHO);
    conn_enqueue(s, c, m);
}

static const struct conn_handler test_http_handler = {
    .name = "http",
    .on_input = http_on_input,
    .on_timer = http_on_timer,
};

static const struct conn_handler test_upgraded_handler = {
    .name = "upgraded",
    .on_input = up_on_input,
};

const struct conn_handler *const conn_handlers[CONN_HANDLERS_MAX] = {
    [HANDLER_HTTP] = &test_http_handler,
    [HANDLER_ECHO] = &test_upgraded_handler,
};

const struct http_route http_routes[] = {
    {"GET", "/a", HTTP_EXACT, 0, route_rec},
    {"POST", "/a", HTTP_EXACT, 0, route_rec},
    {"GET", "/static/", HTTP_PREFIX, 0, route_rec},
    {"POST", "/upload", HTTP_EXACT, HTTP_R_BODY, route_rec},
    {"PUT", "/put-only", HTTP_EXACT, 0, route_rec},
    {"GET", "/hello", HTTP_EXACT, 0, route_hello},
    {"GET", "/refuse", HTTP_EXACT, 0, route_refuse},
    {"GET", "/upgrade", HTTP_EXACT, 0, route_upgrade},
};
const size_t http_nr_routes = sizeof(http_routes) / sizeof(http_routes[0]);

/* ---------------------------------------------------------------------------------------------
 * Fixtures and helpers
 * -------------------------------------------------------------------------------------------*/

static void forget_records(void)
{
    for (size_t i = 0; i < g_nr_ans; i++) {
        free(g_ans[i].raw);
        free(g_ans[i].head);
    }
    memset(g_ans, 0, sizeof(g_ans[0]) * g_nr_ans);
    g_nr_ans = 0;
    for (size_t i = 0; i < g_nr_calls; i++)
        free(g_calls[i].body);
    memset(g_calls, 0, sizeof(g_calls[0]) * g_nr_calls);
    g_nr_calls = 0;
    g_nr_close = g_nr_kill = g_nr_timer_arms = 0;
    g_timer_when = 0;
    g_close_code = 0xffff;
    g_up_len = 0;
    g_up_calls = 0;
}

/* A fresh OPEN connection on the HTTP handler, as conn_accepted leaves it. */
static void reset_conn(void)
{
    free(g_c.rx);
    memset(&g_c, 0, sizeof(g_c));
    g_c.state = CONN_OPEN;
    g_c.handler = HANDLER_HTTP;
    g_c.idx = 7;
    g_c.gen = 1;
    atomic_store_explicit(&g_s.stats.handshakes_failed, 0, memory_order_relaxed);
    forget_records();
}

static int setup(void **state)
{
    (void)state;
    memset(&g_cfg, 0, sizeof(g_cfg));
    g_cfg.max_message = MAX_MESSAGE;
    g_cfg.handshake_timeout = HANDSHAKE_TIMEOUT;
    memset(&g_eng, 0, sizeof(g_eng));
    g_eng.cfg = &g_cfg;
    memset(&g_s, 0, sizeof(g_s));
    g_s.eng = &g_eng;
    g_s.now = NOW;
    g_s.draining = false;
    reset_conn();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    forget_records();
    free(g_c.rx);
    g_c.rx = NULL;
    return 0;
}

/* Hands <len> bytes to the handler as one receive, from a buffer of exactly that size (so that
 * ASan sees a read past the end). The transport only does this while the connection is open. */
static void feed(const void *p, size_t len)
{
    assert_int_equal(g_c.state, CONN_OPEN);
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    memcpy(b, p, len);
    conn_handler(&g_c)->on_input(&g_s, &g_c, b, len);
    free(b);
}

static void feed_str(const char *s)
{
    feed(s, strlen(s));
}

/* Hands <p>[0..<len>) over in pieces of <step> bytes, stopping when the connection closes. */
static void feed_steps(const char *p, size_t len, size_t step)
{
    for (size_t off = 0; off < len && g_c.state == CONN_OPEN; off += step)
        feed(p + off, len - off < step ? len - off : step);
}

static bool is_open(void)
{
    return g_c.state == CONN_OPEN;
}

static bool has_header(const struct answer *a, const char *line)
{
    return strstr(a->head, line) != NULL;
}

/* Checks answer <i>: <status>, the body framed by its Content-Length, and whether it closes
 * the connection (with `Connection: close`) or keeps it. */
static const struct answer *check_answer(size_t i, int status, bool closes)
{
    assert_true(i < g_nr_ans);
    const struct answer *a = &g_ans[i];
    assert_int_equal(a->status, status);
    assert_true(a->clen >= 0);
    assert_int_equal((size_t)a->clen, a->body_len);
    assert_int_equal(a->close_after, closes);
    assert_int_equal(has_header(a, "\r\nConnection: close\r\n"), closes);
    return a;
}

static void check_body(size_t i, const char *text)
{
    assert_true(i < g_nr_ans);
    assert_int_equal(g_ans[i].body_len, strlen(text));
    assert_memory_equal(g_ans[i].body, text, strlen(text));
}

static void check_call(size_t i, const char *method, const char *path, const void *body,
                       size_t body_len)
{
    assert_true(i < g_nr_calls);
    assert_string_equal(g_calls[i].method, method);
    assert_string_equal(g_calls[i].path, path);
    assert_int_equal(g_calls[i].body_len, body_len);
    if (body_len)
        assert_memory_equal(g_calls[i].body, body, body_len);
}

/* A simple request for <path> with <method>. */
static size_t request(char *out, size_t cap, const char *method, const char *path,
                      const char *extra_headers)
{
    int n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", method, path,
                     extra_headers ? extra_headers : "");
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* A POST to <path> with Content-Length and <body>. */
static size_t post(char *out, size_t cap, const char *path, const void *body, size_t len)
{
    int n =
        snprintf(out, cap, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", path, len);
    assert_true(n > 0 && (size_t)n + len < cap);
    memcpy(out + n, body, len);
    return (size_t)n + len;
}

/* ---------------------------------------------------------------------------------------------
 * http_route_find
 * -------------------------------------------------------------------------------------------*/

static void route_fn_unused(struct shard *s, struct conn *c, const struct http_request *req,
                            const uint8_t *body, size_t body_len)
{
    (void)s;
    (void)c;
    (void)req;
    (void)body;
    (void)body_len;
    fail_msg("not called by http_route_find");
}

static const struct http_route find_table[] = {
    /* 0 */ {"GET", "/healthz", HTTP_EXACT, 0, route_fn_unused},
    /* 1 */ {"GET", "/room/", HTTP_PREFIX, 0, route_fn_unused},
    /* 2 */ {"POST", "/publish", HTTP_EXACT, HTTP_R_BODY, route_fn_unused},
    /* 3 */ {"GET", "/items", HTTP_EXACT, 0, route_fn_unused},
    /* 4 */ {"DELETE", "/items", HTTP_EXACT, 0, route_fn_unused},
    /* 5 */ {"PUT", "/put", HTTP_EXACT, 0, route_fn_unused},
    /* 6 */ {"GET", "/", HTTP_EXACT, 0, route_fn_unused},
};

static struct http_str hs(const char *s)
{
    return (struct http_str){.p = s, .len = strlen(s)};
}

static void route_find_table(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        int row;           /* expected row, or -1 */
        int status;        /* when -1: 404 or 405 */
        const char *allow; /* for 405 */
    } cases[] = {
        /* exact */
        {"GET", "/healthz", 0, 0, NULL},
        {"GET", "/healthz/", -1, 404, ""},
        {"GET", "/healthzz", -1, 404, ""},
        {"GET", "/health", -1, 404, ""},
        {"GET", "/", 6, 0, NULL},
        {"GET", "/nope", -1, 404, ""},
        /* prefix */
        {"GET", "/room/", 1, 0, NULL},
        {"GET", "/room/lobby", 1, 0, NULL},
        {"GET", "/room/a/b", 1, 0, NULL},
        {"GET", "/room", -1, 404, ""},
        {"GET", "/roo", -1, 404, ""},
        /* HEAD is served by the GET row, exact or prefix */
        {"HEAD", "/healthz", 0, 0, NULL},
        {"HEAD", "/room/x", 1, 0, NULL},
        {"HEAD", "/items", 3, 0, NULL},
        {"HEAD", "/nope", -1, 404, ""},
        /* 405 with the allowed methods; HEAD listed after GET only */
        {"POST", "/healthz", -1, 405, "Allow: GET, HEAD\r\n"},
        {"POST", "/room/x", -1, 405, "Allow: GET, HEAD\r\n"},
        {"GET", "/publish", -1, 405, "Allow: POST\r\n"},
        {"HEAD", "/publish", -1, 405, "Allow: POST\r\n"},
        {"POST", "/publish", 2, 0, NULL},
        {"PATCH", "/items", -1, 405, "Allow: GET, HEAD, DELETE\r\n"},
        {"DELETE", "/items", 4, 0, NULL},
        {"GET", "/put", -1, 405, "Allow: PUT\r\n"},
        {"HEAD", "/put", -1, 405, "Allow: PUT\r\n"},
        {"PUT", "/put", 5, 0, NULL},
        /* methods are case-sensitive (RFC 9110 §9.1) */
        {"get", "/healthz", -1, 405, "Allow: GET, HEAD\r\n"},
        {"Get", "/healthz", -1, 405, "Allow: GET, HEAD\r\n"},
        {"head", "/healthz", -1, 405, "Allow: GET, HEAD\r\n"},
        {"delete", "/items", -1, 405, "Allow: GET, HEAD, DELETE\r\n"},
        {"GETX", "/healthz", -1, 405, "Allow: GET, HEAD\r\n"},
        {"GE", "/healthz", -1, 405, "Allow: GET, HEAD\r\n"},
        /* paths are case-sensitive too */
        {"GET", "/HEALTHZ", -1, 404, ""},
        {"GET", "/Room/x", -1, 404, ""},
    };
    size_t n = sizeof(find_table) / sizeof(find_table[0]);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char allow[64];
        memset(allow, 'Z', sizeof(allow));
        int status = -7;
        const struct http_route *r = http_route_find(
            find_table, n, hs(cases[i].method), hs(cases[i].path), &status, allow, sizeof(allow));
        if (cases[i].row >= 0) {
            if (r != &find_table[cases[i].row])
                fail_msg("%s %s: row %ld, want %d", cases[i].method, cases[i].path,
                         r ? (long)(r - find_table) : -1L, cases[i].row);
            continue;
        }
        if (r)
            fail_msg("%s %s: row %ld, want none", cases[i].method, cases[i].path,
                     (long)(r - find_table));
        if (status != cases[i].status)
            fail_msg("%s %s: status %d, want %d", cases[i].method, cases[i].path, status,
                     cases[i].status);
        if (memchr(allow, '\0', sizeof(allow)) == NULL || strcmp(allow, cases[i].allow) != 0)
            fail_msg("%s %s: allow %.*s, want %s", cases[i].method, cases[i].path,
                     (int)sizeof(allow), allow, cases[i].allow);
    }
}

/* An empty table: everything is 404. */
static void route_find_empty_table(void **state)
{
    (void)state;
    char allow[32] = "junk";
    int status = 0;
    assert_null(http_route_find(find_table, 0, hs("GET"), hs("/"), &status, allow, sizeof(allow)));
    assert_int_equal(status, 404);
    assert_string_equal(allow, "");
}

/* A small or absent Allow buffer: the status is still right, nothing is written past the
 * buffer, and it is NUL-terminated. */
static void route_find_small_allow(void **state)
{
    (void)state;
    int status = 0;
    assert_null(http_route_find(find_table, 7, hs("PATCH"), hs("/items"), &status, NULL, 0));
    assert_int_equal(status, 405);
    for (size_t cap = 1; cap <= 40; cap++) {
        char buf[48];
        memset(buf, 'Z', sizeof(buf));
        status = 0;
        assert_null(http_route_find(find_table, 7, hs("PATCH"), hs("/items"), &status, buf, cap));
        assert_int_equal(status, 405);
        for (size_t k = cap; k < sizeof(buf); k++)
            assert_int_equal(buf[k], 'Z');
        assert_non_null(memchr(buf, '\0', cap));
    }
    /* Room enough for the whole line: all of it. */
    char buf[48];
    const char full[] = "Allow: GET, HEAD, DELETE\r\n";
    assert_null(
        http_route_find(find_table, 7, hs("PATCH"), hs("/items"), &status, buf, sizeof(full) + 16));
    assert_string_equal(buf, full);
}

/*
 * What a too-small Allow buffer holds goes into the answer's head as it is (one_request passes
 * it to http_respond as extra header lines), so it must be empty or a whole "Allow: ...\r\n"
 * line: a bare "\r\n" would end the head early and shift the body by two bytes, a bare "\r"
 * is a malformed line. http.h: "the allowed methods are written to <allow> (a header line)".
 */
static void route_find_small_allow_is_a_line(void **state)
{
    (void)state;
    char bad[256] = "";
    size_t nr_bad = 0;
    for (size_t cap = 1; cap <= 40; cap++) {
        char buf[48];
        int status = 0;
        memset(buf, 'Z', sizeof(buf));
        assert_null(http_route_find(find_table, 7, hs("PATCH"), hs("/items"), &status, buf, cap));
        size_t len = strnlen(buf, cap);
        bool ok = len == 0 ||
                  (len > 9 && memcmp(buf, "Allow: ", 7) == 0 &&
                   memcmp(buf + len - 2, "\r\n", 2) == 0 && memchr(buf, '\r', len - 2) == NULL);
        if (!ok) {
            nr_bad++;
            size_t used = strlen(bad);
            snprintf(bad + used, sizeof(bad) - used, " %zu", cap);
        }
    }
    if (nr_bad)
        fail_msg("PATCH /items (rows GET, DELETE): for allow_cap%s the Allow text is neither "
                 "empty nor an \"Allow: ...\\r\\n\" line (\"\\r\\n\" or \"\\r\")",
                 bad);
}

/* The first row that matches wins: a prefix row listed before an exact one shadows it. */
static void route_find_first_row_wins(void **state)
{
    (void)state;
    static const struct http_route t[] = {
        {"GET", "/api/", HTTP_PREFIX, 0, route_fn_unused},
        {"GET", "/api/items", HTTP_EXACT, 0, route_fn_unused},
        {"POST", "/api/items", HTTP_EXACT, 0, route_fn_unused},
    };
    int status = 0;
    char allow[64];
    assert_ptr_equal(
        http_route_find(t, 3, hs("GET"), hs("/api/items"), &status, allow, sizeof(allow)), &t[0]);
    assert_ptr_equal(
        http_route_find(t, 3, hs("POST"), hs("/api/items"), &status, allow, sizeof(allow)), &t[2]);
    assert_null(http_route_find(t, 3, hs("PUT"), hs("/api/x"), &status, allow, sizeof(allow)));
    assert_int_equal(status, 405);
    assert_string_equal(allow, "Allow: GET, HEAD\r\n");
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch through http_on_input: 404 and 405 keep the connection
 * -------------------------------------------------------------------------------------------*/

static void not_found_keeps_connection(void **state)
{
    (void)state;
    feed_str("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 404, false);
    check_body(0, "not found\n");
    assert_false(has_header(&g_ans[0], "Allow:"));
    assert_true(is_open());
    assert_int_equal(g_nr_calls, 0);
    assert_int_equal(failed_handshakes(), 1);
    assert_int_equal(g_timer_when, NEXT_DEADLINE);
    /* The connection goes on. */
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 2);
    check_answer(1, 200, false);
    check_body(1, "GET /a 0\n");
}

static void method_not_allowed_has_allow(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"DELETE", "/a", "\r\nAllow: GET, HEAD, POST\r\n"},
        {"POST", "/hello", "\r\nAllow: GET, HEAD\r\n"},
        {"POST", "/static/x", "\r\nAllow: GET, HEAD\r\n"},
        {"GET", "/put-only", "\r\nAllow: PUT\r\n"},
        {"HEAD", "/put-only", "\r\nAllow: PUT\r\n"},
        {"GET", "/upload", "\r\nAllow: POST\r\n"},
        /* methods are case-sensitive */
        {"get", "/a", "\r\nAllow: GET, HEAD, POST\r\n"},
        {"head", "/hello", "\r\nAllow: GET, HEAD\r\n"},
        {"Post", "/upload", "\r\nAllow: POST\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_conn();
        char req[256];
        size_t n = request(req, sizeof(req), cases[i].method, cases[i].path, NULL);
        feed(req, n);
        assert_int_equal(g_nr_ans, 1);
        const struct answer *a = &g_ans[0];
        assert_int_equal(a->status, 405);
        assert_false(a->close_after);
        if (!has_header(a, cases[i].allow))
            fail_msg("%s %s: no %s in %s", cases[i].method, cases[i].path, cases[i].allow + 2,
                     a->head);
        /* A 405 to HEAD has no body; to the others, one line. */
        assert_int_equal(a->clen, (long)strlen("method not allowed\n"));
        if (strcmp(cases[i].method, "HEAD") == 0)
            assert_int_equal(a->body_len, 0);
        else
            check_body(0, "method not allowed\n");
        assert_true(is_open());
        assert_int_equal(g_nr_calls, 0);
        assert_int_equal(failed_handshakes(), 1);
    }
}

/* A refused request that had a body: the body is skipped, the next request is answered. */
static void not_found_with_body_skips_it(void **state)
{
    (void)state;
    char req[512];
    size_t n = post(req, sizeof(req), "/nope", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 19);
    n += request(req + n, sizeof(req) - n, "GET", "/a", NULL);
    feed(req, n);
    assert_int_equal(g_nr_ans, 2);
    check_answer(0, 404, false);
    check_answer(1, 200, false);
    check_body(1, "GET /a 0\n");
    assert_int_equal(g_nr_calls, 1);
    assert_true(is_open());
}

/* Prefix routes see their whole path; the query is not part of it. */
static void prefix_and_query(void **state)
{
    (void)state;
    feed_str("GET /static/css/site.css?v=3 HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /a?x=/static/ HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /static HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 4);
    check_call(0, "GET", "/static/css/site.css", NULL, 0);
    check_call(1, "GET", "/static/", NULL, 0);
    check_call(2, "GET", "/a", NULL, 0);
    check_answer(3, 404, false);
    assert_int_equal(g_nr_calls, 3);
    assert_true(is_open());
}

/* ---------------------------------------------------------------------------------------------
 * Keep-alive and pipelining
 * -------------------------------------------------------------------------------------------*/

static void pipelined(size_t nr)
{
    char buf[4096];
    size_t n = 0;
    for (size_t i = 0; i < nr; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/static/%zu", i);
        n += request(buf + n, sizeof(buf) - n, "GET", path, NULL);
    }
    feed(buf, n);
    assert_int_equal(g_nr_ans, nr);
    assert_int_equal(g_nr_calls, nr);
    for (size_t i = 0; i < nr; i++) {
        char path[32], body[64];
        snprintf(path, sizeof(path), "/static/%zu", i);
        snprintf(body, sizeof(body), "GET %s 0\n", path);
        check_call(i, "GET", path, NULL, 0);
        check_answer(i, 200, false);
        check_body(i, body);
    }
    assert_true(is_open());
    assert_null(g_c.rx);
    assert_int_equal(g_nr_close + g_nr_kill, 0);
    assert_int_equal(failed_handshakes(), 0);
    /* Each answer gives the next request --handshake-timeout to arrive. */
    assert_int_equal(g_nr_timer_arms, nr);
    assert_int_equal(g_timer_when, NEXT_DEADLINE);
    assert_int_equal(((struct http_state *)conn_priv(&g_c))->nr_requests, nr);
}

static void keep_alive_two_pipelined(void **state)
{
    (void)state;
    pipelined(2);
}

static void keep_alive_ten_pipelined(void **state)
{
    (void)state;
    pipelined(10);
}

/* Requests in separate receives on one connection. */
static void keep_alive_sequential(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 5; i++) {
        g_s.now = NOW + i;
        feed_str("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(g_nr_ans, i + 1);
        check_answer(i, 200, false);
        assert_int_equal(g_timer_when, NOW + i + HANDSHAKE_TIMEOUT + 1);
        assert_true(is_open());
    }
}

static void connection_header_decides(void **state)
{
    (void)state;
    static const struct {
        const char *version;
        const char *connection; /* NULL: none */
        bool closes;
    } cases[] = {
        {"1.1", NULL, false},
        {"1.1", "keep-alive", false},
        {"1.1", "close", true},
        {"1.1", "Close", true},
        {"1.1", "keep-alive, close", true},
        {"1.1", "foo, CLOSE , bar", true},
        {"1.1", "closed", false},
        {"1.0", NULL, true},
        {"1.0", "keep-alive", false},
        {"1.0", "Keep-Alive", false},
        {"1.0", "x, keep-alive", false},
        {"1.0", "close", true},
        {"1.0", "keep-alive, close", true},
        {"1.0", "keep-alives", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reset_conn();
        char buf[512];
        int n = snprintf(
            buf, sizeof(buf),
            "GET /a HTTP/%s\r\nHost: x\r\n%s%s%s\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            cases[i].version, cases[i].connection ? "Connection: " : "",
            cases[i].connection ? cases[i].connection : "", cases[i].connection ? "\r\n" : "");
        feed(buf, (size_t)n);
        if (cases[i].closes) {
            /* Answered, closed after the answer; what followed is not read. */
            if (g_nr_ans != 1 || is_open())
                fail_msg("HTTP/%s Connection: %s: %zu answers, open %d; want 1, closed",
                         cases[i].version, cases[i].connection, g_nr_ans, is_open());
            check_answer(0, 200, true);
            assert_int_equal(g_nr_calls, 1);
        } else {
            if (g_nr_ans != 2 || !is_open())
                fail_msg("HTTP/%s Connection: %s: %zu answers, open %d; want 2, open",
                         cases[i].version, cases[i].connection, g_nr_ans, is_open());
            check_answer(0, 200, false);
            check_answer(1, 200, false);
        }
        assert_int_equal(failed_handshakes(), 0);
        assert_int_equal(g_nr_kill, 0);
    }
}

/* HTTP/1.0 without keep-alive closes after a 404 too. */
static void http10_not_found_closes(void **state)
{
    (void)state;
    feed_str("GET /nope HTTP/1.0\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 404, true);
    assert_false(is_open());
}

/* A draining broker closes after each answer. */
static void draining_closes(void **state)
{
    (void)state;
    g_s.draining = true;
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
             "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 200, true);
    assert_false(is_open());
}

/* A route's refusal closes: the pipelined request after it is not answered. */
static void route_refusal_closes(void **state)
{
    (void)state;
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /refuse HTTP/1.1\r\nHost: x\r\n\r\nGET /a "
             "HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 2);
    check_answer(0, 200, false);
    check_answer(1, 500, true);
    check_body(1, "boom\n");
    assert_int_equal(g_nr_calls, 2);
    assert_false(is_open());
    assert_int_equal(failed_handshakes(), 1);
}

/* A malformed request after good ones: they are answered, then 400 and closed. */
static void malformed_after_good(void **state)
{
    (void)state;
    feed_str(
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n");
    assert_int_equal(g_nr_ans, 3);
    check_answer(0, 200, false);
    check_answer(1, 200, false);
    check_answer(2, 400, true);
    assert_false(is_open());
    assert_int_equal(failed_handshakes(), 1);
}

/* ---------------------------------------------------------------------------------------------
 * Bodies
 * -------------------------------------------------------------------------------------------*/

/* A body that looks like requests and holds a NUL: the route gets it, nothing parses it. */
static const char tricky_body[] =
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\0POST /upload HTTP/1.1\r\nHost: x\r\n\r\nxyz";
#define TRICKY_LEN (sizeof(tricky_body) - 1)

static void check_tricky_post(void)
{
    assert_int_equal(g_nr_calls, 1);
    check_call(0, "POST", "/upload", tricky_body, TRICKY_LEN);
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 200, false);
    assert_true(is_open());
    assert_null(g_c.rx);
    assert_int_equal(failed_handshakes(), 0);
}

static void body_in_one_input(void **state)
{
    (void)state;
    char req[256];
    size_t n = post(req, sizeof(req), "/upload", tricky_body, TRICKY_LEN);
    feed(req, n);
    check_tricky_post();
}

/* The request split in two at every byte, then in three at every pair of bytes. */
static void body_split_everywhere(void **state)
{
    (void)state;
    char req[256];
    size_t n = post(req, sizeof(req), "/upload", tricky_body, TRICKY_LEN);
    for (size_t i = 1; i < n; i++) {
        reset_conn();
        feed(req, i);
        assert_int_equal(g_nr_ans, 0);
        assert_true(is_open());
        feed(req + i, n - i);
        check_tricky_post();
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            reset_conn();
            feed(req, i);
            feed(req + i, j - i);
            assert_int_equal(g_nr_ans, 0);
            feed(req + j, n - j);
            check_tricky_post();
        }
}

static void body_exactly_max_message(void **state)
{
    (void)state;
    static uint8_t body[MAX_MESSAGE];
    static char req[MAX_MESSAGE + 256];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7 + 1);
    size_t n = post(req, sizeof(req), "/upload", body, sizeof(body));
    feed(req, n);
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 200, false);
    check_body(0, "POST /upload 1000\n");
    check_call(0, "POST", "/upload", body, sizeof(body));
    assert_true(is_open());
    /* And in pieces of 100 bytes. */
    reset_conn();
    feed_steps(req, n, 100);
    assert_int_equal(g_nr_ans, 1);
    check_call(0, "POST", "/upload", body, sizeof(body));
    assert_true(is_open());
    assert_null(g_c.rx);
}

/* One byte over: 413 as soon as the head is read, closed, the route not called. */
static void body_over_max_message(void **state)
{
    (void)state;
    char head[128];
    int n =
        snprintf(head, sizeof(head),
                 "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", MAX_MESSAGE + 1);
    feed(head, (size_t)n);
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 413, true);
    assert_false(is_open());
    assert_int_equal(g_nr_calls, 0);
    assert_int_equal(failed_handshakes(), 1);
    /* The same on a route that does not want a body, and with a huge length. */
    static const char *const lengths[] = {"1001", "18446744073709551615", "99999999999"};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        reset_conn();
        n = snprintf(head, sizeof(head), "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n",
                     lengths[i]);
        feed(head, (size_t)n);
        assert_int_equal(g_nr_ans, 1);
        check_answer(0, 413, true);
        assert_int_equal(g_nr_calls, 0);
    }
    /* A Content-Length past uint64_t is malformed. */
    reset_conn();
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 400, true);
}

static void body_route_without_length(void **state)
{
    (void)state;
    feed_str("POST /upload HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 411, true);
    assert_false(is_open());
    assert_int_equal(g_nr_calls, 0);
    assert_int_equal(failed_handshakes(), 1);
    /* Content-Length: 0 is a length. */
    reset_conn();
    feed_str("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 200, false);
    check_call(0, "POST", "/upload", NULL, 0);
    /* A route without HTTP_R_BODY takes a POST without one. */
    reset_conn();
    feed_str("POST /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 200, false);
    check_call(0, "POST", "/a", NULL, 0);
}

static void transfer_encoding_refused(void **state)
{
    (void)state;
    static const char *const reqs[] = {
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
        "5\r\n\r\nhello",
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ntransfer-encoding: "
        "identity\r\n\r\nhello",
        "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        reset_conn();
        feed_str(reqs[i]);
        assert_int_equal(g_nr_ans, 1);
        check_answer(0, 400, true);
        assert_false(is_open());
        assert_int_equal(g_nr_calls, 0);
        assert_int_equal(failed_handshakes(), 1);
    }
    /* Refused as soon as the header line is complete, before the head is. */
    reset_conn();
    feed_str("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n");
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 400, true);
}

static void two_pipelined_posts(void **state)
{
    (void)state;
    char req[512];
    size_t n = post(req, sizeof(req), "/upload", "hello", 5);
    n += post(req + n, sizeof(req) - n, "/upload", "world!", 6);
    n += request(req + n, sizeof(req) - n, "GET", "/a", "Content-Length: 3\r\n");
    memcpy(req + n, "abc", 3);
    n += 3;
    for (size_t step = 1; step <= n; step = step < 8 ? step + 1 : step * 2) {
        reset_conn();
        feed_steps(req, n, step);
        assert_int_equal(g_nr_ans, 3);
        check_call(0, "POST", "/upload", "hello", 5);
        check_call(1, "POST", "/upload", "world!", 6);
        check_call(2, "GET", "/a", "abc", 3);
        check_body(0, "POST /upload 5\n");
        check_body(1, "POST /upload 6\n");
        check_body(2, "GET /a 3\n");
        assert_true(is_open());
        assert_null(g_c.rx);
    }
}

/*
 * A request that arrived in pieces, completed by a receive that also carries the next requests:
 * what was set aside plus that receive may be more than one request's limit (HTTP_HEAD_MAX +
 * --max-message) without any request being too large. Here a legal request with a 7000-byte
 * head and a 1000-byte body arrives in receives of at most 4096 bytes (SHARD_RECV_BUF_SIZE), the
 * last of which carries the start of a second, small request.
 */
static void set_aside_plus_pipelined_over_limit(void **state)
{
    (void)state;
    static char req[16384];
    static uint8_t body[MAX_MESSAGE];
    memset(body, 'b', sizeof(body));
    int h = snprintf(req, sizeof(req),
                     "POST /upload HTTP/1.1\r\nHost: x\r\nX-Pad: %6950s\r\n"
                     "Content-Length: %d\r\n\r\n",
                     "p", MAX_MESSAGE);
    assert_true(h > 7000 && h < HTTP_HEAD_MAX);
    memcpy(req + h, body, sizeof(body));
    size_t n = (size_t)h + sizeof(body);
    size_t first = n;
    while (n < 12000)
        n += request(req + n, sizeof(req) - n, "GET", "/a", NULL);
    size_t nr_small = (n - first) / strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    /* 4096, 2000, then 4096 that finish the first request and start the pipelined ones. */
    feed(req, 4096);
    feed(req + 4096, 2000);
    assert_int_equal(g_nr_ans, 0);
    feed_steps(req + 6096, n - 6096, 4096);
    if (g_nr_ans != 1 + nr_small || !is_open())
        fail_msg("a %zu-byte request then %zu small ones, in receives of 4096 bytes: %zu "
                 "answers (first %d), open %d; want %zu answers, open",
                 first, nr_small, g_nr_ans, g_nr_ans ? g_ans[0].status : 0, is_open(),
                 1 + nr_small);
    check_call(0, "POST", "/upload", body, sizeof(body));
}

/* ---------------------------------------------------------------------------------------------
 * HEAD
 * -------------------------------------------------------------------------------------------*/

static void head_like_get_without_body(void **state)
{
    (void)state;
    feed_str("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
             "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 3);
    check_answer(0, 200, false);
    check_body(0, hello_body);
    /* HEAD: the same head, Content-Length of the GET body, no body bytes. */
    const struct answer *h = &g_ans[1];
    assert_int_equal(h->status, 200);
    assert_false(h->close_after);
    assert_int_equal(h->clen, (long)(sizeof(hello_body) - 1));
    assert_int_equal(h->body_len, 0);
    assert_string_equal(h->head, g_ans[0].head);
    check_call(1, "HEAD", "/hello", NULL, 0);
    /* The GET after it is framed right. */
    check_answer(2, 200, false);
    check_body(2, hello_body);
    assert_true(is_open());
}

/* HEAD of a missing path: a 404 head without its body. */
static void head_not_found(void **state)
{
    (void)state;
    feed_str("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 2);
    assert_int_equal(g_ans[0].status, 404);
    assert_int_equal(g_ans[0].clen, (long)strlen("not found\n"));
    assert_int_equal(g_ans[0].body_len, 0);
    check_answer(1, 200, false);
    assert_true(is_open());
}

/* HEAD with Connection: close: a head, no body, closed. */
static void head_connection_close(void **state)
{
    (void)state;
    feed_str("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    assert_int_equal(g_ans[0].status, 200);
    assert_true(g_ans[0].close_after);
    assert_true(has_header(&g_ans[0], "\r\nConnection: close\r\n"));
    assert_int_equal(g_ans[0].body_len, 0);
    assert_int_equal(g_ans[0].clen, (long)(sizeof(hello_body) - 1));
    assert_false(is_open());
}

/*
 * HEAD to a route that refuses (as GET /echo does with 426 when it is not an upgrade): the
 * answer to HEAD has no content (RFC 9110 §9.3.2, RFC 9112 §6.3), whatever its status.
 */
static void head_refused_by_route_has_no_body(void **state)
{
    (void)state;
    feed_str("HEAD /refuse HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 1);
    assert_int_equal(g_ans[0].status, 500);
    assert_true(g_ans[0].close_after);
    assert_false(is_open());
    assert_int_equal(g_ans[0].clen, (long)strlen("boom\n"));
    if (g_ans[0].body_len != 0)
        fail_msg("HEAD /refuse: a %d answer with %zu body bytes, want none", g_ans[0].status,
                 g_ans[0].body_len);
}

/* ---------------------------------------------------------------------------------------------
 * Requests in pieces, heads too large
 * -------------------------------------------------------------------------------------------*/

static void byte_by_byte(void **state)
{
    (void)state;
    char req[1024];
    size_t n = request(req, sizeof(req), "GET", "/a", "User-Agent: t\r\nAccept: */*\r\n");
    n += request(req + n, sizeof(req) - n, "HEAD", "/hello", NULL);
    n += post(req + n, sizeof(req) - n, "/upload", "hello", 5);
    n += request(req + n, sizeof(req) - n, "GET", "/static/z", NULL);
    size_t answered = 0;
    for (size_t i = 0; i < n; i++) {
        feed(req + i, 1);
        assert_true(is_open());
        /* An answer only when a request's last byte arrives. */
        if (g_nr_ans != answered) {
            assert_int_equal(g_nr_ans, answered + 1);
            answered++;
            assert_null(g_c.rx);
        }
    }
    assert_int_equal(g_nr_ans, 4);
    check_body(0, "GET /a 0\n");
    assert_int_equal(g_ans[1].body_len, 0);
    check_body(2, "POST /upload 5\n");
    check_body(3, "GET /static/z 0\n");
    check_call(2, "POST", "/upload", "hello", 5);
    assert_null(g_c.rx);
    assert_int_equal(failed_handshakes(), 0);
}

/* A request head of <len> bytes (with its blank line): GET /a with an X-Pad header. */
static char *head_of(size_t len)
{
    static const char start[] = "GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    static const char end[] = "\r\n\r\n";
    assert_true(len > sizeof(start) + sizeof(end));
    char *p = malloc(len);
    assert_non_null(p);
    memcpy(p, start, sizeof(start) - 1);
    memset(p + sizeof(start) - 1, 'p', len - (sizeof(start) - 1) - (sizeof(end) - 1));
    memcpy(p + len - (sizeof(end) - 1), end, sizeof(end) - 1);
    return p;
}

static void head_too_large(void **state)
{
    (void)state;
    static const size_t steps[] = {100000, 1000, 4096, 8192, 1};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        /* 8192 bytes is the largest head. */
        char *p = head_of(HTTP_HEAD_MAX);
        reset_conn();
        feed_steps(p, HTTP_HEAD_MAX, steps[i]);
        assert_int_equal(g_nr_ans, 1);
        check_answer(0, 200, false);
        assert_true(is_open());
        free(p);
        /* One more is 431, closed. */
        p = head_of(HTTP_HEAD_MAX + 1);
        reset_conn();
        feed_steps(p, HTTP_HEAD_MAX + 1, steps[i]);
        if (g_nr_ans != 1 || g_ans[0].status != 431)
            fail_msg("head of %d bytes in steps of %zu: %zu answers, status %d; want 431",
                     HTTP_HEAD_MAX + 1, steps[i], g_nr_ans, g_nr_ans ? g_ans[0].status : 0);
        check_answer(0, 431, true);
        assert_false(is_open());
        assert_int_equal(g_nr_calls, 0);
        assert_int_equal(failed_handshakes(), 1);
        free(p);
    }
    /* A head over 8 KiB in one receive. */
    char *p = head_of(9000);
    reset_conn();
    feed(p, 9000);
    assert_int_equal(g_nr_ans, 1);
    check_answer(0, 431, true);
    free(p);
    /* After a good request on the same connection. */
    reset_conn();
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    p = head_of(9000);
    feed_steps(p, 9000, 3000);
    assert_int_equal(g_nr_ans, 2);
    check_answer(0, 200, false);
    check_answer(1, 431, true);
    free(p);
}

/* ---------------------------------------------------------------------------------------------
 * Upgrades hand the rest of the input on
 * -------------------------------------------------------------------------------------------*/

static void upgrade_hands_rest_on(void **state)
{
    (void)state;
    static const char req[] = "GET /upgrade HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char frames[] = "\x81\x02hi-and-more";
    char buf[256];
    size_t n = sizeof(req) - 1;
    memcpy(buf, req, n);
    memcpy(buf + n, frames, sizeof(frames) - 1);
    size_t total = n + sizeof(frames) - 1;
    /* In one receive, and with the head split (the rest then comes from the set-aside). */
    for (size_t split = 0; split < total; split += 5) {
        reset_conn();
        if (split)
            feed(buf, split);
        feed(buf + split, total - split);
        assert_int_equal(g_nr_calls, 1);
        assert_int_equal(g_c.handler, HANDLER_ECHO);
        assert_int_equal(g_nr_ans, 1);
        assert_int_equal(g_ans[0].status, 101);
        /* What followed the head in the receive that completed it, then the next receive. */
        assert_int_equal(g_up_calls, split > n ? 2 : 1);
        assert_int_equal(g_up_len, sizeof(frames) - 1);
        assert_memory_equal(g_up_input, frames, g_up_len);
        /* The HTTP timer is not re-armed for an upgraded connection. */
        assert_int_equal(g_nr_timer_arms, 0);
        assert_null(g_c.rx);
    }
    /* Nothing after the head: the new handler is not called. */
    reset_conn();
    feed(req, n);
    assert_int_equal(g_c.handler, HANDLER_ECHO);
    assert_int_equal(g_up_calls, 0);
}

/* ---------------------------------------------------------------------------------------------
 * The timer
 * -------------------------------------------------------------------------------------------*/

/* A connection that never sent a request: killed, a failed handshake. */
static void timer_without_request_kills(void **state)
{
    (void)state;
    http_on_timer(&g_s, &g_c);
    assert_int_equal(g_nr_kill, 1);
    assert_int_equal(g_nr_close, 0);
    assert_int_equal(failed_handshakes(), 1);
    /* The same with half a first request. */
    reset_conn();
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\nHost");
    assert_non_null(g_c.rx);
    http_on_timer(&g_s, &g_c);
    assert_int_equal(g_nr_kill, 1);
    assert_int_equal(failed_handshakes(), 1);
    assert_null(g_c.rx);
}

/* An idle keep-alive connection: closed politely, not counted. */
static void timer_idle_keep_alive_closes(void **state)
{
    (void)state;
    feed_str("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(g_nr_ans, 2);
    assert_int_equal(g_timer_when, NEXT_DEADLINE);
    g_s.now = NEXT_DEADLINE;
    http_on_timer(&g_s, &g_c);
    assert_int_equal(g_nr_close, 1);
    assert_int_equal(g_nr_kill, 0);
    assert_int_equal(g_c.state, CONN_CLOSING);
    assert_int_equal(failed_handshakes(), 0);
    assert_int_equal(g_nr_ans, 2);
}

/* A keep-alive connection with part of its next request: killed, a failed handshake. */
static void timer_partial_request_kills(void **state)
{
    (void)state;
    static const char *const partials[] = {
        "G",
        "GET /a HTTP/1.1\r\nHost: x\r\n",
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345",
    };
    for (size_t i = 0; i < sizeof(partials) / sizeof(partials[0]); i++) {
        reset_conn();
        feed_str("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        feed_str(partials[i]);
        assert_int_equal(g_nr_ans, 1);
        assert_non_null(g_c.rx);
        http_on_timer(&g_s, &g_c);
        assert_int_equal(g_nr_kill, 1);
        assert_int_equal(g_nr_close, 0);
        assert_int_equal(failed_handshakes(), 1);
        assert_null(g_c.rx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(route_find_table, setup, teardown),
        cmocka_unit_test_setup_teardown(route_find_empty_table, setup, teardown),
        cmocka_unit_test_setup_teardown(route_find_small_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(route_find_small_allow_is_a_line, setup, teardown),
        cmocka_unit_test_setup_teardown(route_find_first_row_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(not_found_keeps_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(method_not_allowed_has_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(not_found_with_body_skips_it, setup, teardown),
        cmocka_unit_test_setup_teardown(prefix_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(keep_alive_two_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(keep_alive_ten_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(keep_alive_sequential, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_header_decides, setup, teardown),
        cmocka_unit_test_setup_teardown(http10_not_found_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(draining_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(route_refusal_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_after_good, setup, teardown),
        cmocka_unit_test_setup_teardown(body_in_one_input, setup, teardown),
        cmocka_unit_test_setup_teardown(body_split_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(body_exactly_max_message, setup, teardown),
        cmocka_unit_test_setup_teardown(body_over_max_message, setup, teardown),
        cmocka_unit_test_setup_teardown(body_route_without_length, setup, teardown),
        cmocka_unit_test_setup_teardown(transfer_encoding_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(two_pipelined_posts, setup, teardown),
        cmocka_unit_test_setup_teardown(set_aside_plus_pipelined_over_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(head_like_get_without_body, setup, teardown),
        cmocka_unit_test_setup_teardown(head_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(head_connection_close, setup, teardown),
        cmocka_unit_test_setup_teardown(head_refused_by_route_has_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(head_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(upgrade_hands_rest_on, setup, teardown),
        cmocka_unit_test_setup_teardown(timer_without_request_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(timer_idle_keep_alive_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(timer_partial_request_kills, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
