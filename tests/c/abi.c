/*
 * abi.c - the public structs, enums and flags keep their layout and
 * values (after libfuse's test_abi.c). A change here breaks programs
 * built against an earlier header: it needs a new ZCFUSE_VERSION_MAJOR
 * (and SONAME), or a field added at the end behind struct_size.
 *
 * Compile time: sizes and offsets of zcfuse_server_opts_t (LP64 and
 * ILP32) and zcfuse_server_stats_t (the same on both), zcfuse_counter_t
 * (LP64), enum and flag values. Run time: zcfuse_server_opts_init() fills every field, and
 * zcfuse_server_stats() writes nothing past sizeof(zcfuse_server_stats_t)
 * and accepts a larger struct_size (a newer caller).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define LP64 (sizeof(void *) == 8)
#define PIN(type, field, lp64, ilp32)                                       \
    _Static_assert(offsetof(type, field) == (LP64 ? (lp64) : (ilp32)), \
                   #type "." #field " moved")

PIN(zcfuse_server_opts_t, struct_size, 0, 0);
PIN(zcfuse_server_opts_t, transport, 4, 4);
PIN(zcfuse_server_opts_t, backing_dir, 8, 8);
PIN(zcfuse_server_opts_t, mountpoint, 16, 12);
PIN(zcfuse_server_opts_t, queue_depth, 24, 16);
PIN(zcfuse_server_opts_t, flags, 28, 20);
PIN(zcfuse_server_opts_t, entry_timeout_ms, 32, 24);
PIN(zcfuse_server_opts_t, attr_timeout_ms, 36, 28);
PIN(zcfuse_server_opts_t, on_write, 40, 32);
PIN(zcfuse_server_opts_t, on_read, 48, 36);
PIN(zcfuse_server_opts_t, hook_ctx, 56, 40);
_Static_assert(sizeof(zcfuse_server_opts_t) == (LP64 ? 64 : 44), "zcfuse_server_opts_t size");
_Static_assert(ZCFUSE_SERVER_OPTS_V1_SIZE == (LP64 ? 40 : 32), "version 1 opts size");

PIN(zcfuse_server_stats_t, struct_size, 0, 0);
PIN(zcfuse_server_stats_t, version, 4, 4);
PIN(zcfuse_server_stats_t, transport, 8, 8);
PIN(zcfuse_server_stats_t, queues, 12, 12);
PIN(zcfuse_server_stats_t, queue_depth, 16, 16);
PIN(zcfuse_server_stats_t, running, 20, 20);
PIN(zcfuse_server_stats_t, bytes_read, 24, 24);
PIN(zcfuse_server_stats_t, bytes_written, 32, 32);
PIN(zcfuse_server_stats_t, errors, 40, 40);
PIN(zcfuse_server_stats_t, ring_requests, 48, 48);
PIN(zcfuse_server_stats_t, dev_requests, 560, 560);
PIN(zcfuse_server_stats_t, fallback_reason, 1072, 1072);
_Static_assert(sizeof(((zcfuse_server_stats_t *)0)->ring_requests) == 64 * 8, "ring_requests");
_Static_assert(sizeof(((zcfuse_server_stats_t *)0)->fallback_reason) == 256, "fallback_reason");
PIN(zcfuse_server_stats_t, sessions, 1328, 1328);
PIN(zcfuse_server_stats_t, arenas, 1336, 1336);
PIN(zcfuse_server_stats_t, registered_bytes, 1344, 1344);
PIN(zcfuse_server_stats_t, fixed_slots_used, 1352, 1352);
PIN(zcfuse_server_stats_t, attached_files, 1360, 1360);
PIN(zcfuse_server_stats_t, zc_ops, 1368, 1368);
PIN(zcfuse_server_stats_t, zero_copy_bytes, 1400, 1400);
PIN(zcfuse_server_stats_t, workers, 1424, 1424);
_Static_assert(sizeof(zcfuse_server_stats_t) == 1432, "zcfuse_server_stats_t size");
PIN(zcfuse_op_t, opcode, 0, 0);
PIN(zcfuse_op_t, flags, 4, 4);
PIN(zcfuse_op_t, file_id, 8, 8);
PIN(zcfuse_op_t, arena_id, 12, 12);
PIN(zcfuse_op_t, buf, 16, 16);
PIN(zcfuse_op_t, arena_off, 16, 16);
PIN(zcfuse_op_t, len, 24, 24);
PIN(zcfuse_op_t, off, 32, 32);
PIN(zcfuse_op_t, user_data, 40, 40);
_Static_assert(sizeof(zcfuse_op_t) == 48, "zcfuse_op_t size");
_Static_assert(sizeof(zcfuse_cqe_t) == 16, "zcfuse_cqe_t size");
/* ILP32 ABIs differ in where a uint64_t after a pointer goes: LP64 only. */
_Static_assert(offsetof(zcfuse_counter_t, name) == 0, "zcfuse_counter_t.name moved");
_Static_assert(!LP64 || offsetof(zcfuse_counter_t, value) == 8, "zcfuse_counter_t.value moved");
_Static_assert(!LP64 || sizeof(zcfuse_counter_t) == 16, "zcfuse_counter_t size");
_Static_assert(ZCFUSE_F_REQUIRE_ZC == 1 && ZCFUSE_F_DATASYNC == 2 && ZCFUSE_F_ARENA == 4, "op flags");
#define STATS_V1_SIZE ZCFUSE_SERVER_STATS_V1_SIZE
_Static_assert(ZCFUSE_SERVER_STATS_V1_SIZE == 1328, "version 1 stats size");

_Static_assert(sizeof(zcfuse_session_stats_t) == 48, "zcfuse_session_stats_t size");
_Static_assert(offsetof(zcfuse_session_stats_t, version) == 4, "session_stats.version");
_Static_assert(offsetof(zcfuse_session_stats_t, session_id) == 8, "session_stats.session_id");
_Static_assert(offsetof(zcfuse_session_stats_t, registered_bytes) == 32, "session_stats.registered_bytes");
_Static_assert(offsetof(zcfuse_session_stats_t, attached_files) == 40, "session_stats.attached_files");
_Static_assert(ZCFUSE_SESSION_STATS_VERSION == 1, "session stats version");
_Static_assert(ZCFUSE_SHARED_REGISTERED == 1, "SHARED_REGISTERED");
_Static_assert(ZCFUSE_ARENA_HUGE == 1, "ARENA_HUGE");
_Static_assert(ZCFUSE_ARENA_MAX_SIZE == (size_t)1 << 30, "ARENA_MAX_SIZE");

_Static_assert(ZCFUSE_TRANSPORT_AUTO == 0, "AUTO");
_Static_assert(ZCFUSE_TRANSPORT_URING == 1, "URING");
_Static_assert(ZCFUSE_TRANSPORT_CLASSIC == 2, "CLASSIC");
_Static_assert(sizeof(zcfuse_transport_t) == sizeof(int), "zcfuse_transport_t size");
_Static_assert(ZCFUSE_SERVER_ALLOW_OTHER == 1u, "ALLOW_OTHER");
_Static_assert(ZCFUSE_SERVER_READ_ONLY == 2u, "READ_ONLY");
_Static_assert(ZCFUSE_SERVER_PASSTHROUGH == 4u, "PASSTHROUGH");
_Static_assert(ZCFUSE_SERVER_DEBUG == 8u, "DEBUG");
_Static_assert(ZCFUSE_SERVER_STATS_VERSION == 2, "stats version");
_Static_assert(ZCFUSE_STATS_OPCODES == 64, "opcode slots");

static void opts_init_fills_all(void)
{
    zcfuse_server_opts_t o;
    memset(&o, 0xa5, sizeof o);
    zcfuse_server_opts_init(&o);
    EXPECT(o.struct_size == sizeof o, "struct_size %u", o.struct_size);
    EXPECT(o.transport == ZCFUSE_TRANSPORT_AUTO, "transport %u", o.transport);
    EXPECT(o.backing_dir == NULL && o.mountpoint == NULL, "directories set");
    EXPECT(o.flags == 0, "flags %#x", o.flags);
    /* 0 means "the default"; the defaults themselves are also fine. */
    EXPECT(o.queue_depth == 0 || o.queue_depth == 4, "queue_depth %u", o.queue_depth);
    EXPECT(o.entry_timeout_ms == 0 || o.entry_timeout_ms == 1000, "entry_timeout_ms %u",
           o.entry_timeout_ms);
    EXPECT(o.attr_timeout_ms == 0 || o.attr_timeout_ms == 1000, "attr_timeout_ms %u",
           o.attr_timeout_ms);
    EXPECT(o.on_write == NULL && o.on_read == NULL && o.hook_ctx == NULL, "hooks set");
}

/* A program built against version 1 of the header has a smaller struct:
 * neither the old entry point nor the sized one may write past it. */
static void opts_init_respects_older_callers(void)
{
    struct {
        unsigned char v1[ZCFUSE_SERVER_OPTS_V1_SIZE];
        unsigned char canary[32];
    } old;
    for (int sized = 0; sized <= 1; sized++) {
        memset(&old, 0xaa, sizeof old);
        if (sized)
            zcfuse_server_opts_init_size((zcfuse_server_opts_t *)&old, sizeof old.v1);
        else
            (zcfuse_server_opts_init)((zcfuse_server_opts_t *)&old); /* the function, not the macro */
        uint32_t size;
        memcpy(&size, old.v1, sizeof size);
        EXPECT(size == ZCFUSE_SERVER_OPTS_V1_SIZE, "struct_size %u for a version-1 struct", size);
        int intact = 1;
        for (size_t i = 0; i < sizeof old.canary; i++)
            intact &= old.canary[i] == 0xaa;
        EXPECT(intact, "bytes past a version-1 struct written (%s)", sized ? "init_size" : "init");
    }
    zcfuse_server_opts_t tiny;
    memset(&tiny, 0x5a, sizeof tiny);
    zcfuse_server_opts_init_size(&tiny, 8); /* smaller than any version: untouched */
    EXPECT(tiny.struct_size == 0x5a5a5a5a, "a too-small struct was written");
}

/* A stats struct with room behind it, to see what the library touches. */
struct padded {
    zcfuse_server_stats_t st;
    unsigned char tail[64];
};

static int tail_intact(const struct padded *p)
{
    for (size_t i = 0; i < sizeof p->tail; i++)
        if (p->tail[i] != 0x5a)
            return 0;
    return 1;
}

static void stats_stays_inside(void)
{
    const char *dir = t_scratch();
    if (!dir)
        return;
    char *backing = t_path(dir, "backing", 1), *mnt = t_path(dir, "mnt", 1);
    zcfuse_server_opts_t o;
    zcfuse_server_t *srv = NULL;
    zcfuse_server_opts_init(&o);
    o.backing_dir = backing;
    o.mountpoint = mnt;
    /* create mounts nothing, so this needs no root. */
    if (EXPECT_RC(0, zcfuse_server_create(&o, &srv))) {
        struct padded p;
        /* A caller built against version 1, this version, a newer one. */
        const uint32_t sizes[] = {STATS_V1_SIZE, sizeof p.st, sizeof p.st + sizeof p.tail};
        for (int i = 0; i < 3; i++) {
            memset(&p, 0x5a, sizeof p);
            p.st.struct_size = sizes[i];
            EXPECT_RC(0, zcfuse_server_stats(srv, &p.st));
            uint32_t want = i == 0 ? 1 : ZCFUSE_SERVER_STATS_VERSION;
            EXPECT(p.st.version == want, "version %u for struct_size %u", p.st.version, sizes[i]);
            if (i == 0)
                EXPECT(((unsigned char *)&p.st)[STATS_V1_SIZE] == 0x5a, "version 2 fields written for a version 1 caller");
            else
                EXPECT(p.st.sessions == 0 && p.st.attached_files == 0, "sessions %llu before start",
                       (unsigned long long)p.st.sessions);
            EXPECT(p.st.running == 0, "running %u before start", p.st.running);
            EXPECT(memchr(p.st.fallback_reason, 0, sizeof p.st.fallback_reason) != NULL,
                   "fallback_reason not NUL-terminated");
            EXPECT(tail_intact(&p), "bytes past sizeof(zcfuse_server_stats_t) written (struct_size %u)",
                   p.st.struct_size);
            EXPECT(p.st.struct_size == sizes[i], "struct_size changed to %u", p.st.struct_size);
        }
        zcfuse_server_destroy(srv);
    }
    free(backing), free(mnt);
}

int main(void)
{
    t_init("abi");
    printf("sizeof zcfuse_server_opts_t %zu, zcfuse_server_stats_t %zu\n",
           sizeof(zcfuse_server_opts_t), sizeof(zcfuse_server_stats_t));
    opts_init_fills_all();
    opts_init_respects_older_callers();
    stats_stays_inside();
    return t_done(0);
}
