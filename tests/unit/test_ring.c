/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net/ring.c, net/bufring.c and net/listener.c, through their public headers:
 * ring setup and its flags, the user_data codec, ring_sqe when the SQ is full, provided buffer
 * rings with a real multishot receive (data lands in a provided buffer, recycling gives it
 * back, -ENOBUFS when none is left), and SO_REUSEPORT listeners accepting through the ring.
 *
 * Where io_uring_queue_init fails with -ENOSYS, -EPERM or -EINVAL (sandbox, seccomp, old
 * kernel), a ring test skips. Ring tests run twice: with SINGLE_ISSUER|DEFER_TASKRUN (what
 * ring_init picks on this kernel) and with no taskrun flags. Every test cancels what it armed,
 * reaps every completion, and frees what it made: nothing is in flight at io_uring_queue_exit.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "bufring.h"
#include "listener.h"
#include "ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Ring modes and helpers
 * -------------------------------------------------------------------------------------------*/

struct ring_mode {
    const char *name;
    bool defer; /* ring_init (SINGLE_ISSUER|DEFER_TASKRUN here), else no taskrun flags */
};

static struct ring_mode mode_defer = {"SINGLE_ISSUER|DEFER_TASKRUN", true};
static struct ring_mode mode_plain = {"no taskrun flags", false};

static int setup_defer(void **state)
{
    *state = &mode_defer;
    return 0;
}

static int setup_plain(void **state)
{
    *state = &mode_plain;
    return 0;
}

static bool io_uring_unavailable(int ret)
{
    return ret == -ENOSYS || ret == -EPERM || ret == -EINVAL;
}

/* Creates <ring> as the test's mode asks; skips where io_uring (or the mode) is unavailable. */
static void ring_open(void **state, struct io_uring *ring, unsigned sq, unsigned cq)
{
    const struct ring_mode *mode = *state;
    int ret;
    if (mode->defer) {
        ret = ring_init(ring, sq, cq);
    } else {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(sq, ring, &p);
    }
    if (io_uring_unavailable(ret))
        skip();
    assert_int_equal(ret, 0);
    if (mode->defer && !(ring->flags & IORING_SETUP_DEFER_TASKRUN)) {
        io_uring_queue_exit(ring); /* ring_init fell back: this kernel has no DEFER_TASKRUN */
        skip();
    }
    if (!mode->defer)
        assert_int_equal(ring->flags & IORING_SETUP_DEFER_TASKRUN, 0);
}

struct cqe {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
};

/* Submits what is queued and waits up to 5 s for one completion. */
static struct cqe wait_one(struct io_uring *ring)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 5, .tv_nsec = 0};
    assert_true(io_uring_submit(ring) >= 0);
    int ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
    if (ret < 0)
        fail_msg("no completion: %s", strerror(-ret));
    struct cqe out = {.ud = cqe->user_data, .res = cqe->res, .flags = cqe->flags};
    io_uring_cqe_seen(ring, cqe);
    return out;
}

#define UD_CANCEL ring_ud(0xcc, 0, 0)

/*
 * Cancels the multishot request <ud> and reaps both its last completion (no F_MORE) and the
 * cancel's own, in whatever order they come.
 */
static void cancel_and_reap(struct io_uring *ring, uint64_t ud)
{
    struct io_uring_sqe *sqe = ring_sqe(ring);
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, UD_CANCEL);
    bool cancel_done = false, target_done = false;
    while (!cancel_done || !target_done) {
        struct cqe c = wait_one(ring);
        if (c.ud == UD_CANCEL) {
            assert_int_equal(c.res, 0);
            cancel_done = true;
        } else {
            assert_int_equal(c.ud, ud);
            if (!(c.flags & IORING_CQE_F_MORE))
                target_done = true;
        }
    }
}

/* Nothing left in the CQ: every completion was reaped. */
static void ring_close(struct io_uring *ring)
{
    assert_int_equal(io_uring_cq_ready(ring), 0);
    io_uring_queue_exit(ring);
}

/* The lowest free descriptor number: equal before and after means nothing leaked. */
static int lowest_free_fd(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static int connect_to(const char *host, int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, host, &sin->sin_addr), 1);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, host, &sin6->sin6_addr), 1);
        len = sizeof(*sin6);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0)
        fail_msg("connect: %s", strerror(errno));
    return fd;
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * ring.h: setup, user_data codec, ring_sqe
 * -------------------------------------------------------------------------------------------*/

static void ring_init_prefers_defer_taskrun(void **state)
{
    (void)state;
    struct io_uring ring;
    int ret = ring_init(&ring, 64, 256);
    if (io_uring_unavailable(ret))
        skip();
    assert_int_equal(ret, 0);
    assert_true(ring.flags & IORING_SETUP_SUBMIT_ALL);
    assert_true(ring.flags & IORING_SETUP_CQSIZE);
    assert_int_equal(ring.sq.ring_entries, 64);
    assert_int_equal(ring.cq.ring_entries, 256);
    if (!(ring.flags & IORING_SETUP_DEFER_TASKRUN)) {
        /* A fallback is only right when the kernel refuses the preferred flags. */
        struct io_uring probe;
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        assert_int_equal(io_uring_queue_init_params(8, &probe, &p), -EINVAL);
    } else {
        assert_true(ring.flags & IORING_SETUP_SINGLE_ISSUER);
    }

    /* A NOP goes round with its user_data intact. */
    uint64_t ud = ring_ud(7, 0xabcdef, 0x12345678);
    struct io_uring_sqe *sqe = ring_sqe(&ring);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, ud);
    struct cqe c = wait_one(&ring);
    assert_int_equal(c.ud, ud);
    assert_int_equal(c.res, 0);
    ring_close(&ring);
}

/* Sizes the kernel refuses come back as its negative errno, with nothing to clean up. */
static void ring_init_refuses_bad_sizes(void **state)
{
    (void)state;
    struct io_uring ring;
    int ret = ring_init(&ring, 8, 8);
    if (io_uring_unavailable(ret))
        skip();
    assert_int_equal(ret, 0);
    io_uring_queue_exit(&ring);

    int before = lowest_free_fd();
    assert_int_equal(ring_init(&ring, 0, 16), -EINVAL);  /* no SQ */
    assert_int_equal(ring_init(&ring, 64, 0), -EINVAL);  /* CQSIZE of 0 */
    assert_int_equal(ring_init(&ring, 64, 16), -EINVAL); /* CQ smaller than the SQ */
    assert_int_equal(lowest_free_fd(), before);
}

static void ud_codec_round_trip(void **state)
{
    (void)state;
    static const struct {
        unsigned op;
        uint32_t gen, idx;
        uint32_t gen_out;
    } rows[] = {
        {0, 0, 0, 0},
        {1, 1, 1, 1},
        {7, 0xffffff, 0xffffffff, 0xffffff},
        {255, 0xffffff, 0, 0xffffff},
        {3, 0x1000000, 42, 0},                 /* bit 24 is not part of the generation */
        {2, 0xabcdef12, 0x80000000, 0xcdef12}, /* only the low 24 bits travel */
        {0x80, 0x123456, 0x7fffffff, 0x123456},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t ud = ring_ud(rows[i].op, rows[i].gen, rows[i].idx);
        assert_int_equal(ring_ud_op(ud), rows[i].op);
        assert_int_equal(ring_ud_gen(ud), rows[i].gen_out);
        assert_int_equal(ring_ud_idx(ud), rows[i].idx);
    }
    /* The fields do not overlap: each one alone sets only its own bits. */
    assert_int_equal(ring_ud(0xff, 0, 0), 0xff00000000000000ull);
    assert_int_equal(ring_ud(0, 0xffffffff, 0), 0x00ffffff00000000ull);
    assert_int_equal(ring_ud(0, 0, 0xffffffff), 0x00000000ffffffffull);
}

/* More SQEs than the SQ holds: ring_sqe submits the full SQ and hands out a fresh entry. */
static void ring_sqe_submits_when_full(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 4, 64);
    unsigned sq_cap = ring.sq.ring_entries;
    assert_int_equal(sq_cap, 4);
    enum { NR = 19 };
    for (unsigned i = 0; i < NR; i++) {
        if (i == sq_cap)
            assert_int_equal(io_uring_sq_space_left(&ring), 0);
        struct io_uring_sqe *sqe = ring_sqe(&ring);
        assert_non_null(sqe);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, ring_ud(1, i, i));
    }
    bool seen[NR] = {false};
    for (unsigned n = 0; n < NR; n++) {
        struct cqe c = wait_one(&ring);
        assert_int_equal(c.res, 0);
        assert_int_equal(ring_ud_op(c.ud), 1);
        uint32_t idx = ring_ud_idx(c.ud);
        assert_true(idx < NR);
        assert_false(seen[idx]);
        assert_int_equal(ring_ud_gen(c.ud), idx);
        seen[idx] = true;
    }
    ring_close(&ring);
}

/*
 * The kernel takes nothing: io_uring_enter fails on every submit (here: the ring's descriptor
 * is swapped for one that is not a ring, so each submit gets -EOPNOTSUPP; in life -EAGAIN when
 * the kernel has no memory for requests, or -EBUSY until the caller reaps its CQ). ring_sqe
 * must come back after a bounded number of tries with an entry that is parked, and the parked
 * entries must reach the kernel, in order and ahead of later ones, once it takes them again.
 * Before, ring_sqe retried forever: the watchdog alarm ends that.
 */
static void ring_sqe_parks_when_submit_fails(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 4, 64);
    unsigned sq_cap = ring.sq.ring_entries;
    enum { PARKED = 5, LATER = 3 };
    int real_fd = ring.ring_fd, real_enter = ring.enter_ring_fd;
    int not_a_ring = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(not_a_ring >= 0);
    alarm(10);
    for (unsigned i = 0; i < sq_cap; i++) {
        struct io_uring_sqe *sqe = ring_sqe(&ring);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, ring_ud(1, 0, i));
    }
    ring.ring_fd = ring.enter_ring_fd = not_a_ring;
    for (unsigned i = sq_cap; i < sq_cap + PARKED; i++) {
        struct io_uring_sqe *sqe = ring_sqe(&ring);
        assert_non_null(sqe);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, ring_ud(1, 0, i));
    }
    assert_int_equal(ring_nr_parked(&ring), PARKED);
    assert_int_equal(ring_flush_parked(&ring), PARKED); /* still refused: nothing moves */
    ring.ring_fd = real_fd;
    ring.enter_ring_fd = real_enter;
    alarm(0);
    close(not_a_ring);
    /* The next ring_sqe moves the parked ones first, then hands out a slot behind them. */
    for (unsigned i = sq_cap + PARKED; i < sq_cap + PARKED + LATER; i++) {
        struct io_uring_sqe *sqe = ring_sqe(&ring);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, ring_ud(1, 0, i));
    }
    assert_int_equal(ring_flush_parked(&ring), 0);
    assert_int_equal(ring_nr_parked(&ring), 0);
    /* NOPs complete in submission order: every request, in the order they were asked for. */
    for (unsigned n = 0; n < sq_cap + PARKED + LATER; n++) {
        struct cqe c = wait_one(&ring);
        assert_int_equal(c.res, 0);
        assert_int_equal(ring_ud_idx(c.ud), n);
    }
    assert_int_equal(ring_nr_lost(), 0);
    ring_close(&ring);
}

/* More parked than RING_PARK_MAX: the excess is lost and counted, nothing else breaks, and
 * ring_drop_parked forgets the rest. */
static void ring_sqe_park_is_bounded(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 4, 64);
    int real_fd = ring.ring_fd, real_enter = ring.enter_ring_fd;
    int not_a_ring = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(not_a_ring >= 0);
    for (unsigned i = 0; i < ring.sq.ring_entries; i++)
        io_uring_prep_nop(ring_sqe(&ring));
    ring.ring_fd = ring.enter_ring_fd = not_a_ring;
    uint64_t lost = ring_nr_lost();
    alarm(30);
    for (unsigned i = 0; i < RING_PARK_MAX + 10; i++)
        io_uring_prep_nop(ring_sqe(&ring));
    alarm(0);
    assert_int_equal(ring_nr_parked(&ring), RING_PARK_MAX);
    assert_int_equal(ring_nr_lost() - lost, 10);
    ring_drop_parked(&ring);
    assert_int_equal(ring_nr_parked(&ring), 0);
    ring.ring_fd = real_fd;
    ring.enter_ring_fd = real_enter;
    close(not_a_ring);
    assert_int_equal(io_uring_submit(&ring), (int)ring.sq.ring_entries);
    for (unsigned n = 0; n < ring.sq.ring_entries; n++)
        (void)wait_one(&ring);
    ring_close(&ring);
}

/*
 * ring_msg_all from a ring of 8 SQEs and 16 CQEs (what the engine's wake ring was) to 40 rings:
 * every target gets exactly one doorbell, and the sender's ring is left with nothing: no
 * completion unreaped and none in the kernel's overflow list.
 */
static void ring_msg_all_more_targets_than_cq(void **state)
{
    enum { NR = 40 };
    struct io_uring src, dst[NR];
    int fds[NR];
    uint64_t ud = ring_ud(6, 0, 0);
    ring_open(state, &src, 8, 16);
    for (unsigned i = 0; i < NR; i++) {
        ring_open(state, &dst[i], 4, 8);
        fds[i] = dst[i].ring_fd;
    }
    for (int round = 0; round < 3; round++) {
        assert_int_equal(ring_msg_all(&src, fds, NR, ud, 1000), NR);
        assert_int_equal(io_uring_cq_ready(&src), 0);
        assert_int_equal(IO_URING_READ_ONCE(*src.sq.kflags) & IORING_SQ_CQ_OVERFLOW, 0);
        for (unsigned i = 0; i < NR; i++) {
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = {.tv_sec = 2, .tv_nsec = 0};
            assert_int_equal(io_uring_wait_cqe_timeout(&dst[i], &cqe, &ts), 0);
            assert_int_equal(cqe->user_data, ud);
            assert_int_equal(cqe->res, 0);
            io_uring_cqe_seen(&dst[i], cqe);
            assert_int_equal(io_uring_cq_ready(&dst[i]), 0);
        }
    }
    /* A target that is not a ring is counted out; the others still get theirs. */
    int bad[3] = {fds[0], lowest_free_fd(), fds[1]};
    assert_int_equal(ring_msg_all(&src, bad, 3, ud, 1000), 2);
    for (unsigned i = 0; i < 2; i++) {
        struct cqe c = wait_one(&dst[i]);
        assert_int_equal(c.ud, ud);
    }
    for (unsigned i = 0; i < NR; i++)
        ring_close(&dst[i]);
    ring_close(&src);
}

/* ---------------------------------------------------------------------------------------------
 * Buffer rings
 * -------------------------------------------------------------------------------------------*/

static void buf_ring_setup_and_free(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 8, 16);
    int err = 12345;
    struct io_uring_buf_ring *br = ring_setup_buf_ring(&ring, 8, 3, &err);
    assert_non_null(br);
    assert_int_equal(err, 0);

    err = 12345; /* the group is taken */
    assert_null(ring_setup_buf_ring(&ring, 8, 3, &err));
    assert_int_equal(err, -EEXIST);
    err = 12345; /* not a power of two */
    assert_null(ring_setup_buf_ring(&ring, 3, 4, &err));
    assert_int_equal(err, -EINVAL);

    ring_free_buf_ring(&ring, br, 8, 3);
    /* Unregistered: the group can be registered again. */
    br = ring_setup_buf_ring(&ring, 16, 3, &err);
    assert_non_null(br);
    assert_int_equal(err, 0);
    ring_free_buf_ring(&ring, br, 16, 3);
    ring_close(&ring);
}

static void bufring_init_failures_leave_it_empty(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 8, 16);
    struct bufring b, other;
    assert_int_equal(bufring_init(&b, &ring, 1, 3, 64), -EINVAL); /* 3 is no power of two */
    assert_null(b.br);
    assert_null(b.base);
    bufring_fini(&b, &ring); /* harmless on the empty state */

    assert_int_equal(bufring_init(&b, &ring, 1, 8, 128), 0);
    assert_int_equal(b.nr, 8);
    assert_int_equal(b.buf_size, 128);
    assert_int_equal(b.bgid, 1);
    assert_ptr_equal(bufring_addr(&b, 3), b.base + 3 * 128);
    assert_int_equal(bufring_init(&other, &ring, 1, 8, 128), -EEXIST);
    assert_null(other.base);
    bufring_fini(&b, &ring);
    assert_null(b.br);
    assert_null(b.base);
    ring_close(&ring);
}

#define BGID    5
#define NR_BUF  4
#define UD_RECV ring_ud(2, 9, 0)

static void arm_recv(struct io_uring *ring, int fd, uint64_t ud)
{
    struct io_uring_sqe *sqe = ring_sqe(ring);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, ud);
}

/* Sends <text> on <tx> and returns the buffer id it arrived in on the armed receive. */
static unsigned send_and_take(struct io_uring *ring, const struct bufring *b, int tx,
                              const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(write(tx, text, len), (ssize_t)len);
    struct cqe c = wait_one(ring);
    assert_int_equal(c.ud, UD_RECV);
    assert_int_equal(c.res, (int32_t)len);
    assert_true(c.flags & IORING_CQE_F_BUFFER);
    assert_true(c.flags & IORING_CQE_F_MORE);
    unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
    assert_true(bid < b->nr);
    assert_memory_equal(bufring_addr(b, bid), text, len);
    return bid;
}

static void bufring_multishot_recv(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 8, 64);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct bufring b;
    assert_int_equal(bufring_init(&b, &ring, BGID, NR_BUF, 64), 0);
    arm_recv(&ring, sv[0], UD_RECV);

    /* Recycled at once: the same buffer goes to the back of the ring. */
    unsigned first = send_and_take(&ring, &b, sv[1], "hello");
    bufring_recycle(&b, first);

    /* Four more, none recycled: each buffer once, the recycled one included. */
    bool used[NR_BUF] = {false};
    for (unsigned i = 0; i < NR_BUF; i++) {
        char text[16];
        snprintf(text, sizeof(text), "msg-%u", i);
        unsigned bid = send_and_take(&ring, &b, sv[1], text);
        assert_false(used[bid]);
        used[bid] = true;
    }

    /* No buffer left: the receive ends with -ENOBUFS and must be re-armed. */
    assert_int_equal(write(sv[1], "late", 4), 4);
    struct cqe c = wait_one(&ring);
    assert_int_equal(c.ud, UD_RECV);
    assert_int_equal(c.res, -ENOBUFS);
    assert_false(c.flags & IORING_CQE_F_MORE);

    /* One buffer back and a new receive: the waiting bytes land in it. */
    bufring_recycle(&b, 2);
    arm_recv(&ring, sv[0], UD_RECV);
    c = wait_one(&ring);
    assert_int_equal(c.res, 4);
    assert_true(c.flags & IORING_CQE_F_MORE);
    assert_int_equal(c.flags >> IORING_CQE_BUFFER_SHIFT, 2);
    assert_memory_equal(bufring_addr(&b, 2), "late", 4);
    bufring_recycle(&b, 2);

    /* The peer's close ends the receive with 0 and no F_MORE. */
    close(sv[1]);
    c = wait_one(&ring);
    assert_int_equal(c.ud, UD_RECV);
    assert_int_equal(c.res, 0);
    assert_false(c.flags & IORING_CQE_F_MORE);

    bufring_fini(&b, &ring);
    close(sv[0]);
    ring_close(&ring);
}

/* ---------------------------------------------------------------------------------------------
 * Listeners
 * -------------------------------------------------------------------------------------------*/

static void listener_on_port_zero(void **state)
{
    (void)state;
    int before = lowest_free_fd();
    const char *what = "untouched";
    int fd = listener_open("127.0.0.1", 0, 16, 0, &what);
    assert_true(fd >= 0);
    assert_string_equal(what, "untouched"); /* only failures name a step */
    int port = listener_port(fd);
    assert_true(port > 0 && port <= 65535);

    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    assert_int_equal(sin.sin_family, AF_INET);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    assert_int_equal(sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR), 1);
    assert_int_equal(sockopt_int(fd, SOL_SOCKET, SO_REUSEPORT), 1);
    assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    assert_int_equal(sockopt_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT), 0);

    int cfd = connect_to("127.0.0.1", AF_INET, port);
    int afd = accept(fd, NULL, NULL);
    assert_true(afd >= 0);
    /* TCP_NODELAY set on the listener is inherited by what it accepts. */
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_NODELAY), 1);
    close(afd);
    close(cfd);
    close(fd);
    assert_int_equal(lowest_free_fd(), before);
}

static void listener_defer_accept(void **state)
{
    (void)state;
    const char *what = NULL;
    int fd = listener_open("127.0.0.1", 0, 16, 5, &what);
    assert_true(fd >= 0);
    assert_true(sockopt_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT) > 0);
    close(fd);
}

/* Two listeners on one port (SO_REUSEPORT); the kernel spreads connections over both. */
static void listener_reuseport_pair(void **state)
{
    (void)state;
    const char *what = NULL;
    int a = listener_open("127.0.0.1", 0, 64, 0, &what);
    assert_true(a >= 0);
    int port = listener_port(a);
    int b = listener_open("127.0.0.1", (uint16_t)port, 64, 0, &what);
    if (b < 0)
        fail_msg("second listener: %s: %s", what, strerror(-b));
    assert_int_equal(listener_port(b), port);

    enum { NR = 32 };
    int clients[NR];
    for (int i = 0; i < NR; i++)
        clients[i] = connect_to("127.0.0.1", AF_INET, port);
    unsigned got[2] = {0, 0};
    struct pollfd pfd[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    while (got[0] + got[1] < NR) {
        assert_true(poll(pfd, 2, 5000) > 0);
        for (int k = 0; k < 2; k++) {
            if (!(pfd[k].revents & POLLIN))
                continue;
            int afd = accept4(pfd[k].fd, NULL, NULL, SOCK_CLOEXEC);
            assert_true(afd >= 0);
            close(afd);
            got[k]++;
        }
    }
    assert_int_equal(got[0] + got[1], NR);
    print_message("reuseport split: %u / %u\n", got[0], got[1]);
    for (int i = 0; i < NR; i++)
        close(clients[i]);
    close(a);
    close(b);
}

static void listener_ipv6_loopback(void **state)
{
    (void)state;
    const char *what = NULL;
    int fd = listener_open("::1", 0, 16, 0, &what);
    if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
        skip(); /* no IPv6 here */
    assert_true(fd >= 0);
    int port = listener_port(fd);
    assert_true(port > 0);
    int cfd = connect_to("::1", AF_INET6, port);
    int afd = accept(fd, NULL, NULL);
    assert_true(afd >= 0);
    close(afd);
    close(cfd);
    close(fd);
}

/* A bad address is -EINVAL named "parse address"; a bind that fails says "bind". No fd leaks. */
static void listener_errors_name_the_step(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "localhost", "127.0.0.256", "1.2.3", "::g", "0x7f.1"};
    int before = lowest_free_fd();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *what = NULL;
        assert_int_equal(listener_open(bad[i], 0, 16, 0, &what), -EINVAL);
        assert_non_null(what);
        assert_string_equal(what, "parse address");
    }

    /* Not an address of this host (TEST-NET-1, RFC 5737). */
    const char *what = NULL;
    assert_int_equal(listener_open("192.0.2.1", 0, 16, 0, &what), -EADDRNOTAVAIL);
    assert_string_equal(what, "bind");

    /* A port held by a socket without SO_REUSEPORT. */
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(holder >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(holder, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(holder, 4), 0);
    int port = listener_port(holder);
    what = NULL;
    assert_int_equal(listener_open("127.0.0.1", (uint16_t)port, 16, 0, &what), -EADDRINUSE);
    assert_string_equal(what, "bind");
    close(holder);

    assert_int_equal(listener_port(-1), -EBADF);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(lowest_free_fd(), before);
}

/*
 * listener_port() on a socket that is not IP: a negative errno, not whatever bytes
 * getsockname() left unset.
 */
static void listener_port_refuses_non_ip_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int port = listener_port(sv[0]);
    close(sv[0]);
    close(sv[1]);
    assert_true(port < 0);
}

/* The engine's path: multishot accept on the listener, multishot recv into provided buffers. */
static void listener_accept_and_recv_through_ring(void **state)
{
    struct io_uring ring;
    ring_open(state, &ring, 16, 64);
    const char *what = NULL;
    int lfd = listener_open("127.0.0.1", 0, 16, 0, &what);
    assert_true(lfd >= 0);
    int port = listener_port(lfd);
    struct bufring b;
    assert_int_equal(bufring_init(&b, &ring, BGID, 8, 256), 0);

    const uint64_t ud_accept = ring_ud(1, 0, 0);
    struct io_uring_sqe *sqe = ring_sqe(&ring);
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_accept);
    assert_true(io_uring_submit(&ring) >= 0);

    int clients[3], accepted[3];
    for (int i = 0; i < 3; i++) {
        clients[i] = connect_to("127.0.0.1", AF_INET, port);
        struct cqe c = wait_one(&ring);
        assert_int_equal(c.ud, ud_accept);
        assert_true(c.res >= 0);
        assert_true(c.flags & IORING_CQE_F_MORE); /* still armed */
        accepted[i] = c.res;
    }

    arm_recv(&ring, accepted[1], UD_RECV);
    static const char req[] = "GET /room/lobby HTTP/1.1\r\n\r\n";
    assert_int_equal(write(clients[1], req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    struct cqe c = wait_one(&ring);
    assert_int_equal(c.ud, UD_RECV);
    assert_int_equal(c.res, (int32_t)(sizeof(req) - 1));
    unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
    assert_memory_equal(bufring_addr(&b, bid), req, sizeof(req) - 1);
    bufring_recycle(&b, bid);

    cancel_and_reap(&ring, UD_RECV);
    cancel_and_reap(&ring, ud_accept);
    for (int i = 0; i < 3; i++) {
        close(accepted[i]);
        close(clients[i]);
    }
    bufring_fini(&b, &ring);
    close(lfd);
    ring_close(&ring);
}

/* Each ring test twice, under names that say the mode. */
#define RING_TEST_MODES(fn)                                                                        \
    static void fn##__defer_taskrun(void **state)                                                  \
    {                                                                                              \
        fn(state);                                                                                 \
    }                                                                                              \
    static void fn##__no_taskrun_flags(void **state)                                               \
    {                                                                                              \
        fn(state);                                                                                 \
    }
RING_TEST_MODES(ring_sqe_submits_when_full)
RING_TEST_MODES(ring_msg_all_more_targets_than_cq)
RING_TEST_MODES(ring_sqe_parks_when_submit_fails)
RING_TEST_MODES(ring_sqe_park_is_bounded)
RING_TEST_MODES(buf_ring_setup_and_free)
RING_TEST_MODES(bufring_init_failures_leave_it_empty)
RING_TEST_MODES(bufring_multishot_recv)
RING_TEST_MODES(listener_accept_and_recv_through_ring)

#define RING_TEST(fn)                                                                              \
    cmocka_unit_test_setup_teardown(fn##__defer_taskrun, setup_defer, NULL),                       \
        cmocka_unit_test_setup_teardown(fn##__no_taskrun_flags, setup_plain, NULL)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_init_prefers_defer_taskrun),
        cmocka_unit_test(ring_init_refuses_bad_sizes),
        cmocka_unit_test(ud_codec_round_trip),
        RING_TEST(ring_sqe_submits_when_full),
        RING_TEST(ring_msg_all_more_targets_than_cq),
        RING_TEST(ring_sqe_parks_when_submit_fails),
        RING_TEST(ring_sqe_park_is_bounded),
        RING_TEST(buf_ring_setup_and_free),
        RING_TEST(bufring_init_failures_leave_it_empty),
        RING_TEST(bufring_multishot_recv),
        cmocka_unit_test(listener_on_port_zero),
        cmocka_unit_test(listener_defer_accept),
        cmocka_unit_test(listener_reuseport_pair),
        cmocka_unit_test(listener_ipv6_loopback),
        cmocka_unit_test(listener_errors_name_the_step),
        cmocka_unit_test(listener_port_refuses_non_ip_socket),
        RING_TEST(listener_accept_and_recv_through_ring),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
