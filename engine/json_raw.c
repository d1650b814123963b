/* SPDX-License-Identifier: MIT */
/*
 * json_raw: member value spans in JSON text jansson accepted. The contract is in json_raw.h.
 *
 * Every step function takes the text and an index and returns the index just past what it
 * stepped over, never beyond <len>: on text that is not valid JSON the result is wrong but
 * the reads stay inside the span.
 */
#include "json_raw.h"

#include <string.h>

static bool is_ws(char c)
{
    /* RFC 8259 §2: insignificant whitespace. */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

/* <i> is at the opening quote; returns the index past the closing one. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

/* Steps over one value of any type starting at <i> (no leading whitespace). */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] != '{' && s[i] != '[') {
        /* A number or a literal: it ends at a delimiter. */
        while (i < len && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']')
            i++;
        return i;
    }
    size_t depth = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, len, i);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return len;
}

/* Does the raw key token <s>[<a>..<b>) (quotes included) decode to <key>/<key_len>? */
static bool key_equal(const char *s, size_t a, size_t b, const char *key, size_t key_len)
{
    const char *raw = s + a + 1;
    size_t raw_len = b - a >= 2 ? b - a - 2 : 0;
    if (memchr(raw, '\\', raw_len) == NULL)
        return raw_len == key_len && memcmp(raw, key, key_len) == 0;
    /* Escaped key: rare (no SDK writes one), so let jansson decode it. */
    json_t *j = json_loadb(s + a, b - a, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool eq = j && json_is_string(j) && json_string_length(j) == key_len &&
              memcmp(json_string_value(j), key, key_len) == 0;
    json_decref(j);
    return eq;
}

struct json_raw json_raw_trim(const char *p, size_t len)
{
    size_t a = skip_ws(p, len, 0), b = len;
    while (b > a && is_ws(p[b - 1]))
        b--;
    return (struct json_raw){.p = p + a, .len = b - a};
}

bool json_raw_member(const char *obj, size_t len, const char *key, size_t key_len,
                     struct json_raw *out)
{
    *out = (struct json_raw){0};
    size_t i = skip_ws(obj, len, 0);
    if (i >= len || obj[i] != '{')
        return false;
    i++;
    for (;;) {
        i = skip_ws(obj, len, i);
        if (i >= len || obj[i] != '"')
            return false; /* '}' of an empty object, or the end */
        size_t ka = i;
        i = skip_string(obj, len, i);
        size_t kb = i;
        i = skip_ws(obj, len, i);
        if (i >= len || obj[i] != ':')
            return false;
        i = skip_ws(obj, len, i + 1);
        size_t va = i;
        i = skip_value(obj, len, i);
        if (key_equal(obj, ka, kb, key, key_len)) {
            out->p = obj + va;
            out->len = i - va;
            return true;
        }
        i = skip_ws(obj, len, i);
        if (i >= len || obj[i] != ',')
            return false;
        i++;
    }
}

json_t *json_raw_load(const char *p, size_t len, size_t flags)
{
    json_error_t err;
    json_t *j = json_loadb(p, len, flags | JSON_REJECT_DUPLICATES, &err);
    if (!j && json_error_code(&err) == json_error_numeric_overflow)
        j = json_loadb(p, len, flags | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, NULL);
    return j;
}
