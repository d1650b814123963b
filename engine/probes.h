/* SPDX-License-Identifier: MIT */
/*
 * probes: USDT probes (provider "ringcast") for perf and bpftrace, compiled to a single nop
 * each when <sys/sdt.h> is available (Debian's systemtap-sdt-dev) and to nothing otherwise.
 *   accept(shard, conn)        a connection was accepted
 *   upgrade(shard, conn, mode) the WebSocket upgrade succeeded (mode: 1 echo, 2 room)
 *   publish(shard, conn, len)  a member published a message of <len> frame bytes
 *   deliver(shard, n)          a message was queued to <n> local members
 *   slow_consumer(shard, conn, action) the policy acted (1 close, 2 drop)
 *   close(shard, conn, code)   a connection was closed with WebSocket code <code> (0: none)
 * List them with `perf list sdt_ringcast:*` after `perf buildid-cache --add ringcast`.
 */
#ifndef RINGCAST_PROBES_H
#define RINGCAST_PROBES_H

#if defined(RINGCAST_HAVE_SDT)
#include <sys/sdt.h>
#define PROBE2(name, a, b)    DTRACE_PROBE2(ringcast, name, a, b)
#define PROBE3(name, a, b, c) DTRACE_PROBE3(ringcast, name, a, b, c)
#else
#define PROBE2(name, a, b)    ((void)0)
#define PROBE3(name, a, b, c) ((void)0)
#endif

#endif
