/*
 * fork: after fork() every call that would enter the library's Go runtime
 * returns -ECHILD in the child at once (it would otherwise risk a hang),
 * while the parent's objects keep working; opcode names the parent looked
 * up before the fork stay available.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

int main(void)
{
    t_init("fork");
    zcfuse_arena_t *a = NULL;
    if (!EXPECT_RC(0, zcfuse_arena_create(1 << 20, 0, &a)))
        return t_done(T_FAIL);
    memcpy(zcfuse_arena_base(a), "parent", 6);
    EXPECT(strcmp(zcfuse_opcode_name(15), "READ") == 0, "zcfuse_opcode_name(15) in the parent");

    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls here, and the library's own. */
        zcfuse_arena_t *c = NULL;
        zcfuse_server_opts_t o;
        zcfuse_server_t *s = NULL;
        int bad = 0;
        bad |= zcfuse_arena_create(4096, 0, &c) != -ECHILD;
        bad |= zcfuse_arena_import(zcfuse_arena_fd(a), 1 << 20, &c) != -ECHILD;
        zcfuse_server_opts_init(&o);
        o.backing_dir = "/", o.mountpoint = "/";
        bad |= zcfuse_server_create(&o, &s) != -ECHILD;
        bad |= zcfuse_server_counters(s, NULL, 0) != -ECHILD;
        bad |= zcfuse_server_counter(s, "errors", NULL) != -ECHILD;
        /* Opcode names the parent looked up stay; others need Go: "". */
        bad |= strcmp(zcfuse_opcode_name(16), "WRITE") != 0;
        bad |= strcmp(zcfuse_opcode_name(4096), "") != 0;
        /* Pure accessors need no Go and keep working. */
        bad |= memcmp(zcfuse_arena_base(a), "parent", 6) != 0;
        _exit(bad ? 1 : 0);
    }
    EXPECT(pid > 0, "fork: %s", strerror(errno));
    int status = 0;
    for (int i = 0; i < 500; i++) { /* 5 s: a hang in the child is the failure */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (i == 499) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            t_fail("the child hung");
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: calls did not all return -ECHILD (status %#x)", status);

    /* The parent is unaffected. */
    zcfuse_arena_t *b = NULL;
    if (EXPECT_RC(0, zcfuse_arena_import(zcfuse_arena_fd(a), 1 << 20, &b))) {
        EXPECT(memcmp(zcfuse_arena_base(b), "parent", 6) == 0, "parent import");
        zcfuse_arena_close(b);
    }
    zcfuse_arena_close(a);
    return t_done(T_PASS);
}
