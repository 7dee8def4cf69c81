/*
 * connect_refusals: zcfuse_connect() and zcfuse_share() refuse with
 * exactly the documented -errno, and zcfuse_last_error() names the real
 * cause, under the server's default limits (the ones a server gets when
 * zcfuse_server_set_limit() sets none):
 *   -EACCES  a user the mount does not admit (no ZCFUSE_SERVER_ALLOW_OTHER);
 *   -EAGAIN  a user's 33rd session (32 per user), and the 257th session of
 *            users other than root and the owner together (the server is
 *            full), while root still gets in;
 *   -ENOSPC  a session's 65th arena; -EDQUOT a user's 257th;
 * and a user's arenas past 4 GiB are shared unregistered. Never the
 * ENOTCONN, EPIPE or ECONNRESET of the close that follows a refusal.
 * Other uids run on threads of their own that take them with raw
 * syscalls (glibc's wrappers would change every thread of the process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"

#define PER_USER 32      /* SessionsPerUser */
#define SERVER_WIDE 256  /* Sessions */
#define PER_SESSION 64   /* ArenasPerSession */
#define ARENAS_USER 256  /* ArenasPerUser */
#define GiB (1ul << 30)

struct as_user {
    uid_t uid;
    void (*fn)(void *);
    void *arg;
    int err;
};

static void *as_user_main(void *p)
{
    struct as_user *u = p;
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, u->uid, u->uid, u->uid) < 0 ||
        syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0) {
        u->err = errno;
        return NULL;
    }
    u->fn(u->arg);
    return NULL;
}

/* Runs fn(arg) on a new thread that is uid (gid uid, no groups); the
 * sessions it opens keep that uid whichever thread uses them later. */
static int as_user(uid_t uid, void (*fn)(void *), void *arg)
{
    struct as_user u = {uid, fn, arg, 0};
    pthread_t th;
    if (!EXPECT(pthread_create(&th, NULL, as_user_main, &u) == 0, "pthread_create"))
        return -1;
    pthread_join(th, NULL);
    return EXPECT(u.err == 0, "taking uid %u: %s", (unsigned)uid, strerror(u.err)) ? 0 : -1;
}

/* Whether zcfuse_last_error() (this thread's) holds want. */
static int last_error_says(const char *want)
{
    return EXPECT(strstr(zcfuse_last_error(), want) != NULL, "zcfuse_last_error() \"%s\" should say \"%s\"",
                  zcfuse_last_error(), want);
}

/* What a thread of some uid does: open up to n sessions into s, then
 * expect the next `refusals` connects to fail with rc and words. */
struct connects {
    const char *mnt;
    zcfuse_session_t **s;
    int n, refusals, rc;
    const char *words;
};

static void connect_some(void *p)
{
    struct connects *c = p;
    for (int i = 0; i < c->n; i++)
        if (!EXPECT_RC(0, zcfuse_connect(c->mnt, &c->s[i])))
            return;
    for (int i = 0; i < c->refusals; i++) {
        zcfuse_session_t *extra = NULL;
        if (!EXPECT_RC(c->rc, zcfuse_connect(c->mnt, &extra)) || !last_error_says(c->words)) {
            zcfuse_close(extra);
            return;
        }
    }
}

static void close_all(zcfuse_session_t **s, int n)
{
    for (int i = 0; i < n; i++) {
        zcfuse_close(s[i]);
        s[i] = NULL;
    }
}

static uint64_t counter(zcfuse_server_t *srv, const char *name)
{
    uint64_t v = 0;
    EXPECT_RC(0, zcfuse_server_counter(srv, name, &v));
    return v;
}

static zcfuse_server_t *start(const char *backing, const char *mnt, uint32_t flags)
{
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    opts.transport = ZCFUSE_TRANSPORT_CLASSIC;
    opts.flags = flags;
    zcfuse_server_t *srv = NULL;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)) || !EXPECT_RC(0, zcfuse_server_start(srv))) {
        zcfuse_server_destroy(srv);
        return NULL;
    }
    return srv;
}

/* Sessions: EACCES without --allow-other; with it, EAGAIN per user and
 * server-wide. */
static void sessions(const char *backing, const char *mnt)
{
    zcfuse_server_t *srv = start(backing, mnt, 0);
    if (!srv)
        return;
    struct connects c = {mnt, NULL, 0, 3, -EACCES, "--allow-other"};
    as_user(65534, connect_some, &c);
    zcfuse_server_destroy(srv);

    srv = start(backing, mnt, ZCFUSE_SERVER_ALLOW_OTHER);
    if (!srv)
        return;
    static zcfuse_session_t *s[SERVER_WIDE + 2 * PER_USER];
    c = (struct connects){mnt, s, PER_USER, 10, -EAGAIN, "uid 65534 holds 32 sessions, its limit is 32"};
    as_user(65534, connect_some, &c);
    close_all(s, PER_USER);

    /* Eight users fill the server; a ninth is refused; root is not. */
    for (int u = 0; u < SERVER_WIDE / PER_USER; u++) {
        c = (struct connects){mnt, s + u * PER_USER, PER_USER, 0, 0, NULL};
        as_user(60001 + u, connect_some, &c);
    }
    EXPECT(counter(srv, "sessions") == SERVER_WIDE, "sessions %llu", (unsigned long long)counter(srv, "sessions"));
    c = (struct connects){mnt, NULL, 0, 5, -EAGAIN, "the server holds 256 sessions of its users, its limit is 256"};
    as_user(60100, connect_some, &c);
    EXPECT_RC(0, zcfuse_connect(mnt, &s[SERVER_WIDE]));
    EXPECT(counter(srv, "connections_refused") == 10 + 5, "connections_refused %llu",
           (unsigned long long)counter(srv, "connections_refused"));
    close_all(s, SERVER_WIDE + 1);
    zcfuse_server_destroy(srv);
}

/* Arenas: registered within the user's 4 GiB, unregistered past it;
 * ENOSPC past a session's 64, EDQUOT past the user's 256. */
static void arenas(const char *backing, const char *mnt)
{
    zcfuse_server_t *srv = start(backing, mnt, 0);
    if (!srv)
        return;
    zcfuse_session_t *s[ARENAS_USER / PER_SESSION + 1] = {0};
    zcfuse_arena_t *big = NULL, *small = NULL;
    int n = ARENAS_USER / PER_SESSION + 1;
    for (int i = 0; i < n; i++)
        if (!EXPECT_RC(0, zcfuse_connect(mnt, &s[i])))
            goto out;
    if (!EXPECT_RC(0, zcfuse_arena_create(GiB, 0, &big)) || !EXPECT_RC(0, zcfuse_arena_create(4096, 0, &small)))
        goto out;
    uint32_t id, flags;
    for (int i = 0; i < 5; i++) {
        if (!EXPECT_RC(0, zcfuse_share(s[n - 1], big, &id, &flags)))
            goto out;
        EXPECT(!!(flags & ZCFUSE_SHARED_REGISTERED) == (i < 4), "GiB %d of the user: flags %#x", i + 1, flags);
    }
    EXPECT(counter(srv, "arenas_over_budget") == 1, "arenas_over_budget %llu",
           (unsigned long long)counter(srv, "arenas_over_budget"));
    zcfuse_close(s[n - 1]);
    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s[n - 1])))
        goto out;

    for (int i = 0; i < n - 1; i++)
        for (int j = 0; j < PER_SESSION; j++)
            if (!EXPECT_RC(0, zcfuse_share(s[i], small, &id, NULL)))
                goto out;
    if (EXPECT_RC(-ENOSPC, zcfuse_share(s[0], small, &id, NULL)))
        last_error_says("session holds 64 arenas");
    if (EXPECT_RC(-EDQUOT, zcfuse_share(s[n - 1], small, &id, NULL)))
        last_error_says("uid 0 holds 256 arenas, its limit is 256");
out:
    close_all(s, n);
    zcfuse_arena_close(big);
    zcfuse_arena_close(small);
    zcfuse_server_destroy(srv);
}

int main(void)
{
    t_init("connect_refusals");
    int rc = t_require_mount();
    if (rc)
        return rc;
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    sessions(backing, mnt);
    arenas(backing, mnt);
    free(backing), free(mnt);
    return t_done(T_PASS);
}
