/* SPDX-License-Identifier: MIT */
/*
 * raw: the two plain WebSocket modes. WS /echo sends every message back to its sender; WS
 * /room/<name> makes the connection a member of one room through one subscription, and every
 * message it sends goes verbatim (same opcode) to the room's other members (?echo=1: to itself
 * too). Both are WebSocket applications (ws.h) registered in routes.c.
 */
#ifndef RINGCAST_RAW_H
#define RINGCAST_RAW_H

#include "http.h"
#include "ws.h"

extern const struct ws_handler raw_echo_handler;
extern const struct ws_handler raw_room_handler;

/* The upgrade routes of GET /echo and GET /room/<name>. */
void raw_route_echo(struct shard *s, struct conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len);
void raw_route_room(struct shard *s, struct conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len);

#endif
