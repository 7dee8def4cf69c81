/*
 * The public names of libzcfuse. cgo cannot export functions with const
 * parameters or with the header's own types in their signatures, so the
 * Go exports (zcfusego_*, not exported from the library) sit behind
 * these one-line forwarders. Argument checks that need no Go live here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capi.h"
#include "_cgo_export.h"

static __thread char last_error[512];

/* zcfuse_server_stats_t as version 1 had it: up to fallback_reason. */
#define SERVER_STATS_V1_SIZE offsetof(zcfuse_server_stats_t, sessions)
_Static_assert(offsetof(zcfuse_server_opts_t, on_write) == ZCFUSE_SERVER_OPTS_V1_SIZE, "version 1 opts size");
_Static_assert(SERVER_STATS_V1_SIZE == ZCFUSE_SERVER_STATS_V1_SIZE, "version 1 stats size");
/* capi/ops.go reads the union of buf and arena_off as 8 bytes. */
_Static_assert(offsetof(zcfuse_op_t, buf) == offsetof(zcfuse_op_t, arena_off), "op union");
_Static_assert(sizeof(void *) <= sizeof(uint64_t), "op union holds a pointer");

/*
 * The Go runtime does not survive fork(): only the forking thread exists
 * in the child, and a call into Go there can hang. A child notices
 * through pthread_atfork and refuses every call that would enter Go.
 */
static volatile int forked_child;

static void mark_child(void)
{
    forked_child = 1;
}

__attribute__((constructor)) static void watch_fork(void)
{
    pthread_atfork(NULL, NULL, mark_child);
}

#define NO_GO_IN_CHILD(name)                                                        \
    do {                                                                            \
        if (forked_child)                                                           \
            return fail(-ECHILD, name ": called in a forked child (the library's "  \
                                      "Go runtime does not survive fork; use posix_spawn)"); \
    } while (0)

void zcfusei_set_error(const char *msg)
{
    snprintf(last_error, sizeof last_error, "%s", msg);
}

static int fail(int err, const char *msg)
{
    zcfusei_set_error(msg);
    return err;
}

const char *zcfuse_last_error(void)
{
    return last_error;
}

#define STR2(x) #x
#define STR(x) STR2(x)

const char *zcfuse_version(void)
{
    return STR(ZCFUSE_VERSION_MAJOR) "." STR(ZCFUSE_VERSION_MINOR) "." STR(ZCFUSE_VERSION_PATCH);
}

const char *zcfuse_strerror(int err)
{
    const char *s = strerrordesc_np(err < 0 ? -err : err);
    return s ? s : "Unknown error";
}

void zcfuse_server_opts_init_size(zcfuse_server_opts_t *opts, size_t size)
{
    if (!opts || size < ZCFUSE_SERVER_OPTS_V1_SIZE)
        return;
    if (size > sizeof *opts)
        size = sizeof *opts; /* a newer caller's extra fields: its own to fill */
    memset(opts, 0, size);
    opts->struct_size = (uint32_t)size;
    opts->transport = ZCFUSE_TRANSPORT_AUTO;
}

#undef zcfuse_server_opts_init
void zcfuse_server_opts_init(zcfuse_server_opts_t *opts)
{
    zcfuse_server_opts_init_size(opts, ZCFUSE_SERVER_OPTS_V1_SIZE);
}

int zcfuse_arena_create(size_t size, uint32_t flags, zcfuse_arena_t **arena_out)
{
    NO_GO_IN_CHILD("zcfuse_arena_create");
    if (!arena_out)
        return fail(-EINVAL, "zcfuse_arena_create: arena_out must not be NULL");
    zcfuse_arena_t *a = calloc(1, sizeof *a);
    if (!a)
        return fail(-ENOMEM, "zcfuse_arena_create: out of memory");
    int rc = zcfusego_arena_create(size, flags, a);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *arena_out = a;
    return 0;
}

int zcfuse_arena_import(int fd, size_t size, zcfuse_arena_t **arena_out)
{
    NO_GO_IN_CHILD("zcfuse_arena_import");
    if (!arena_out)
        return fail(-EINVAL, "zcfuse_arena_import: arena_out must not be NULL");
    zcfuse_arena_t *a = calloc(1, sizeof *a);
    if (!a)
        return fail(-ENOMEM, "zcfuse_arena_import: out of memory");
    int rc = zcfusego_arena_import(fd, size, a);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *arena_out = a;
    return 0;
}

void *zcfuse_arena_base(const zcfuse_arena_t *arena)
{
    return arena ? arena->base : NULL;
}

size_t zcfuse_arena_size(const zcfuse_arena_t *arena)
{
    return arena ? arena->size : 0;
}

int zcfuse_arena_fd(const zcfuse_arena_t *arena)
{
    return arena ? arena->fd : fail(-EINVAL, "zcfuse_arena_fd: arena must not be NULL");
}

void zcfuse_arena_close(zcfuse_arena_t *arena)
{
    if (!arena || forked_child)
        return; /* in a forked child the mapping goes with the exit/exec */
    zcfusego_arena_close(arena->handle);
    free(arena);
}

int zcfuse_connect(const char *mountpoint, zcfuse_session_t **session_out)
{
    NO_GO_IN_CHILD("zcfuse_connect");
    if (!mountpoint || !session_out)
        return fail(-EINVAL, "zcfuse_connect: mountpoint and session_out must not be NULL");
    zcfuse_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return fail(-ENOMEM, "zcfuse_connect: out of memory");
    int rc = zcfusego_connect((char *)mountpoint, &s->handle);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *session_out = s;
    return 0;
}

int zcfuse_share(zcfuse_session_t *session, const zcfuse_arena_t *arena,
                 uint32_t *arena_id_out, uint32_t *flags_out)
{
    NO_GO_IN_CHILD("zcfuse_share");
    if (!session || !arena || !arena_id_out)
        return fail(-EINVAL, "zcfuse_share: session, arena and arena_id_out must not be NULL");
    uint32_t flags;
    int rc = zcfusego_share(session->handle, arena->handle, arena_id_out, &flags);
    if (rc == 0 && flags_out)
        *flags_out = flags;
    return rc;
}

int zcfuse_unshare(zcfuse_session_t *session, uint32_t arena_id)
{
    NO_GO_IN_CHILD("zcfuse_unshare");
    if (!session)
        return fail(-EINVAL, "zcfuse_unshare: session must not be NULL");
    return zcfusego_unshare(session->handle, arena_id);
}

int zcfuse_attach(zcfuse_session_t *session, int fd, uint32_t *file_id_out)
{
    NO_GO_IN_CHILD("zcfuse_attach");
    if (!session || !file_id_out)
        return fail(-EINVAL, "zcfuse_attach: session and file_id_out must not be NULL");
    return zcfusego_attach(session->handle, fd, file_id_out);
}

int zcfuse_detach(zcfuse_session_t *session, uint32_t file_id)
{
    NO_GO_IN_CHILD("zcfuse_detach");
    if (!session)
        return fail(-EINVAL, "zcfuse_detach: session must not be NULL");
    return zcfusego_detach(session->handle, file_id);
}

int64_t zcfuse_pwrite(zcfuse_session_t *session, uint32_t file_id, const void *buf, size_t len, int64_t off,
                      uint32_t flags)
{
    NO_GO_IN_CHILD("zcfuse_pwrite");
    if (!session || (!buf && len))
        return fail(-EINVAL, "zcfuse_pwrite: session NULL, or buf NULL with len > 0");
    return zcfusego_pwrite(session->handle, file_id, (void *)buf, len, off, flags);
}

int64_t zcfuse_pread(zcfuse_session_t *session, uint32_t file_id, void *buf, size_t len, int64_t off,
                     uint32_t flags)
{
    NO_GO_IN_CHILD("zcfuse_pread");
    if (!session || (!buf && len))
        return fail(-EINVAL, "zcfuse_pread: session NULL, or buf NULL with len > 0");
    return zcfusego_pread(session->handle, file_id, buf, len, off, flags);
}

int64_t zcfuse_pwrite_arena(zcfuse_session_t *session, uint32_t file_id, uint32_t arena_id, uint64_t arena_off,
                            size_t len, int64_t off, uint32_t flags)
{
    NO_GO_IN_CHILD("zcfuse_pwrite_arena");
    if (!session)
        return fail(-EINVAL, "zcfuse_pwrite_arena: session must not be NULL");
    return zcfusego_pwrite_arena(session->handle, file_id, arena_id, arena_off, len, off, flags);
}

int64_t zcfuse_pread_arena(zcfuse_session_t *session, uint32_t file_id, uint32_t arena_id, uint64_t arena_off,
                           size_t len, int64_t off, uint32_t flags)
{
    NO_GO_IN_CHILD("zcfuse_pread_arena");
    if (!session)
        return fail(-EINVAL, "zcfuse_pread_arena: session must not be NULL");
    return zcfusego_pread_arena(session->handle, file_id, arena_id, arena_off, len, off, flags);
}

int zcfuse_fsync(zcfuse_session_t *session, uint32_t file_id, uint32_t flags)
{
    NO_GO_IN_CHILD("zcfuse_fsync");
    if (!session)
        return fail(-EINVAL, "zcfuse_fsync: session must not be NULL");
    return zcfusego_fsync(session->handle, file_id, flags);
}

int zcfuse_submit(zcfuse_session_t *session, const zcfuse_op_t *ops, unsigned n)
{
    NO_GO_IN_CHILD("zcfuse_submit");
    if (!session || (!ops && n))
        return fail(-EINVAL, "zcfuse_submit: session NULL, or ops NULL with n > 0");
    if (n == 0)
        return 0;
    return zcfusego_submit(session->handle, (zcfuse_op_t *)ops, n);
}

int zcfuse_wait(zcfuse_session_t *session, zcfuse_cqe_t *cqes, unsigned min, unsigned max, int timeout_ms)
{
    NO_GO_IN_CHILD("zcfuse_wait");
    if (!session || (!cqes && max) || min > max)
        return fail(-EINVAL, "zcfuse_wait: session NULL, cqes NULL with max > 0, or min > max");
    return zcfusego_wait(session->handle, cqes, min, max, timeout_ms);
}

int zcfuse_session_fd(zcfuse_session_t *session)
{
    NO_GO_IN_CHILD("zcfuse_session_fd");
    if (!session)
        return fail(-EINVAL, "zcfuse_session_fd: session must not be NULL");
    return zcfusego_session_fd(session->handle);
}

int zcfuse_session_set_mode(zcfuse_session_t *session, int mode, unsigned spin_us)
{
    NO_GO_IN_CHILD("zcfuse_session_set_mode");
    if (!session)
        return fail(-EINVAL, "zcfuse_session_set_mode: session must not be NULL");
    return zcfusego_session_set_mode(session->handle, mode, spin_us);
}

int zcfuse_session_stats(zcfuse_session_t *session, zcfuse_session_stats_t *stats)
{
    NO_GO_IN_CHILD("zcfuse_session_stats");
    if (!session || !stats || stats->struct_size < sizeof *stats)
        return fail(-EINVAL, "zcfuse_session_stats: NULL argument or stats->struct_size too small");
    return zcfusego_session_stats(session->handle, stats);
}

int zcfuse_close(zcfuse_session_t *session)
{
    if (!session)
        return 0;
    if (forked_child)
        return fail(-ECHILD, "zcfuse_close: called in a forked child");
    int rc = zcfusego_close(session->handle);
    free(session);
    return rc;
}

int zcfuse_server_create(const zcfuse_server_opts_t *opts, zcfuse_server_t **srv_out)
{
    NO_GO_IN_CHILD("zcfuse_server_create");
    if (!opts || !srv_out)
        return fail(-EINVAL, "zcfuse_server_create: opts and srv_out must not be NULL");
    if (opts->struct_size < ZCFUSE_SERVER_OPTS_V1_SIZE)
        return fail(-EINVAL, "zcfuse_server_create: opts->struct_size too small (call zcfuse_server_opts_init first)");
    /* A version-1 caller's struct ends before the hooks: they stay NULL. */
    zcfuse_server_opts_t full;
    memset(&full, 0, sizeof full);
    memcpy(&full, opts, opts->struct_size < sizeof full ? opts->struct_size : sizeof full);
    zcfuse_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return fail(-ENOMEM, "zcfuse_server_create: out of memory");
    int rc = zcfusego_server_create(&full, &srv->handle);
    if (rc < 0) {
        free(srv);
        return rc;
    }
    *srv_out = srv;
    return 0;
}

#define NEED_SRV(name)                                                   \
    do {                                                                 \
        if (!srv)                                                        \
            return fail(-EINVAL, name ": srv must not be NULL");         \
    } while (0)

int zcfuse_server_start(zcfuse_server_t *srv)
{
    NO_GO_IN_CHILD("zcfuse_server_start");
    NEED_SRV("zcfuse_server_start");
    return zcfusego_server_start(srv->handle);
}

int zcfuse_server_run(zcfuse_server_t *srv)
{
    NO_GO_IN_CHILD("zcfuse_server_run");
    NEED_SRV("zcfuse_server_run");
    return zcfusego_server_run(srv->handle);
}

int zcfuse_server_stop(zcfuse_server_t *srv)
{
    NO_GO_IN_CHILD("zcfuse_server_stop");
    NEED_SRV("zcfuse_server_stop");
    return zcfusego_server_stop(srv->handle);
}

int zcfuse_server_stats(zcfuse_server_t *srv, zcfuse_server_stats_t *stats)
{
    NO_GO_IN_CHILD("zcfuse_server_stats");
    NEED_SRV("zcfuse_server_stats");
    if (!stats || stats->struct_size < SERVER_STATS_V1_SIZE)
        return fail(-EINVAL, "zcfuse_server_stats: stats NULL or stats->struct_size too small");
    /* Fill the whole struct here, hand the caller what its version holds. */
    zcfuse_server_stats_t full;
    memset(&full, 0, sizeof full);
    full.struct_size = sizeof full;
    int rc = zcfusego_server_stats(srv->handle, &full);
    if (rc)
        return rc;
    uint32_t size = stats->struct_size;
    if (size < sizeof full)
        full.version = 1;
    memcpy(stats, &full, size < sizeof full ? size : sizeof full);
    stats->struct_size = size;
    return 0;
}

int zcfuse_server_counters(zcfuse_server_t *srv, zcfuse_counter_t *out, size_t n)
{
    NO_GO_IN_CHILD("zcfuse_server_counters");
    NEED_SRV("zcfuse_server_counters");
    if (!out && n)
        return fail(-EINVAL, "zcfuse_server_counters: out NULL with n > 0");
    return zcfusego_server_counters(srv->handle, out, n);
}

int zcfuse_server_counter(zcfuse_server_t *srv, const char *name, uint64_t *value)
{
    NO_GO_IN_CHILD("zcfuse_server_counter");
    NEED_SRV("zcfuse_server_counter");
    if (!name || !value)
        return fail(-EINVAL, "zcfuse_server_counter: name and value must not be NULL");
    return zcfusego_server_counter(srv->handle, (char *)name, value);
}

int zcfuse_server_set_limit(zcfuse_server_t *srv, const char *name, uint64_t value)
{
    NO_GO_IN_CHILD("zcfuse_server_set_limit");
    NEED_SRV("zcfuse_server_set_limit");
    if (!name)
        return fail(-EINVAL, "zcfuse_server_set_limit: name must not be NULL");
    return zcfusego_server_set_limit(srv->handle, (char *)name, value);
}

int zcfuse_server_limit(zcfuse_server_t *srv, const char *name, uint64_t *value)
{
    NO_GO_IN_CHILD("zcfuse_server_limit");
    NEED_SRV("zcfuse_server_limit");
    if (!name || !value)
        return fail(-EINVAL, "zcfuse_server_limit: name and value must not be NULL");
    return zcfusego_server_limit(srv->handle, (char *)name, value);
}

const char *zcfuse_limit_name(size_t i)
{
    if (forked_child)
        return NULL;
    return zcfusego_limit_name(i);
}

/* The names of the opcodes the stats arrays count, looked up once, so a
 * forked child still has them (it cannot enter Go). */
static const char *op_names[ZCFUSE_STATS_OPCODES];
static pthread_once_t op_names_once = PTHREAD_ONCE_INIT;

static void load_op_names(void)
{
    for (uint32_t op = 0; op < ZCFUSE_STATS_OPCODES; op++)
        op_names[op] = zcfusego_opcode_name(op);
}

const char *zcfuse_opcode_name(uint32_t opcode)
{
    if (!forked_child)
        pthread_once(&op_names_once, load_op_names);
    if (opcode < ZCFUSE_STATS_OPCODES)
        return op_names[opcode] ? op_names[opcode] : "";
    return forked_child ? "" : zcfusego_opcode_name(opcode);
}

void zcfuse_server_destroy(zcfuse_server_t *srv)
{
    if (!srv || forked_child)
        return;
    zcfusego_server_destroy(srv->handle);
    free(srv);
}
