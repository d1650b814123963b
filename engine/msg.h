/* SPDX-License-Identifier: MIT */
/*
 * msg: one outgoing message, its WebSocket frame encoded once and shared by reference by every
 * connection that sends it, on every shard (Redis's shared bulk). The reference count is the
 * only field written after creation, and the only mutable state shared between shards.
 *
 * A msg also carries the room it was published to and its publisher, so that a shard
 * receiving it over the cross-shard queue can find its local members and skip the sender.
 *
 * Ownership: msg_create gives the caller one reference; msg_ref takes another; msg_unref drops
 * one and frees on the last. Any shard may drop the last reference (glibc's allocator takes
 * frees from any thread).
 */
#ifndef RINGCAST_MSG_H
#define RINGCAST_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    atomic_uint refs;
    uint32_t len;       /* frame bytes at data[0..len) */
    uint64_t room_hash; /* xxh3 of the room name; 0 when not a room message */
    uint32_t origin;    /* publisher: shard << 24 | ... see shard.c; UINT32_MAX for none */
    uint32_t origin_gen;
    uint64_t t_recv_ns; /* CLOCK_MONOTONIC receipt of the publish; 0: not a publish */
    uint64_t offset;    /* the room's offset, given by its home before the fan-out; 0: none */
    struct msg *pub;    /* set by the room's home before the fan-out, NULL if it made none: the
                           protocol `pub` push of this message, encoded once for every shard;
                           this msg holds one reference to it */
    uint16_t name_len;  /* room name at data[len..len+name_len) */
    uint16_t info_len;  /* publisher's ClientInfo JSON at data[len+name_len..+info_len); 0: none */
    uint8_t opcode;
    uint8_t kind; /* enum msg_kind */
    uint8_t _pad[2];
    uint8_t data[];
};

/* What a room message is to its members (room.c's fan-out reads it). */
enum msg_kind {
    MSG_PUB = 0,    /* a publication: raw members get the frame, protocol members a pub push */
    MSG_PROTO_ONLY, /* a ready protocol push (join, leave) for members that asked join_leave */
};

/*
 * Allocates a msg with room for a <len>-byte frame and a <name_len>-byte room name.
 * Returns it with one reference, or NULL when out of memory.
 */
struct msg *msg_create(size_t len, size_t name_len);

/*
 * Creates a msg holding the server frame (FIN set, unmasked) for a message of <opcode> with
 * payload <p>[0..<len>), followed by the room name <name>[0..<name_len>) (may be empty).
 * Returns it with one reference, or NULL when out of memory.
 */
struct msg *msg_frame(uint8_t opcode, const uint8_t *p, size_t len, const char *name,
                      size_t name_len);

/* msg_frame, followed by the publisher's ClientInfo JSON <info>[0..<info_len>) (at most
 * UINT16_MAX bytes; may be empty). Returns it with one reference, or NULL when out of memory. */
struct msg *msg_frame_info(uint8_t opcode, const uint8_t *p, size_t len, const char *name,
                           size_t name_len, const char *info, size_t info_len);

/*
 * The payload of the server frame <m> holds (FIN set, unmasked, as msg_frame writes it): sets
 * *<len> and returns where it starts within <m>, borrowed as long as <m> is. Cannot fail.
 */
const uint8_t *msg_payload(const struct msg *m, size_t *len);

static inline const char *msg_room_name(const struct msg *m)
{
    return (const char *)m->data + m->len;
}

static inline const char *msg_info(const struct msg *m)
{
    return (const char *)m->data + m->len + m->name_len;
}

/* Takes a reference. Cannot fail. Relaxed: the caller already holds one. */
static inline struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/*
 * Drops a reference and frees <m> on the last one. acq_rel: the release orders this shard's
 * last reads of <m> before the free that another shard may do; the acquire on the final
 * decrement pairs with them.
 */
void msg_unref(struct msg *m);

/* Adds <n> references at once (a fan-out to <n> local members). Cannot fail. */
static inline void msg_ref_n(struct msg *m, unsigned n)
{
    atomic_fetch_add_explicit(&m->refs, n, memory_order_relaxed);
}

/*
 * Drops <n> references the caller holds besides at least one more (so this never frees).
 * Cannot fail.
 */
static inline void msg_unref_n(struct msg *m, unsigned n)
{
    atomic_fetch_sub_explicit(&m->refs, n, memory_order_relaxed);
}

#endif
