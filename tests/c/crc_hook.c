/*
 * crc_hook: examples/c/crc_server's write hook sees every write, on both
 * paths, with the right bytes. The server runs on a fresh backing
 * directory (started with posix_spawn: this process holds libzcfuse); a
 * client writes known regions through the posix path (plain pwrite on a
 * file in the mount; each region at most 128 KiB, so it is one FUSE
 * WRITE) and through the ring path (zcfuse_pwrite from a shared arena with
 * ZCFUSE_F_REQUIRE_ZC; each region at most 16 MiB, so it is one op), and
 * computes the CRC32C of each region itself (bitwise, not the server's
 * table-driven code). SIGUSR1 prints the table; after SIGTERM the server
 * exits 0, unmounted, and the table it dumps holds exactly those
 * (path, offset, length, crc, path taken) entries. Its stats show who
 * copied: with --copy (ZCFUSE_SERVER_HOOK_COPY) every ring byte was
 * copied and none moved zero-copy, without it the reverse.
 *
 * Usage: crc_hook PATH-TO-CRC_SERVER [--copy]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define ARENA ((size_t)32 << 20)

/* A region a client writes, and what the table must say about it. */
struct region {
    const char *path; /* relative to the mount root */
    int ring;         /* 1: zcfuse_pwrite from the arena, 0: pwrite(2) */
    int64_t off;
    size_t len;
    uint32_t crc; /* computed here */
    int found;
};
#define R(path, ring, off, len) {path, ring, off, len, 0, 0}

static struct region regions[] = {
    R("posix.dat", 0, 0, 4 * KiB),
    R("posix.dat", 0, 8 * KiB, 64 * KiB),
    R("posix.dat", 0, 1 * MiB, 128 * KiB),
    R("posix.dat", 0, 300000, 100), /* inside one page, unaligned */
    R("posix.dat", 0, 2 * MiB, 1),
    R("posix.dat", 1, 4 * MiB, 256 * KiB), /* both paths on one file */
    R("ring.dat", 1, 0, 4 * KiB),
    R("ring.dat", 1, 12345, 100),
    R("ring.dat", 1, 1 * MiB, 1 * MiB),
    R("ring.dat", 1, 8 * MiB, 16 * MiB), /* one full 16 MiB piece */
    R("sub/deep.dat", 0, 0, 4 * KiB),
    R("sub/deep.dat", 1, 64 * KiB, 64 * KiB),
};
#define NREGIONS (sizeof regions / sizeof regions[0])

/* CRC32C bit by bit: reflected polynomial 0x82F63B78, init and xorout ~0. */
static uint32_t crc32c(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t c = ~0u;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The whole of a small file, NUL-terminated (malloc'd), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap && !(buf = realloc(buf, cap = 2 * cap + 8192)))
            break;
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

/* Waits up to ms for pid to exit; returns its wait status, or -1. */
static int wait_exit(pid_t pid, int ms)
{
    int status;
    for (double t0 = now_ms(); now_ms() - t0 < ms; usleep(10000)) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
    }
    return -1;
}

/* Checks one table (text from "crc table: N entries" to "crc table end")
 * against the regions: exactly them, with their CRC and path taken. */
static void check_table(const char *what, const char *text)
{
    const char *t = text ? strstr(text, "crc table: ") : NULL;
    size_t count = 0;
    int header = t && sscanf(t, "crc table: %zu entries", &count) == 1;
    if (!EXPECT(header, "%s: no table header", what))
        return;
    EXPECT(count == NREGIONS, "%s: %zu entries, want %zu", what, count, NREGIONS);
    for (size_t i = 0; i < NREGIONS; i++)
        regions[i].found = 0;
    const char *line = strchr(t, '\n');
    for (size_t k = 0; line && k < count; k++) {
        char path[256], via[16];
        long long off;
        unsigned long long len;
        unsigned crc;
        line++;
        int fields = sscanf(line, "%255s %lld %llu %x %15s", path, &off, &len, &crc, via);
        if (!EXPECT(fields == 5, "%s: line %.60s", what, line))
            return;
        int known = 0;
        for (size_t i = 0; i < NREGIONS; i++) {
            struct region *r = &regions[i];
            if (strcmp(r->path, path) != 0 || r->off != off || r->len != len)
                continue;
            known = 1;
            r->found++;
            EXPECT(r->crc == crc && strcmp(via, r->ring ? "ring" : "posix") == 0,
                   "%s: %s %lld %llu: crc %08x via %s, want %08x via %s", what, path, off, len, crc, via, r->crc,
                   r->ring ? "ring" : "posix");
        }
        EXPECT(known, "%s: an entry nobody wrote: %s %lld %llu %08x %s", what, path, off, len, crc, via);
        line = strchr(line, '\n');
    }
    EXPECT(line && strncmp(line + 1, "crc table end", 13) == 0, "%s: table not terminated", what);
    for (size_t i = 0; i < NREGIONS; i++)
        EXPECT(regions[i].found == 1, "%s: %s %lld %zu (%s) listed %d times", what, regions[i].path,
               (long long)regions[i].off, regions[i].len, regions[i].ring ? "ring" : "posix", regions[i].found);
}

int main(int argc, char **argv)
{
    t_init("crc_hook");
    int copy = argc == 3 && strcmp(argv[2], "--copy") == 0;
    if (argc != 2 && !copy) {
        t_fail("usage: crc_hook PATH-TO-CRC_SERVER [--copy]");
        return t_done(T_FAIL);
    }
    int rc = t_require_mount();
    if (rc)
        return rc;
    EXPECT(crc32c("123456789", 9) == 0xE3069283u, "the test's CRC32C check value: %08x", crc32c("123456789", 9));
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    char *dump = t_path(dir, "table", 0), *out = t_path(dir, "out", 0), *sub = t_path(backing, "sub", 1);
    char *args[] = {argv[1], copy ? "--copy" : "--dump", copy ? "--dump" : dump, copy ? dump : backing,
                    copy ? backing : mnt, copy ? mnt : NULL, NULL};
    pid_t pid = -1;
    zcfuse_session_t *s = NULL;
    zcfuse_arena_t *a = NULL;
    int fds[NREGIONS], nfds = 0;
    char *text = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int err = posix_spawn(&pid, argv[1], &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (!EXPECT(err == 0, "spawn %s: %s", argv[1], strerror(err))) {
        pid = -1;
        goto out;
    }
    /* Serving once the mount root answers user.zcfuse.control. */
    double t0 = now_ms();
    while (getxattr(mnt, "user.zcfuse.control", NULL, 0) < 0) {
        if (!EXPECT(now_ms() - t0 < 20000 && waitpid(pid, NULL, WNOHANG) == 0, "crc_server not serving"))
            goto out;
        usleep(20000);
    }

    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s)) || !EXPECT_RC(0, zcfuse_arena_create(ARENA, 0, &a)))
        goto out;
    uint32_t arena_id;
    if (!EXPECT_RC(0, zcfuse_share(s, a, &arena_id, NULL)))
        goto out;
    char *base = zcfuse_arena_base(a);
    uint64_t ring_bytes = 0, posix_bytes = 0;
    for (size_t i = 0; i < NREGIONS; i++) {
        struct region *r = &regions[i];
        char *path = t_path(mnt, r->path, 0);
        int fd = -1;
        for (size_t j = 0; j < (size_t)nfds && fd < 0; j++)
            if (j < i && strcmp(regions[j].path, r->path) == 0)
                fd = fds[j];
        if (fd < 0)
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        fds[nfds++] = fd;
        if (!EXPECT(fd >= 0, "open %s: %s", path, strerror(errno))) {
            free(path);
            goto out;
        }
        free(path);
        t_fill(base, r->len, 1000 + i);
        r->crc = crc32c(base, r->len);
        if (r->ring) {
            uint32_t file_id;
            if (!EXPECT_RC(0, zcfuse_attach(s, fd, &file_id)))
                goto out;
            EXPECT(zcfuse_pwrite(s, file_id, base, r->len, r->off, ZCFUSE_F_REQUIRE_ZC) == (int64_t)r->len,
                   "zcfuse_pwrite %s %lld %zu: %s", r->path, (long long)r->off, r->len, zcfuse_last_error());
            ring_bytes += r->len;
        } else {
            EXPECT(pwrite(fd, base, r->len, r->off) == (ssize_t)r->len, "pwrite %s %lld %zu: %s", r->path,
                   (long long)r->off, r->len, strerror(errno));
            posix_bytes += r->len;
        }
    }
    /* What landed in the backing files has the CRCs computed here. */
    for (size_t i = 0; i < NREGIONS; i++) {
        struct region *r = &regions[i];
        char *path = t_path(backing, r->path, 0);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        EXPECT(fd >= 0 && pread(fd, base, r->len, r->off) == (ssize_t)r->len && crc32c(base, r->len) == r->crc,
               "backing %s %lld %zu does not hold what was written", r->path, (long long)r->off, r->len);
        if (fd >= 0)
            close(fd);
        free(path);
    }

    /* SIGUSR1 prints the table while serving. */
    kill(pid, SIGUSR1);
    t0 = now_ms();
    while (!((text = slurp(out)) && strstr(text, "crc table end")) && now_ms() - t0 < 10000) {
        free(text), text = NULL;
        usleep(20000);
    }
    check_table("after SIGUSR1", text);
    free(text), text = NULL;

    for (int i = 0; i < nfds; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= fds[j] == fds[i];
        if (fds[i] >= 0 && !dup)
            close(fds[i]);
    }
    nfds = 0;
    EXPECT_RC(0, zcfuse_close(s));
    s = NULL;

    /* SIGTERM: unmount, exit 0, the dump. */
    kill(pid, SIGTERM);
    int status = wait_exit(pid, 20000);
    if (EXPECT(status != -1, "crc_server still running 20 s after SIGTERM"))
        pid = -1;
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "crc_server exit status %#x", status);
    EXPECT(!t_is_mounted(mnt), "%s still mounted after crc_server exited", mnt);
    text = slurp(dump);
    check_table("--dump", text);
    free(text);
    text = slurp(out);
    unsigned long long zcw = 0, zc = 0, copied = 0, written = 0;
    const char *line = text ? strstr(text, "stats: ") : NULL;
    int fields = line ? sscanf(line, "stats: zc_write_bytes %llu zero_copy_bytes %llu copied_bytes %llu "
                                     "bytes_written %llu",
                               &zcw, &zc, &copied, &written)
                      : 0;
    if (EXPECT(fields == 4, "no stats line from crc_server"))
        EXPECT(zcw == ring_bytes && written == posix_bytes && copied == (copy ? ring_bytes : 0) &&
                   zc == (copy ? 0 : ring_bytes),
               "%s: zc_write_bytes %llu (want %llu), bytes_written %llu (want %llu), copied_bytes %llu, "
               "zero_copy_bytes %llu",
               copy ? "--copy" : "no --copy", zcw, (unsigned long long)ring_bytes, written,
               (unsigned long long)posix_bytes, copied, zc);
    if (t_failures())
        printf("crc_server's output:\n%s\n", text ? text : "(none)");
out:
    free(text);
    for (int i = 0; i < nfds; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= fds[j] == fds[i];
        if (fds[i] >= 0 && !dup)
            close(fds[i]);
    }
    zcfuse_close(s);
    zcfuse_arena_close(a);
    if (pid > 0) {
        kill(pid, SIGTERM);
        if (wait_exit(pid, 10000) == -1) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        if (t_is_mounted(mnt))
            umount2(mnt, MNT_DETACH);
    }
    free(backing), free(mnt), free(dump), free(out), free(sub);
    return t_done(T_PASS);
}
