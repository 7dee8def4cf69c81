/*
 * server_run.c - zcfuse_server_run() blocks in its own thread until the
 * file system goes away, while other threads use the server.
 *
 * Transport AUTO: it must pick uring when enable_uring is Y (with an
 * empty fallback_reason), else classic with the reason given.
 *  1. run in a second thread; the main thread waits for running == 1,
 *     does I/O through the mount from a child, reads the stats, calls
 *     zcfuse_server_stop(): run returns 0 and the mount is gone.
 *  2. run in a second thread; the mount is unmounted from outside
 *     (umount2 without the library): run returns 0, running becomes 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>

#include "helpers.h"

struct runner {
    zcfuse_server_t *srv;
    pthread_t thread;
    atomic_int done;
    int rc;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    r->rc = zcfuse_server_run(r->srv);
    atomic_store(&r->done, 1);
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to 20 s for stats.running == want; 0 if run() returned first. */
static int wait_running(struct runner *r, uint32_t want)
{
    zcfuse_server_stats_t st;
    for (int i = 0; i < 2000; i++) {
        if (t_stats(r->srv, &st) == 0 && st.running == want)
            return 1;
        if (want && atomic_load(&r->done))
            return 0;
        sleep_ms(10);
    }
    return 0;
}

/* Returns 0 once run() returned, or -1 after 20 s. */
static int wait_done(struct runner *r)
{
    for (int i = 0; i < 2000 && !atomic_load(&r->done); i++)
        sleep_ms(10);
    return atomic_load(&r->done) ? 0 : -1;
}

static void run_case(int external)
{
    const char *dir = t_scratch();
    if (!dir)
        return;
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    struct runner r = {0};
    int started = 0;

    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &r.srv)))
        goto out;
    if (!EXPECT(pthread_create(&r.thread, NULL, run_thread, &r) == 0, "pthread_create"))
        goto out;
    started = 1;
    if (!EXPECT(wait_running(&r, 1), "server not running after 20 s (run returned %d: %s)", r.rc,
                zcfuse_last_error()))
        goto out;
    EXPECT(t_is_mounted(mnt), "%s not mounted while run blocks", mnt);

    zcfuse_server_stats_t st;
    if (EXPECT_RC(0, t_stats(r.srv, &st))) {
        if (t_uring_enabled())
            EXPECT(st.transport == ZCFUSE_TRANSPORT_URING && st.fallback_reason[0] == 0,
                   "AUTO with enable_uring=Y: transport %u, fallback \"%s\"", st.transport,
                   st.fallback_reason);
        else
            EXPECT(st.transport == ZCFUSE_TRANSPORT_CLASSIC && st.fallback_reason[0] != 0,
                   "AUTO without the ring: transport %u, fallback \"%s\"", st.transport,
                   st.fallback_reason);
    }
    int sh = t_sh("echo run > \"$1/f\" && test \"$(cat \"$2/f\")\" = run", mnt, backing, NULL);
    EXPECT(sh == 0, "I/O through %s while run blocks: child exited %d", mnt, sh);
    EXPECT(!atomic_load(&r.done), "run returned %d while mounted", r.rc);

    if (external)
        EXPECT(umount2(mnt, 0) == 0, "umount %s: %s", mnt, strerror(errno));
    else
        EXPECT_RC(0, zcfuse_server_stop(r.srv));
    if (EXPECT(wait_done(&r) == 0, "run still blocks 20 s after the %s",
               external ? "external umount" : "stop"))
        EXPECT_RC(0, r.rc);
    EXPECT(!t_is_mounted(mnt), "%s still mounted", mnt);
    if (EXPECT_RC(0, t_stats(r.srv, &st)))
        EXPECT(st.running == 0, "running %u after the %s", st.running,
               external ? "external umount" : "stop");
    printf("run returned %d after the %s\n", r.rc, external ? "external umount" : "stop");
out:
    if (started) {
        if (!atomic_load(&r.done))
            zcfuse_server_stop(r.srv); /* a check failed: unblock run */
        if (wait_done(&r) == 0) {
            pthread_join(r.thread, NULL);
        } else {
            t_fail("run still blocks after stop; leaving the server alone");
            r.srv = NULL;
        }
    }
    zcfuse_server_destroy(r.srv);
    free(backing), free(mnt);
}

int main(void)
{
    t_init("server_run");
    int rc = t_require_mount();
    if (rc == 0 && !t_uring_enabled()) {
        const char *req = getenv("ZCFUSE_REQUIRE_URING");
        if (req && strcmp(req, "1") == 0)
            rc = t_require_uring(); /* AUTO must not fall back: a failure */
    }
    if (rc == 0) {
        run_case(0);
        run_case(1);
    }
    return t_done(rc);
}
