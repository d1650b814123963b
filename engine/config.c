/* SPDX-License-Identifier: MIT */
/*
 * config: the option table, the three sources (command line, environment, file) and the value
 * parsers. See config.h for the contract and ARCHITECTURE.md for the option list.
 *
 * Precedence is kept per slot, not by the order sources are read: each slot remembers the
 * source that set it, and a value from a lower source is still parsed, into a scratch struct
 * that is then dropped. So a typo in the file is reported the day it is written, not the day
 * the command line stops overriding it, and the command line is read first, which lets its
 * errors (and --help) come before anything the file or environment could say.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef RINGCAST_VERSION
#define RINGCAST_VERSION "dev"
#endif

/* ---------------------------------------------------------------------------------------- */
/* Types                                                                                     */
/* ---------------------------------------------------------------------------------------- */

enum opt_id {
    OPT_LISTEN,
    OPT_TLS_LISTEN,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_OFFLOAD,
    OPT_TLS_MAX_HANDSHAKES,
    OPT_SHARDS,
    OPT_MAX_CONNS,
    OPT_MAX_CONNS_PER_IP,
    OPT_MAX_MESSAGE,
    OPT_SEND_QUEUE,
    OPT_SLOW_CONSUMER,
    OPT_RATE_LIMIT,
    OPT_PING_INTERVAL,
    OPT_IDLE_TIMEOUT,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_HISTORY_SIZE,
    OPT_HISTORY_TTL,
    OPT_JWT_SECRET,
    OPT_JWT_SECRET_FILE,
    OPT_ALLOW_ANONYMOUS,
    OPT_ALLOWED_ORIGINS,
    OPT_API_KEY,
    OPT_REDIS,
    OPT_LOG_LEVEL,
    OPT_CONFIG,
    NR_OPTS
};

/* Where a value came from, in rising precedence; SRC_DEFAULT is "nobody set it". */
enum source { SRC_DEFAULT = 0, SRC_FILE, SRC_ENV, SRC_CLI };

#define OPT_F_FLAG   1u /* takes no value on the command line; --no-<name> sets it false */
#define OPT_F_NOFILE 2u /* not accepted inside a config file */

struct opt {
    const char *name;
    enum opt_id slot; /* options that set the same field share one precedence slot */
    unsigned flags;
};

static const struct opt opts[NR_OPTS] = {
    [OPT_LISTEN] = {"listen", OPT_LISTEN, 0},
    [OPT_TLS_LISTEN] = {"tls-listen", OPT_TLS_LISTEN, 0},
    [OPT_TLS_CERT] = {"tls-cert", OPT_TLS_CERT, 0},
    [OPT_TLS_KEY] = {"tls-key", OPT_TLS_KEY, 0},
    [OPT_TLS_OFFLOAD] = {"tls-offload", OPT_TLS_OFFLOAD, 0},
    [OPT_TLS_MAX_HANDSHAKES] = {"tls-max-handshakes", OPT_TLS_MAX_HANDSHAKES, 0},
    [OPT_SHARDS] = {"shards", OPT_SHARDS, 0},
    [OPT_MAX_CONNS] = {"max-conns", OPT_MAX_CONNS, 0},
    [OPT_MAX_CONNS_PER_IP] = {"max-conns-per-ip", OPT_MAX_CONNS_PER_IP, 0},
    [OPT_MAX_MESSAGE] = {"max-message", OPT_MAX_MESSAGE, 0},
    [OPT_SEND_QUEUE] = {"send-queue", OPT_SEND_QUEUE, 0},
    [OPT_SLOW_CONSUMER] = {"slow-consumer", OPT_SLOW_CONSUMER, 0},
    [OPT_RATE_LIMIT] = {"rate-limit", OPT_RATE_LIMIT, 0},
    [OPT_PING_INTERVAL] = {"ping-interval", OPT_PING_INTERVAL, 0},
    [OPT_IDLE_TIMEOUT] = {"idle-timeout", OPT_IDLE_TIMEOUT, 0},
    [OPT_HANDSHAKE_TIMEOUT] = {"handshake-timeout", OPT_HANDSHAKE_TIMEOUT, 0},
    [OPT_HISTORY_SIZE] = {"history-size", OPT_HISTORY_SIZE, 0},
    [OPT_HISTORY_TTL] = {"history-ttl", OPT_HISTORY_TTL, 0},
    [OPT_JWT_SECRET] = {"jwt-secret", OPT_JWT_SECRET, 0},
    [OPT_JWT_SECRET_FILE] = {"jwt-secret-file", OPT_JWT_SECRET, 0},
    [OPT_ALLOW_ANONYMOUS] = {"allow-anonymous", OPT_ALLOW_ANONYMOUS, OPT_F_FLAG},
    [OPT_ALLOWED_ORIGINS] = {"allowed-origins", OPT_ALLOWED_ORIGINS, 0},
    [OPT_API_KEY] = {"api-key", OPT_API_KEY, 0},
    [OPT_REDIS] = {"redis", OPT_REDIS, 0},
    [OPT_LOG_LEVEL] = {"log-level", OPT_LOG_LEVEL, 0},
    [OPT_CONFIG] = {"config", OPT_CONFIG, OPT_F_NOFILE},
};

/*
 * Durations are whole seconds, capped so that the value in milliseconds still fits an int32:
 * timers and poll-style timeouts downstream may well convert, and nobody means 25 days.
 */
#define SECS_MAX 2147483u
/* A secret file is a key, not a document; anything bigger is the wrong file. */
#define SECRET_FILE_MAX 65536
#define SHOW_MAX        60

struct loader {
    struct config *c;
    struct config scratch; /* values that lose on precedence are parsed here and dropped */
    enum source rank[NR_OPTS];
    /* The value being applied, for error messages. */
    enum source src;
    enum opt_id opt;
    const char *path; /* SRC_FILE: the file and line */
    unsigned line;
    /* The file to read: its path (borrowed from argv or envp) and who named it. */
    const char *config_path;
    enum source config_src;
    char *err;
    size_t err_cap;
    char shown[SHOW_MAX * 4 + 8];
};

/*
 * The one string default. config_defaults() points listen_host at it and the free path knows
 * not to free it, which keeps config_defaults() unable to fail.
 */
static char default_listen_host[] = "0.0.0.0";

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/*
 * Renders <v> for an error message: control bytes escaped and long values cut, so that the
 * message stays one line on a terminal whatever the file or environment held.
 */
static const char *show(struct loader *ld, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; v[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)v[i];

        if (i == SHOW_MAX) {
            memcpy(ld->shown + o, "...", 3);
            o += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7f) {
            ld->shown[o++] = '\\';
            ld->shown[o++] = 'x';
            ld->shown[o++] = hex[ch >> 4];
            ld->shown[o++] = hex[ch & 15];
        } else {
            ld->shown[o++] = (char)ch;
        }
    }
    ld->shown[o] = '\0';
    return ld->shown;
}

static void env_name(char *buf, size_t cap, const char *name)
{
    size_t o = 0;

    /* By hand, not toupper(): option names are ASCII whatever the locale says. */
    for (const char *p = "RINGCAST_"; *p != '\0' && o + 1 < cap; p++)
        buf[o++] = *p;
    for (; *name != '\0' && o + 1 < cap; name++) {
        char ch = *name;

        if (ch == '-')
            ch = '_';
        else if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        buf[o++] = ch;
    }
    buf[o] = '\0';
}

/* Writes "ringcast: <msg>" into the caller's buffer. Returns -1 for the caller to pass on. */
__attribute__((format(printf, 2, 3))) static int fail_plain(struct loader *ld, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->err != NULL && ld->err_cap > 0)
        (void)snprintf(ld->err, ld->err_cap, "ringcast: %s", msg);
    return -1;
}

/*
 * Writes "ringcast: <where>: <msg>", where <where> names the value the way its source spells
 * it: "--max-conns", "RINGCAST_MAX_CONNS" or "FILE:LINE: max-conns". Returns -1.
 */
__attribute__((format(printf, 2, 3))) static int fail(struct loader *ld, const char *fmt, ...)
{
    char msg[512];
    char where[64];
    const char *name = opts[ld->opt].name;
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    switch (ld->src) {
    case SRC_ENV:
        env_name(where, sizeof(where), name);
        return fail_plain(ld, "%s: %s", where, msg);
    case SRC_FILE:
        return fail_plain(ld, "%s:%u: %s: %s", ld->path, ld->line, name, msg);
    case SRC_CLI:
    case SRC_DEFAULT:
        break;
    }
    return fail_plain(ld, "--%s: %s", name, msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Value parsers: each stores into <out> only on success                                     */
/* ---------------------------------------------------------------------------------------- */

static void free_str(char *s)
{
    if (s != default_listen_host)
        free(s);
}

static void free_origins(char **list)
{
    if (list == NULL)
        return;
    for (char **p = list; *p != NULL; p++)
        free(*p);
    free(list);
}

static int set_str(struct loader *ld, char **field, const char *val, size_t len)
{
    char *copy = strndup(val, len);

    if (copy == NULL)
        return fail(ld, "out of memory");
    free_str(*field);
    *field = copy;
    return 0;
}

/* Plain decimal digits only: strtoull would take signs, spaces and "0x", none of them meant. */
static int parse_u64(struct loader *ld, const char *val, const char **end, uint64_t *out)
{
    const char *p = val;
    uint64_t v = 0;

    if (*p == '-')
        return fail(ld, "must not be negative: '%s'", show(ld, val));
    if (*p < '0' || *p > '9')
        return fail(ld, "not a number: '%s'", show(ld, val));
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        if (v > (UINT64_MAX - d) / 10)
            return fail(ld, "too large: '%s'", show(ld, val));
        v = v * 10 + d;
    }
    if (end != NULL)
        *end = p;
    else if (*p != '\0')
        return fail(ld, "not a number: '%s'", show(ld, val));
    *out = v;
    return 0;
}

static int parse_uint(struct loader *ld, const char *val, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (parse_u64(ld, val, NULL, &v) < 0)
        return -1;
    if (v < min || v > max)
        return fail(ld, "out of range: '%s' (%llu..%llu)", show(ld, val), (unsigned long long)min,
                    (unsigned long long)max);
    *out = v;
    return 0;
}

static int parse_unsigned(struct loader *ld, const char *val, unsigned min, unsigned max,
                          unsigned *out)
{
    uint64_t v = 0;

    if (parse_uint(ld, val, min, max, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* BYTES with an optional binary k, m or g suffix; at least 1. */
static int parse_size(struct loader *ld, const char *val, uint64_t *out)
{
    const char *end = val;
    unsigned shift = 0;
    uint64_t v = 0;

    if (parse_u64(ld, val, &end, &v) < 0)
        return -1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return fail(ld, "not a size: '%s' (BYTES, or with a k, m or g suffix)", show(ld, val));
    }
    if (*end != '\0' && end[1] != '\0')
        return fail(ld, "not a size: '%s' (BYTES, or with a k, m or g suffix)", show(ld, val));
    if (v > (UINT64_MAX >> shift))
        return fail(ld, "too large: '%s'", show(ld, val));
    if (v == 0)
        return fail(ld, "must be at least 1: '%s'", show(ld, val));
    *out = v << shift;
    return 0;
}

/*
 * A size that must fit the engine's 32-bit lengths: at most <max> bytes, a power of two named
 * with its suffix in the message.
 */
static int parse_size_max(struct loader *ld, const char *val, uint64_t max, const char *max_name,
                          uint64_t *out)
{
    uint64_t v = 0;

    if (parse_size(ld, val, &v) < 0)
        return -1;
    if (v > max)
        return fail(ld, "too large: '%s' (at most %s)", show(ld, val), max_name);
    *out = v;
    return 0;
}

/* A non-negative decimal ("10", "0.5"); no exponent, hex, inf or nan. */
static int parse_rate(struct loader *ld, const char *val, double *out)
{
    const char *p = val;
    size_t digits = 0;
    char *end;
    double v;

    if (*p == '-')
        return fail(ld, "must not be negative: '%s'", show(ld, val));
    for (; *p >= '0' && *p <= '9'; p++)
        digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (digits == 0 || *p != '\0')
        return fail(ld, "not a number: '%s'", show(ld, val));
    errno = 0;
    v = strtod(val, &end);
    if (*end != '\0')
        return fail(ld, "not a number: '%s'", show(ld, val));
    if ((errno == ERANGE && isinf(v)) || v > CONFIG_RATE_LIMIT_MAX)
        return fail(ld, "too large: '%s' (at most %.0f)", show(ld, val), CONFIG_RATE_LIMIT_MAX);
    *out = v;
    return 0;
}

static int parse_bool(struct loader *ld, const char *val, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(val, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(val, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return fail(ld, "not a boolean: '%s' (on/off, true/false, yes/no, 1/0)", show(ld, val));
}

/*
 * HOST:PORT. The host is stored numeric, so the listener needs only inet_pton: "*" or empty is
 * 0.0.0.0, "localhost" is 127.0.0.1 (no resolver at startup: a name that resolves to several
 * addresses has no single right answer for bind), "[v6]" is stored without brackets.
 */
static int parse_addr(struct loader *ld, const char *val, char **host, uint16_t *port)
{
    unsigned char bin[16];
    const char *h = val, *colon;
    size_t hlen;
    uint64_t p;

    if (*val == '[') {
        const char *close = strchr(val, ']');

        if (close == NULL || close[1] != ':')
            return fail(ld, "expected [IPV6]:PORT: '%s'", show(ld, val));
        h = val + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(val, ':');
        if (colon == NULL)
            return fail(ld, "expected HOST:PORT: '%s'", show(ld, val));
        hlen = (size_t)(colon - val);
        if (memchr(val, ':', hlen) != NULL)
            return fail(ld, "an IPv6 host needs brackets, as in [::1]:8080: '%s'", show(ld, val));
    }

    const char *digits = colon + 1;
    bool ok = *digits != '\0' && strlen(digits) <= 5;

    for (const char *d = digits; ok && *d != '\0'; d++)
        ok = *d >= '0' && *d <= '9';
    p = ok ? strtoull(digits, NULL, 10) : 0;
    if (!ok || p > 65535)
        return fail(ld, "bad port in '%s' (0..65535)", show(ld, val));

    char hbuf[INET6_ADDRSTRLEN];

    if (hlen >= sizeof(hbuf))
        return fail(ld, "bad host in '%s'", show(ld, val));
    memcpy(hbuf, h, hlen);
    hbuf[hlen] = '\0';
    if (*val == '[') {
        if (inet_pton(AF_INET6, hbuf, bin) != 1)
            return fail(ld, "bad IPv6 address in '%s'", show(ld, val));
    } else if (hlen == 0 || strcmp(hbuf, "*") == 0) {
        strcpy(hbuf, "0.0.0.0");
    } else if (strcmp(hbuf, "localhost") == 0) {
        strcpy(hbuf, "127.0.0.1");
    } else if (inet_pton(AF_INET, hbuf, bin) != 1) {
        return fail(ld, "bad host in '%s' (an IPv4 address, localhost, * or [IPv6])",
                    show(ld, val));
    }
    if (set_str(ld, host, hbuf, strlen(hbuf)) < 0)
        return -1;
    *port = (uint16_t)p;
    return 0;
}

/* Comma-separated, spaces trimmed, empty entries skipped; a "*" entry means any (NULL). */
static int parse_origins(struct loader *ld, const char *val, struct config *dst)
{
    size_t cap = 1, n = 0;
    char **list;

    for (const char *p = val; *p != '\0'; p++)
        cap += *p == ',';
    list = calloc(cap + 1, sizeof(*list));
    if (list == NULL)
        return fail(ld, "out of memory");
    for (const char *p = val;;) {
        const char *e = strchr(p, ',');
        const char *stop = e != NULL ? e : p + strlen(p);

        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if (stop - p == 1 && *p == '*') {
            free_origins(list);
            list = NULL;
            n = 0;
            break;
        }
        if (stop > p) {
            list[n] = strndup(p, (size_t)(stop - p));
            if (list[n++] == NULL) {
                free_origins(list);
                return fail(ld, "out of memory");
            }
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    if (list != NULL && n == 0) {
        free_origins(list);
        return fail(ld, "no origin in '%s' (use '*' for any)", show(ld, val));
    }
    free_origins(dst->allowed_origins);
    dst->allowed_origins = list;
    dst->nr_allowed_origins = n;
    return 0;
}

/*
 * The secret file's contents, trailing newlines dropped (every editor adds one). The secret
 * itself never appears in a message; the path does.
 */
static int read_secret_file(struct loader *ld, const char *path, char **secret)
{
    char buf[SECRET_FILE_MAX + 1];
    FILE *f = fopen(path, "rb");
    size_t len;
    int rc = 0;

    if (f == NULL)
        return fail(ld, "cannot read '%s': %s", show(ld, path), strerror(errno));
    len = fread(buf, 1, sizeof(buf), f);
    if (ferror(f))
        rc = fail(ld, "cannot read '%s': %s", show(ld, path), strerror(errno));
    (void)fclose(f); /* read only: nothing to lose */
    if (rc < 0)
        return rc;
    if (len > SECRET_FILE_MAX)
        return fail(ld, "'%s' is larger than %d bytes", show(ld, path), SECRET_FILE_MAX);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len == 0)
        return fail(ld, "'%s' is empty", show(ld, path));
    if (memchr(buf, '\0', len) != NULL)
        return fail(ld, "'%s' holds a NUL byte", show(ld, path));
    return set_str(ld, secret, buf, len);
}

static int parse_redis(struct loader *ld, const char *val, char **out)
{
    static const char scheme[] = "redis://";

    /* The URL may carry a password, so it is not echoed back. */
    if (strncmp(val, scheme, sizeof(scheme) - 1) != 0 || val[sizeof(scheme) - 1] == '\0')
        return fail(ld, "expected redis://HOST:PORT[/DB]");
    return set_str(ld, out, val, strlen(val));
}

/* ---------------------------------------------------------------------------------------- */
/* Applying one value                                                                        */
/* ---------------------------------------------------------------------------------------- */

static int find_word(const char *val, const char *const *names, size_t nr, unsigned *out)
{
    for (size_t i = 0; i < nr; i++) {
        if (strcasecmp(val, names[i]) == 0) {
            *out = (unsigned)i;
            return 0;
        }
    }
    return -1;
}

static int apply_number(struct loader *ld, struct config *dst, const char *val)
{
    switch (ld->opt) {
    case OPT_SHARDS:
        return parse_unsigned(ld, val, 1, XSHARD_MAX_SHARDS, &dst->shards);
    case OPT_TLS_MAX_HANDSHAKES:
        return parse_unsigned(ld, val, 0, 1000000, &dst->tls_max_handshakes);
    case OPT_MAX_CONNS:
        return parse_uint(ld, val, 0, CONFIG_MAX_CONNS_MAX, &dst->max_conns);
    case OPT_MAX_CONNS_PER_IP:
        return parse_uint(ld, val, 0, UINT64_MAX, &dst->max_conns_per_ip);
    case OPT_MAX_MESSAGE:
        return parse_size_max(ld, val, CONFIG_MAX_MESSAGE_MAX, "1g", &dst->max_message);
    case OPT_SEND_QUEUE:
        return parse_size_max(ld, val, CONFIG_SEND_QUEUE_MAX, "2g", &dst->send_queue);
    case OPT_RATE_LIMIT:
        return parse_rate(ld, val, &dst->rate_limit);
    case OPT_PING_INTERVAL:
        return parse_unsigned(ld, val, 0, SECS_MAX, &dst->ping_interval);
    case OPT_IDLE_TIMEOUT:
        return parse_unsigned(ld, val, 0, SECS_MAX, &dst->idle_timeout);
    case OPT_HANDSHAKE_TIMEOUT:
        /* No 0 here: an upgrade that may take forever is a free slowloris. */
        return parse_unsigned(ld, val, 1, SECS_MAX, &dst->handshake_timeout);
    case OPT_HISTORY_SIZE:
        return parse_unsigned(ld, val, 0, UINT_MAX, &dst->history_size);
    case OPT_HISTORY_TTL:
        return parse_unsigned(ld, val, 0, SECS_MAX, &dst->history_ttl);
    default:
        return fail(ld, "internal error: not a number option");
    }
}

static int apply_choice(struct loader *ld, struct config *dst, const char *val)
{
    static const char *const slow[] = {[SLOW_CLOSE] = "close", [SLOW_DROP] = "drop"};
    static const char *const levels[] = {
        [LOG_ERROR] = "error", [LOG_WARN] = "warn", [LOG_INFO] = "info", [LOG_DEBUG] = "debug"};
    unsigned v;

    switch (ld->opt) {
    case OPT_SLOW_CONSUMER:
        if (find_word(val, slow, 2, &v) < 0)
            return fail(ld, "unknown value '%s' (close or drop)", show(ld, val));
        dst->slow_consumer = (enum slow_policy)v;
        return 0;
    case OPT_LOG_LEVEL:
        if (find_word(val, levels, 4, &v) < 0)
            return fail(ld, "unknown value '%s' (error, warn, info or debug)", show(ld, val));
        dst->log_level = (enum log_level)v;
        return 0;
    case OPT_ALLOW_ANONYMOUS:
        return parse_bool(ld, val, &dst->allow_anonymous);
    case OPT_TLS_OFFLOAD:
        return parse_bool(ld, val, &dst->tls_offload);
    default:
        return fail(ld, "internal error: not a choice option");
    }
}

/*
 * Parses <val> for option <id> from source ld->src and stores it in the config if that source
 * outranks whatever set the slot before, otherwise in the scratch struct.
 */
static int apply(struct loader *ld, enum opt_id id, const char *val)
{
    enum opt_id slot = opts[id].slot;
    struct config *dst = &ld->scratch;

    ld->opt = id;
    if (ld->src >= ld->rank[slot]) {
        dst = ld->c;
        ld->rank[slot] = ld->src;
    }
    if (*val == '\0')
        return fail(ld, "empty value");
    switch (id) {
    case OPT_LISTEN:
        return parse_addr(ld, val, &dst->listen_host, &dst->listen_port);
    case OPT_TLS_LISTEN:
        return parse_addr(ld, val, &dst->tls_listen_host, &dst->tls_listen_port);
    case OPT_TLS_CERT:
        return set_str(ld, &dst->tls_cert, val, strlen(val));
    case OPT_TLS_KEY:
        return set_str(ld, &dst->tls_key, val, strlen(val));
    case OPT_JWT_SECRET:
        return set_str(ld, &dst->jwt_secret, val, strlen(val));
    case OPT_JWT_SECRET_FILE:
        return read_secret_file(ld, val, &dst->jwt_secret);
    case OPT_API_KEY:
        return set_str(ld, &dst->api_key, val, strlen(val));
    case OPT_REDIS:
        return parse_redis(ld, val, &dst->redis_url);
    case OPT_ALLOWED_ORIGINS:
        return parse_origins(ld, val, dst);
    case OPT_CONFIG:
        if (dst == ld->c) {
            ld->config_path = val;
            ld->config_src = ld->src;
        }
        return 0;
    case OPT_SLOW_CONSUMER:
    case OPT_LOG_LEVEL:
    case OPT_ALLOW_ANONYMOUS:
    case OPT_TLS_OFFLOAD:
        return apply_choice(ld, dst, val);
    default:
        return apply_number(ld, dst, val);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Sources                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/*
 * Writes the --help or --version text. Returns 1, or -1 when stdout cannot take it, so that
 * "ringcast --help > /full/disk" does not exit 0.
 */
static int print(struct loader *ld, const char *text)
{
    if (fputs(text, stdout) == EOF || fflush(stdout) == EOF)
        return fail_plain(ld, "cannot write the output: %s", strerror(errno));
    return 1;
}

static int find_opt(const char *name, size_t len)
{
    for (int i = 0; i < NR_OPTS; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return i;
    return -1;
}

/*
 * "--opt=value" always; "--opt value" only when the next argument does not look like an
 * option itself, so that "--jwt-secret --listen :80" is a missing value and not a secret.
 */
static int load_argv(struct loader *ld, int argc, char **argv)
{
    ld->src = SRC_CLI;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--") == 0) {
            if (i + 1 < argc)
                return fail_plain(ld, "unexpected argument '%s' (see --help)",
                                  show(ld, argv[i + 1]));
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            return fail_plain(ld, "unexpected argument '%s' (see --help)", show(ld, arg));

        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        bool negated = false;
        int id;

        if (strcmp(arg, "-h") == 0 || (arg[1] == '-' && len == 4 && !strncmp(name, "help", 4))) {
            if (eq != NULL)
                return fail_plain(ld, "--help takes no value");
            return print(ld, config_usage);
        }
        if (strcmp(arg, "-V") == 0 || (arg[1] == '-' && len == 7 && !strncmp(name, "version", 7))) {
            if (eq != NULL)
                return fail_plain(ld, "--version takes no value");
            return print(ld, "ringcast " RINGCAST_VERSION "\n");
        }
        if (arg[1] != '-')
            return fail_plain(ld, "unknown option '%s' (see --help)", show(ld, arg));
        id = find_opt(name, len);
        if (id < 0 && len > 3 && !strncmp(name, "no-", 3)) {
            id = find_opt(name + 3, len - 3);
            negated = true;
            if (id >= 0 && !(opts[id].flags & OPT_F_FLAG))
                id = -1;
        }
        if (id < 0) {
            /* Only the name: what follows '=' may be a secret. */
            char shown[64];

            (void)snprintf(shown, sizeof(shown), "%.*s", (int)(len < 60 ? len : 60), name);
            return fail_plain(ld, "unknown option '--%s' (see --help)", show(ld, shown));
        }
        ld->opt = (enum opt_id)id;

        const char *val;

        if (opts[id].flags & OPT_F_FLAG) {
            if (eq != NULL)
                return fail(ld, "takes no value (use --%s or --no-%s)", opts[id].name,
                            opts[id].name);
            val = negated ? "false" : "true";
        } else if (eq != NULL) {
            val = eq + 1;
        } else if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-')) {
            return fail(ld, "missing value");
        } else {
            val = argv[++i];
        }
        if (apply(ld, (enum opt_id)id, val) < 0)
            return -1;
    }
    return 0;
}

/* An empty variable counts as unset, so "RINGCAST_X=${X:-}" in a container file is harmless. */
static int load_env(struct loader *ld, char **envp)
{
    if (envp == NULL)
        return 0;
    ld->src = SRC_ENV;
    for (int i = 0; i < NR_OPTS; i++) {
        char name[64];
        size_t len;

        env_name(name, sizeof(name), opts[i].name);
        len = strlen(name);
        for (char **e = envp; *e != NULL; e++) {
            if (strncmp(*e, name, len) != 0 || (*e)[len] != '=')
                continue;
            if ((*e)[len + 1] != '\0' && apply(ld, (enum opt_id)i, *e + len + 1) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

static char *trim(char *s)
{
    char *e = s + strlen(s);

    while (*s == ' ' || *s == '\t')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    *e = '\0';
    return s;
}

/*
 * The value part of "key = value": quoted ('...' or "...", no escapes, so a secret can hold a
 * '#'), or bare, where whitespace then '#' starts a comment. Returns NULL with an error set.
 */
static char *file_value(struct loader *ld, char *v)
{
    v = trim(v);
    if (*v == '"' || *v == '\'') {
        char *close = strchr(v + 1, *v);
        char *rest;

        if (close == NULL) {
            fail(ld, "unterminated quote");
            return NULL;
        }
        *close = '\0';
        rest = trim(close + 1);
        if (*rest != '\0' && *rest != '#') {
            fail(ld, "unexpected text after the closing quote: '%s'", show(ld, rest));
            return NULL;
        }
        return v + 1;
    }
    for (char *p = v; *p != '\0'; p++) {
        if (*p == '#' && p > v && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    return trim(v);
}

static int file_line(struct loader *ld, char *line)
{
    char *key = trim(line), *eq, *val;
    int id;

    if (*key == '\0' || *key == '#')
        return 0;
    eq = strchr(key, '=');
    if (eq == NULL || eq == key)
        return fail_plain(ld, "%s:%u: expected 'name = value', got '%s'", ld->path, ld->line,
                          show(ld, key));
    *eq = '\0';
    key = trim(key);
    /* Underscores too, for whoever lower-cases an environment name. */
    for (char *p = key; *p != '\0'; p++)
        if (*p == '_')
            *p = '-';
    id = find_opt(key, strlen(key));
    if (id < 0)
        return fail_plain(ld, "%s:%u: unknown option '%s'", ld->path, ld->line, show(ld, key));
    ld->opt = (enum opt_id)id;
    if (opts[id].flags & OPT_F_NOFILE)
        return fail(ld, "not allowed in a config file");
    val = file_value(ld, eq + 1);
    if (val == NULL)
        return -1;
    return apply(ld, (enum opt_id)id, val);
}

static int load_file(struct loader *ld)
{
    const char *who = ld->config_src == SRC_CLI ? "--config" : "RINGCAST_CONFIG";
    FILE *f = fopen(ld->config_path, "r");
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;

    if (f == NULL)
        return fail_plain(ld, "%s: cannot read '%s': %s", who, show(ld, ld->config_path),
                          strerror(errno));
    ld->src = SRC_FILE;
    ld->path = ld->config_path;
    ld->line = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        char *l = line;

        ld->line++;
        if (ld->line == 1 && memcmp(l, "\xef\xbb\xbf", 3) == 0)
            l += 3; /* a UTF-8 byte order mark, as some Windows editors write */
        rc = file_line(ld, l);
    }
    if (rc == 0 && ferror(f))
        rc = fail_plain(ld, "%s: cannot read '%s': %s", who, show(ld, ld->config_path),
                        strerror(errno));
    free(line);
    (void)fclose(f);
    return rc;
}

/* Checks that need every source read. */
static int finish(struct loader *ld)
{
    struct config *c = ld->c;

    if (ld->rank[OPT_ALLOW_ANONYMOUS] == SRC_DEFAULT)
        c->allow_anonymous = c->jwt_secret == NULL;
    if (c->tls_listen_host != NULL && (c->tls_cert == NULL || c->tls_key == NULL))
        return fail_plain(ld, "--tls-listen: needs %s",
                          c->tls_cert == NULL ? "--tls-cert and --tls-key" : "--tls-key");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* API                                                                                       */
/* ---------------------------------------------------------------------------------------- */

void config_defaults(struct config *c)
{
    *c = (struct config){
        .listen_host = default_listen_host,
        .listen_port = 8080,
        .max_message = 65536,
        .send_queue = 1048576,
        .slow_consumer = SLOW_CLOSE,
        .ping_interval = 25,
        .idle_timeout = 60,
        .handshake_timeout = 5,
        .history_size = 100,
        .history_ttl = 300,
        .allow_anonymous = true,
        .log_level = LOG_INFO,
        .tls_offload = true,
        .tls_max_handshakes = 256,
    };
}

int config_load(struct config *c, int argc, char **argv, char **envp, char *err, size_t err_cap)
{
    struct loader ld = {.c = c, .err = err, .err_cap = err_cap};
    int rc;

    if (err != NULL && err_cap > 0)
        err[0] = '\0';
    config_defaults(c);
    config_defaults(&ld.scratch);
    rc = load_argv(&ld, argc, argv);
    if (rc == 0)
        rc = load_env(&ld, envp);
    if (rc == 0 && ld.config_path != NULL)
        rc = load_file(&ld);
    if (rc == 0)
        rc = finish(&ld);
    config_fini(&ld.scratch);
    if (rc != 0)
        config_fini(c);
    return rc;
}

void config_fini(struct config *c)
{
    free_str(c->listen_host);
    free_str(c->tls_listen_host);
    free_str(c->tls_cert);
    free_str(c->tls_key);
    free_str(c->jwt_secret);
    free_str(c->api_key);
    free_str(c->redis_url);
    free_origins(c->allowed_origins);
    config_defaults(c);
}

/* clang-format off */
const char config_usage[] =
"Usage: ringcast [OPTION]...\n"
"A WebSocket broker: rooms fan out across shards, one io_uring per shard.\n"
"\n"
"Listeners:\n"
"  --listen HOST:PORT          plain HTTP/WebSocket listener; port 0 picks a\n"
"                              free port (default 0.0.0.0:8080)\n"
"  --tls-listen HOST:PORT      TLS listener; needs the next two (default: none)\n"
"  --tls-cert FILE             PEM certificate chain for --tls-listen\n"
"  --tls-key FILE              PEM private key for --tls-listen\n"
"  --tls-offload on|off        after the TLS handshake, free the TLS library's\n"
"                              session and run the record layer in ringcast\n"
"                              (idle TLS connections then cost about what\n"
"                              plain ones do) (default on)\n"
"  --tls-max-handshakes N      TLS handshakes under way at once per shard;\n"
"                              later connections wait, unread, for a turn\n"
"                              (the handshake timeout still runs). Bounds\n"
"                              the ~40 KiB each one holds (default 256;\n"
"                              0: no limit)\n"
"  HOST is an IPv4 address, localhost, * or empty (all addresses), or [IPv6].\n"
"\n"
"Capacity:\n"
"  --shards N                  shard threads, one io_uring each, 1..64\n"
"                              (default: one per online CPU)\n"
"  --max-conns N               connections at once, all shards together,\n"
"                              at most 1073741824 (default 0: what the\n"
"                              limits allow)\n"
"  --max-conns-per-ip N        upgrades held from one address; more get\n"
"                              HTTP 429 (default 0: no limit)\n"
"  --max-message BYTES         largest WebSocket message; above it, close\n"
"                              1009; at most 1g (default 64k)\n"
"  --send-queue BYTES          unsent bytes per connection before the\n"
"                              slow-consumer policy acts; at most 2g\n"
"                              (default 1m)\n"
"  --slow-consumer close|drop  close with 1008, or drop the oldest queued\n"
"                              messages (default close)\n"
"  --rate-limit MSGS/S         publishes per second per connection, fractions\n"
"                              allowed, at most 1000000; excess closes with\n"
"                              1008 (default 0: no limit)\n"
"  BYTES takes a k, m or g suffix, in binary multiples: 64k is 65536.\n"
"\n"
"Timers, in whole seconds:\n"
"  --ping-interval S           server pings; 0 disables them (default 25)\n"
"  --idle-timeout S            close a connection silent this long, pongs\n"
"                              included; 0 disables it (default 60)\n"
"  --handshake-timeout S       from accept to a complete upgrade, at least 1\n"
"                              (default 5)\n"
"\n"
"History (every room: offsets, history, recovery):\n"
"  --history-size N            messages kept per room, 0 for none\n"
"                              (default 100)\n"
"  --history-ttl S             how long a room's history outlives its last\n"
"                              message, 0 for as long as the broker runs\n"
"                              (default 300)\n"
"\n"
"Access:\n"
"  --jwt-secret S              HS256 secret for connection and subscription\n"
"                              tokens (default: none); arguments show in ps,\n"
"                              so prefer:\n"
"  --jwt-secret-file FILE      read the secret from FILE, trailing newline\n"
"                              dropped\n"
"  --allow-anonymous           accept protocol connections without a token\n"
"  --no-allow-anonymous        require a token\n"
"                              (default: allow only when no secret is set)\n"
"  --allowed-origins LIST      comma-separated Origin values allowed to\n"
"                              upgrade (default *: any)\n"
"  --api-key K                 enable the server HTTP API (POST /api/METHOD)\n"
"                              for requests with X-API-Key: K (default: none,\n"
"                              the API is off: 404)\n"
"\n"
"Cluster and logs (--redis: refused by this version, no cluster yet):\n"
"  --redis URL                 join other brokers through Redis,\n"
"                              redis://HOST:PORT[/DB] (default: none)\n"
"  --log-level LEVEL           error, warn, info or debug (default info)\n"
"\n"
"Other:\n"
"  --config FILE               read options from FILE (default: none)\n"
"  -h, --help                  show this help and exit\n"
"  -V, --version               show the version and exit\n"
"\n"
"Every option can be written --name VALUE or --name=VALUE, and can also come\n"
"from the environment or from the config file:\n"
"  environment   RINGCAST_ and the name in capitals, '-' as '_':\n"
"                RINGCAST_MAX_CONNS=100000, RINGCAST_CONFIG=/etc/ringcast.conf;\n"
"                an empty variable counts as unset\n"
"  config file   one \"name = value\" per line: max-conns = 100000; '#' starts a\n"
"                comment; the value may be quoted, '...' or \"...\", to keep a '#'\n"
"In both, --allow-anonymous takes a value: on/off, true/false, yes/no or 1/0.\n"
"For each option the command line wins over the environment, which wins over\n"
"the file, which wins over the default.\n"
"\n"
"Exit status: 0 after a clean shutdown, 2 for a bad option, value or file.\n";
/* clang-format on */
