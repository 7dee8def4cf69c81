/*
 * zc_ops: the zero-copy ops from C, against an in-process server over
 * FUSE-over-io_uring, with the server's counters as the oracle of the
 * path taken.
 *  - zcfuse_pwrite/zcfuse_pread of 4 KiB, 1 MiB and 40 MiB (three 16 MiB
 *    pieces) from a shared arena with ZCFUSE_F_REQUIRE_ZC round-trip; the
 *    server's zero_copy_bytes grows by exactly the bytes issued, its
 *    copied_bytes and FUSE READ/WRITE counts do not move, zc_ops grows by
 *    the pieces;
 *  - a buffer outside every arena: -EFAULT with ZCFUSE_F_REQUIRE_ZC and
 *    nothing moves; without it the posix path (FUSE WRITEs) does the job;
 *  - a buffer straddling the arena's end: -EFAULT;
 *  - a file attached O_RDONLY: write -EBADF (backing unchanged), read works;
 *  - once its fd is closed (and the kernel's RELEASE served), its id: -EBADF;
 *  - 64 ops in one zcfuse_submit, all reaped by zcfuse_wait by user_data;
 *  - zcfuse_session_fd polls readable when a completion is ready, and not
 *    when none is;
 *  - zcfuse_fsync (and with ZCFUSE_F_DATASYNC) returns 0;
 *  - the server's counters still read the same after zcfuse_server_stop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define ARENA ((size_t)128 << 20)
#define RD_AT ((size_t)64 << 20) /* reads land in the arena's second half */
#define PIECE ((size_t)16 << 20) /* the library splits at 16 MiB */
#define NBATCH 64

static zcfuse_server_t *srv;

/* The counters the proof of path looks at. */
struct snap {
    uint64_t zc, copied, fuse_rw, zc_ops, attached, bytes_written, zc_errors;
};

static struct snap snap(void)
{
    zcfuse_server_stats_t st;
    struct snap s = {0};
    if (EXPECT_RC(0, t_stats(srv, &st)))
        s = (struct snap){st.zero_copy_bytes, st.copied_bytes,
                          st.ring_requests[FUSE_READ] + st.ring_requests[FUSE_WRITE] + st.dev_requests[FUSE_READ] +
                              st.dev_requests[FUSE_WRITE],
                          st.zc_ops, st.attached_files, st.bytes_written, st.zc_errors};
    return s;
}

/* Writes data[0..n) to a new file at path (the backing directory). */
static int put_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, n);
    return close(fd) == 0 && w == (ssize_t)n ? 0 : -1;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void)
{
    t_init("zc_ops");
    int rc = t_require_mount();
    if (!rc)
        rc = t_require_uring();
    if (rc)
        return rc;
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    char *file = t_path(mnt, "data", 0), *bfile = t_path(backing, "data", 0);
    char *rofile = t_path(mnt, "ro", 0), *brofile = t_path(backing, "ro", 0);
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    opts.transport = ZCFUSE_TRANSPORT_URING;
    zcfuse_session_t *s = NULL;
    zcfuse_arena_t *a = NULL;
    char *outside = NULL, *saved = NULL;
    int rw = -1, ro = -1;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)) || !EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;
    zcfuse_server_stats_t st;
    if (!EXPECT_RC(0, t_stats(srv, &st)) ||
        !EXPECT(st.transport == ZCFUSE_TRANSPORT_URING, "transport %u", st.transport))
        goto out;
    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s)) || !EXPECT_RC(0, zcfuse_arena_create(ARENA, 0, &a)))
        goto out;
    uint32_t arena_id, flags = 0, rw_id = 0, ro_id = 0;
    if (!EXPECT_RC(0, zcfuse_share(s, a, &arena_id, &flags)))
        goto out;
    EXPECT(flags & ZCFUSE_SHARED_REGISTERED, "a root server registers the arena (flags %#x)", flags);
    char *base = zcfuse_arena_base(a);
    rw = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (!EXPECT(rw >= 0, "open %s: %s", file, strerror(errno)) || !EXPECT_RC(0, zcfuse_attach(s, rw, &rw_id)))
        goto out;

    /* Round trips, zero copy, proven by the counters. */
    const size_t sizes[] = {4 * KiB, 1 * MiB, 40 * MiB};
    for (int i = 0; i < 3; i++) {
        size_t n = sizes[i];
        uint64_t pieces = (n + PIECE - 1) / PIECE;
        t_fill(base, n, 100 + i);
        memset(base + RD_AT, 0, n);
        struct snap s0 = snap();
        if (!EXPECT(zcfuse_pwrite(s, rw_id, base, n, 0, ZCFUSE_F_REQUIRE_ZC) == (int64_t)n,
                    "pwrite %zu bytes: %s", n, zcfuse_last_error()))
            goto out;
        struct snap s1 = snap();
        EXPECT_MOVED(s0, s1, n, 0, 0, pieces);
        EXPECT(t_file_holds(bfile, base, n, 0), "the backing file holds the %zu bytes written", n);
        if (!EXPECT(zcfuse_pread(s, rw_id, base + RD_AT, n, 0, ZCFUSE_F_REQUIRE_ZC) == (int64_t)n,
                    "pread %zu bytes: %s", n, zcfuse_last_error()))
            goto out;
        struct snap s2 = snap();
        EXPECT_MOVED(s1, s2, n, 0, 0, pieces);
        EXPECT(memcmp(base, base + RD_AT, n) == 0, "%zu bytes read back differ from those written", n);
        printf("round trip of %zu bytes: zero copy, %llu op(s) each way\n", n, (unsigned long long)pieces);
    }

    /* Outside every arena: -EFAULT with REQUIRE_ZC, the posix path without. */
    outside = aligned_alloc(4096, 64 * KiB);
    saved = malloc(64 * KiB);
    if (!outside || !saved)
        goto out;
    memcpy(saved, base, 64 * KiB); /* the file's first 64 KiB (40 MiB case) */
    t_fill(outside, 64 * KiB, 7);
    struct snap s0 = snap();
    EXPECT_RC(-EFAULT, (int)zcfuse_pwrite(s, rw_id, outside, 64 * KiB, 0, ZCFUSE_F_REQUIRE_ZC));
    EXPECT_RC(-EFAULT, (int)zcfuse_pread(s, rw_id, outside, 64 * KiB, 0, ZCFUSE_F_REQUIRE_ZC));
    struct snap s1 = snap();
    EXPECT_MOVED(s0, s1, 0, 0, 0, 0);
    EXPECT(s1.bytes_written == s0.bytes_written, "FUSE bytes written moved");
    EXPECT(t_file_holds(bfile, saved, 64 * KiB, 0), "a refused write changed the file");
    t_fill(saved, 64 * KiB, 7); /* what `outside` held before the refused read */
    EXPECT(memcmp(outside, saved, 64 * KiB) == 0, "a refused read changed the buffer");

    EXPECT(zcfuse_pwrite(s, rw_id, outside, 64 * KiB, 0, 0) == (int64_t)(64 * KiB), "posix-path pwrite: %s",
           zcfuse_last_error());
    struct snap s2 = snap();
    EXPECT(s2.zc == s1.zc && s2.copied == s1.copied, "the posix path moved zero-copy counters");
    EXPECT(s2.fuse_rw > s1.fuse_rw && s2.bytes_written - s1.bytes_written == 64 * KiB,
           "the posix path went through FUSE WRITE: +%llu requests, +%llu bytes",
           (unsigned long long)(s2.fuse_rw - s1.fuse_rw), (unsigned long long)(s2.bytes_written - s1.bytes_written));
    EXPECT(t_file_holds(bfile, outside, 64 * KiB, 0), "the posix-path write landed");
    memset(outside, 0, 64 * KiB);
    EXPECT(zcfuse_pread(s, rw_id, outside, 64 * KiB, 0, 0) == (int64_t)(64 * KiB), "posix-path pread: %s",
           zcfuse_last_error());
    EXPECT(memcmp(outside, saved, 64 * KiB) == 0, "the posix-path read differs");
    struct snap s3 = snap();
    EXPECT(s3.zc == s2.zc && s3.copied == s2.copied, "the posix-path read moved zero-copy counters");

    /* Straddling the arena's end: -EFAULT, flag or not. */
    EXPECT_RC(-EFAULT, (int)zcfuse_pwrite(s, rw_id, base + ARENA - 2 * KiB, 4 * KiB, 0, ZCFUSE_F_REQUIRE_ZC));
    EXPECT_RC(-EFAULT, (int)zcfuse_pwrite(s, rw_id, base + ARENA - 2 * KiB, 4 * KiB, 0, 0));
    EXPECT_RC(-EFAULT, (int)zcfuse_pread(s, rw_id, base + ARENA - 2 * KiB, 4 * KiB, 0, 0));
    struct snap s4 = snap();
    EXPECT_MOVED(s3, s4, 0, 0, 0, 0);
    EXPECT(t_file_holds(bfile, saved, 64 * KiB, 0), "a straddling write changed the file");

    /* Attached read-only: writes -EBADF, reads work. */
    t_fill(saved, 8 * KiB, 13);
    if (!EXPECT(put_file(brofile, saved, 8 * KiB) == 0, "write %s: %s", brofile, strerror(errno)))
        goto out;
    t_fill(base, 8 * KiB, 11);
    ro = open(rofile, O_RDONLY | O_CLOEXEC);
    if (!EXPECT(ro >= 0, "open %s: %s", rofile, strerror(errno)) || !EXPECT_RC(0, zcfuse_attach(s, ro, &ro_id)))
        goto out;
    s0 = snap();
    EXPECT_RC(-EBADF, (int)zcfuse_pwrite(s, ro_id, base, 8 * KiB, 0, ZCFUSE_F_REQUIRE_ZC));
    EXPECT_RC(-EBADF, (int)zcfuse_pwrite(s, ro_id, outside, 4 * KiB, 0, 0)); /* posix path: the fd is O_RDONLY */
    EXPECT(t_file_holds(brofile, saved, 8 * KiB, 0), "a write on a read-only attach changed the file");
    s1 = snap();
    EXPECT_MOVED(s0, s1, 0, 0, 0, 1); /* the refused op counts as an op, and as an error */
    EXPECT(s1.zc_errors - s0.zc_errors == 1, "zc_errors +%llu, want +1: the server refused the write",
           (unsigned long long)(s1.zc_errors - s0.zc_errors));
    memset(base + RD_AT, 0xff, 8 * KiB);
    EXPECT(zcfuse_pread(s, ro_id, base + RD_AT, 8 * KiB, 0, ZCFUSE_F_REQUIRE_ZC) == (int64_t)(8 * KiB),
           "pread on a read-only attach: %s", zcfuse_last_error());
    EXPECT(memcmp(base + RD_AT, saved, 8 * KiB) == 0, "read-only attach read the wrong bytes");

    /* Closing the fd ends the attachment once the kernel's RELEASE is served. */
    s0 = snap();
    close(ro);
    ro = -1;
    double t0 = now_ms();
    do
        s1 = snap();
    while (s1.attached >= s0.attached && now_ms() - t0 < 5000 && usleep(5000) == 0);
    printf("attached files %llu -> %llu in %.1f ms after close\n", (unsigned long long)s0.attached,
           (unsigned long long)s1.attached, now_ms() - t0);
    if (EXPECT(s1.attached == s0.attached - 1, "the server still holds the closed file after 5 s")) {
        EXPECT_RC(-EBADF, (int)zcfuse_pread(s, ro_id, base + RD_AT, 4 * KiB, 0, ZCFUSE_F_REQUIRE_ZC));
        EXPECT_RC(-EBADF, zcfuse_fsync(s, ro_id, 0));
    }

    /* 64 ops in one submit; every completion comes back once, by user_data. */
    zcfuse_op_t ops[NBATCH];
    zcfuse_cqe_t cqes[NBATCH];
    const size_t chunk = 64 * KiB;
    t_fill(base, NBATCH * chunk, 23);
    for (int i = 0; i < NBATCH; i++)
        ops[i] = (zcfuse_op_t){.opcode = ZCFUSE_OP_WRITE, .flags = ZCFUSE_F_REQUIRE_ZC, .file_id = rw_id,
                               .buf = base + i * chunk, .len = chunk, .off = (int64_t)(i * chunk),
                               .user_data = 0xabc00000u + 7u * (unsigned)i};
    for (int round = 0; round < 2; round++) {
        s0 = snap();
        int seen[NBATCH] = {0}, got = 0, bad = 0;
        if (!EXPECT_RC(NBATCH, zcfuse_submit(s, ops, NBATCH)))
            goto out;
        while (got < NBATCH) {
            int n = zcfuse_wait(s, cqes, 1, NBATCH, 5000);
            if (!EXPECT(n > 0, "wait after %d of %d completions: %d (%s)", got, NBATCH, n, zcfuse_strerror(n)))
                goto out;
            for (int k = 0; k < n; k++, got++) {
                uint64_t i = (cqes[k].user_data - 0xabc00000u) / 7;
                if (i >= NBATCH || cqes[k].user_data != 0xabc00000u + 7 * i || seen[i]++ ||
                    cqes[k].res != (int64_t)chunk) {
                    bad++;
                    t_fail("completion user_data %#llx res %lld", (unsigned long long)cqes[k].user_data,
                           (long long)cqes[k].res);
                }
            }
        }
        EXPECT(bad == 0 && got == NBATCH, "%d completions, %d bad", got, bad);
        EXPECT_RC(0, zcfuse_wait(s, cqes, 0, NBATCH, 0)); /* nothing more */
        s1 = snap();
        EXPECT_MOVED(s0, s1, NBATCH * chunk, 0, 0, NBATCH);
        if (round == 0) {
            EXPECT(t_file_holds(bfile, base, NBATCH * chunk, 0), "the batch of writes landed");
            for (int i = 0; i < NBATCH; i++) /* now read it all back */
                ops[i].opcode = ZCFUSE_OP_READ, ops[i].buf = base + RD_AT + i * chunk;
            memset(base + RD_AT, 0, NBATCH * chunk);
        } else {
            EXPECT(memcmp(base, base + RD_AT, NBATCH * chunk) == 0, "the batch of reads differs");
        }
    }

    /* The session fd polls readable when, and only when, a completion is
     * ready: nothing is pending now (all reaped above), so it must not be
     * readable, or an event loop that polls it spins. */
    int sfd = zcfuse_session_fd(s);
    if (EXPECT(sfd >= 0, "zcfuse_session_fd: %d", sfd)) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        EXPECT(poll(&p, 1, 0) == 0, "session fd readable with no completion pending (revents %#x)", p.revents);
        zcfuse_op_t op = {.opcode = ZCFUSE_OP_READ, .flags = ZCFUSE_F_REQUIRE_ZC, .file_id = rw_id,
                          .buf = base + RD_AT, .len = 4 * KiB, .off = 0, .user_data = 4242};
        EXPECT_RC(1, zcfuse_submit(s, &op, 1));
        p.revents = 0;
        EXPECT(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "session fd not readable within 5 s (revents %#x)",
               p.revents);
        int n = zcfuse_wait(s, cqes, 0, NBATCH, 0);
        EXPECT(n == 1 && cqes[0].user_data == 4242 && cqes[0].res == (int64_t)(4 * KiB),
               "reaped %d: user_data %llu res %lld", n, n > 0 ? (unsigned long long)cqes[0].user_data : 0ull,
               n > 0 ? (long long)cqes[0].res : 0ll);
    }

    EXPECT_RC(0, zcfuse_fsync(s, rw_id, 0));
    EXPECT_RC(0, zcfuse_fsync(s, rw_id, ZCFUSE_F_DATASYNC));

    /* The counters outlive the server: stats after stop still hold them. */
    close(rw);
    rw = -1;
    EXPECT_RC(0, zcfuse_close(s));
    s = NULL;
    s0 = snap();
    EXPECT_RC(0, zcfuse_server_stop(srv));
    s1 = snap();
    EXPECT(s1.zc == s0.zc && s1.zc_ops == s0.zc_ops && s1.bytes_written == s0.bytes_written,
           "after zcfuse_server_stop: zero_copy_bytes %llu (was %llu), zc_ops %llu (was %llu), "
           "bytes_written %llu (was %llu)",
           (unsigned long long)s1.zc, (unsigned long long)s0.zc, (unsigned long long)s1.zc_ops,
           (unsigned long long)s0.zc_ops, (unsigned long long)s1.bytes_written,
           (unsigned long long)s0.bytes_written);
out:
    if (rw >= 0)
        close(rw);
    if (ro >= 0)
        close(ro);
    zcfuse_close(s);
    zcfuse_arena_close(a);
    zcfuse_server_destroy(srv);
    free(outside), free(saved);
    free(backing), free(mnt), free(file), free(bfile), free(rofile), free(brofile);
    return t_done(T_PASS);
}
