/*
 * attach: the whole control plane from C over FUSE-over-io_uring. Arenas
 * of 4 KiB, 64 MiB and 1 GiB are shared (and registered), a file opened
 * O_RDWR and one O_RDONLY are attached, and the session's and the
 * server's counters agree; refusals carry their -errno; after close the
 * process's fds, memfd mappings and fixed-buffer slots are back where
 * they started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define NARENAS 3

static int session_stats(zcfuse_session_t *s, zcfuse_session_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->struct_size = sizeof *st;
    return zcfuse_session_stats(s, st);
}

/* Open fds and memfd mappings of this process (server and client both). */
static void count(int *fds, int *memfd_maps)
{
    *fds = t_count_entries("/proc/self/fd");
    *memfd_maps = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "/memfd:"))
            ++*memfd_maps;
    if (f)
        fclose(f);
}

/* Both sides report the same control-plane counts, and they are these. */
static void agree(zcfuse_server_t *srv, zcfuse_session_t *s, uint64_t sessions, uint64_t arenas,
                  uint64_t registered, uint64_t attached)
{
    zcfuse_session_stats_t cs;
    zcfuse_server_stats_t ss;
    if (!EXPECT_RC(0, session_stats(s, &cs)) || !EXPECT_RC(0, t_stats(srv, &ss)))
        return;
    EXPECT(cs.sessions == sessions && ss.sessions == sessions, "sessions: client %llu server %llu want %llu",
           (unsigned long long)cs.sessions, (unsigned long long)ss.sessions, (unsigned long long)sessions);
    EXPECT(cs.arenas == arenas && ss.arenas == arenas, "arenas: client %llu server %llu want %llu",
           (unsigned long long)cs.arenas, (unsigned long long)ss.arenas, (unsigned long long)arenas);
    EXPECT(cs.registered_bytes == registered && ss.registered_bytes == registered,
           "registered bytes: client %llu server %llu want %llu", (unsigned long long)cs.registered_bytes,
           (unsigned long long)ss.registered_bytes, (unsigned long long)registered);
    EXPECT(cs.attached_files == attached && ss.attached_files == attached,
           "attached files: client %llu server %llu want %llu", (unsigned long long)cs.attached_files,
           (unsigned long long)ss.attached_files, (unsigned long long)attached);
}

int main(void)
{
    t_init("attach");
    int rc = t_require_mount();
    if (!rc)
        rc = t_require_uring();
    if (rc)
        return rc;
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    char *file = t_path(mnt, "data", 0), *elsewhere = t_path(dir, "elsewhere", 0);
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    opts.transport = ZCFUSE_TRANSPORT_URING;
    zcfuse_server_t *srv = NULL;
    zcfuse_session_t *s = NULL;
    zcfuse_arena_t *a[NARENAS] = {0};
    const size_t sizes[NARENAS] = {4096, (size_t)64 << 20, (size_t)1 << 30};
    int rw = -1, ro = -1, other = -1;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)) || !EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;
    if (!EXPECT(t_write_pattern(file, 1 << 20, 7) == 0, "write %s", file))
        goto out;
    /* The backing file closes when the kernel's RELEASE, sent after the
     * close() above, is served: wait for the count to settle. */
    int fds0, maps0, prev = -1;
    zcfuse_server_stats_t ss0;
    for (int i = 0; i < 100; i++, usleep(20000)) {
        count(&fds0, &maps0);
        if (fds0 == prev)
            break;
        prev = fds0;
    }
    if (!EXPECT_RC(0, t_stats(srv, &ss0)))
        goto out;

    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s)))
        goto out;
    uint64_t total = 0;
    for (int i = 0; i < NARENAS; i++) {
        uint32_t id, flags = 0;
        struct timespec t0, t1;
        if (!EXPECT_RC(0, zcfuse_arena_create(sizes[i], 0, &a[i])))
            goto out;
        memset(zcfuse_arena_base(a[i]), 0x5a, 4096);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (!EXPECT_RC(0, zcfuse_share(s, a[i], &id, &flags)))
            goto out;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("shared %zu KiB in %.1f ms\n", sizes[i] >> 10,
               (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
        EXPECT(flags & ZCFUSE_SHARED_REGISTERED, "a root server registers arena %d", i);
        total += sizes[i];
    }

    rw = open(file, O_RDWR | O_CLOEXEC);
    ro = open(file, O_RDONLY | O_CLOEXEC);
    other = open(elsewhere, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (!EXPECT(rw >= 0 && ro >= 0 && other >= 0, "open: %s", strerror(errno)))
        goto out;
    uint32_t rw_id = 0, ro_id = 0, again = 0;
    EXPECT_RC(0, zcfuse_attach(s, rw, &rw_id));
    EXPECT_RC(0, zcfuse_attach(s, ro, &ro_id));
    EXPECT(rw_id != 0 && ro_id != 0 && rw_id != ro_id, "file ids %u %u", rw_id, ro_id);
    EXPECT_RC(0, zcfuse_attach(s, rw, &again));
    EXPECT(again == rw_id, "the same open file attaches under one id (%u, %u)", rw_id, again);
    EXPECT_RC(-EXDEV, zcfuse_attach(s, other, &again));
    EXPECT_RC(-EINVAL, zcfuse_attach(s, rw, NULL));
    EXPECT_RC(-EBADF, zcfuse_attach(s, 1 << 20, &again));
    agree(srv, s, 1, NARENAS, total, 2);
    zcfuse_server_stats_t ss;
    if (EXPECT_RC(0, t_stats(srv, &ss)))
        EXPECT(ss.fixed_slots_used == ss0.fixed_slots_used + NARENAS, "fixed slots %llu",
               (unsigned long long)ss.fixed_slots_used);

    EXPECT_RC(0, zcfuse_detach(s, rw_id));
    EXPECT_RC(-ENOENT, zcfuse_detach(s, rw_id));
    agree(srv, s, 1, NARENAS, total, 1);

    EXPECT_RC(0, zcfuse_close(s));
    s = NULL;
    for (int i = 0; i < NARENAS; i++)
        zcfuse_arena_close(a[i]), a[i] = NULL;
    close(rw), close(ro), close(other);
    rw = ro = other = -1;

    /* Back to the start; the server closes its socket end just after Bye. */
    int fds, maps, tries = 0;
    do {
        usleep(10000);
        count(&fds, &maps);
        if (!EXPECT_RC(0, t_stats(srv, &ss)))
            break;
    } while ((fds != fds0 || maps != maps0 || ss.sessions || ss.attached_files) && ++tries < 500);
    EXPECT(fds == fds0 && maps == maps0, "fds %d (was %d), memfd mappings %d (was %d)", fds, fds0, maps, maps0);
    EXPECT(ss.sessions == 0 && ss.arenas == 0 && ss.registered_bytes == 0 && ss.attached_files == 0 &&
               ss.fixed_slots_used == ss0.fixed_slots_used,
           "server still holds: sessions %llu arenas %llu registered %llu attached %llu slots %llu",
           (unsigned long long)ss.sessions, (unsigned long long)ss.arenas, (unsigned long long)ss.registered_bytes,
           (unsigned long long)ss.attached_files, (unsigned long long)ss.fixed_slots_used);
out:
    if (rw >= 0)
        close(rw);
    if (ro >= 0)
        close(ro);
    if (other >= 0)
        close(other);
    zcfuse_close(s);
    for (int i = 0; i < NARENAS; i++)
        zcfuse_arena_close(a[i]);
    zcfuse_server_destroy(srv);
    free(backing), free(mnt), free(file), free(elsewhere);
    return t_done(T_PASS);
}
