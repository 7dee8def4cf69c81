/*
 * start_stop_100.c - 100 create/start/stop/destroy cycles leak neither
 * file descriptors nor threads.
 *
 * Cycles alternate uring and classic (classic only when the kernel does
 * not offer the ring). Each cycle checks the mount is there after start
 * and gone after stop. The baseline is taken after the first cycle of
 * each transport used (so after cycle 2 when alternating), once the
 * library has opened what it keeps for good; after cycle 100:
 *  - open descriptors (/proc/self/fd) must equal the baseline;
 *  - threads (/proc/self/task) may exceed it by at most THREAD_SLACK:
 *    the Go runtime never ends idle threads (Ms) and parks them for
 *    reuse, so a run that happens to need one or two more at once keeps
 *    them. A leak grows with the cycle count (one ring thread per queue
 *    per cycle would be 100s), which this bound still catches.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "helpers.h"

#ifndef CYCLES /* -DCYCLES=1000 for a longer soak */
#define CYCLES 100
#endif
#define THREAD_SLACK 4

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One cycle; returns 0 or -1 after recording why. */
static int cycle(int i, uint32_t transport, const char *backing, const char *mnt)
{
    zcfuse_server_opts_t opts;
    zcfuse_server_t *srv = NULL;
    zcfuse_server_stats_t st;
    int ok = 0;

    zcfuse_server_opts_init(&opts);
    opts.transport = transport;
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)) || !EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;
    if (!EXPECT(t_is_mounted(mnt), "cycle %d: not mounted after start", i) ||
        !EXPECT_RC(0, t_stats(srv, &st)) ||
        !EXPECT(st.running == 1 && st.transport == transport,
                "cycle %d: running %u transport %u, want 1 and %u", i, st.running, st.transport,
                transport) ||
        !EXPECT_RC(0, zcfuse_server_stop(srv)) ||
        !EXPECT(!t_is_mounted(mnt), "cycle %d: still mounted after stop", i))
        goto out;
    ok = 1;
out:
    zcfuse_server_destroy(srv);
    return ok ? 0 : -1;
}

int main(void)
{
    t_init("start_stop_100");
    int rc = t_require_mount();
    if (rc)
        return t_done(rc);
    int alternate = t_uring_enabled();
    if (!alternate) {
        rc = t_require_uring(); /* fails under ZCFUSE_REQUIRE_URING=1 */
        if (rc == T_FAIL)
            return t_done(rc);
        printf("no FUSE-over-io_uring: classic only\n");
        rc = 0;
    }
    const char *dir = t_scratch();
    if (!dir)
        return t_done(T_FAIL);
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    int base_at = alternate ? 2 : 1, fds0 = -1, threads0 = -1;
    double t0 = now();

    for (int i = 1; i <= CYCLES; i++) {
        uint32_t tr = alternate && i % 2 ? ZCFUSE_TRANSPORT_URING : ZCFUSE_TRANSPORT_CLASSIC;
        if (cycle(i, tr, backing, mnt) < 0)
            break;
        if (i == base_at) {
            fds0 = t_count_entries("/proc/self/fd");
            threads0 = t_count_entries("/proc/self/task");
            printf("after cycle %d (baseline): %d fds, %d threads\n", i, fds0, threads0);
        }
        if (i == CYCLES) {
            int fds = t_count_entries("/proc/self/fd");
            int threads = t_count_entries("/proc/self/task");
            printf("after cycle %d: %d fds, %d threads (%.1f ms a cycle)\n", i, fds, threads,
                   (now() - t0) * 1000 / CYCLES);
            if (!EXPECT(fds == fds0, "%d fds after %d cycles, %d at the baseline", fds, CYCLES, fds0))
                t_sh("ls -l /proc/$PPID/fd", NULL);
            EXPECT(threads <= threads0 + THREAD_SLACK,
                   "%d threads after %d cycles, %d at the baseline (slack %d)", threads, CYCLES,
                   threads0, THREAD_SLACK);
        }
    }
    free(backing), free(mnt);
    return t_done(rc);
}
