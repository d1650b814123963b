/* SPDX-License-Identifier: MIT */
/*
 * proto: the Centrifugo client protocol's JSON codec. The contract is in proto.h; section
 * numbers (§) are those of PROTOCOL-CENTRIFUGO.md.
 *
 * Decoding is strict where Centrifugo's decoder is strict (a field of the wrong type fails the
 * whole command: close 3501) and lenient where it is lenient (unknown keys and the fields this
 * subset leaves out, such as `delta` or `tf`, are ignored; null reads as absent, as in Go).
 */
#include "proto.h"

#include "json_raw.h"
#include "ws_frame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Decoding: fields
 */

/* Method keys, indexed by enum proto_method (PROTO_PONG has none). */
static const char *const method_names[] = {
    [PROTO_CONNECT] = "connect",
    [PROTO_SUBSCRIBE] = "subscribe",
    [PROTO_UNSUBSCRIBE] = "unsubscribe",
    [PROTO_PUBLISH] = "publish",
    [PROTO_PRESENCE] = "presence",
    [PROTO_PRESENCE_STATS] = "presence_stats",
    [PROTO_HISTORY] = "history",
    [PROTO_PING] = "ping",
    [PROTO_SEND] = "send",
    [PROTO_RPC] = "rpc",
    [PROTO_REFRESH] = "refresh",
    [PROTO_SUB_REFRESH] = "sub_refresh",
};
#define NR_METHODS (sizeof(method_names) / sizeof(method_names[0]))

json_t *proto_json_field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_null(v) ? NULL : v;
}

int proto_json_str(json_t *o, const char *name, struct proto_str *out)
{
    json_t *v = proto_json_field(o, name);
    *out = (struct proto_str){0};
    if (!v)
        return 0;
    if (!json_is_string(v))
        return -EPROTO;
    out->p = json_string_value(v);
    out->len = json_string_length(v);
    return memchr(out->p, '\0', out->len) ? -EPROTO : 0;
}

int proto_json_bool(json_t *o, const char *name, bool *out)
{
    json_t *v = proto_json_field(o, name);
    *out = false;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return -EPROTO;
    *out = json_is_true(v);
    return 0;
}

/*
 * An integer field within [<min>, <max>], in *<is> (clamped to INT64_MAX) and *<us>. jansson
 * holds integers as int64; when the command holds a bigger one anywhere, json_raw_load parsed
 * every number as a real, so a real is read back from its text <txt> (the object's JSON), and
 * taken only when written as an integer: Go's decoder refuses `1.0` for an integer too.
 */
static int get_int(json_t *o, struct json_raw txt, const char *name, int64_t min, uint64_t max,
                   int64_t *is, uint64_t *us)
{
    json_t *v = proto_json_field(o, name);
    *is = 0;
    *us = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < min || (n > 0 && (uint64_t)n > max))
            return -EPROTO;
        *is = n;
        *us = (uint64_t)n;
        return 0;
    }
    struct json_raw r;
    if (!json_is_real(v) || !json_raw_member(txt.p, txt.len, name, strlen(name), &r) || !r.len)
        return -EPROTO;
    uint64_t n = 0;
    for (size_t i = 0; i < r.len; i++) {
        unsigned d = (unsigned)(r.p[i] - '0');
        /* A '-', '.', 'e' or 'E': a fraction, an exponent, or a negative beyond int64. */
        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return -EPROTO;
        n = n * 10 + d;
    }
    if (n > max)
        return -EPROTO;
    *us = n;
    *is = n > INT64_MAX ? INT64_MAX : (int64_t)n;
    return 0;
}

static int get_u64(json_t *o, struct json_raw txt, const char *name, uint64_t *out)
{
    int64_t s;
    return get_int(o, txt, name, 0, UINT64_MAX, &s, out);
}

/* Raw JSON of member <name> of the params object whose text is <params>. */
static void get_raw(struct json_raw params, json_t *o, const char *name, struct proto_str *out)
{
    struct json_raw r;
    *out = (struct proto_str){0};
    if (json_object_get(o, name) && json_raw_member(params.p, params.len, name, strlen(name), &r))
        *out = (struct proto_str){.p = r.p, .len = r.len};
}

/* ---------------------------------------------------------------------------------------------
 * Decoding: methods
 */

static bool has_channel(enum proto_method m)
{
    return m == PROTO_SUBSCRIBE || m == PROTO_UNSUBSCRIBE || m == PROTO_PUBLISH ||
           m == PROTO_PRESENCE || m == PROTO_PRESENCE_STATS || m == PROTO_HISTORY ||
           m == PROTO_SUB_REFRESH;
}

static int decode_connect_subs(json_t *o, struct json_raw params, struct proto_cmd *c)
{
    json_t *subs = proto_json_field(o, "subs");
    struct json_raw txt, ent;
    if (!subs)
        return 0;
    if (!json_is_object(subs) || !json_raw_member(params.p, params.len, "subs", 4, &txt))
        return -EPROTO;
    size_t n = json_object_size(subs);
    if (n == 0)
        return 0;
    c->subs = calloc(n, sizeof(*c->subs));
    if (!c->subs)
        return -ENOMEM;
    const char *name;
    json_t *v;
    json_object_foreach(subs, name, v)
    {
        struct proto_connect_sub *s = &c->subs[c->nr_subs++];
        s->channel = (struct proto_str){.p = name, .len = strlen(name)};
        if (s->channel.len == 0 || !json_is_object(v) ||
            !json_raw_member(txt.p, txt.len, name, s->channel.len, &ent))
            return -EPROTO;
        if (proto_json_bool(v, "recover", &s->recover) < 0 ||
            get_u64(v, ent, "offset", &s->offset) < 0 || proto_json_str(v, "epoch", &s->epoch) < 0)
            return -EPROTO;
    }
    return 0;
}

static int decode_history(json_t *o, struct json_raw params, struct proto_cmd *c)
{
    int64_t limit;
    uint64_t unused;
    struct json_raw txt;
    if (get_int(o, params, "limit", INT32_MIN, INT32_MAX, &limit, &unused) < 0 ||
        proto_json_bool(o, "reverse", &c->reverse) < 0)
        return -EPROTO;
    c->limit = (int32_t)limit;
    json_t *since = proto_json_field(o, "since");
    if (!since)
        return 0;
    if (!json_is_object(since) || !json_raw_member(params.p, params.len, "since", 5, &txt))
        return -EPROTO;
    c->has_since = true;
    if (get_u64(since, txt, "offset", &c->since_offset) < 0 ||
        proto_json_str(since, "epoch", &c->since_epoch) < 0)
        return -EPROTO;
    return 0;
}

/* The fields of method <m>, whose params are <o> with text <params>. */
static int decode_params(enum proto_method m, json_t *o, struct json_raw params,
                         struct proto_cmd *c)
{
    int64_t flag;
    uint64_t unused;
    if (proto_json_str(o, "channel", &c->channel) < 0 || proto_json_str(o, "token", &c->token) < 0)
        return -EPROTO;
    get_raw(params, o, "data", &c->data);
    switch (m) {
    case PROTO_CONNECT:
        if (proto_json_str(o, "name", &c->name) < 0 ||
            proto_json_str(o, "version", &c->version) < 0)
            return -EPROTO;
        return decode_connect_subs(o, params, c);
    case PROTO_SUBSCRIBE:
        if (proto_json_bool(o, "recover", &c->recover) < 0 ||
            get_u64(o, params, "offset", &c->offset) < 0 ||
            proto_json_str(o, "epoch", &c->epoch) < 0 ||
            proto_json_bool(o, "positioned", &c->positioned) < 0 ||
            proto_json_bool(o, "recoverable", &c->recoverable) < 0 ||
            proto_json_bool(o, "join_leave", &c->join_leave) < 0 ||
            get_int(o, params, "flag", INT64_MIN, INT64_MAX, &flag, &unused) < 0)
            return -EPROTO;
        c->flag = flag;
        return 0;
    case PROTO_HISTORY:
        return decode_history(o, params, c);
    case PROTO_RPC:
        return proto_json_str(o, "method", &c->rpc_method);
    case PROTO_REFRESH:
    case PROTO_SUB_REFRESH:
        return c->token.len ? 0 : -EPROTO;
    default:
        return 0;
    }
}

/* Decodes one command line <line>/<len> into <c>. */
static int decode(const char *line, size_t len, struct proto_cmd *c)
{
    json_t *root = json_raw_load(line, len, JSON_ALLOW_NUL);
    c->_root = root;
    if (!root || !json_is_object(root))
        return -EPROTO;
    int64_t id;
    uint64_t unused;
    if (get_int(root, (struct json_raw){line, len}, "id", 0, UINT32_MAX, &id, &unused) < 0)
        return -EPROTO;
    c->id = (uint32_t)id;
    json_t *params = NULL;
    for (size_t m = 1; m < NR_METHODS; m++) {
        json_t *v = proto_json_field(root, method_names[m]);
        if (!v)
            continue;
        if (params || !json_is_object(v))
            return -EPROTO;
        params = v;
        c->method = (enum proto_method)m;
    }
    if (!params)
        return c->id == 0 ? 0 : -EPROTO; /* a pong, or an unknown method */
    /* §2: id-less commands are pongs; any with a method but send is refused. */
    if (c->id == 0 && c->method != PROTO_SEND)
        return -EPROTO;
    const char *key = method_names[c->method];
    struct json_raw text;
    if (!json_raw_member(line, len, key, strlen(key), &text))
        return -EPROTO;
    int rc = decode_params(c->method, params, text, c);
    if (rc < 0)
        return rc;
    if (has_channel(c->method) && c->channel.len == 0)
        return -EPROTO;
    if (c->channel.len > PROTO_CHANNEL_MAX)
        c->error = 106;
    else if (c->method == PROTO_PUBLISH && !c->data.p)
        c->error = 107;
    else if (c->method == PROTO_PING)
        c->error = 108;
    return 0;
}

void proto_cmd_fini(struct proto_cmd *cmd)
{
    json_decref(cmd->_root);
    free(cmd->subs);
    *cmd = (struct proto_cmd){0};
}

void proto_reader_init(struct proto_reader *r, const char *frame, size_t len, uint32_t max_cmds)
{
    *r = (struct proto_reader){
        ._buf = frame,
        ._len = len,
        ._max = max_cmds ? max_cmds : PROTO_MAX_CMDS,
    };
}

int proto_read(struct proto_reader *r, struct proto_cmd *cmd)
{
    *cmd = (struct proto_cmd){0};
    if (r->_err)
        return r->_err;
    if (r->_pos > r->_len)
        return 0;
    /* §2: commands separated by exactly one '\n'; one trailing '\n' is allowed. */
    const char *line = r->_buf + r->_pos;
    const char *nl = memchr(line, '\n', r->_len - r->_pos);
    size_t line_len = nl ? (size_t)(nl - line) : r->_len - r->_pos;
    size_t next = r->_pos + line_len + 1;
    if (nl && next == r->_len)
        next = r->_len + 1;
    int rc = 0;
    if (line_len == 0)
        rc = -EPROTO;
    else if (r->_nr == r->_max)
        rc = -E2BIG;
    else
        rc = decode(line, line_len, cmd);
    if (rc < 0) {
        proto_cmd_fini(cmd);
        r->_err = rc;
        return rc;
    }
    r->_nr++;
    r->_pos = next;
    return 1;
}

uint16_t proto_close_code(int err)
{
    return err == -ENOMEM ? 3004 : 3501;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding: buffer
 */

static int grow(struct proto_buf *b, size_t more)
{
    if (b->oom)
        return -ENOMEM;
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return -ENOMEM;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put(struct proto_buf *b, const void *s, size_t n)
{
    if (n && grow(b, n) == 0) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void puts_(struct proto_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_u64(struct proto_buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    put(b, tmp, (size_t)n);
}

/*
 * Raw JSON, copied as it is except that each '\n' becomes ' '. In valid JSON a newline can only
 * be whitespace between tokens (strings hold it escaped), and a bare one would cut the message
 * in two for every reader of '\n'-separated frames (§2): data from a pretty-printed server API
 * body, or the info of a token whose claims were pretty-printed, would otherwise do that.
 */
static void put_json(struct proto_buf *b, const char *p, size_t len)
{
    const char *nl;
    while (len && (nl = memchr(p, '\n', len)) != NULL) {
        size_t n = (size_t)(nl - p);
        put(b, p, n);
        put(b, " ", 1);
        p += n + 1;
        len -= n + 1;
    }
    if (len)
        put(b, p, len);
}

void proto_buf_fini(struct proto_buf *b)
{
    free(b->p);
    *b = (struct proto_buf){0};
}

int proto_buf_put(struct proto_buf *b, const void *p, size_t len)
{
    put(b, p, len);
    return b->oom ? -ENOMEM : 0;
}

int proto_buf_sep(struct proto_buf *b)
{
    if (b->len)
        put(b, "\n", 1);
    return b->oom ? -ENOMEM : 0;
}

/* Length of the valid UTF-8 sequence at <s> (RFC 3629 §4), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

int proto_buf_jstr(struct proto_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one put */
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t n = c >= 0x20 && c != '"' && c != '\\' ? utf8_seq(u + i, len - i) : 0;
        if (n) {
            i += n;
            run += n;
            continue;
        }
        put(b, s + i - run, run);
        run = 0;
        /* RFC 8259 §7: quote, backslash and controls are escaped; bad UTF-8 becomes U+FFFD. */
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(b, e, 2);
        } else if (c == '\n') {
            put(b, "\\n", 2);
        } else if (c == '\r') {
            put(b, "\\r", 2);
        } else if (c == '\t') {
            put(b, "\\t", 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, e, 6);
        } else {
            put(b, "\\ufffd", 6);
        }
        i++;
    }
    if (run) /* <s> may be NULL when <len> is 0: no arithmetic on it then */
        put(b, s + len - run, run);
    put(b, "\"", 1);
    return b->oom ? -ENOMEM : 0;
}

int proto_buf_raw_data(struct proto_buf *b, const char *p, size_t len, bool text)
{
    json_t *j = text && len ? json_raw_load(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL) : NULL;
    if (!j)
        return proto_buf_jstr(b, p, len);
    json_decref(j);
    struct json_raw t = json_raw_trim(p, len);
    put_json(b, t.p, t.len);
    return b->oom ? -ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding: objects with omitempty fields
 */

struct obj {
    struct proto_buf *b;
    bool any;
};

static struct obj obj_open(struct proto_buf *b)
{
    put(b, "{", 1);
    return (struct obj){.b = b};
}

static void obj_close(struct obj *o)
{
    put(o->b, "}", 1);
}

static void obj_key(struct obj *o, const char *key)
{
    if (o->any)
        put(o->b, ",", 1);
    o->any = true;
    put(o->b, "\"", 1);
    puts_(o->b, key);
    put(o->b, "\":", 2);
}

static void obj_str(struct obj *o, const char *key, struct proto_str s, bool always)
{
    if (!s.len && !always)
        return;
    obj_key(o, key);
    proto_buf_jstr(o->b, s.p ? s.p : "", s.len);
}

static void obj_bool(struct obj *o, const char *key, bool v)
{
    if (!v)
        return;
    obj_key(o, key);
    puts_(o->b, "true");
}

static void obj_u64(struct obj *o, const char *key, uint64_t v, bool always)
{
    if (!v && !always)
        return;
    obj_key(o, key);
    put_u64(o->b, v);
}

static void obj_raw(struct obj *o, const char *key, struct proto_str raw)
{
    if (!raw.len)
        return;
    obj_key(o, key);
    put_json(o->b, raw.p, raw.len);
}

static void put_array(struct proto_buf *b, const struct proto_str *items, uint32_t n)
{
    put(b, "[", 1);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            put(b, ",", 1);
        put_json(b, items[i].p, items[i].len);
    }
    put(b, "]", 1);
}

/* `{"id":<id>,"<method>":` : the caller writes the result and one closing brace. */
static void reply_open(struct proto_buf *b, uint32_t id, const char *method)
{
    puts_(b, "{\"id\":");
    put_u64(b, id);
    put(b, ",\"", 2);
    puts_(b, method);
    put(b, "\":", 2);
}

static int reply_close(struct proto_buf *b)
{
    put(b, "}", 1);
    return b->oom ? -ENOMEM : 0;
}

static void put_client_info(struct proto_buf *b, const struct proto_client_info *ci)
{
    struct obj o = obj_open(b);
    obj_str(&o, "user", ci->user, true);
    obj_str(&o, "client", ci->client, true);
    obj_raw(&o, "conn_info", ci->conn_info);
    obj_raw(&o, "chan_info", ci->chan_info);
    obj_close(&o);
}

static void put_subscribe_result(struct proto_buf *b, const struct proto_subscribe_result *r)
{
    /* The order of the subscribe replies §3 and §8 show byte for byte. */
    struct obj o = obj_open(b);
    obj_bool(&o, "expires", r->expires);
    obj_u64(&o, "ttl", r->ttl, false);
    obj_bool(&o, "recoverable", r->recoverable);
    obj_str(&o, "epoch", r->epoch, false);
    obj_u64(&o, "offset", r->offset, false);
    obj_bool(&o, "positioned", r->positioned);
    obj_bool(&o, "was_recovering", r->was_recovering);
    obj_bool(&o, "recovered", r->recovered);
    if (r->nr_pubs) {
        obj_key(&o, "publications");
        put_array(b, r->pubs, r->nr_pubs);
    }
    obj_raw(&o, "data", r->data);
    obj_close(&o);
}

/* ---------------------------------------------------------------------------------------------
 * Encoding: replies
 */

int proto_encode_connect(struct proto_buf *b, uint32_t id, const struct proto_connect_result *r,
                         const struct proto_server_sub *subs, uint32_t nr_subs)
{
    reply_open(b, id, "connect");
    struct obj o = obj_open(b);
    obj_str(&o, "client", r->client, true);
    obj_str(&o, "version", r->version, false);
    obj_bool(&o, "expires", r->expires);
    obj_u64(&o, "ttl", r->ttl, false);
    obj_raw(&o, "data", r->data);
    if (nr_subs) {
        obj_key(&o, "subs");
        put(b, "{", 1);
        for (uint32_t i = 0; i < nr_subs; i++) {
            if (i)
                put(b, ",", 1);
            proto_buf_jstr(b, subs[i].channel.p, subs[i].channel.len);
            put(b, ":", 1);
            put_subscribe_result(b, subs[i].res);
        }
        put(b, "}", 1);
    }
    obj_u64(&o, "ping", r->ping, false);
    obj_bool(&o, "pong", r->pong);
    obj_close(&o);
    return reply_close(b);
}

int proto_encode_refresh(struct proto_buf *b, uint32_t id, const struct proto_connect_result *r)
{
    reply_open(b, id, "refresh");
    struct obj o = obj_open(b);
    obj_str(&o, "client", r->client, true);
    obj_str(&o, "version", r->version, false);
    obj_bool(&o, "expires", r->expires);
    obj_u64(&o, "ttl", r->ttl, false);
    obj_close(&o);
    return reply_close(b);
}

int proto_encode_subscribe(struct proto_buf *b, uint32_t id, const struct proto_subscribe_result *r)
{
    reply_open(b, id, "subscribe");
    put_subscribe_result(b, r);
    return reply_close(b);
}

int proto_encode_sub_refresh(struct proto_buf *b, uint32_t id, bool expires, uint32_t ttl)
{
    reply_open(b, id, "sub_refresh");
    struct obj o = obj_open(b);
    obj_bool(&o, "expires", expires);
    obj_u64(&o, "ttl", ttl, false);
    obj_close(&o);
    return reply_close(b);
}

int proto_encode_empty(struct proto_buf *b, uint32_t id, enum proto_method method)
{
    bool named = method > PROTO_PONG && method < NR_METHODS;
    reply_open(b, id, method_names[named ? method : PROTO_PUBLISH]);
    put(b, "{}", 2);
    return reply_close(b);
}

int proto_encode_presence_begin(struct proto_buf *b, uint32_t id)
{
    reply_open(b, id, "presence");
    puts_(b, "{\"presence\":{");
    return b->oom ? -ENOMEM : 0;
}

int proto_encode_presence_add(struct proto_buf *b, const struct proto_client_info *ci)
{
    if (b->len && b->p[b->len - 1] != '{')
        put(b, ",", 1);
    proto_buf_jstr(b, ci->client.p ? ci->client.p : "", ci->client.len);
    put(b, ":", 1);
    put_client_info(b, ci);
    return b->oom ? -ENOMEM : 0;
}

int proto_encode_presence_end(struct proto_buf *b)
{
    put(b, "}}", 2);
    return reply_close(b);
}

int proto_encode_presence_stats(struct proto_buf *b, uint32_t id, uint32_t num_clients,
                                uint32_t num_users)
{
    reply_open(b, id, "presence_stats");
    struct obj o = obj_open(b);
    obj_u64(&o, "num_clients", num_clients, true);
    obj_u64(&o, "num_users", num_users, true);
    obj_close(&o);
    return reply_close(b);
}

int proto_encode_history(struct proto_buf *b, uint32_t id, const struct proto_str *pubs,
                         uint32_t nr_pubs, struct proto_str epoch, uint64_t offset)
{
    reply_open(b, id, "history");
    struct obj o = obj_open(b);
    obj_key(&o, "publications");
    put_array(b, pubs, nr_pubs);
    obj_str(&o, "epoch", epoch, true);
    obj_u64(&o, "offset", offset, true);
    obj_close(&o);
    return reply_close(b);
}

int proto_encode_rpc(struct proto_buf *b, uint32_t id, struct proto_str data)
{
    reply_open(b, id, "rpc");
    struct obj o = obj_open(b);
    obj_raw(&o, "data", data);
    obj_close(&o);
    return reply_close(b);
}

int proto_encode_error(struct proto_buf *b, uint32_t id, uint32_t code, const char *message)
{
    if (!message)
        message = proto_error_message(code);
    reply_open(b, id, "error");
    struct obj o = obj_open(b);
    obj_u64(&o, "code", code, true);
    obj_str(&o, "message", (struct proto_str){message, strlen(message)}, true);
    obj_bool(&o, "temporary", code == 100 || code == 111 || code == 113);
    obj_close(&o);
    return reply_close(b);
}

/* ---------------------------------------------------------------------------------------------
 * Encoding: pushes
 */

/* `{"push":{` and the channel when given; the caller adds one member and calls push_close. */
static struct obj push_open(struct proto_buf *b, struct proto_str channel)
{
    puts_(b, "{\"push\":");
    struct obj o = obj_open(b);
    obj_str(&o, "channel", channel, false);
    return o;
}

static int push_close(struct obj *o)
{
    obj_close(o);
    return reply_close(o->b);
}

int proto_encode_pub(struct proto_buf *b, const struct proto_pub *pub)
{
    /* §5, §6: data, info, offset, in the order of the pushes the doc shows. */
    struct obj o = obj_open(b);
    obj_key(&o, "data");
    if (pub->data.len)
        put_json(b, pub->data.p, pub->data.len);
    else
        puts_(b, "null");
    if (pub->info) {
        obj_key(&o, "info");
        put_client_info(b, pub->info);
    } else if (pub->info_json.len) {
        obj_key(&o, "info");
        put_json(b, pub->info_json.p, pub->info_json.len);
    }
    obj_u64(&o, "offset", pub->offset, false);
    obj_close(&o);
    return b->oom ? -ENOMEM : 0;
}

int proto_encode_pub_push(struct proto_buf *b, struct proto_str channel,
                          const struct proto_pub *pub, struct proto_str *pub_at)
{
    struct obj o = push_open(b, channel);
    obj_key(&o, "pub");
    size_t start = b->len;
    proto_encode_pub(b, pub);
    size_t end = b->len;
    int rc = push_close(&o);
    /* After the last write: an earlier pointer could be moved by the closing braces. */
    if (pub_at)
        *pub_at = (struct proto_str){.p = b->p ? b->p + start : NULL, .len = end - start};
    return rc;
}

int proto_encode_join_leave(struct proto_buf *b, struct proto_str channel, bool join,
                            const struct proto_client_info *ci)
{
    struct obj o = push_open(b, channel);
    obj_key(&o, join ? "join" : "leave");
    puts_(b, "{\"info\":");
    put_client_info(b, ci);
    put(b, "}", 1);
    return push_close(&o);
}

int proto_encode_unsubscribe_push(struct proto_buf *b, struct proto_str channel, uint32_t code,
                                  const char *reason)
{
    struct obj o = push_open(b, channel);
    obj_key(&o, "unsubscribe");
    struct obj u = obj_open(b);
    obj_u64(&u, "code", code, true);
    obj_str(&u, "reason", (struct proto_str){reason, reason ? strlen(reason) : 0}, false);
    obj_close(&u);
    return push_close(&o);
}

int proto_encode_message_push(struct proto_buf *b, struct proto_str data)
{
    struct obj o = push_open(b, (struct proto_str){0});
    obj_key(&o, "message");
    struct obj m = obj_open(b);
    obj_raw(&m, "data", data);
    obj_close(&m);
    return push_close(&o);
}

int proto_encode_disconnect_push(struct proto_buf *b, uint32_t code, const char *reason,
                                 bool reconnect)
{
    struct obj o = push_open(b, (struct proto_str){0});
    obj_key(&o, "disconnect");
    struct obj d = obj_open(b);
    obj_u64(&d, "code", code, true);
    obj_str(&d, "reason", (struct proto_str){reason, reason ? strlen(reason) : 0}, false);
    obj_bool(&d, "reconnect", reconnect);
    obj_close(&d);
    return push_close(&o);
}

/* ---------------------------------------------------------------------------------------------
 * Tables
 */

const char *proto_error_message(uint32_t code)
{
    /* §8, Centrifugo's messages. */
    static const char *const msgs[] = {
        "internal server error",  "unauthorized",          "unknown channel", "permission denied",
        "method not found",       "already subscribed",    "limit exceeded",  "bad request",
        "not available",          "token expired",         "expired",         "too many requests",
        "unrecoverable position", "concurrent pagination",
    };
    if (code >= 100 && code < 100 + sizeof(msgs) / sizeof(msgs[0]))
        return msgs[code - 100];
    return "unknown error";
}

const char *proto_close_reason(uint16_t code)
{
    /* §7; none of these parses as JSON, which the SDK would take for the legacy format. */
    switch (code) {
    case 3000:
        return "connection closed";
    case 3001:
        return "shutdown";
    case 3004:
        return "internal server error";
    case 3005:
        return "connection expired";
    case 3006:
        return "subscription expired";
    case 3008:
        return "slow";
    case 3009:
        return "write error";
    case 3010:
        return "insufficient state";
    case 3011:
        return "force reconnect";
    case 3012:
        return "no pong";
    case 3013:
        return "too many requests";
    case 3014:
        return "state invalidated";
    case 3500:
        return "invalid token";
    case 3501:
        return "bad request";
    case 3502:
        return "stale";
    case 3503:
        return "force disconnect";
    case 3504:
        return "connection limit";
    case 3505:
        return "channel limit";
    case 3506:
        return "inappropriate protocol";
    case 3507:
        return "permission denied";
    case 3508:
        return "not available";
    case 3509:
        return "too many errors";
    default:
        return "";
    }
}

int proto_encode_client_info(struct proto_buf *b, const struct proto_client_info *ci)
{
    put_client_info(b, ci);
    return b->oom ? -ENOMEM : 0;
}

/* The Publication of room message <m> at <offset>, through <data> (scratch for its JSON). */
static int msg_pub(struct proto_buf *data, const struct msg *m, uint64_t offset,
                   struct proto_pub *pub)
{
    size_t len;
    const uint8_t *p = msg_payload(m, &len);
    if (proto_buf_raw_data(data, (const char *)p, len, m->opcode == WS_OP_TEXT) < 0)
        return -ENOMEM;
    *pub = (struct proto_pub){
        .data = {data->p, data->len}, .info_json = {msg_info(m), m->info_len}, .offset = offset};
    return 0;
}

int proto_encode_msg_pub(struct proto_buf *b, const struct msg *m, uint64_t offset)
{
    struct proto_buf data = {0};
    struct proto_pub pub;
    int rc = msg_pub(&data, m, offset, &pub);
    if (rc == 0)
        rc = proto_encode_pub(b, &pub);
    proto_buf_fini(&data);
    return rc;
}

struct msg *proto_pub_frame(const struct msg *m, uint32_t *pub_off, uint32_t *pub_len)
{
    struct proto_buf data = {0}, b = {0};
    struct proto_pub pub;
    struct proto_str at;
    struct msg *out = NULL;
    if (msg_pub(&data, m, m->offset, &pub) < 0)
        goto done;
    struct proto_str channel = {msg_room_name(m), m->name_len};
    if (proto_encode_pub_push(&b, channel, &pub, &at) < 0)
        goto done;
    out = msg_frame(WS_OP_TEXT, (const uint8_t *)b.p, b.len, NULL, 0);
    if (out)
        out->t_recv_ns = m->t_recv_ns; /* its deliveries count in the publish latency too */
    if (out && pub_off) {
        /* The frame's header comes before the payload. */
        *pub_off = (uint32_t)(out->len - b.len + (size_t)(at.p - b.p));
        *pub_len = (uint32_t)at.len;
    }
done:
    proto_buf_fini(&data);
    proto_buf_fini(&b);
    return out;
}
