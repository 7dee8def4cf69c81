/*
 * server_io.c - a server started in-process through the C API serves
 * file I/O that a child process does through its mount.
 *
 * Usage: server_io uring|classic
 *
 * Creates a server for a scratch backing directory, starts it (the mount
 * must be there when start returns), then from a child (posix_spawn of
 * sh + dd: the library's Go runtime does not survive fork) writes a file
 * through the mount and reads back one put in the backing directory.
 * Checks the bytes on both sides and the stats (transport, running,
 * READ/WRITE counted on the ring for uring and on /dev/fuse for classic,
 * payload bytes, no errors), stops (the mount must be gone, a second stop
 * is 0) and destroys. uring skips, or fails under ZCFUSE_REQUIRE_URING=1,
 * when the kernel does not offer FUSE-over-io_uring.
 */
#define _GNU_SOURCE
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define WRITE_SIZE ((1u << 20) + 4097) /* written through the mount */
#define READ_SIZE ((512u << 10) + 123) /* read through the mount */
#define URING_DEPTH 2                  /* not the default, to see it applied */

static uint64_t sum(const uint64_t *v)
{
    uint64_t n = 0;
    for (int i = 0; i < ZCFUSE_STATS_OPCODES; i++)
        n += v[i];
    return n;
}

static void check_stats(const zcfuse_server_stats_t *b, const zcfuse_server_stats_t *a,
                        uint32_t transport)
{
    EXPECT(a->version == ZCFUSE_SERVER_STATS_VERSION, "version %u", a->version);
    EXPECT(a->transport == transport, "transport %u, want %u", a->transport, transport);
    EXPECT(a->running == 1, "running %u while mounted", a->running);
    EXPECT(a->fallback_reason[0] == 0, "fallback_reason \"%s\" with an explicit transport",
           a->fallback_reason);
    EXPECT(a->bytes_written - b->bytes_written >= WRITE_SIZE, "bytes_written grew by %llu",
           (unsigned long long)(a->bytes_written - b->bytes_written));
    EXPECT(a->bytes_read - b->bytes_read >= READ_SIZE, "bytes_read grew by %llu",
           (unsigned long long)(a->bytes_read - b->bytes_read));
    EXPECT(a->errors == 0, "%llu error replies", (unsigned long long)a->errors);

    const uint64_t *served = transport == ZCFUSE_TRANSPORT_URING ? a->ring_requests : a->dev_requests;
    const uint64_t *before = transport == ZCFUSE_TRANSPORT_URING ? b->ring_requests : b->dev_requests;
    EXPECT(served[FUSE_READ] > before[FUSE_READ], "READ count did not grow (%llu)",
           (unsigned long long)served[FUSE_READ]);
    EXPECT(served[FUSE_WRITE] > before[FUSE_WRITE], "WRITE count did not grow (%llu)",
           (unsigned long long)served[FUSE_WRITE]);
    if (transport == ZCFUSE_TRANSPORT_URING) {
        EXPECT(a->queues >= 1, "%u queues", a->queues);
        EXPECT(a->queue_depth == URING_DEPTH, "queue_depth %u, want %u", a->queue_depth, URING_DEPTH);
        EXPECT(a->dev_requests[FUSE_READ] == 0 && a->dev_requests[FUSE_WRITE] == 0,
               "READ/WRITE on /dev/fuse with the ring: %llu/%llu",
               (unsigned long long)a->dev_requests[FUSE_READ],
               (unsigned long long)a->dev_requests[FUSE_WRITE]);
    } else {
        EXPECT(a->queues == 0 && a->queue_depth == 0, "queues %u depth %u on classic", a->queues,
               a->queue_depth);
        EXPECT(sum(a->ring_requests) == 0, "%llu ring requests on classic",
               (unsigned long long)sum(a->ring_requests));
    }
    printf("stats: transport %u queues %u depth %u; READ %llu WRITE %llu (ring %llu, dev %llu "
           "requests in all); bytes read %llu written %llu\n",
           a->transport, a->queues, a->queue_depth, (unsigned long long)served[FUSE_READ],
           (unsigned long long)served[FUSE_WRITE], (unsigned long long)sum(a->ring_requests),
           (unsigned long long)sum(a->dev_requests), (unsigned long long)a->bytes_read,
           (unsigned long long)a->bytes_written);
}

static void run(uint32_t transport)
{
    const char *dir = t_scratch();
    if (!dir)
        return;
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    char *src = t_path(dir, "src.bin", 0), *readback = t_path(dir, "readback.bin", 0);
    char *preset = t_path(backing, "preset.bin", 0), *written = t_path(backing, "written.bin", 0);
    zcfuse_server_t *srv = NULL;
    zcfuse_server_stats_t before, after;

    if (!EXPECT(t_write_pattern(src, WRITE_SIZE, 1) == 0, "writing %s", src) ||
        !EXPECT(t_write_pattern(preset, READ_SIZE, 2) == 0, "writing %s", preset))
        goto out;

    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.transport = transport;
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    if (transport == ZCFUSE_TRANSPORT_URING)
        opts.queue_depth = URING_DEPTH;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)))
        goto out;
    if (EXPECT_RC(0, t_stats(srv, &before)))
        EXPECT(before.running == 0 && before.transport == ZCFUSE_TRANSPORT_AUTO,
               "before start: running %u transport %u", before.running, before.transport);
    if (!EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;
    EXPECT(t_is_mounted(mnt), "%s not in /proc/self/mountinfo after start", mnt);
    if (!EXPECT_RC(0, t_stats(srv, &before)))
        goto out;

    int st = t_sh("set -e\n"
                  "dd if=\"$1\" of=\"$2/written.bin\" bs=65536 status=none\n"
                  "dd if=\"$2/preset.bin\" of=\"$3\" bs=65536 status=none\n",
                  src, mnt, readback, NULL);
    EXPECT(st == 0, "child doing I/O through %s exited %d", mnt, st);
    t_check_pattern(written, WRITE_SIZE, 1);
    t_check_pattern(readback, READ_SIZE, 2);

    if (EXPECT_RC(0, t_stats(srv, &after)))
        check_stats(&before, &after, transport);

    EXPECT_RC(0, zcfuse_server_stop(srv));
    EXPECT(!t_is_mounted(mnt), "%s still mounted after stop", mnt);
    if (EXPECT_RC(0, t_stats(srv, &after)))
        EXPECT(after.running == 0, "running %u after stop", after.running);
    EXPECT_RC(0, zcfuse_server_stop(srv));
out:
    zcfuse_server_destroy(srv);
    free(backing), free(mnt), free(src), free(readback), free(preset), free(written);
}

int main(int argc, char **argv)
{
    t_init("server_io");
    uint32_t transport;
    if (argc == 2 && strcmp(argv[1], "uring") == 0)
        transport = ZCFUSE_TRANSPORT_URING;
    else if (argc == 2 && strcmp(argv[1], "classic") == 0)
        transport = ZCFUSE_TRANSPORT_CLASSIC;
    else {
        fprintf(stderr, "usage: server_io uring|classic\n");
        return T_FAIL;
    }
    int rc = t_require_mount();
    if (rc == 0 && transport == ZCFUSE_TRANSPORT_URING)
        rc = t_require_uring();
    if (rc == 0)
        run(transport);
    return t_done(rc);
}
