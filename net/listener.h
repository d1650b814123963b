/* SPDX-License-Identifier: MIT */
/*
 * listener: one SO_REUSEPORT listening socket per shard, so the kernel spreads new
 * connections over the shards without any shared accept queue.
 *
 * Owns the socket it returns (the caller closes it). Main thread, before the shards start.
 */
#ifndef RINGCAST_LISTENER_H
#define RINGCAST_LISTENER_H

#include <stdint.h>

/*
 * Opens a TCP listener on <host>:<port> (IPv4 dotted quad, or IPv6 literal) with
 * SO_REUSEADDR, SO_REUSEPORT, TCP_NODELAY (inherited by accepted sockets, which are direct
 * descriptors where setsockopt is awkward) and TCP_DEFER_ACCEPT of <defer_s> seconds when
 * non-zero (the client speaks first in HTTP, so the accept completes with the request
 * already queued). Returns the fd or a negative errno; *<what> names the failing step.
 */
int listener_open(const char *host, uint16_t port, int backlog, int defer_s, const char **what);

/* The port a listener is bound to (useful after binding port 0), or a negative errno. */
int listener_port(int fd);

#endif
