/* SPDX-License-Identifier: MIT */
/*
 * iptable: connection counts per IPv4 address, for --max-conns-per-ip. Holds an entry only for
 * an address with at least one counted connection: the entry goes when its count drops to 0,
 * so the table is as large as the set of addresses connected now, never the set of all
 * addresses ever seen, and it shrinks back after a crowd leaves.
 *
 * An open-addressing hash table (linear probing, deletion by backward shift, so no tombstones
 * pile up), kept at most half full and keyed by a hash seeded at random per table, so that
 * clients choosing their addresses cannot line them up on one probe run: lookups stay short
 * whatever came and went.
 *
 * Owns its entries. Every function may be called from any thread: one mutex serialises them.
 * That is fine here because the table is off the hot path: one acquire per WebSocket upgrade
 * and one release per close of a counted connection, each a few probes under the lock.
 */
#ifndef RINGCAST_IPTABLE_H
#define RINGCAST_IPTABLE_H

#include <stddef.h>
#include <stdint.h>

/* The engine names this type (struct engine's ips); the module prefix is iptable_. */
struct ip_table;

/* Smallest number of slots; the table never shrinks below it. */
#define IPTABLE_MIN_CAP 64

/* Creates an empty table. Returns NULL when out of memory. */
struct ip_table *iptable_create(void);

/* Frees <t> and every entry. NULL is a no-op. Cannot fail. */
void iptable_destroy(struct ip_table *t);

/*
 * Counts one more connection from <ip> unless it already has <limit>. Returns 0 when counted,
 * -EUSERS when <ip> is at <limit> (nothing changes), -ENOMEM when a new address could not be
 * added because the table could not grow.
 */
int iptable_acquire(struct ip_table *t, uint32_t ip, uint64_t limit);

/* Counts one connection from <ip> fewer; the entry goes at 0. An address with no count is a
 * no-op. Cannot fail (shrinking is skipped when memory for the smaller table is lacking). */
void iptable_release(struct ip_table *t, uint32_t ip);

/* Connections counted for <ip> (0 when it has no entry). */
uint32_t iptable_count(struct ip_table *t, uint32_t ip);

/* Addresses with an entry now. */
size_t iptable_nr(struct ip_table *t);

/* Slots allocated now (a power of two, at least IPTABLE_MIN_CAP): how big the table is. */
size_t iptable_cap(struct ip_table *t);

#endif
