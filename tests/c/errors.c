/*
 * errors.c - every failure the header documents comes back as that
 * -errno, with a zcfuse_last_error() that names the problem.
 *
 * zcfuse_server_create: NULL arguments, struct_size 0, missing fields,
 * unknown transport or flags and queue_depth 65 are -EINVAL; a missing
 * directory -ENOENT; a file where a directory belongs -ENOTDIR; a
 * mountpoint with something mounted on it -EBUSY; a dead FUSE mount
 * -ENOTCONN, checked right after its server (a child running this program
 * with --serve) is SIGKILLed, as a supervisor restarting a crashed server
 * would. Then the life cycle: stop before start is 0, a second start
 * (also after stop) -EALREADY, NULL handles -EINVAL. Also
 * zcfuse_strerror, zcfuse_last_error being per thread, and
 * zcfuse_version against the header's macros.
 *
 * Transport URING with enable_uring=N (-EPROTONOSUPPORT) is checked only
 * when the parameter already is N: flipping it is global, and only the
 * serial TestUringDisabled in tests/faults_test.go does that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

extern char **environ;

static const char *backing, *mnt;

static zcfuse_server_opts_t opts(void)
{
    zcfuse_server_opts_t o;
    zcfuse_server_opts_init(&o);
    o.backing_dir = backing;
    o.mountpoint = mnt;
    return o;
}

/* create must fail with want and a last error containing names. */
#define CREATE_FAILS(want, o, names) create_fails(__LINE__, want, o, names)
static void create_fails(int line, int want, const zcfuse_server_opts_t *o, const char *names)
{
    zcfuse_server_t *srv = NULL;
    int rc = zcfuse_server_create(o, &srv);
    if (!t_expect_rc(__FILE__, line, "zcfuse_server_create", rc, want)) {
        if (rc == 0)
            zcfuse_server_destroy(srv);
        return;
    }
    const char *msg = zcfuse_last_error();
    if (!strstr(msg, names))
        t_fail_at(__FILE__, line, "zcfuse_last_error() = \"%s\" does not name \"%s\"", msg, names);
    else
        printf("ok %s: %s\n", zcfuse_strerror(rc), msg);
}

static void *fresh_thread_error(void *arg)
{
    (void)arg;
    return (void *)zcfuse_last_error();
}

static void version_and_strings(void)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", ZCFUSE_VERSION_MAJOR, ZCFUSE_VERSION_MINOR,
             ZCFUSE_VERSION_PATCH);
    EXPECT(strcmp(zcfuse_version(), want) == 0, "zcfuse_version() \"%s\", header %s",
           zcfuse_version(), want);
    EXPECT(strcmp(zcfuse_strerror(-ENOENT), "No such file or directory") == 0,
           "zcfuse_strerror(-ENOENT) \"%s\"", zcfuse_strerror(-ENOENT));
    EXPECT(strcmp(zcfuse_strerror(ENOENT), "No such file or directory") == 0,
           "zcfuse_strerror(ENOENT) \"%s\"", zcfuse_strerror(ENOENT));
    EXPECT(zcfuse_strerror(-123456) != NULL, "zcfuse_strerror of an unknown code is NULL");

    /* A failure here must not show in another thread's last error. */
    EXPECT_RC(-EINVAL, zcfuse_server_create(NULL, NULL));
    pthread_t th;
    void *other = NULL;
    if (EXPECT(pthread_create(&th, NULL, fresh_thread_error, NULL) == 0, "pthread_create")) {
        pthread_join(th, &other);
        EXPECT(other && *(const char *)other == 0,
               "a fresh thread's zcfuse_last_error() is \"%s\", want \"\"",
               other ? (const char *)other : "(null)");
    }
}

static void create_errors(const char *dir)
{
    zcfuse_server_t *srv = NULL;
    zcfuse_server_opts_t o = opts();
    CREATE_FAILS(-EINVAL, NULL, "NULL");
    EXPECT_RC(-EINVAL, zcfuse_server_create(&o, NULL));
    o.struct_size = 0;
    CREATE_FAILS(-EINVAL, &o, "struct_size");
    o = opts(), o.backing_dir = NULL;
    CREATE_FAILS(-EINVAL, &o, "backing");
    o = opts(), o.mountpoint = NULL;
    CREATE_FAILS(-EINVAL, &o, "mountpoint");
    o = opts(), o.transport = 3;
    CREATE_FAILS(-EINVAL, &o, "transport");
    o = opts(), o.flags = 1u << 31;
    CREATE_FAILS(-EINVAL, &o, "flag");
    o = opts(), o.queue_depth = 65;
    CREATE_FAILS(-EINVAL, &o, "65");
    o = opts(), o.mountpoint = backing;
    CREATE_FAILS(-EINVAL, &o, backing);

    char *missing = t_path(dir, "missing", 0), *file = t_path(dir, "file", 0);
    char *busy = t_path(dir, "busy", 1);
    FILE *f = fopen(file, "w");
    if (EXPECT(f != NULL, "create %s", file))
        fclose(f);
    o = opts(), o.backing_dir = missing;
    CREATE_FAILS(-ENOENT, &o, missing);
    o = opts(), o.mountpoint = missing;
    CREATE_FAILS(-ENOENT, &o, missing);
    o = opts(), o.backing_dir = file;
    CREATE_FAILS(-ENOTDIR, &o, file);
    o = opts(), o.mountpoint = file;
    CREATE_FAILS(-ENOTDIR, &o, file);
    if (EXPECT(mount("zcfuse-ctest", busy, "tmpfs", 0, "size=1m") == 0, "mount tmpfs on %s: %s",
               busy, strerror(errno))) {
        o = opts(), o.mountpoint = busy;
        CREATE_FAILS(-EBUSY, &o, "busy");
        EXPECT(umount2(busy, 0) == 0, "umount %s: %s", busy, strerror(errno));
    }

    /* Depth 64 is the largest allowed. */
    o = opts(), o.queue_depth = 64;
    if (EXPECT_RC(0, zcfuse_server_create(&o, &srv)))
        zcfuse_server_destroy(srv);
    free(missing), free(file), free(busy);
}

/* errors --serve BACKING MOUNTPOINT: serve until killed (the dead mount's server). */
static int serve_until_killed(const char *b, const char *m)
{
    zcfuse_server_opts_t o;
    zcfuse_server_t *srv;
    zcfuse_server_opts_init(&o);
    o.backing_dir = b;
    o.mountpoint = m;
    if (zcfuse_server_create(&o, &srv) < 0 || zcfuse_server_start(srv) < 0) {
        printf("errors --serve: %s\n", zcfuse_last_error());
        return 1;
    }
    char ready[4096];
    snprintf(ready, sizeof ready, "%s.ready", m);
    FILE *f = fopen(ready, "w"); /* started: the mount has answered */
    if (f)
        fclose(f);
    for (;;)
        pause();
}

static void dead_mount(const char *dir)
{
    char *dead = t_path(dir, "dead", 1), *ready = t_path(dir, "dead.ready", 0);
    char *argv[] = {"errors", "--serve", (char *)backing, dead, NULL};
    pid_t pid;
    int status, err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (!EXPECT(err == 0, "posix_spawn: %s", strerror(err)))
        goto out;
    /* Kill the server once its start returned, as a crash would. */
    struct timespec tick = {0, 10000000};
    for (int i = 0; i < 2000 && access(ready, F_OK) < 0 && waitpid(pid, &status, WNOHANG) == 0; i++)
        nanosleep(&tick, NULL);
    int mounted = t_is_mounted(dead);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (EXPECT(mounted && access(ready, F_OK) == 0, "the child did not start a server on %s", dead)) {
        zcfuse_server_opts_t o = opts();
        o.mountpoint = dead;
        CREATE_FAILS(-ENOTCONN, &o, dead);
        EXPECT(umount2(dead, MNT_DETACH) == 0, "umount -l %s: %s", dead, strerror(errno));
    }
out:
    if (t_is_mounted(dead))
        umount2(dead, MNT_DETACH);
    free(dead), free(ready);
}

static void lifecycle_errors(void)
{
    zcfuse_server_t *srv = NULL;
    zcfuse_server_stats_t st;
    zcfuse_server_opts_t o = opts();

    EXPECT_RC(-EINVAL, zcfuse_server_start(NULL));
    EXPECT_RC(-EINVAL, zcfuse_server_run(NULL));
    EXPECT_RC(-EINVAL, zcfuse_server_stop(NULL));
    EXPECT_RC(-EINVAL, t_stats(NULL, &st));
    zcfuse_server_destroy(NULL);

    o.transport = ZCFUSE_TRANSPORT_CLASSIC;
    if (!EXPECT_RC(0, zcfuse_server_create(&o, &srv)))
        return;
    EXPECT_RC(-EINVAL, zcfuse_server_stats(srv, NULL));
    st.struct_size = 0;
    EXPECT_RC(-EINVAL, zcfuse_server_stats(srv, &st));
    EXPECT_RC(0, zcfuse_server_stop(srv)); /* before start: nothing to do */
    zcfuse_server_destroy(srv);

    if (!EXPECT_RC(0, zcfuse_server_create(&o, &srv)))
        return;
    if (EXPECT_RC(0, zcfuse_server_start(srv))) {
        EXPECT_RC(-EALREADY, zcfuse_server_start(srv));
        EXPECT(strlen(zcfuse_last_error()) > 0, "no last error after -EALREADY");
        EXPECT_RC(0, zcfuse_server_stop(srv));
        EXPECT_RC(-EALREADY, zcfuse_server_start(srv)); /* a server mounts once */
        EXPECT(!t_is_mounted(mnt), "%s mounted again after stop + start", mnt);
    }
    zcfuse_server_destroy(srv);
}

static void uring_disabled(void)
{
    if (t_uring_enabled()) {
        printf("note: transport URING with enable_uring=N not checked: the parameter is Y and "
               "only tests/faults_test.go (TestUringDisabled) flips it\n");
        return;
    }
    zcfuse_server_t *srv = NULL;
    zcfuse_server_opts_t o = opts();
    o.transport = ZCFUSE_TRANSPORT_URING;
    if (!EXPECT_RC(0, zcfuse_server_create(&o, &srv)))
        return;
    EXPECT_RC(-EPROTONOSUPPORT, zcfuse_server_start(srv));
    EXPECT(strstr(zcfuse_last_error(), "enable_uring"), "last error \"%s\" does not name enable_uring",
           zcfuse_last_error());
    EXPECT(!t_is_mounted(mnt), "%s left mounted by a failed start", mnt);
    zcfuse_server_destroy(srv);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--serve") == 0)
        return serve_until_killed(argv[2], argv[3]);
    t_init("errors");
    version_and_strings();
    int rc = t_require_mount();
    if (rc)
        return t_done(t_failures() ? T_FAIL : rc);
    const char *dir = t_scratch();
    if (!dir)
        return t_done(T_FAIL);
    backing = t_path(dir, "backing", 1);
    mnt = t_path(dir, "mnt", 1);
    create_errors(dir);
    dead_mount(dir);
    lifecycle_errors();
    uring_disabled();
    free((char *)backing), free((char *)mnt);
    return t_done(0);
}
