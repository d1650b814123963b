/* SPDX-License-Identifier: MIT */
/*
 * web: static assets compiled into the binary (contract in web.h).
 */
#include "web.h"

#include "shard.h"

#include <stdio.h>
#include <string.h>

/*
 * What every asset answer carries. The policy names the broker ('self') for scripts, styles,
 * images and fetches and nothing else: no inline script or style, no plugin, no framing, no
 * form posting elsewhere. The pages keep their JavaScript and CSS in files for that reason.
 */
#define WEB_SECURITY_HEADERS                                                                       \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "                    \
    "frame-ancestors 'none'\r\n"                                                                   \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"

const struct web_asset *web_asset_find(struct http_str path)
{
    for (size_t i = 0; i < web_nr_assets; i++) {
        const struct web_asset *a = &web_assets[i];
        if (strlen(a->path) == path.len && memcmp(a->path, path.p, path.len) == 0)
            return a;
    }
    return NULL;
}

void web_not_found(struct shard *s, struct conn *c, const struct http_request *req)
{
    STAT_HS_FAIL(s, HS_FAIL_NOT_FOUND);
    struct http_str key = {WEB_NOT_FOUND_PAGE, sizeof(WEB_NOT_FOUND_PAGE) - 1};
    const struct web_asset *a = web_asset_find(key);
    if (!a || !http_accepts_type(req->accept, "text/html")) {
        http_respond(s, c, req, 404, NULL, NULL, "not found\n", 10);
        return;
    }
    /* An error answer is not a resource to keep or revalidate: no ETag, no-store. */
    bool gz = a->gz && http_accepts_coding(req->accept_encoding, "gzip");
    char headers[512];
    int n =
        snprintf(headers, sizeof(headers), "Cache-Control: no-store\r\n%s%s" WEB_SECURITY_HEADERS,
                 a->gz ? "Vary: Accept-Encoding\r\n" : "", gz ? "Content-Encoding: gzip\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(headers)) {
        http_refuse(s, c, 500, NULL, "asset headers too long");
        return;
    }
    http_respond(s, c, req, 404, headers, a->type, (const char *)(gz ? a->gz : a->data),
                 gz ? a->gz_len : a->len);
}

void web_route_asset(struct shard *s, struct conn *c, const struct http_request *req,
                     const uint8_t *body, size_t body_len)
{
    (void)body;
    (void)body_len;
    const struct web_asset *a = web_asset_find(req->path);
    if (!a) {
        web_not_found(s, c, req);
        return;
    }
    bool gz = a->gz && http_accepts_coding(req->accept_encoding, "gzip");
    const char *etag = gz ? a->gz_etag : a->etag;
    char headers[512];
    /* RFC 9110 §12.5.5: with a gzip copy the answer depends on Accept-Encoding, and a cache
     * must know; each representation has its own ETag (§8.8.3). */
    int n =
        snprintf(headers, sizeof(headers),
                 "ETag: %s\r\nCache-Control: no-cache\r\n%s%s" WEB_SECURITY_HEADERS, etag,
                 a->gz ? "Vary: Accept-Encoding\r\n" : "", gz ? "Content-Encoding: gzip\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(headers)) {
        http_refuse(s, c, 500, NULL, "asset headers too long");
        return;
    }
    size_t len = gz ? a->gz_len : a->len;
    /* RFC 9110 §13.1.2: a GET whose If-None-Match holds the current tag gets 304, no body. */
    if (http_etag_match(req->if_none_match, etag)) {
        http_respond_head(s, c, req, 304, headers, a->type, len);
        return;
    }
    http_respond(s, c, req, 200, headers, a->type, (const char *)(gz ? a->gz : a->data), len);
}
