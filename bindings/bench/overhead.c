/*
 * overhead.c - the C baseline of the bindings' overhead benchmark.
 *
 * Connects to a zcfuse mount, shares a 1 MiB arena, opens and attaches a
 * file on the mount (pre-sized by the caller), sets the session's wait
 * mode, then times N synchronous 4 KiB zcfuse_pwrite calls and N
 * zcfuse_pread calls with ZCFUSE_F_REQUIRE_ZC, at random 4 KiB-aligned
 * offsets (splitmix64 from SEED: overhead.py and overhead.rs draw the
 * same offsets), always from the first 4 KiB of the arena.
 *
 *   overhead MNT FILE N WARMUP SEED sleep|poll SPIN_US
 *
 * Prints one line per measurement (see run.sh, which parses them):
 *   R lang=c mode=M op=write|read n=N mean_us= p50_us= p99_us= ops_s=
 *   X lang=c what=timer|null_call ns=
 * "timer" is the cost of the clock_gettime pair around one op; "null_call"
 * is one zcfuse_pwrite with a NULL session (rejected in the C shim before
 * it enters Go): the cost of the call itself, to compare with ctypes.
 * Pin it to a CPU from outside (run.sh: taskset -c 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zcfuse.h"

#define OPSZ 4096
#define FILE_PAGES 16384 /* 64 MiB / 4 KiB */
#define ARENA_SIZE (1u << 20)

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least q of the samples at or below it. */
static uint64_t pct(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void die(const char *what, long long rc)
{
    fprintf(stderr, "overhead.c: %s: %s (%s)\n", what, zcfuse_strerror((int)rc), zcfuse_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s MNT FILE N WARMUP SEED sleep|poll SPIN_US\n", argv[0]);
        return 2;
    }
    const char *mnt = argv[1], *path = argv[2], *mode = argv[6];
    size_t n = strtoull(argv[3], NULL, 10), warm = strtoull(argv[4], NULL, 10);
    uint64_t seed = strtoull(argv[5], NULL, 10);
    unsigned spin = (unsigned)strtoul(argv[7], NULL, 10);
    int poll = strcmp(mode, "poll") == 0;

    size_t total = warm + n;
    int64_t *offs = malloc(total * sizeof *offs);
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!offs || !lat)
        return 1;
    uint64_t st = seed;
    for (size_t i = 0; i < total; i++)
        offs[i] = (int64_t)(splitmix64(&st) % FILE_PAGES) * OPSZ;

    zcfuse_session_t *s;
    zcfuse_arena_t *a;
    uint32_t arena_id, file_id;
    int rc;
    if ((rc = zcfuse_connect(mnt, &s)) < 0)
        die("zcfuse_connect", rc);
    if ((rc = zcfuse_arena_create(ARENA_SIZE, 0, &a)) < 0)
        die("zcfuse_arena_create", rc);
    if ((rc = zcfuse_share(s, a, &arena_id, NULL)) < 0)
        die("zcfuse_share", rc);
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    if ((rc = zcfuse_attach(s, fd, &file_id)) < 0)
        die("zcfuse_attach", rc);
    if ((rc = zcfuse_session_set_mode(s, poll ? ZCFUSE_MODE_POLL : ZCFUSE_MODE_SLEEP, spin)) < 0)
        die("zcfuse_session_set_mode", rc);
    unsigned char *buf = zcfuse_arena_base(a);
    memset(buf, 0xa5, OPSZ);

    for (int op = 0; op < 2; op++) {
        int wr = op == 0;
        for (size_t i = 0; i < warm; i++) {
            int64_t r = wr ? zcfuse_pwrite(s, file_id, buf, OPSZ, offs[i], ZCFUSE_F_REQUIRE_ZC)
                           : zcfuse_pread(s, file_id, buf, OPSZ, offs[i], ZCFUSE_F_REQUIRE_ZC);
            if (r != OPSZ)
                die(wr ? "zcfuse_pwrite (warm-up)" : "zcfuse_pread (warm-up)", r);
        }
        uint64_t t_start = now_ns();
        for (size_t i = 0; i < n; i++) {
            int64_t off = offs[warm + i];
            uint64_t t0 = now_ns();
            int64_t r = wr ? zcfuse_pwrite(s, file_id, buf, OPSZ, off, ZCFUSE_F_REQUIRE_ZC)
                           : zcfuse_pread(s, file_id, buf, OPSZ, off, ZCFUSE_F_REQUIRE_ZC);
            lat[i] = now_ns() - t0;
            if (r != OPSZ)
                die(wr ? "zcfuse_pwrite" : "zcfuse_pread", r);
        }
        uint64_t wall = now_ns() - t_start;
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += (double)lat[i];
        qsort(lat, n, sizeof *lat, cmp_u64);
        printf("R lang=c mode=%s op=%s n=%zu mean_us=%.3f p50_us=%.3f p99_us=%.3f ops_s=%.0f\n", mode,
               wr ? "write" : "read", n, sum / n / 1e3, pct(lat, n, 0.50) / 1e3, pct(lat, n, 0.99) / 1e3,
               n / (wall / 1e9));
        fflush(stdout);
    }

    /* The timer pair alone, and a call that returns in the C shim. */
    size_t reps = 1000000;
    uint64_t t0 = now_ns(), sink = 0;
    for (size_t i = 0; i < reps; i++) {
        uint64_t a0 = now_ns();
        sink += now_ns() - a0;
    }
    uint64_t t1 = now_ns();
    printf("X lang=c what=timer ns=%.1f\n", (double)(t1 - t0) / reps);
    volatile int64_t vr = 0;
    zcfuse_session_t *volatile nul = NULL;
    t0 = now_ns();
    for (size_t i = 0; i < reps; i++)
        vr = zcfuse_pwrite(nul, file_id, buf, OPSZ, offs[i % total], ZCFUSE_F_REQUIRE_ZC);
    t1 = now_ns();
    if (vr != -EINVAL)
        die("zcfuse_pwrite(NULL)", vr);
    printf("X lang=c what=null_call ns=%.1f\n", (double)(t1 - t0) / reps);
    (void)sink;

    close(fd);
    if ((rc = zcfuse_close(s)) < 0)
        die("zcfuse_close", rc);
    zcfuse_arena_close(a);
    free(offs);
    free(lat);
    return 0;
}
