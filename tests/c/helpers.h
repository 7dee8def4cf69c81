/*
 * helpers.h - what the C tests share.
 *
 * Each test is one executable that exits T_PASS (0), T_FAIL (1) or
 * T_SKIP (77, with the reason printed); ctest maps 77 to "skipped".
 * Checks print file:line and what was expected, record the failure and
 * let the test go on to its cleanup. Scratch directories live under
 * /dev/shm as zcfuse-ctest-PID-XXXXXX; t_done() lazily unmounts anything
 * left mounted under them (a failure) and removes them, and
 * tests/c/scratch_cleanup.sh sweeps those of processes that died.
 */
#ifndef ZCFUSE_TEST_HELPERS_H
#define ZCFUSE_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zcfuse.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

/* Names the test in messages; call first in main(). */
void t_init(const char *name);

/* Prints "SKIP name: why" and returns T_SKIP, or T_FAIL when CI is set
 * and skipping is not allowed there (as in the Go tests). */
int t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records a failure and prints it with its location. */
void t_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define t_fail(...) t_fail_at(__FILE__, __LINE__, __VA_ARGS__)

/* Number of failures so far. */
int t_failures(void);

/* EXPECT(cond, fmt, ...) fails unless cond holds; evaluates to cond. */
#define EXPECT(cond, ...) \
    ((cond) ? 1 : (t_fail_at(__FILE__, __LINE__, "expected " #cond ": " __VA_ARGS__), 0))

/* EXPECT_RC(want, call) fails unless call returns want, printing both
 * as -errno text plus zcfuse_last_error(); evaluates to the match. */
#define EXPECT_RC(want, call) t_expect_rc(__FILE__, __LINE__, #call, (call), (want))
int t_expect_rc(const char *file, int line, const char *expr, int got, int want);

/* Returns 0 when this process may mount FUSE file systems (root, an
 * openable /dev/fuse), else what t_skip() returns. */
int t_require_mount(void);

/* Whether /sys/module/fuse/parameters/enable_uring is Y. */
int t_uring_enabled(void);

/* Returns 0 when FUSE-over-io_uring is on; else T_FAIL when
 * ZCFUSE_REQUIRE_URING=1, or T_SKIP, printing why either way. */
int t_require_uring(void);

/* Makes a fresh 0755 scratch directory, removed by t_done(). The result
 * is a canonical path (no symlinks), owned by the helpers. */
const char *t_scratch(void);

/* Returns malloc'd "dir/name"; with mkdir set, also creates it (0755). */
char *t_path(const char *dir, const char *name, int mkdir);

/* Whether path is a mount point in /proc/self/mountinfo. */
int t_is_mounted(const char *path);

/* Runs /bin/sh -c script with $1.. = the NULL-terminated args in a child
 * started with posix_spawn (never fork: the library holds a Go runtime),
 * and waits at most 60 s. Returns its exit status, 128+signal, or -1. */
int t_sh(const char *script, ...) __attribute__((sentinel));

/* Writes size bytes of a pattern seeded by seed to path; returns 0 or -1. */
int t_write_pattern(const char *path, size_t size, unsigned seed);

/* Whether the file at path holds exactly the pattern (size, seed). */
int t_check_pattern(const char *path, size_t size, unsigned seed);

/* Entries of a directory such as /proc/self/fd or /proc/self/task, not
 * counting the descriptor used to read it; -1 on error. */
int t_count_entries(const char *dir);

/* Fills stats (struct_size set) and returns zcfuse_server_stats(). */
int t_stats(zcfuse_server_t *srv, zcfuse_server_stats_t *stats);

/* Cleans up the scratch directories and returns rc, or T_FAIL when any
 * check failed or something was left mounted. End main() with it. */
int t_done(int rc);

/* Fails unless the counters of two snapshots (any struct with the fields
 * zc, copied, fuse_rw and zc_ops) moved by exactly these amounts. */
#define EXPECT_MOVED(a, b, want_zc, want_cp, want_rw, want_ops)                                                  \
    EXPECT((b).zc - (a).zc == (want_zc) && (b).copied - (a).copied == (want_cp) &&                                  \
               (b).fuse_rw - (a).fuse_rw == (want_rw) && (b).zc_ops - (a).zc_ops == (want_ops),                     \
           "zero_copy_bytes +%llu (want %llu), copied_bytes +%llu (want %llu), FUSE READ+WRITE +%llu (want %llu), " \
           "zc_ops +%llu (want %llu)",                                                                              \
           (unsigned long long)((b).zc - (a).zc), (unsigned long long)(want_zc),                                    \
           (unsigned long long)((b).copied - (a).copied), (unsigned long long)(want_cp),                            \
           (unsigned long long)((b).fuse_rw - (a).fuse_rw), (unsigned long long)(want_rw),                          \
           (unsigned long long)((b).zc_ops - (a).zc_ops), (unsigned long long)(want_ops))

/* Fills p[0..n) with bytes that depend on seed. */
void t_fill(void *p, size_t n, uint64_t seed);

/* Whether the file at path holds want[0..n) at off. */
int t_file_holds(const char *path, const void *want, size_t n, off_t off);

#endif
