/*
 * server_killed: a server process that is SIGKILLed while a client holds
 * a session, a shared arena, an attached file and a batch of 64 ops in
 * flight. zcfuse_wait and every session call then return -ENOTCONN
 * promptly (within 5 s; the time is printed), never hang. The server is examples/c/serve, started with posix_spawn (a
 * process holding libzcfuse must not fork).
 *
 * Usage: server_killed PATH-TO-SERVE
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
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    t_init("server_killed");
    if (argc != 2) {
        t_fail("usage: server_killed PATH-TO-SERVE");
        return t_done(T_FAIL);
    }
    int rc = t_require_mount();
    if (rc)
        return rc;
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    char *file = t_path(mnt, "f", 0);
    char *args[] = {argv[1], backing, mnt, NULL};
    pid_t pid = -1;
    zcfuse_session_t *s = NULL;
    zcfuse_arena_t *a = NULL;
    int fd = -1;
    if (!EXPECT(posix_spawn(&pid, argv[1], NULL, NULL, args, environ) == 0, "spawn %s", argv[1]))
        goto out;
    char buf[256];
    double start = now_ms();
    while (getxattr(mnt, "user.zcfuse.control", buf, sizeof buf) < 0 && now_ms() - start < 10000)
        usleep(20000);
    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s)))
        goto out;
    uint32_t id, file_id;
    fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (!EXPECT(fd >= 0, "open %s: %s", file, strerror(errno)) ||
        !EXPECT_RC(0, zcfuse_arena_create((size_t)256 << 20, 0, &a)) || !EXPECT_RC(0, zcfuse_share(s, a, &id, NULL)) ||
        !EXPECT_RC(0, zcfuse_attach(s, fd, &file_id)))
        goto out;

    /* A batch in flight: 64 writes of 4 MiB, then the server dies. */
    zcfuse_op_t ops[64];
    memset(ops, 0, sizeof ops);
    for (int i = 0; i < 64; i++) {
        ops[i].opcode = ZCFUSE_OP_WRITE;
        ops[i].file_id = file_id;
        ops[i].buf = (char *)zcfuse_arena_base(a) + ((size_t)i << 22);
        ops[i].len = (size_t)1 << 22;
        ops[i].off = (int64_t)i << 22;
        ops[i].user_data = (uint64_t)i;
    }
    EXPECT_RC(64, zcfuse_submit(s, ops, 64));
    kill(pid, SIGKILL);
    start = now_ms();
    zcfuse_cqe_t cqes[64];
    int reaped = 0;
    while ((rc = zcfuse_wait(s, cqes, 64 - reaped, 64 - reaped, 10000)) > 0 && (reaped += rc) < 64)
        ;
    double took = now_ms() - start;
    printf("zcfuse_wait after the server's SIGKILL mid-batch: %d (%s) in %.2f ms, %d of 64 ops completed\n", rc,
           rc < 0 ? zcfuse_strerror(rc) : "-", took, reaped);
    EXPECT(reaped == 64 || rc == -ENOTCONN, "zcfuse_wait: %d, want -ENOTCONN", rc);
    EXPECT(took < 5000, "took %.0f ms", took);
    waitpid(pid, NULL, 0);
    pid = -1;
    start = now_ms();
    zcfuse_session_stats_t st = {.struct_size = sizeof st};
    int got = zcfuse_session_stats(s, &st);
    took = now_ms() - start;
    printf("session call after the server's SIGKILL: %d (%s) in %.2f ms\n", got, zcfuse_strerror(got), took);
    EXPECT_RC(-ENOTCONN, got);
    EXPECT(took < 5000, "took %.0f ms", took);
    EXPECT_RC(-ENOTCONN, zcfuse_unshare(s, id));
    EXPECT_RC(-ENOTCONN, zcfuse_detach(s, file_id));
    EXPECT_RC(-ENOTCONN, zcfuse_close(s));
    s = NULL;
out:
    if (fd >= 0)
        close(fd);
    zcfuse_close(s);
    zcfuse_arena_close(a);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    umount2(mnt, MNT_DETACH); /* the dead server's mount */
    free(backing), free(mnt), free(file);
    return t_done(T_PASS);
}
