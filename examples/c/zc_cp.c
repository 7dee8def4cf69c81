/*
 * zc_cp.c - copy a file through a zcfuse mount with no copy in user space.
 *
 * What it shows: a client of the zero-copy path. zc_cp finds the zcfuse
 * server behind SRC (walking up from SRC's directory until a directory
 * answers the attribute user.zcfuse.control: the mount root), connects,
 * shares one 16 MiB arena, opens SRC and DST through the mount and
 * attaches both. The arena is cut into slots (1 MiB each by default); each
 * slot reads a chunk of SRC and then writes it to DST, and every slot is
 * in flight at once, driven by batched zcfuse_submit() and zcfuse_wait().
 * Every op carries ZCFUSE_F_REQUIRE_ZC, so nothing falls back to copying
 * silently: the server moves the bytes between the backing files and the
 * arena with io_uring. DST is fsynced, then the bytes copied and the rate
 * are printed.
 *
 * Build: cc zc_cp.c $(pkg-config --cflags --libs zcfuse) -o zc_cp
 *
 * Usage: ./zc_cp [-m MOUNTPOINT] [-c CHUNK_KIB] SRC DST
 * SRC and DST must be on the same zcfuse mount; -m names its root instead
 * of looking for it. Exit status 0, or 1 on any error (printed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <zcfuse.h>

#define ARENA_SIZE ((size_t)16 << 20)

/* A slot of the arena: the chunk of the file it holds. user_data of an op
 * is the slot's index times two, plus one for a write. */
struct slot {
    int64_t off;
    uint64_t len;
};

static int fail(const char *what, int rc)
{
    fprintf(stderr, "zc_cp: %s: %s", what, zcfuse_strerror(rc));
    if (*zcfuse_last_error())
        fprintf(stderr, " (%s)", zcfuse_last_error());
    fprintf(stderr, "\n");
    return 1;
}

/* Finds the zcfuse mount holding path: the nearest directory above it
 * that answers user.zcfuse.control. Returns 0, or -1 when there is none. */
static int find_mount(const char *path, char *out)
{
    if (!realpath(path, out))
        return -1;
    for (char *slash; (slash = strrchr(out, '/')) != NULL;) {
        *(slash == out ? slash + 1 : slash) = 0; /* the parent; "/" stays "/" */
        if (getxattr(out, "user.zcfuse.control", NULL, 0) >= 0)
            return 0;
        if (strcmp(out, "/") == 0)
            break;
    }
    errno = ENODATA;
    return -1;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *mount_opt = NULL;
    size_t chunk = 1 << 20;
    for (int c; (c = getopt(argc, argv, "m:c:")) != -1;) {
        if (c == 'm') {
            mount_opt = optarg;
        } else if (c == 'c') {
            chunk = strtoul(optarg, NULL, 10) << 10;
            if (chunk < 64 << 10 || chunk > ARENA_SIZE || ARENA_SIZE % chunk) {
                fprintf(stderr, "zc_cp: -c: from 64 to 16384 KiB, dividing 16384\n");
                return 2;
            }
        } else {
            optind = argc + 1;
            break;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: zc_cp [-m MOUNTPOINT] [-c CHUNK_KIB] SRC DST\n");
        return 2;
    }
    const char *src = argv[optind], *dst = argv[optind + 1];
    char mnt[PATH_MAX];
    if (mount_opt) {
        snprintf(mnt, sizeof mnt, "%s", mount_opt);
    } else if (find_mount(src, mnt) < 0) {
        fprintf(stderr, "zc_cp: no zcfuse mount above %s: %s\n", src, strerror(errno));
        return 1;
    }

    zcfuse_session_t *s = NULL;
    zcfuse_arena_t *arena = NULL;
    uint32_t arena_id, src_id, dst_id;
    int in = -1, out = -1, rc = 1, err;
    struct stat st;
    if ((err = zcfuse_connect(mnt, &s)) < 0) {
        fail(mnt, err);
        goto out;
    }
    if ((err = zcfuse_arena_create(ARENA_SIZE, 0, &arena)) < 0 ||
        (err = zcfuse_share(s, arena, &arena_id, NULL)) < 0) {
        fail("arena", err);
        goto out;
    }
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0 || fstat(in, &st) < 0) {
        fprintf(stderr, "zc_cp: %s: %s\n", src, strerror(errno));
        goto out;
    }
    /* DST's directory must be on the same mount: check before creating DST. */
    char dir[PATH_MAX];
    struct stat dst_dir;
    snprintf(dir, sizeof dir, "%s", dst);
    if (stat(dirname(dir), &dst_dir) < 0) {
        fprintf(stderr, "zc_cp: %s: %s\n", dir, strerror(errno));
        goto out;
    }
    if (dst_dir.st_dev != st.st_dev) {
        fprintf(stderr, "zc_cp: %s is not on the zcfuse mount %s\n", dst, mnt);
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
    if (out < 0) {
        fprintf(stderr, "zc_cp: %s: %s\n", dst, strerror(errno));
        goto out;
    }
    if ((err = zcfuse_attach(s, in, &src_id)) < 0) {
        fail(src, err);
        goto out;
    }
    if ((err = zcfuse_attach(s, out, &dst_id)) < 0) {
        fail(err == -EXDEV ? "DST is not on SRC's zcfuse mount" : dst, err);
        goto out;
    }

    /* Every slot reads, then writes what it read, then reads the next
     * chunk; all slots stay in flight until SRC is done or an op fails. */
    char *base = zcfuse_arena_base(arena);
    unsigned nslots = (unsigned)(ARENA_SIZE / chunk), inflight = 0;
    struct slot slots[256];
    zcfuse_op_t ops[256];
    zcfuse_cqe_t cqes[256];
    int64_t size = st.st_size, next = 0;
    uint64_t copied = 0;
    int op_err = 0;
    double t0 = now();
    unsigned nops = 0;
    for (unsigned i = 0; i < nslots && next < size; i++, next += chunk) {
        slots[i] = (struct slot){next, size - next < (int64_t)chunk ? (uint64_t)(size - next) : chunk};
        ops[nops++] = (zcfuse_op_t){.opcode = ZCFUSE_OP_READ, .flags = ZCFUSE_F_REQUIRE_ZC, .file_id = src_id,
                                    .buf = base + (size_t)i * chunk, .len = slots[i].len, .off = next,
                                    .user_data = 2 * i};
    }
    for (;;) {
        for (unsigned done = 0; done < nops;) {
            int n = zcfuse_submit(s, ops + done, nops - done);
            if (n < 0) { /* the queue holds 256 ops: never full here */
                fail("submit", n);
                goto out;
            }
            done += n, inflight += n;
        }
        nops = 0;
        if (inflight == 0)
            break;
        int n = zcfuse_wait(s, cqes, 1, nslots, -1);
        if (n < 0) {
            fail("wait", n);
            goto out;
        }
        for (int k = 0; k < n; k++) {
            unsigned i = (unsigned)(cqes[k].user_data / 2);
            int writing = cqes[k].user_data % 2;
            int64_t res = cqes[k].res;
            struct slot *sl = &slots[i];
            inflight--;
            if (res < 0) {
                fprintf(stderr, "zc_cp: %s %s at offset %lld: %s\n", writing ? "write" : "read",
                        writing ? dst : src, (long long)sl->off, zcfuse_strerror((int)res));
                op_err = 1;
                continue;
            }
            if (!writing) {
                if ((uint64_t)res < sl->len && sl->off + res < size)
                    size = sl->off + res; /* SRC shrank while we copied */
                if (res == 0 || op_err)
                    continue;
                sl->len = (uint64_t)res;
                ops[nops++] = (zcfuse_op_t){.opcode = ZCFUSE_OP_WRITE, .flags = ZCFUSE_F_REQUIRE_ZC,
                                            .file_id = dst_id, .buf = base + (size_t)i * chunk, .len = sl->len,
                                            .off = sl->off, .user_data = 2 * i + 1};
            } else if ((uint64_t)res != sl->len) {
                fprintf(stderr, "zc_cp: short write to %s at offset %lld: %lld of %llu bytes\n", dst,
                        (long long)sl->off, (long long)res, (unsigned long long)sl->len);
                op_err = 1;
            } else {
                copied += (uint64_t)res;
                if (op_err || next >= size)
                    continue;
                *sl = (struct slot){next, size - next < (int64_t)chunk ? (uint64_t)(size - next) : chunk};
                ops[nops++] = (zcfuse_op_t){.opcode = ZCFUSE_OP_READ, .flags = ZCFUSE_F_REQUIRE_ZC,
                                            .file_id = src_id, .buf = base + (size_t)i * chunk, .len = sl->len,
                                            .off = next, .user_data = 2 * i};
                next += chunk;
            }
        }
    }
    if (op_err)
        goto out;
    if ((err = zcfuse_fsync(s, dst_id, 0)) < 0) {
        fail("fsync", err);
        goto out;
    }
    double secs = now() - t0;
    printf("zc_cp: copied %llu bytes in %.3f s (%.1f MB/s)\n", (unsigned long long)copied, secs,
           secs > 0 ? copied / secs / 1e6 : 0.0);
    rc = 0;
out:
    if (out >= 0 && close(out) < 0 && rc == 0) {
        fprintf(stderr, "zc_cp: close %s: %s\n", dst, strerror(errno));
        rc = 1;
    }
    if (in >= 0)
        close(in);
    zcfuse_close(s);
    zcfuse_arena_close(arena);
    return rc;
}
