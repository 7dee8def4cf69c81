/*
 * session: the C session API against an in-process server — connect from
 * the mountpoint alone, share arenas (registered as fixed buffers), read
 * the server's counts, unshare, close — and -ENOTCONN once the server is
 * gone, never a hang.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static int stats(zcfuse_session_t *s, zcfuse_session_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->struct_size = sizeof *st;
    return zcfuse_session_stats(s, st);
}

int main(void)
{
    t_init("session");
    int rc = t_require_mount();
    if (rc)
        return rc;
    const char *dir = t_scratch();
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    opts.transport = ZCFUSE_TRANSPORT_CLASSIC;
    zcfuse_server_t *srv = NULL;
    zcfuse_session_t *s = NULL, *other = NULL;
    zcfuse_arena_t *a = NULL, *b = NULL;
    if (!EXPECT_RC(0, zcfuse_server_create(&opts, &srv)) || !EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;

    EXPECT_RC(-EINVAL, zcfuse_connect(NULL, &s));
    EXPECT_RC(-ENODATA, zcfuse_connect(backing, &s)); /* no zcfuse server answers there */
    if (!EXPECT_RC(0, zcfuse_connect(mnt, &s)) || !EXPECT_RC(0, zcfuse_connect(mnt, &other)))
        goto out;
    if (!EXPECT_RC(0, zcfuse_arena_create(1 << 20, 0, &a)) || !EXPECT_RC(0, zcfuse_arena_create(64 << 20, 0, &b)))
        goto out;
    uint32_t ida = 0, idb = 0, flags = 0;
    EXPECT_RC(0, zcfuse_share(s, a, &ida, &flags));
    EXPECT(flags & ZCFUSE_SHARED_REGISTERED, "a root server registers the arena (flags %#x)", flags);
    EXPECT_RC(0, zcfuse_share(other, b, &idb, NULL));
    EXPECT_RC(-EINVAL, zcfuse_share(s, NULL, &ida, NULL));

    zcfuse_session_stats_t st;
    EXPECT_RC(0, stats(s, &st));
    EXPECT(st.version == ZCFUSE_SESSION_STATS_VERSION && st.session_id != 0, "version %u id %llu", st.version,
           (unsigned long long)st.session_id);
    EXPECT(st.sessions == 2 && st.arenas == 2 && st.registered_bytes == (1 << 20) + (64 << 20),
           "sessions %llu arenas %llu registered %llu", (unsigned long long)st.sessions,
           (unsigned long long)st.arenas, (unsigned long long)st.registered_bytes);
    zcfuse_server_stats_t sst;
    EXPECT_RC(0, t_stats(srv, &sst));

    EXPECT_RC(0, zcfuse_unshare(s, ida));
    EXPECT_RC(-ENOENT, zcfuse_unshare(s, ida));
    EXPECT_RC(0, zcfuse_close(other));
    other = NULL;
    EXPECT_RC(0, stats(s, &st));
    EXPECT(st.sessions == 1 && st.arenas == 0 && st.registered_bytes == 0,
           "after unshare and close: sessions %llu arenas %llu registered %llu", (unsigned long long)st.sessions,
           (unsigned long long)st.arenas, (unsigned long long)st.registered_bytes);

    /* The server goes away: calls fail with -ENOTCONN instead of hanging. */
    EXPECT_RC(0, zcfuse_server_stop(srv));
    EXPECT_RC(-ENOTCONN, stats(s, &st));
    EXPECT_RC(-ENOTCONN, zcfuse_close(s));
    s = NULL;
out:
    zcfuse_close(other);
    zcfuse_close(s);
    zcfuse_arena_close(a);
    zcfuse_arena_close(b);
    zcfuse_server_destroy(srv);
    free(backing), free(mnt);
    return t_done(T_PASS);
}
