/*
 * zcfuse.h - the public C API of libzcfuse.
 *
 * zcfuse gives FUSE file systems a zero-copy data path. This header is
 * the whole C ABI: C and C++ programs include it and link libzcfuse.so
 * (`pkg-config --cflags --libs zcfuse`, or CMake `find_package(zcfuse)`
 * and the imported target `zcfuse::zcfuse`); the Python and Rust bindings
 * are generated from nothing but this file.
 *
 * This version covers the server side: mount a backing directory through
 * zcfuse (FUSE-over-io_uring, with /dev/fuse as fallback), serve it from
 * inside the calling process, read its statistics, stop it.
 *
 * Conventions (as in liburing):
 *  - Functions that can fail return 0 (or a count) on success and a
 *    negative errno on failure, e.g. -ENOENT. Never -1 plus errno.
 *    zcfuse_strerror() turns a code into text; zcfuse_last_error() gives
 *    the detailed message of the last failure on the calling thread.
 *  - Constructors write the new object through their last parameter,
 *    named *_out, and return int.
 *  - Handles are opaque; who owns what is stated per function.
 *
 * Threads: every function may be called from any thread. A
 * zcfuse_server_t may be used from several threads at once (stop and
 * stats are meant to be called while another thread sits in run).
 *
 * Fork: libzcfuse carries a Go runtime, which does not survive fork().
 * Every call that would enter it returns -ECHILD at once in a forked
 * child (the library notices fork() through pthread_atfork); the parent
 * is unaffected. Use posix_spawn(), or exec() after fork(); Python users
 * take multiprocessing's "spawn" or "forkserver" start method.
 *
 * Signals: the library does not install handlers for SIGINT/SIGTERM,
 * and its threads, started when the library loads (before main), do not
 * block them. So sigwait() in one thread does not catch them: a signal
 * may go to a library thread and take the default action (the process
 * dies and leaves a dead mount). To unmount on Ctrl-C, install a handler
 * (sigaction) that only posts a semaphore or writes to a pipe, and call
 * zcfuse_server_stop() from a thread that waits on it - never from the
 * handler itself. examples/c/serve.c shows the pattern.
 */
#ifndef ZCFUSE_H
#define ZCFUSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. zcfuse_version() gives the library's. */
#define ZCFUSE_VERSION_MAJOR 0
#define ZCFUSE_VERSION_MINOR 1
#define ZCFUSE_VERSION_PATCH 0

/*
 * Returns the library's version as "MAJOR.MINOR.PATCH", a static string.
 * A program built against an older header works with a newer library of
 * the same MAJOR version.
 */
const char *zcfuse_version(void);

/*
 * Returns a static description of err, a negative (or positive) errno,
 * e.g. "No such file or directory" for -ENOENT. Never returns NULL.
 */
const char *zcfuse_strerror(int err);

/*
 * Returns the detailed message of the last call that failed on this
 * thread (e.g. "mountpoint /mnt is busy: something is already mounted
 * there"), or "" when none failed yet. The string belongs to the library
 * and stays valid until the next failing call on this thread.
 */
const char *zcfuse_last_error(void);

/* ------------------------------------------------------------------ */
/* Arenas                                                              */
/* ------------------------------------------------------------------ */

/*
 * An arena is shared memory for zero-copy I/O: a sealed memfd mapped
 * read-write. The application puts its data in an arena, shares the
 * arena with a zcfuse server once, and from then on reads and writes by
 * reference. Sizes are whole pages (4 KiB, or 2 MiB with
 * ZCFUSE_ARENA_HUGE) up to ZCFUSE_ARENA_MAX_SIZE. The memfd is sealed
 * against shrinking and growing, so a server can map it safely.
 * An arena may be read and written from several threads at once (it is
 * plain memory); create, import and close are thread-safe.
 */
typedef struct zcfuse_arena zcfuse_arena_t;

/* The largest arena: io_uring registers at most 1 GiB as one buffer. */
#define ZCFUSE_ARENA_MAX_SIZE ((size_t)1 << 30)

/* Flags for zcfuse_arena_create(). */
/* Back the arena with huge pages (MFD_HUGETLB); they must be reserved
 * beforehand (/proc/sys/vm/nr_hugepages), else -ENOMEM. */
#define ZCFUSE_ARENA_HUGE (1u << 0)

/*
 * Creates an arena of size bytes. Returns 0 and sets *arena_out, or
 * -EINVAL (size 0, not whole pages, over ZCFUSE_ARENA_MAX_SIZE, an
 * unknown flag, arena_out NULL), -ENOMEM (no memory, or no huge pages
 * free), -EMFILE. The arena must be released with zcfuse_arena_close().
 */
int zcfuse_arena_create(size_t size, uint32_t flags, zcfuse_arena_t **arena_out);

/*
 * Adopts an existing memfd of size bytes as an arena, after the checks a
 * server makes: -EINVAL when fd is not a memfd or holds fewer than size
 * bytes, or size is not whole pages; -EPERM when it is not sealed with
 * F_SEAL_SHRINK. The arena works on a duplicate of fd: the caller keeps
 * and closes its own. Release the arena with zcfuse_arena_close().
 */
int zcfuse_arena_import(int fd, size_t size, zcfuse_arena_t **arena_out);

/* The arena's memory; valid until zcfuse_arena_close(). NULL if arena is NULL. */
void *zcfuse_arena_base(const zcfuse_arena_t *arena);

/* The arena's size in bytes; 0 if arena is NULL. */
size_t zcfuse_arena_size(const zcfuse_arena_t *arena);

/* The arena's memfd, owned by the arena (do not close it); -EINVAL if
 * arena is NULL. */
int zcfuse_arena_fd(const zcfuse_arena_t *arena);

/* Unmaps the arena and closes its memfd. arena may be NULL. After this
 * call, memory from zcfuse_arena_base() must not be touched. */
void zcfuse_arena_close(zcfuse_arena_t *arena);

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/*
 * A session is a client's connection to the zcfuse server behind a
 * mountpoint, over which it shares arenas and to which it attaches files
 * opened through the mount. A session is used by one
 * thread at a time (like an io_uring); open one per thread.
 */
typedef struct zcfuse_session zcfuse_session_t;

/*
 * Connects to the server behind mountpoint. The server is found through
 * the mount itself (the attribute user.zcfuse.control on its root), or
 * through the environment variable ZCFUSE_CONTROL_SOCKET when set.
 * Returns 0 and sets *session_out, or:
 *   -ENODATA  no zcfuse server answers at mountpoint;
 *   -EACCES   this user may not use the server: it admits only its owner
 *             and root unless it runs with --allow-other (the mount, the
 *             control socket or the server itself refuses);
 *   -EAGAIN   this user holds its limit of sessions (32 by default) or of
 *             connections not yet past their first message (8), or the
 *             server is full: users other than root and the owner hold
 *             256 sessions (or 64 such connections) together. Root and
 *             the owner each have limits of their own, and are never
 *             refused for being full;
 *   -ESHUTDOWN the server is stopping;
 *   -ENOENT or -ECONNREFUSED the socket is gone;
 *   -EINVAL   a NULL argument.
 * A refused connect returns its errno, never the -ENOTCONN, -EPIPE or
 * -ECONNRESET of the close that follows the refusal, and
 * zcfuse_last_error() gives the server's words: which limit, which uid
 * ("uid 1000 holds 32 sessions, its limit is 32"). The defaults are
 * those of a server started with no limits set.
 * Close the session with zcfuse_close().
 */
int zcfuse_connect(const char *mountpoint, zcfuse_session_t **session_out);

/* Set in *flags_out by zcfuse_share(): the server registered the arena as
 * an io_uring fixed buffer (else it serves it from its mapping, still
 * without a copy). */
#define ZCFUSE_SHARED_REGISTERED (1u << 0)

/*
 * Hands arena to the server, which maps it and, budget permitting,
 * registers it for fixed-buffer I/O. Returns 0 and sets *arena_id_out
 * (and *flags_out when not NULL), or:
 *   -ENOSPC  the session's limit: 64 arenas or 16 GiB by default;
 *   -EDQUOT  this user's limit over all its sessions: 256 arenas or
 *            64 GiB mapped by default;
 *   -EPERM / -EINVAL the server refused the memfd;
 *   -ENOTCONN the server is gone.
 * The server faults in and registers (pins) a user's arenas only up to
 * that user's registered budget (4 GiB by default); past it an arena is
 * shared without ZCFUSE_SHARED_REGISTERED and left untouched, served
 * from its mapping, still without a copy. The arena stays the caller's;
 * close it after zcfuse_unshare() or zcfuse_close().
 */
int zcfuse_share(zcfuse_session_t *session, const zcfuse_arena_t *arena,
                 uint32_t *arena_id_out, uint32_t *flags_out);

/* Asks the server to release arena_id. Returns 0, -ENOENT (no such
 * arena in this session) or -ENOTCONN. */
int zcfuse_unshare(zcfuse_session_t *session, uint32_t arena_id);

/*
 * Attaches fd, a regular file opened through this session's mount, to the
 * session for zero-copy I/O, and sets *file_id_out to its id in the
 * session. The attach travels as an ioctl on fd itself, so the server
 * learns the file, and the caller's uid and gid, from the kernel; the
 * session's secret token proves the session. A file opened O_RDONLY
 * attaches read-only, O_WRONLY write-only. Attaching the same open file
 * twice gives the same id. Returns 0, or:
 *   -EXDEV   fd is not a file on this session's mount;
 *   -EINVAL  fd is not a regular file, or a NULL argument;
 *   -EBADF   fd is not open;
 *   -EPERM   the server refuses: no such session (closed, or the token
 *            is not its own), or the caller's uid or gid is not the
 *            session's (the server's log says which);
 *   -EMFILE  the session's attached-file limit (1024 by default);
 *   -ENOTCONN / -ESHUTDOWN the server is gone or stopping.
 * The attachment ends with zcfuse_detach(), zcfuse_close(), or when the
 * kernel releases the open file (the last close() of fd and its dups).
 */
int zcfuse_attach(zcfuse_session_t *session, int fd, uint32_t *file_id_out);

/* Ends the attachment file_id. Returns 0, -ENOENT (not attached: maybe
 * the kernel released the file already), -EINVAL or -ENOTCONN. */
int zcfuse_detach(zcfuse_session_t *session, uint32_t file_id);

/* Version of zcfuse_session_stats_t filled in by this library. */
#define ZCFUSE_SESSION_STATS_VERSION 1

/* The server's control-plane counters, as a session sees them. Set
 * struct_size to sizeof(zcfuse_session_stats_t) before the call. */
typedef struct zcfuse_session_stats {
    uint32_t struct_size;      /* in */
    uint32_t version;          /* out: ZCFUSE_SESSION_STATS_VERSION */
    uint64_t session_id;       /* this session's id on the server */
    uint64_t sessions;         /* sessions the server holds */
    uint64_t arenas;           /* arenas shared with the server, all sessions */
    uint64_t registered_bytes; /* of those, bytes in io_uring fixed buffers */
    uint64_t attached_files;   /* files attached for zero-copy I/O */
} zcfuse_session_stats_t;

/* Fills *stats. Returns 0, -EINVAL (NULL, or struct_size too small) or
 * -ENOTCONN (the server is gone). */
int zcfuse_session_stats(zcfuse_session_t *session, zcfuse_session_stats_t *stats);

/* ------------------------------------------------------------------ */
/* Zero-copy operations                                                */
/* ------------------------------------------------------------------ */

/*
 * Operations on attached files travel over the session's op queue, shared
 * memory the server created, and never through the FUSE request path: the
 * server moves the bytes between the arena and the backing file with
 * io_uring. A buffer that lies inside one shared arena moves with no copy;
 * a buffer outside every arena is read or written through the mount with
 * plain pread/pwrite on the attached fd (the posix path), unless the op
 * carries ZCFUSE_F_REQUIRE_ZC, which makes it fail with -EFAULT instead.
 * A buffer that straddles an arena's end is -EFAULT. Finding the arena
 * of a pointer costs a search of the session's shared arenas; an op can
 * instead name its memory as {arena id, byte offset} (ZCFUSE_F_ARENA,
 * zcfuse_pread_arena(), zcfuse_pwrite_arena()): a lookup by id, and only
 * ever the zero-copy path. Results:
 *   -EFAULT  the buffer straddles an arena's end, or lies outside every
 *            arena with ZCFUSE_F_REQUIRE_ZC; by arena id: an id this
 *            session does not share (never shared, unshared, or its
 *            arena closed), or a range [arena_off, arena_off + len) that
 *            is not inside that arena (arena_off + len overflowing too).
 *            Nothing moves;
 *   -EBADF   unknown file id, a file detached or released (its fd closed),
 *            or a write to a file attached read-only (a read of one
 *            attached write-only);
 *   -EINVAL  unknown opcode, a flag bit no ZCFUSE_F_* names (or
 *            ZCFUSE_F_ARENA given to zcfuse_pread()/zcfuse_pwrite()), a
 *            negative offset;
 *   -EFBIG   a write that would reach past the calling process's
 *            RLIMIT_FSIZE (read at each zcfuse_pwrite()/zcfuse_submit()):
 *            nothing of it is written, not even the part below the limit,
 *            and no SIGXFSZ is sent (write(2) would write up to the limit
 *            and raise the signal);
 *   -ENOTCONN the server is gone; -EBADF too on a closed session.
 * Writes through the op queue invalidate the kernel's cached pages and
 * attributes of the file, so readers through the mount (read, stat, mmap)
 * see the new bytes and size. A write by a session whose process lacked
 * CAP_FSETID when it connected clears the file's setuid bit, its setgid
 * bit when group execute is set, and its security.capability attribute,
 * as write(2) by that process would.
 */

/* Op flags. */
#define ZCFUSE_F_REQUIRE_ZC (1u << 0) /* outside every arena: -EFAULT, no copy */
#define ZCFUSE_F_DATASYNC (1u << 1)   /* fsync: fdatasync */
/* Read/write: the op names {arena_id, arena_off} instead of buf. */
#define ZCFUSE_F_ARENA (1u << 2)

/* Opcodes of zcfuse_op_t. */
#define ZCFUSE_OP_READ 1
#define ZCFUSE_OP_WRITE 2
#define ZCFUSE_OP_FSYNC 3

/*
 * One operation for zcfuse_submit(). A read or write names its memory in
 * one of two ways:
 *  - by pointer (flags without ZCFUSE_F_ARENA): buf; arena_id is
 *    ignored (set it to 0, as the field was reserved before). Inside a shared arena it moves zero-copy, outside every arena it
 *    takes the posix path (see above);
 *  - by arena (ZCFUSE_F_ARENA): arena_id, an id from zcfuse_share() on
 *    this session, and arena_off, a byte offset in that arena; len bytes
 *    from there. Always zero-copy, never the posix path; -EFAULT when the
 *    range is not inside the arena.
 * 48 bytes on 64-bit machines; buf and arena_off share bytes 16..23.
 */
typedef struct zcfuse_op {
    uint8_t opcode;     /* ZCFUSE_OP_* */
    uint8_t reserved[3];
    uint32_t flags;     /* ZCFUSE_F_* */
    uint32_t file_id;   /* from zcfuse_attach() */
    uint32_t arena_id;  /* ZCFUSE_F_ARENA: from zcfuse_share(); else 0 */
#if defined(__GNUC__) && !defined(__cplusplus)
    __extension__ /* an anonymous union: C11, and C99 as a GNU extension */
#endif
    union {
        void *buf;          /* read into / write from (unused by fsync) */
        uint64_t arena_off; /* ZCFUSE_F_ARENA: byte offset in arena_id */
    };
    uint64_t len;
    int64_t off;        /* file offset */
    uint64_t user_data; /* returned in the completion */
} zcfuse_op_t;

/* One completion: bytes moved (0 for fsync; short at end of file), or
 * -errno. */
typedef struct zcfuse_cqe {
    uint64_t user_data;
    int64_t res;
} zcfuse_cqe_t;

/*
 * Writes len bytes from buf to file_id at off and returns the bytes
 * written, or -errno (see above). Large writes are split into pieces of
 * 16 MiB that travel as one batch. flags: ZCFUSE_F_REQUIRE_ZC or 0.
 */
int64_t zcfuse_pwrite(zcfuse_session_t *session, uint32_t file_id, const void *buf, size_t len, int64_t off,
                      uint32_t flags);

/* Reads up to len bytes of file_id at off into buf; returns the bytes
 * read (fewer at the end of the file), or -errno. As zcfuse_pwrite(). */
int64_t zcfuse_pread(zcfuse_session_t *session, uint32_t file_id, void *buf, size_t len, int64_t off,
                     uint32_t flags);

/*
 * zcfuse_pwrite() from len bytes at arena_off in arena arena_id (an id
 * from zcfuse_share() on this session) instead of a pointer: the arena
 * is found by id, not searched for, and the bytes always move zero-copy.
 * Returns the bytes written, or -errno as zcfuse_pwrite(), and -EFAULT
 * (nothing written) unless [arena_off, arena_off + len) lies inside that
 * arena. Split at 16 MiB as zcfuse_pwrite(); -EFBIG as it. flags:
 * ZCFUSE_F_ARENA, ZCFUSE_F_REQUIRE_ZC or 0 (all mean the same here);
 * other bits -EINVAL.
 */
int64_t zcfuse_pwrite_arena(zcfuse_session_t *session, uint32_t file_id, uint32_t arena_id, uint64_t arena_off,
                            size_t len, int64_t off, uint32_t flags);

/* Reads up to len bytes of file_id at off into arena arena_id at
 * arena_off; returns the bytes read (fewer at the end of the file), or
 * -errno. As zcfuse_pwrite_arena(). */
int64_t zcfuse_pread_arena(zcfuse_session_t *session, uint32_t file_id, uint32_t arena_id, uint64_t arena_off,
                           size_t len, int64_t off, uint32_t flags);

/* Flushes file_id to stable storage (ZCFUSE_F_DATASYNC: fdatasync).
 * Returns 0 or -errno. */
int zcfuse_fsync(zcfuse_session_t *session, uint32_t file_id, uint32_t flags);

/*
 * Queues n ops and returns how many it took: all of them, or fewer when
 * the queue (256 ops in flight) is full; reap completions with
 * zcfuse_wait() and submit the rest. An op that cannot start completes at
 * once with its error. Returns -EAGAIN when the queue is full and nothing
 * was taken, -ENOTCONN, -EBADF, -EINVAL (NULL ops with n > 0).
 */
int zcfuse_submit(zcfuse_session_t *session, const zcfuse_op_t *ops, unsigned n);

/*
 * Waits until at least min completions are ready (fewer if fewer ops are
 * pending) or timeout_ms passes (-1: no limit, 0: do not wait), and
 * copies up to max of them into cqes. Returns how many it copied, or
 * -ETIME (timed out before min; nothing copied is lost: call again),
 * -ENOTCONN (the server is gone: noticed at once), -EBADF, -EINVAL.
 */
int zcfuse_wait(zcfuse_session_t *session, zcfuse_cqe_t *cqes, unsigned min, unsigned max, int timeout_ms);

/*
 * A file descriptor that becomes readable when completions are ready:
 * put it in epoll/poll/asyncio/tokio, then reap with zcfuse_wait(session,
 * ..., 0, max, 0). Owned by the session. Returns the fd or -EBADF.
 */
int zcfuse_session_fd(zcfuse_session_t *session);

/* How a session waits for completions (zcfuse_session_set_mode). */
#define ZCFUSE_MODE_SLEEP 0 /* doorbells and eventfds: an idle session uses no CPU (default) */
#define ZCFUSE_MODE_POLL 1  /* client and server spin up to spin_us before sleeping */

/* Sets the session's wait mode; spin_us 0 means 50 µs. Returns 0 or
 * -EINVAL. */
int zcfuse_session_set_mode(zcfuse_session_t *session, int mode, unsigned spin_us);

/*
 * Buffers in flight
 *
 * What memory an op holds, and until when. "Completion" means the op's
 * zcfuse_cqe_t (reaped with zcfuse_wait()), or the return of a
 * synchronous call. The op descriptors themselves are copied into the
 * queue: the zcfuse_op_t array may be reused once zcfuse_submit()
 * returns.
 *
 *  - zcfuse_pread(), zcfuse_pwrite(), zcfuse_pread_arena(),
 *    zcfuse_pwrite_arena(), zcfuse_fsync(): synchronous. Every piece of
 *    the call has completed when it returns, whatever it returns, so the
 *    buffer is free again at once. (Exception: after -ENOTCONN a stopping
 *    server may still finish pieces in flight; they are done once
 *    zcfuse_server_stop() has returned or the server process has ended.)
 *
 *  - zcfuse_submit(), posix path (a buffer outside every arena, no
 *    ZCFUSE_F_REQUIRE_ZC): the pread/pwrite through the mount runs inside
 *    zcfuse_submit(), on the calling thread; its completion is ready at
 *    once. The buffer is free when zcfuse_submit() returns.
 *
 *  - zcfuse_submit(), ring path, by pointer (buf inside a shared arena)
 *    or by arena (ZCFUSE_F_ARENA: [arena_off, arena_off + len) of
 *    arena_id): the bytes belong to the server from zcfuse_submit() until
 *    the op's completion. The server works on its own mapping of the
 *    arena's memfd (the same pages), at a time of its choosing, in one or
 *    several steps:
 *      - a write reads whatever the pages hold when it gets to them: a
 *        change made meanwhile may land, not land, or land in part (a
 *        torn write). A write hook sees the bytes in place, so what is
 *        written may differ from what the hook saw, unless the server
 *        runs with ZCFUSE_SERVER_HOOK_COPY (then the hook's copy, taken
 *        when the op starts, is what gets written);
 *      - a read may store into the range at any moment before its
 *        completion: what the range holds before then is unspecified,
 *        and a store the application makes there meanwhile may be
 *        overwritten.
 *    zcfuse does not order ops in flight against each other: two that
 *    overlap (in memory or in the file) finish in any order.
 *    An op that fails before it starts (-EFAULT, -EINVAL, -EFBIG, ...)
 *    completes at once and touches nothing.
 *
 * Ending things while ring ops are in flight (nothing here faults or
 * crashes either side: the memfd is sealed against shrinking, and the
 * server keeps its own mapping until it drops the arena):
 *  - zcfuse_arena_close(): the application's mapping and fd go away; ops
 *    in flight complete normally against the server's mapping (a read's
 *    bytes land in pages the application can no longer see). The arena
 *    stays shared until zcfuse_unshare() or zcfuse_close(), but this
 *    session forgets it at once: later ops by its id fail with -EFAULT,
 *    and later ops by pointer into its old address range are no longer
 *    arena ops (the posix path on whatever is mapped there now, or
 *    -EFAULT with ZCFUSE_F_REQUIRE_ZC).
 *  - zcfuse_unshare(): the server stops accepting ops on the arena at
 *    once, and frees its mapping when the last op in flight on it ends;
 *    those ops complete normally. Later ops by its id fail with -EFAULT;
 *    by pointer into the (still mapped) arena they take the posix path,
 *    or -EFAULT with ZCFUSE_F_REQUIRE_ZC.
 *  - zcfuse_close(): the server waits for every op in flight of the
 *    session before it answers, so once zcfuse_close() has returned
 *    nothing of the session touches any memory again; completions not
 *    yet reaped are dropped. Close arenas after it.
 *  - munmap(), mremap() or mmap(MAP_FIXED) over arena memory by the
 *    application: never do it; release memory only with
 *    zcfuse_arena_close(). The server does not notice (it still uses the
 *    memfd), and the session still takes that address range for the
 *    arena, so a later op by pointer into new memory mapped there would
 *    move the arena's bytes instead.
 */

/*
 * Says goodbye and frees the session; the server releases every arena it
 * shared and detaches every file. Returns 0, or -ENOTCONN when the server
 * was already gone (the session is freed either way). session may be
 * NULL. In a forked child it returns -ECHILD and frees nothing: the
 * session belongs to the parent, whose copy of it stays valid.
 */
int zcfuse_close(zcfuse_session_t *session);

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* How requests travel from the kernel to the server. */
typedef enum zcfuse_transport {
    /* FUSE-over-io_uring when the kernel offers it (Linux 6.14+ with
     * /sys/module/fuse/parameters/enable_uring = Y), else /dev/fuse;
     * the reason for a fallback is in the stats. Default. */
    ZCFUSE_TRANSPORT_AUTO = 0,
    /* FUSE-over-io_uring or fail with -EPROTONOSUPPORT. */
    ZCFUSE_TRANSPORT_URING = 1,
    /* The classic /dev/fuse read/write loop. */
    ZCFUSE_TRANSPORT_CLASSIC = 2
} zcfuse_transport_t;

/* Flags for zcfuse_server_opts_t.flags. */
/* Let other users in; implies the kernel's default_permissions checks. */
#define ZCFUSE_SERVER_ALLOW_OTHER (1u << 0)
/* Mount read-only. */
#define ZCFUSE_SERVER_READ_ONLY (1u << 1)
/* Kernel FUSE passthrough: READ/WRITE bypass the server (needs root). */
#define ZCFUSE_SERVER_PASSTHROUGH (1u << 2)
/* Log every request to stderr. */
#define ZCFUSE_SERVER_DEBUG (1u << 3)
/* Hooks see a private copy of a ring write's bytes, which is what gets
 * written: the client can no longer change them after the hook ran. Costs
 * a copy (counted in copied_bytes). */
#define ZCFUSE_SERVER_HOOK_COPY (1u << 4)

/* Set in zcfuse_hook_info_t.flags: the data came from a session's op
 * queue (zero-copy), not from a FUSE request. */
#define ZCFUSE_HOOK_RING (1u << 0)

/* Where the bytes a hook sees belong. */
typedef struct zcfuse_hook_info {
    uint32_t struct_size; /* sizeof(zcfuse_hook_info_t) */
    uint32_t flags;       /* ZCFUSE_HOOK_RING */
    uint64_t session_id;  /* the session of a ring op, else 0 */
    uint64_t ino;         /* inode number in the backing directory */
    int64_t off;          /* file offset of the first byte */
    const char *path;     /* relative to the mount root; valid during the call */
} zcfuse_hook_info_t;

/*
 * A hook: called for every write (before it reaches the backing file) or
 * read (after it, with the bytes read), on every path, with the data in
 * place: for a ring op, in the client's arena (read-only to the hook, and
 * only as trustworthy as the client, unless ZCFUSE_SERVER_HOOK_COPY).
 * Called on the server's threads, concurrently: it must be thread-safe
 * and quick, and must not call back into the library for this server.
 */
typedef void (*zcfuse_hook_fn)(void *ctx, const zcfuse_hook_info_t *info, const void *data, size_t len);

/*
 * Options for zcfuse_server_create(). Always fill with
 * zcfuse_server_opts_init() first, then set what you need: fields added
 * in later versions then keep their defaults, and struct_size tells the
 * library which version of the struct you have.
 */
typedef struct zcfuse_server_opts {
    /* sizeof(zcfuse_server_opts_t); set by zcfuse_server_opts_init(). */
    uint32_t struct_size;
    /* A zcfuse_transport_t. Default ZCFUSE_TRANSPORT_AUTO. */
    uint32_t transport;
    /* The directory to serve. Required. Copied by zcfuse_server_create(). */
    const char *backing_dir;
    /* Where to mount it: an existing directory with nothing mounted on
     * it. Required. Copied by zcfuse_server_create(). */
    const char *mountpoint;
    /* Ring threads per CPU queue, each holding one ring entry, so a
     * request that blocks in the server traps only itself. 0 = default
     * (4); at most 64. */
    uint32_t queue_depth;
    /* ZCFUSE_SERVER_* flags. Default 0. */
    uint32_t flags;
    /* How long the kernel may cache lookups and attributes, in
     * milliseconds. 0 = default (1000); UINT32_MAX = no caching. */
    uint32_t entry_timeout_ms;
    uint32_t attr_timeout_ms;
    /* Version 2 (struct_size > ZCFUSE_SERVER_OPTS_V1_SIZE): hooks that see
     * every byte written and read, and the ctx they get. NULL: none. */
    zcfuse_hook_fn on_write;
    zcfuse_hook_fn on_read;
    void *hook_ctx;
} zcfuse_server_opts_t;

/* sizeof(zcfuse_server_opts_t) in version 1, before the hooks. */
#define ZCFUSE_SERVER_OPTS_V1_SIZE (24 + 2 * sizeof(void *))

/*
 * Fills the first size bytes of *opts with the defaults: struct_size =
 * size, every other field 0, which means transport auto, the default
 * depth (4) and caches (1 s), no flags, no directories and no hooks. size
 * is the caller's sizeof(zcfuse_server_opts_t): a program built against
 * an older header passes its smaller struct and nothing past it is
 * touched. Does nothing when opts is NULL or size is smaller than version
 * 1 of the struct. From C, call zcfuse_server_opts_init(opts), a macro
 * that passes the size; bindings call this function with theirs.
 */
void zcfuse_server_opts_init_size(zcfuse_server_opts_t *opts, size_t size);

/*
 * The same for a version-1 struct, for programs built against version 1
 * of this header (the macro below hides it from newer ones): it fills
 * ZCFUSE_SERVER_OPTS_V1_SIZE bytes.
 */
void zcfuse_server_opts_init(zcfuse_server_opts_t *opts);
#define zcfuse_server_opts_init(opts) zcfuse_server_opts_init_size((opts), sizeof *(opts))

/* A server: one mount of a backing directory, served in this process. */
typedef struct zcfuse_server zcfuse_server_t;

/*
 * Checks the options and the directories and creates a server; nothing
 * is mounted yet. Returns 0 and sets *srv_out, or:
 *   -EINVAL  opts or srv_out NULL, struct_size too small, a required
 *            field missing, an unknown transport or flag, depth > 64;
 *   -ENOENT  the backing directory or the mountpoint does not exist;
 *   -ENOTDIR one of them is not a directory;
 *   -EBUSY   something is already mounted on the mountpoint;
 *   -ENOTCONN the mountpoint is a dead FUSE mount (unmount it first).
 * The server must be released with zcfuse_server_destroy().
 */
int zcfuse_server_create(const zcfuse_server_opts_t *opts,
                         zcfuse_server_t **srv_out);

/*
 * Mounts and starts serving on the library's own threads; returns once
 * the mount is ready (every io_uring queue registered and a stat of the
 * root answered), or fails having undone the mount. Returns 0, or:
 *   -EALREADY the server was started before (a server mounts once);
 *   -EPROTONOSUPPORT transport URING (or AUTO with the environment
 *            variable ZCFUSE_REQUIRE_URING=1) and the kernel does not
 *            offer FUSE-over-io_uring;
 *   -EPERM   not allowed to mount (needs root, or CAP_SYS_ADMIN);
 *   -ETIMEDOUT the mount did not answer in time;
 *   another -errno from mount(2) or io_uring.
 */
int zcfuse_server_start(zcfuse_server_t *srv);

/*
 * Starts the server if it is not started yet, then blocks until the file
 * system is unmounted: by zcfuse_server_stop() from another thread, or by
 * `umount MOUNTPOINT` from outside. Returns 0 after a clean end, or a
 * -errno from zcfuse_server_start() or from the unmount.
 */
int zcfuse_server_run(zcfuse_server_t *srv);

/*
 * Unmounts and stops serving: requests still in flight complete or fail
 * with ENOTCONN, never hang. Waits until every server thread has ended,
 * so do not call it from a file system handler or a signal handler.
 * Returns 0 (also when the server is already stopped or never started),
 * or -errno when the unmount failed.
 */
int zcfuse_server_stop(zcfuse_server_t *srv);

/* Version of zcfuse_server_stats_t filled in by this library: 2 added the
 * control-plane counters after fallback_reason. A caller built against
 * version 1 (struct_size 1328) gets version 1 and nothing past it. */
#define ZCFUSE_SERVER_STATS_VERSION 2
/* sizeof(zcfuse_server_stats_t) in version 1 (up to fallback_reason). */
#define ZCFUSE_SERVER_STATS_V1_SIZE 1328

/* Number of per-opcode counters; FUSE opcodes are below 64. */
#define ZCFUSE_STATS_OPCODES 64

/*
 * What a server reports about itself. Set struct_size to
 * sizeof(zcfuse_server_stats_t) before calling zcfuse_server_stats().
 * Per-opcode counters are indexed by the kernel's FUSE opcode
 * (include/uapi/linux/fuse.h: FUSE_READ = 15, FUSE_WRITE = 16, ...);
 * slot 0 counts opcodes >= 64.
 */
typedef struct zcfuse_server_stats {
    /* In: sizeof(zcfuse_server_stats_t). */
    uint32_t struct_size;
    /* Out: ZCFUSE_SERVER_STATS_VERSION. */
    uint32_t version;
    /* The zcfuse_transport_t in use: URING or CLASSIC (AUTO before start). */
    uint32_t transport;
    /* io_uring queues (one per possible CPU) and ring threads per queue;
     * 0 on the classic transport. */
    uint32_t queues;
    uint32_t queue_depth;
    /* 1 while mounted and serving. */
    uint32_t running;
    /* Payload bytes of successful READ replies and WRITE requests. */
    uint64_t bytes_read;
    uint64_t bytes_written;
    /* Error replies other than ENOENT, ENODATA and ENOSYS. */
    uint64_t errors;
    /* Requests that came over FUSE-over-io_uring, per opcode. */
    uint64_t ring_requests[ZCFUSE_STATS_OPCODES];
    /* Requests read from /dev/fuse (INIT, FORGET, INTERRUPT, and every
     * request on the classic transport), per opcode. */
    uint64_t dev_requests[ZCFUSE_STATS_OPCODES];
    /* Why AUTO fell back to /dev/fuse; "" when it did not. */
    char fallback_reason[256];
    /* Version 2: client sessions, the arenas they share, how many of
     * those bytes sit in io_uring fixed buffers and how many slots of the
     * fixed-buffer table they use, and the files attached to sessions. */
    uint64_t sessions;
    uint64_t arenas;
    uint64_t registered_bytes;
    uint64_t fixed_slots_used;
    uint64_t attached_files;
    /* Version 2, the ring path (ops from sessions' op queues): ops served,
     * those that failed, bytes read and written, bytes moved zero-copy
     * between arenas and backing files, bytes the server copied in user
     * space (ZCFUSE_SERVER_HOOK_COPY), the most ops one session had in
     * flight, and the server's data-plane threads (one per CPU). */
    uint64_t zc_ops;
    uint64_t zc_errors;
    uint64_t zc_read_bytes;
    uint64_t zc_write_bytes;
    uint64_t zero_copy_bytes;
    uint64_t copied_bytes;
    uint64_t queue_high_water;
    uint64_t workers;
} zcfuse_server_stats_t;

/*
 * Fills *stats with a snapshot of srv's counters, up to stats->struct_size
 * bytes (version 1 of the struct ends at fallback_reason). Returns 0, or
 * -EINVAL when an argument is NULL or stats->struct_size is smaller than
 * version 1 of the struct. Cheap: safe to call often, from any thread.
 *
 * The struct is frozen at version 2: it keeps its fields and layout, and
 * counters added to the server later are not added to it. They come by
 * name only, through zcfuse_server_counters() and zcfuse_server_counter().
 */
int zcfuse_server_stats(zcfuse_server_t *srv, zcfuse_server_stats_t *stats);

/*
 * Counters by name. Every number the server reports about itself is a
 * counter: those of zcfuse_server_stats_t under their field names
 * ("bytes_read", "zc_ops", ...; not struct_size, version, transport,
 * running or the per-opcode arrays), and every one added since, such as
 * "fast_reads" or "fs.inodes" (a dot names a part of the server). They
 * are the numbers of `zcfuse stats --json`, under the same names (JSON
 * nests "fs.inodes" as {"fs": {"inodes": ...}}); a true/false there is 1
 * or 0 here. The set of names and their order are fixed for the life of
 * the process: the same for every call and every server. Values are
 * unsigned; a count may be 0 while a server is not started.
 */
typedef struct zcfuse_counter {
    /* The counter's name: a static string owned by the library, valid
     * for the life of the process (the same pointer on every call). */
    const char *name;
    uint64_t value;
} zcfuse_counter_t;

/*
 * Fills out[0..n) with the first n counters of one snapshot of srv, in
 * the fixed order, and returns how many counters the server has (which
 * may be more than n: call with out NULL and n 0 to size the array, then
 * again). Returns -EINVAL when srv is NULL, or out is NULL with n > 0.
 * Thread-safe, like zcfuse_server_stats(); no more costly than it.
 */
int zcfuse_server_counters(zcfuse_server_t *srv, zcfuse_counter_t *out, size_t n);

/*
 * Sets *value to the counter called name in a fresh snapshot of srv.
 * Returns 0, -ENOENT when the server has no counter of that name (e.g. a
 * newer one than this library), or -EINVAL when an argument is NULL.
 * Each call takes a snapshot: read several counters of the same moment
 * with zcfuse_server_counters().
 */
int zcfuse_server_counter(zcfuse_server_t *srv, const char *name, uint64_t *value);

/*
 * Returns the kernel's name of a FUSE opcode without its FUSE_ prefix,
 * e.g. "READ" for 15 (the index of the per-opcode counters of
 * zcfuse_server_stats_t), as the "requests" of `zcfuse stats --json`
 * name it: "OP_<n>" for an opcode below ZCFUSE_STATS_OPCODES that the
 * library does not know, and "OTHER" for 0 and for opcodes from
 * ZCFUSE_STATS_OPCODES up (slot 0 of the arrays). A static string owned
 * by the library, never NULL. In a
 * forked child (see Fork) it still names the opcodes below
 * ZCFUSE_STATS_OPCODES when the parent called it once before the fork,
 * and gives "" otherwise.
 */
const char *zcfuse_opcode_name(uint32_t opcode);

/*
 * Limits by name. A server bounds what clients may hold, per user (the
 * peer's uid of a session, the request's uid of an open through the
 * mount) and for the server as a whole; over a limit the requester alone
 * is refused, with that limit's errno. Root and the server's owner have
 * budgets of their own: other users cannot exhaust them. The names are
 * one table in the library (zcfuse_limit_name), e.g. "sessions_per_user",
 * "open_files_per_user", "attached_files_per_user", "arena_bytes_per_user",
 * "registered_bytes_per_user", "half_open", "hello_timeout_ms",
 * "queue_depth", "queue_depth_per_user"; durations
 * are in milliseconds; 0 means the library's default. The README's
 * "Limits" section lists them with their defaults and errnos.
 */

/* Sets the limit called name, before zcfuse_server_start(). Returns 0,
 * -ENOENT (no such limit), -ERANGE (value out of range), -EALREADY (the
 * server started) or -EINVAL (NULL). */
int zcfuse_server_set_limit(zcfuse_server_t *srv, const char *name, uint64_t value);

/* Sets *value to the limit called name as the server uses it (defaults
 * filled in). Returns 0, -ENOENT or -EINVAL. */
int zcfuse_server_limit(zcfuse_server_t *srv, const char *name, uint64_t *value);

/* The name of limit i, from 0; NULL past the last. A static string of
 * the library (NULL in a forked child). */
const char *zcfuse_limit_name(size_t i);

/*
 * Stops the server if it still runs and frees it. srv may be NULL.
 * After this call srv must not be used.
 */
void zcfuse_server_destroy(zcfuse_server_t *srv);

#ifdef __cplusplus
}
#endif

#endif /* ZCFUSE_H */
