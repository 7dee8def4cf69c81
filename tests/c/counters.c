/*
 * counters.c - a server's counters by name (zcfuse_server_counters,
 * zcfuse_server_counter) and the opcode names (zcfuse_opcode_name).
 *
 * Against an in-process server (transport auto) that serves a child's
 * dd through its mount and a client session: the sizing call gives the
 * count, a larger array gets exactly that many and nothing past them, a
 * smaller one the first n of the same fixed order; names are non-empty,
 * unique, and the same pointers on every call; every scalar counter of
 * zcfuse_server_stats_t is there under its field name with a value
 * between two struct snapshots taken around it, and so are counters the
 * struct lacks ("fast_reads", "fs.inodes"); one read by name agrees, an
 * unknown name is -ENOENT, NULLs -EINVAL. zcfuse_opcode_name() names
 * FUSE opcodes as `zcfuse stats` does: "READ", "OP_n", "OTHER".
 * Limits by name the same way: zcfuse_limit_name() lists them,
 * zcfuse_server_set_limit() sets one before start (-ENOENT, -ERANGE,
 * -EINVAL; -EALREADY once started) and zcfuse_server_limit() reads it
 * back, defaults filled in.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define IO_SIZE ((1u << 20) + 4097)

/* The counters zcfuse_server_stats_t has, by their field names. */
#define U32(f) {#f, offsetof(zcfuse_server_stats_t, f), 4}
#define U64(f) {#f, offsetof(zcfuse_server_stats_t, f), 8}
static const struct {
    const char *name;
    size_t off, size;
} fields[] = {
    U32(queues), U32(queue_depth), U64(bytes_read), U64(bytes_written), U64(errors),
    U64(sessions), U64(arenas), U64(registered_bytes), U64(fixed_slots_used), U64(attached_files),
    U64(zc_ops), U64(zc_errors), U64(zc_read_bytes), U64(zc_write_bytes), U64(zero_copy_bytes),
    U64(copied_bytes), U64(queue_high_water), U64(workers),
};

static uint64_t field(const zcfuse_server_stats_t *st, size_t i)
{
    const char *p = (const char *)st + fields[i].off;
    if (fields[i].size == 4)
        return *(const uint32_t *)p;
    return *(const uint64_t *)p;
}

static const zcfuse_counter_t *find(const zcfuse_counter_t *c, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(c[i].name, name) == 0)
            return &c[i];
    return NULL;
}

/* One snapshot between two struct snapshots: names, order, values. */
static void check_snapshot(zcfuse_server_t *srv, const char *when)
{
    int n = zcfuse_server_counters(srv, NULL, 0);
    if (!EXPECT(n > 0, "%s: zcfuse_server_counters(srv, NULL, 0) = %d", when, n))
        return;
    zcfuse_counter_t *c = calloc(n + 2, sizeof *c), *again = calloc(n + 2, sizeof *c);
    zcfuse_server_stats_t before, after;
    if (!c || !again) {
        t_fail("out of memory");
        goto out;
    }
    c[n].name = c[n + 1].name = "sentinel";
    c[n].value = c[n + 1].value = 42;
    if (!EXPECT_RC(0, t_stats(srv, &before)) || !EXPECT_RC(n, zcfuse_server_counters(srv, c, n + 2)) ||
        !EXPECT_RC(0, t_stats(srv, &after)))
        goto out;
    EXPECT(strcmp(c[n].name, "sentinel") == 0 && c[n].value == 42 && c[n + 1].value == 42,
           "%s: wrote past the %d counters", when, n);

    for (int i = 0; i < n; i++) {
        if (!EXPECT(c[i].name && c[i].name[0], "%s: counter %d has no name", when, i))
            continue;
        for (int j = 0; j < i; j++)
            EXPECT(strcmp(c[i].name, c[j].name) != 0, "%s: counter \"%s\" twice (%d, %d)", when, c[i].name, j, i);
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const zcfuse_counter_t *k = find(c, n, fields[i].name);
        if (!EXPECT(k, "%s: no counter \"%s\", a field of zcfuse_server_stats_t", when, fields[i].name))
            continue;
        uint64_t lo = field(&before, i), hi = field(&after, i);
        if (lo > hi) { /* a level that went down meanwhile */
            uint64_t t = lo;
            lo = hi, hi = t;
        }
        EXPECT(k->value >= lo && k->value <= hi, "%s: counter %s = %llu, the struct said %llu then %llu", when,
               k->name, (unsigned long long)k->value, (unsigned long long)field(&before, i),
               (unsigned long long)field(&after, i));
    }
    /* Counters the struct does not have come by name. */
    EXPECT(find(c, n, "fast_reads") && find(c, n, "fs.inodes"), "%s: no fast_reads or fs.inodes", when);

    /* A shorter array: the first 3 of the same order, the same pointers. */
    int m = n < 3 ? n : 3;
    again[m].value = 42;
    EXPECT_RC(n, zcfuse_server_counters(srv, again, m));
    for (int i = 0; i < m; i++)
        EXPECT(again[i].name == c[i].name, "%s: counter %d is %s, was %s (the order is fixed, the names static)",
               when, i, again[i].name, c[i].name);
    EXPECT(again[m].name == NULL && again[m].value == 42, "%s: wrote past n = %d", when, m);

    /* By name: every counter, and the counts only grow. */
    for (int i = 0; i < n; i++) {
        uint64_t v = 0;
        if (EXPECT_RC(0, zcfuse_server_counter(srv, c[i].name, &v)) && strcmp(c[i].name, "bytes_written") == 0)
            EXPECT(v >= c[i].value, "%s: bytes_written went from %llu to %llu", when,
                   (unsigned long long)c[i].value, (unsigned long long)v);
    }
out:
    free(c);
    free(again);
}

static uint64_t counter(zcfuse_server_t *srv, const char *name)
{
    uint64_t v = 0;
    EXPECT_RC(0, zcfuse_server_counter(srv, name, &v));
    return v;
}

static void check_opcode_names(void)
{
    static const struct {
        uint32_t op;
        const char *name;
    } want[] = {
        {FUSE_READ, "READ"}, {FUSE_WRITE, "WRITE"}, {FUSE_INIT, "INIT"}, {FUSE_LOOKUP, "LOOKUP"},
        {52, "STATX"}, {7, "OP_7"}, {19, "OP_19"}, {63, "OP_63"}, {0, "OTHER"},
        {ZCFUSE_STATS_OPCODES, "OTHER"}, {4096, "OTHER"}, {UINT32_MAX, "OTHER"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *got = zcfuse_opcode_name(want[i].op);
        EXPECT(got && strcmp(got, want[i].name) == 0, "zcfuse_opcode_name(%u) = \"%s\", want \"%s\"", want[i].op,
               got ? got : "(null)", want[i].name);
    }
    EXPECT(zcfuse_opcode_name(FUSE_READ) == zcfuse_opcode_name(FUSE_READ), "the READ name is not static");
    for (uint32_t op = 0; op < ZCFUSE_STATS_OPCODES; op++) {
        const char *s = zcfuse_opcode_name(op);
        EXPECT(s && s[0] && strncmp(s, "FUSE_", 5) != 0, "zcfuse_opcode_name(%u) = \"%s\"", op, s ? s : "(null)");
    }
}

int main(void)
{
    t_init("counters");
    check_opcode_names();
    int rc = t_require_mount();
    if (rc)
        return t_done(rc);
    const char *dir = t_scratch();
    if (!dir)
        return t_done(T_FAIL);
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1), *src = t_path(dir, "src.bin", 0);
    zcfuse_server_t *srv = NULL;
    zcfuse_session_t *s = NULL;
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = backing;
    opts.mountpoint = mnt;
    if (!EXPECT(t_write_pattern(src, IO_SIZE, 3) == 0, "writing %s", src) ||
        !EXPECT_RC(0, zcfuse_server_create(&opts, &srv)))
        goto out;

    /* Arguments. */
    uint64_t v = 7;
    zcfuse_counter_t one;
    EXPECT_RC(-EINVAL, zcfuse_server_counters(NULL, NULL, 0));
    EXPECT_RC(-EINVAL, zcfuse_server_counters(NULL, &one, 1));
    EXPECT_RC(-EINVAL, zcfuse_server_counters(srv, NULL, 1));
    EXPECT_RC(-EINVAL, zcfuse_server_counter(NULL, "bytes_read", &v));
    EXPECT_RC(-EINVAL, zcfuse_server_counter(srv, NULL, &v));
    EXPECT_RC(-EINVAL, zcfuse_server_counter(srv, "bytes_read", NULL));
    EXPECT_RC(-ENOENT, zcfuse_server_counter(srv, "no_such_counter", &v));
    EXPECT_RC(-ENOENT, zcfuse_server_counter(srv, "", &v));
    EXPECT_RC(-ENOENT, zcfuse_server_counter(srv, "fs", &v)); /* a part, not a counter */
    EXPECT(v == 7, "a failed zcfuse_server_counter wrote %llu", (unsigned long long)v);

    /* Limits by name. */
    int nlimits = 0, has_spu = 0;
    for (const char *name; (name = zcfuse_limit_name(nlimits)) != NULL; nlimits++)
        has_spu |= strcmp(name, "sessions_per_user") == 0;
    EXPECT(nlimits > 5 && has_spu, "zcfuse_limit_name: %d names, sessions_per_user %s", nlimits,
           has_spu ? "there" : "missing");
    EXPECT_RC(0, zcfuse_server_set_limit(srv, "sessions_per_user", 5));
    EXPECT_RC(0, zcfuse_server_limit(srv, "sessions_per_user", &v));
    EXPECT(v == 5, "sessions_per_user = %llu, set 5", (unsigned long long)v);
    EXPECT_RC(0, zcfuse_server_limit(srv, "attached_files", &v));
    EXPECT(v > 0, "attached_files = 0: the default was not filled in");
    EXPECT_RC(-ENOENT, zcfuse_server_set_limit(srv, "no_such_limit", 1));
    EXPECT_RC(-ENOENT, zcfuse_server_limit(srv, "no_such_limit", &v));
    EXPECT_RC(-ERANGE, zcfuse_server_set_limit(srv, "fixed_slots", 1ull << 40));
    EXPECT_RC(-EINVAL, zcfuse_server_set_limit(NULL, "sessions_per_user", 1));
    EXPECT_RC(-EINVAL, zcfuse_server_set_limit(srv, NULL, 1));
    EXPECT_RC(-EINVAL, zcfuse_server_limit(srv, "sessions_per_user", NULL));

    check_snapshot(srv, "before start");
    if (!EXPECT_RC(0, zcfuse_server_start(srv)))
        goto out;
    EXPECT_RC(-EALREADY, zcfuse_server_set_limit(srv, "sessions_per_user", 1));
    uint64_t written = counter(srv, "bytes_written");
    int st = t_sh("set -e\n"
                  "dd if=\"$1\" of=\"$2/f\" bs=65536 status=none\n"
                  "cat \"$2/f\" >/dev/null\n",
                  src, mnt, NULL);
    EXPECT(st == 0, "child doing I/O through %s exited %d", mnt, st);
    EXPECT(counter(srv, "bytes_written") - written >= IO_SIZE, "bytes_written grew by %llu, want >= %u",
           (unsigned long long)(counter(srv, "bytes_written") - written), IO_SIZE);
    if (EXPECT_RC(0, zcfuse_connect(mnt, &s)))
        EXPECT(counter(srv, "sessions") == 1, "sessions %llu with one client",
               (unsigned long long)counter(srv, "sessions"));
    check_snapshot(srv, "serving");
    EXPECT_RC(0, zcfuse_close(s));
    s = NULL;
    EXPECT_RC(0, zcfuse_server_stop(srv));
    check_snapshot(srv, "after stop");
out:
    zcfuse_close(s);
    zcfuse_server_destroy(srv);
    free(backing), free(mnt), free(src);
    return t_done(T_PASS);
}
