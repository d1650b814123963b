/* SPDX-License-Identifier: MIT */
/*
 * list: the two intrusive list shapes the engine uses, named once.
 *
 *   struct list  a circular doubly linked list with a sentinel head: O(1) insertion and removal
 *                of any node (a room's subscriptions, its rooms with a pending note).
 *   struct fifo  a singly linked queue known by its tail: O(1) append at the tail and removal
 *                at the head only (a connection's send queue, the shard's flush and TLS
 *                handshake wait lists).
 *
 * The nodes are embedded in the objects they link (Linux's list_head, HAProxy's mt_list); the
 * owner of the list owns the links, never the objects. An unlinked list node has NULL links, so
 * the all-zero value of an object is a valid unlinked state. Nothing here allocates or fails.
 * Not thread-safe: a list belongs to one shard.
 */
#ifndef RINGCAST_LIST_H
#define RINGCAST_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* The object of type <type> whose member <member> is at <ptr>. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- doubly linked, circular, with a sentinel ------------------------------------------- */

struct list {
    struct list *next, *prev;
};

/* Makes <head> an empty list. Cannot fail. */
static inline void list_init(struct list *head)
{
    head->next = head->prev = head;
}

/* True when the list <head> (initialised) has no node. */
static inline bool list_empty(const struct list *head)
{
    return head->next == head;
}

/* True when <node> is on a list (it was added and not removed since). */
static inline bool list_linked(const struct list *node)
{
    return node->next != NULL;
}

static inline void list_add_tail(struct list *head, struct list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void list_add_head(struct list *head, struct list *node)
{
    node->next = head->next;
    node->prev = head;
    head->next->prev = node;
    head->next = node;
}

/* Unlinks <node> from its list and leaves it unlinked (NULL links). */
static inline void list_del(struct list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = NULL;
}

/* The first node of <head>, or NULL when empty. */
static inline struct list *list_first(const struct list *head)
{
    return head->next == head ? NULL : head->next;
}

/*
 * Iterates with <pos> over <head>; <tmp> holds the next node, read before the body runs, so
 * the body may remove <pos> (and only <pos>). Nothing is read after the last node's body.
 */
#define list_for_each_safe(pos, tmp, head)                                                         \
    for ((pos) = (head)->next; (pos) != (head) && ((tmp) = (pos)->next, 1); (pos) = (tmp))

/* ---- singly linked queue ----------------------------------------------------------------- */

/*
 * A circle of nodes known by its tail alone (tail->next is the head): one pointer per queue,
 * which matters where a queue is embedded in every connection slot.
 */
struct fifo_link {
    struct fifo_link *next;
};

struct fifo {
    struct fifo_link *tail; /* NULL when empty */
};

static inline bool fifo_empty(const struct fifo *q)
{
    return q->tail == NULL;
}

/* The head of <q>, or NULL when empty. */
static inline struct fifo_link *fifo_head(const struct fifo *q)
{
    return q->tail ? q->tail->next : NULL;
}

/* The node after <l> in <q>, or NULL when <l> is the tail. */
static inline struct fifo_link *fifo_next(const struct fifo *q, const struct fifo_link *l)
{
    return l == q->tail ? NULL : l->next;
}

static inline void fifo_push(struct fifo *q, struct fifo_link *l)
{
    if (q->tail) {
        l->next = q->tail->next;
        q->tail->next = l;
    } else {
        l->next = l;
    }
    q->tail = l;
}

/* Removes and returns the head, or NULL when empty. */
static inline struct fifo_link *fifo_pop(struct fifo *q)
{
    struct fifo_link *t = q->tail;
    if (!t)
        return NULL;
    struct fifo_link *h = t->next;
    if (h == t)
        q->tail = NULL;
    else
        t->next = h->next;
    h->next = NULL;
    return h;
}

#endif
