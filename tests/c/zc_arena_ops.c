/*
 * zc_arena_ops: ops that name their memory by {arena id, offset}
 * (ZCFUSE_F_ARENA, zcfuse_pread_arena, zcfuse_pwrite_arena) against an
 * in-process server over FUSE-over-io_uring, with the server's counters
 * as the oracle of the path taken.
 *  - zcfuse_pwrite_arena/zcfuse_pread_arena of 4 KiB, 1 MiB and 40 MiB
 *    (three 16 MiB pieces) at non-zero arena offsets round-trip; the
 *    server's zero_copy_bytes grows by exactly the bytes issued, its
 *    copied_bytes and FUSE READ/WRITE counts do not move, zc_ops grows
 *    by the pieces;
 *  - 32 ZCFUSE_F_ARENA ops in one zcfuse_submit, then a batch mixing
 *    pointer and arena ops, all zero copy;
 *  - -EFAULT, with nothing moved and the file unchanged, for an arena id
 *    never shared, one unshared, one whose arena was closed, an offset
 *    past the end, a range straddling the end, arena_off + len
 *    overflowing; the same through zcfuse_submit completions;
 *  - -EINVAL for an unknown flag (sync calls and submit), ZCFUSE_F_ARENA
 *    given to zcfuse_pread, a negative offset; -EFBIG past RLIMIT_FSIZE;
 *    -EBADF for an unknown file id; len 0 at the arena's end reads 0;
 *  - old pointer ops still work, arena_id ignored without the flag.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define ARENA ((size_t)96 << 20)
#define WR_AT ((size_t)8 << 10)  /* writes come from here: a non-zero offset */
#define RD_AT ((size_t)48 << 20) /* reads land in the arena's second half */
#define PIECE ((size_t)16 << 20) /* the library splits at 16 MiB */
#define NBATCH 32

static zcfuse_server_t *srv;

/* The counters the proof of path looks at. */
struct snap {
    uint64_t zc, copied, fuse_rw, zc_ops;
};

static struct snap snap(void)
{
    zcfuse_server_stats_t st;
    struct snap s = {0};
    if (EXPECT_RC(0, t_stats(srv, &st)))
        s = (struct snap){st.zero_copy_bytes, st.copied_bytes,
                          st.ring_requests[FUSE_READ] + st.ring_requests[FUSE_WRITE] + st.dev_requests[FUSE_READ] +
                              st.dev_requests[FUSE_WRITE],
                          st.zc_ops};
    return s;
}

/* Submits n ops and reaps their n completions into cqes, ordered by
 * user_data (which must be 0..n-1). Returns how many came back. */
static int run_batch(zcfuse_session_t *s, const zcfuse_op_t *ops, int n, int64_t *res)
{
    zcfuse_cqe_t cqes[NBATCH];
    int got = 0;
    if (!EXPECT_RC(n, zcfuse_submit(s, ops, (unsigned)n)))
        return 0;
    while (got < n) {
        int k = zcfuse_wait(s, cqes, 1, NBATCH, 5000);
        if (!EXPECT(k > 0, "wait after %d of %d completions: %d (%s)", got, n, k, zcfuse_strerror(k)))
            return got;
        for (int i = 0; i < k; i++, got++) {
            if (EXPECT(cqes[i].user_data < (uint64_t)n, "user_data %llu", (unsigned long long)cqes[i].user_data))
                res[cqes[i].user_data] = cqes[i].res;
        }
    }
    return got;
}

int main(void)
{
    t_init("zc_arena_ops");
    int rc = t_require_mount();
    if (!rc)
        rc = t_require_uring();
    if (rc)
        return rc;
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    char *file = t_path(mnt, "data", 0), *bfile = t_path(backing, "data", 0);
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    opts.transport = ZCFUSE_TRANSPORT_URING;
    zcfuse_session_t *s = NULL;
    zcfuse_arena_t *a = NULL, *b = NULL, *c = NULL;
    char *saved = NULL;
    int rw = -1;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)) || !EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;
    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s)) || !EXPECT_RC(0, zcfuse_arena_create(ARENA, 0, &a)))
        goto out;
    uint32_t aid, bid, cid, rw_id = 0;
    if (!EXPECT_RC(0, zcfuse_share(s, a, &aid, NULL)))
        goto out;
    char *base = zcfuse_arena_base(a);
    rw = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (!EXPECT(rw >= 0, "open %s: %s", file, strerror(errno)) || !EXPECT_RC(0, zcfuse_attach(s, rw, &rw_id)))
        goto out;

    /* Round trips by arena offset, zero copy, proven by the counters. */
    const size_t sizes[] = {4 * KiB, 1 * MiB, 40 * MiB};
    for (int i = 0; i < 3; i++) {
        size_t n = sizes[i];
        uint64_t pieces = (n + PIECE - 1) / PIECE;
        t_fill(base + WR_AT, n, 100 + i);
        memset(base + RD_AT, 0, n);
        struct snap s0 = snap();
        if (!EXPECT(zcfuse_pwrite_arena(s, rw_id, aid, WR_AT, n, 0, 0) == (int64_t)n, "pwrite_arena %zu bytes: %s",
                    n, zcfuse_last_error()))
            goto out;
        struct snap s1 = snap();
        EXPECT_MOVED(s0, s1, n, 0, 0, pieces);
        EXPECT(t_file_holds(bfile, base + WR_AT, n, 0), "the backing file holds the %zu bytes written", n);
        if (!EXPECT(zcfuse_pread_arena(s, rw_id, aid, RD_AT, n, 0, ZCFUSE_F_ARENA) == (int64_t)n,
                    "pread_arena %zu bytes: %s", n, zcfuse_last_error()))
            goto out;
        struct snap s2 = snap();
        EXPECT_MOVED(s1, s2, n, 0, 0, pieces);
        EXPECT(memcmp(base + WR_AT, base + RD_AT, n) == 0, "%zu bytes read back differ from those written", n);
        printf("arena round trip of %zu bytes: zero copy, %llu op(s) each way\n", n, (unsigned long long)pieces);
    }
    /* The file is 40 MiB now: a read past its end is short. */
    EXPECT(zcfuse_pread_arena(s, rw_id, aid, RD_AT, 2 * MiB, (int64_t)(39 * MiB), 0) == (int64_t)MiB,
           "short read at the end of the file: %s", zcfuse_last_error());

    /* Batches of ZCFUSE_F_ARENA ops through zcfuse_submit. */
    zcfuse_op_t ops[NBATCH];
    int64_t res[NBATCH];
    const size_t chunk = 64 * KiB;
    t_fill(base + WR_AT, NBATCH * chunk, 23);
    for (int i = 0; i < NBATCH; i++)
        ops[i] = (zcfuse_op_t){.opcode = ZCFUSE_OP_WRITE, .flags = ZCFUSE_F_ARENA, .file_id = rw_id,
                               .arena_id = aid, .arena_off = WR_AT + i * chunk, .len = chunk,
                               .off = (int64_t)(i * chunk), .user_data = (uint64_t)i};
    struct snap s0 = snap();
    memset(res, 0xff, sizeof res);
    EXPECT(run_batch(s, ops, NBATCH, res) == NBATCH, "batch of arena writes");
    for (int i = 0; i < NBATCH; i++)
        EXPECT(res[i] == (int64_t)chunk, "arena write %d: %lld", i, (long long)res[i]);
    struct snap s1 = snap();
    EXPECT_MOVED(s0, s1, NBATCH * chunk, 0, 0, NBATCH);
    EXPECT(t_file_holds(bfile, base + WR_AT, NBATCH * chunk, 0), "the batch of arena writes landed");
    /* Read it back, every other op by pointer (arena_id set but ignored). */
    memset(base + RD_AT, 0, NBATCH * chunk);
    for (int i = 0; i < NBATCH; i++) {
        ops[i].opcode = ZCFUSE_OP_READ;
        if (i % 2) {
            ops[i].flags = ZCFUSE_F_REQUIRE_ZC;
            ops[i].arena_id = 12345;
            ops[i].buf = base + RD_AT + i * chunk;
        } else {
            ops[i].arena_off = RD_AT + i * chunk;
        }
    }
    memset(res, 0xff, sizeof res);
    EXPECT(run_batch(s, ops, NBATCH, res) == NBATCH, "mixed batch of reads");
    for (int i = 0; i < NBATCH; i++)
        EXPECT(res[i] == (int64_t)chunk, "read %d (%s): %lld", i, i % 2 ? "pointer" : "arena", (long long)res[i]);
    struct snap s2 = snap();
    EXPECT_MOVED(s1, s2, NBATCH * chunk, 0, 0, NBATCH);
    EXPECT(memcmp(base + WR_AT, base + RD_AT, NBATCH * chunk) == 0, "the mixed batch of reads differs");

    /* Old pointer calls are unchanged. */
    t_fill(base, 8 * KiB, 31);
    EXPECT(zcfuse_pwrite(s, rw_id, base, 8 * KiB, 0, ZCFUSE_F_REQUIRE_ZC) == (int64_t)(8 * KiB), "pointer pwrite: %s",
           zcfuse_last_error());
    EXPECT(zcfuse_pread(s, rw_id, base + RD_AT, 8 * KiB, 0, 0) == (int64_t)(8 * KiB), "pointer pread: %s",
           zcfuse_last_error());
    EXPECT(memcmp(base, base + RD_AT, 8 * KiB) == 0, "pointer round trip differs");

    /* Bad ranges and ids: -EFAULT, nothing moves, the file is unchanged. */
    saved = malloc(64 * KiB);
    if (!saved || !EXPECT(pread(rw, saved, 64 * KiB, 0) == (ssize_t)(64 * KiB), "pread: %s", strerror(errno)))
        goto out;
    if (!EXPECT_RC(0, zcfuse_arena_create(1 * MiB, 0, &b)) || !EXPECT_RC(0, zcfuse_share(s, b, &bid, NULL)) ||
        !EXPECT_RC(0, zcfuse_arena_create(1 * MiB, 0, &c)) || !EXPECT_RC(0, zcfuse_share(s, c, &cid, NULL)))
        goto out;
    EXPECT(zcfuse_pwrite_arena(s, rw_id, bid, 0, 4 * KiB, 0, 0) == (int64_t)(4 * KiB), "second arena: %s",
           zcfuse_last_error());
    EXPECT(t_file_holds(bfile, zcfuse_arena_base(b), 4 * KiB, 0), "the second arena's bytes landed");
    memcpy(saved, zcfuse_arena_base(b), 4 * KiB);
    EXPECT_RC(0, zcfuse_unshare(s, bid));
    zcfuse_arena_close(c); /* still shared on the server: the session forgets it */
    c = NULL;
    struct {
        const char *what;
        uint32_t id;
        uint64_t arena_off;
        size_t len;
    } bad[] = {
        {"an id never shared", aid + 1000, 0, 4 * KiB},
        {"an unshared arena", bid, 0, 4 * KiB},
        {"a closed arena", cid, 0, 4 * KiB},
        {"an offset past the end", aid, ARENA + 4 * KiB, 4 * KiB},
        {"an offset at the end", aid, ARENA, 1},
        {"a range straddling the end", aid, ARENA - 2 * KiB, 4 * KiB},
        {"arena_off + len overflowing", aid, 4 * KiB, SIZE_MAX - 100},
        {"arena_off near 2^64", aid, UINT64_MAX, 2},
        {"a len over the arena", aid, 0, ARENA + 1},
    };
    const int nbad = (int)(sizeof bad / sizeof bad[0]);
    s0 = snap();
    memset(base + RD_AT, 0x5a, 4 * KiB);
    for (int i = 0; i < nbad; i++) {
        int64_t w = zcfuse_pwrite_arena(s, rw_id, bad[i].id, bad[i].arena_off, bad[i].len, 0, 0);
        int64_t r = zcfuse_pread_arena(s, rw_id, bad[i].id, bad[i].arena_off, bad[i].len, 0, 0);
        EXPECT(w == -EFAULT && r == -EFAULT, "%s: pwrite_arena %lld, pread_arena %lld, want -EFAULT", bad[i].what,
               (long long)w, (long long)r);
    }
    for (int i = 0; i < nbad; i++)
        ops[i] = (zcfuse_op_t){.opcode = i % 2 ? ZCFUSE_OP_READ : ZCFUSE_OP_WRITE, .flags = ZCFUSE_F_ARENA,
                               .file_id = rw_id, .arena_id = bad[i].id, .arena_off = bad[i].arena_off,
                               .len = bad[i].len, .off = 0, .user_data = (uint64_t)i};
    memset(res, 0, sizeof res);
    EXPECT(run_batch(s, ops, nbad, res) == nbad, "batch of bad arena ops");
    for (int i = 0; i < nbad; i++)
        EXPECT(res[i] == -EFAULT, "submit, %s: %lld, want -EFAULT", bad[i].what, (long long)res[i]);
    s1 = snap();
    EXPECT_MOVED(s0, s1, 0, 0, 0, 0);
    EXPECT(t_file_holds(bfile, saved, 64 * KiB, 0), "a refused arena op changed the file");
    unsigned char want[4 * KiB];
    memset(want, 0x5a, sizeof want);
    EXPECT(memcmp(base + RD_AT, want, sizeof want) == 0, "a refused arena read changed the arena");
    /* Length 0 right at the end is inside: reads 0 bytes. */
    EXPECT(zcfuse_pread_arena(s, rw_id, aid, ARENA, 0, 0, 0) == 0, "len 0 at the arena's end: %s",
           zcfuse_last_error());

    /* Flags and the other errors. */
    EXPECT_RC(-EINVAL, (int)zcfuse_pread_arena(s, rw_id, aid, 0, 4 * KiB, 0, 1u << 7));
    EXPECT_RC(-EINVAL, (int)zcfuse_pwrite_arena(s, rw_id, aid, 0, 4 * KiB, 0, ZCFUSE_F_DATASYNC));
    EXPECT_RC(-EINVAL, (int)zcfuse_pread(s, rw_id, base, 4 * KiB, 0, ZCFUSE_F_ARENA));
    EXPECT_RC(-EINVAL, (int)zcfuse_pwrite(s, rw_id, base, 4 * KiB, 0, 1u << 7));
    EXPECT_RC(-EINVAL, (int)zcfuse_pread_arena(s, rw_id, aid, 0, 4 * KiB, -1, 0));
    EXPECT_RC(-EBADF, (int)zcfuse_pread_arena(s, 0xffff, aid, 0, 4 * KiB, 0, 0));
    EXPECT_RC(-EINVAL, (int)zcfuse_pread_arena(NULL, rw_id, aid, 0, 4 * KiB, 0, 0));
    ops[0] = (zcfuse_op_t){.opcode = ZCFUSE_OP_READ, .flags = ZCFUSE_F_ARENA | (1u << 7), .file_id = rw_id,
                           .arena_id = aid, .arena_off = RD_AT, .len = 4 * KiB, .user_data = 0};
    ops[1] = (zcfuse_op_t){.opcode = ZCFUSE_OP_READ, .flags = 1u << 9, .file_id = rw_id, .buf = base + RD_AT,
                           .len = 4 * KiB, .user_data = 1};
    ops[2] = (zcfuse_op_t){.opcode = ZCFUSE_OP_FSYNC, .flags = 1u << 3, .file_id = rw_id, .user_data = 2};
    ops[3] = (zcfuse_op_t){.opcode = ZCFUSE_OP_WRITE, .flags = ZCFUSE_F_ARENA, .file_id = rw_id, .arena_id = aid,
                           .arena_off = 0, .len = 4 * KiB, .off = -5, .user_data = 3};
    memset(res, 0, sizeof res);
    EXPECT(run_batch(s, ops, 4, res) == 4, "batch of invalid ops");
    for (int i = 0; i < 4; i++)
        EXPECT(res[i] == -EINVAL, "invalid op %d: %lld, want -EINVAL", i, (long long)res[i]);
    struct rlimit old;
    if (EXPECT(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit: %s", strerror(errno))) {
        struct rlimit low = {MiB, old.rlim_max};
        if (EXPECT(setrlimit(RLIMIT_FSIZE, &low) == 0, "setrlimit: %s", strerror(errno))) {
            s0 = snap();
            int64_t r = zcfuse_pwrite_arena(s, rw_id, aid, 0, 4 * KiB, (int64_t)(MiB - 2 * KiB), 0);
            setrlimit(RLIMIT_FSIZE, &old);
            EXPECT_RC(-EFBIG, (int)r);
            s1 = snap();
            EXPECT_MOVED(s0, s1, 0, 0, 0, 0);
        }
    }
    EXPECT_RC(0, zcfuse_fsync(s, rw_id, 0));

    close(rw);
    rw = -1;
    EXPECT_RC(0, zcfuse_close(s));
    s = NULL;
    EXPECT_RC(0, zcfuse_server_stop(srv));
out:
    if (rw >= 0)
        close(rw);
    zcfuse_close(s);
    zcfuse_arena_close(a);
    zcfuse_arena_close(b);
    zcfuse_arena_close(c);
    zcfuse_server_destroy(srv);
    free(saved);
    free(backing), free(mnt), free(file), free(bfile);
    return t_done(T_PASS);
}
