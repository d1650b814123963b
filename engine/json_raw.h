/* SPDX-License-Identifier: MIT */
/*
 * json_raw: byte spans of member values inside JSON text that jansson has already accepted.
 *
 * The Centrifugo protocol embeds application JSON (`data`, `info`, `conn_info`) in its own
 * messages, and Centrifugo passes those values on byte for byte (Go's json.RawMessage).
 * jansson parses and validates, but gives no positions, and re-encoding its tree would change
 * the bytes (a real becomes 17 significant digits, an integer beyond int64 fails). So the
 * codec parses with jansson first and then asks this module where a member's value lies in
 * the text it parsed, and copies those bytes.
 *
 * This is a locator, not a parser: it steps over strings, brackets and scalars and relies on
 * the text being one valid JSON value (it never reads outside the span it was given, but on
 * invalid text its answer is meaningless). Duplicate keys must have been refused by the parse
 * (JSON_REJECT_DUPLICATES), so that the member found is the one jansson saw.
 *
 * It owns nothing and allocates nothing except, for a key written with backslash escapes, one
 * short-lived jansson string to compare it. Any thread.
 */
#ifndef RINGCAST_JSON_RAW_H
#define RINGCAST_JSON_RAW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct json_raw {
    const char *p; /* first byte of the value; NULL when absent */
    size_t len;    /* bytes of the value, without surrounding whitespace */
};

/*
 * Finds the value of member <key>/<key_len> of the JSON object whose text (surrounding
 * whitespace allowed) is <obj>/<len>, and sets *<out> to its span, which borrows <obj>.
 * Keys written with escapes (`"d\u0061ta"`) match their decoded form.
 * Returns true when found; false when the key is absent or <obj> is not an object (then
 * *<out> is {NULL, 0}). Cannot fail otherwise.
 */
bool json_raw_member(const char *obj, size_t len, const char *key, size_t key_len,
                     struct json_raw *out);

/*
 * Parses <p>/<len> with jansson and <flags> plus JSON_REJECT_DUPLICATES. RFC 8259 allows
 * integers of any size but jansson refuses those beyond int64; for such text it parses again
 * with JSON_DECODE_INT_AS_REAL, so that valid JSON is never refused (the exact digits stay
 * available through json_raw_member). Gives the root, or NULL when the text is not JSON or
 * memory ran out.
 */
json_t *json_raw_load(const char *p, size_t len, size_t flags);

/* Returns <p>/<len> without leading and trailing JSON whitespace, as a span. Cannot fail. */
struct json_raw json_raw_trim(const char *p, size_t len);

#endif
