/* SPDX-License-Identifier: MIT */
/*
 * web: the pages the broker serves itself (GET / the chat page, GET /ops the operations page,
 * their /assets/, and the 404 page browsers get), compiled into the binary from engine/web/ by
 * cmake/EmbedAssets.cmake, which writes the table below.
 *
 * Every answer carries what a browser expects of a static file: Content-Type with a charset,
 * an ETag (answered 304 when If-None-Match holds it), `Cache-Control: no-cache` (the URLs are
 * not versioned, so the browser revalidates, and a 304 is a few hundred bytes), the gzip copy
 * with `Content-Encoding: gzip` when Accept-Encoding takes it, and the security headers: a
 * Content-Security-Policy that allows scripts, styles and fetches from the broker only, so no
 * inline script runs, and `X-Content-Type-Options: nosniff`. HEAD is the HTTP handler's.
 *
 * Owns nothing at run time: the table is constant. Shard rule: the route is called on the
 * shard that owns the connection, like every route.
 */
#ifndef RINGCAST_WEB_H
#define RINGCAST_WEB_H

#include "http.h"

#include <stddef.h>
#include <stdint.h>

struct web_asset {
    const char *path; /* where it is served: "/ops", "/assets/ops.js"; WEB_NOT_FOUND_PAGE */
    const char *type; /* Content-Type, with a charset for text */
    const uint8_t *data;
    size_t len;
    const uint8_t *gz; /* the gzip copy; NULL when gzip was missing or did not make it smaller */
    size_t gz_len;
    const char *etag;    /* quoted, of <data> */
    const char *gz_etag; /* quoted, of the gzip representation; NULL without <gz> */
};

/* The key of the 404 page in the table: no route serves this path, so asking for it gets the
 * page, with its 404 status, like any other unknown path. */
#define WEB_NOT_FOUND_PAGE "/404"

/* Generated (web_assets.c). */
extern const struct web_asset web_assets[];
extern const size_t web_nr_assets;

/* The asset served at <path>, or NULL. Cannot fail. */
const struct web_asset *web_asset_find(struct http_str path);

/* The route of GET /, GET /ops and GET /assets/...: answers the asset, 304, or 404 (as
 * web_not_found) for a path under /assets/ that has none. */
void web_route_asset(struct shard *s, struct conn *c, const struct http_request *req,
                     const uint8_t *body, size_t body_len);

/*
 * Answers 404 to <req> on <c>: the small HTML page (WEB_NOT_FOUND_PAGE, with the security
 * headers, no ETag) when its Accept names text/html, as a browser's navigation does, and the
 * one line "not found" otherwise, so that scripts, curl and WebSocket clients see what they
 * always saw. Counted as a failed handshake (not_found). Keeps <c> unless the request says
 * close.
 */
void web_not_found(struct shard *s, struct conn *c, const struct http_request *req);

#endif
