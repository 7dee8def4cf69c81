/* helpers.c - the C tests' shared helpers; see helpers.h. */
#define _GNU_SOURCE
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ENABLE_URING "/sys/module/fuse/parameters/enable_uring"
#define MAX_SCRATCH 16

static const char *test_name = "test";
static int failures;
static char *scratch[MAX_SCRATCH];
static int nscratch;

void t_init(const char *name)
{
    test_name = name;
    setvbuf(stdout, NULL, _IONBF, 0);
}

static void vskip(const char *fmt, va_list ap)
{
    printf("SKIP %s: ", test_name);
    vprintf(fmt, ap);
    printf("\n");
}

int t_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vskip(fmt, ap);
    va_end(ap);
    if (getenv("CI") && *getenv("CI")) {
        printf("FAIL %s: CI is set, so a missing prerequisite is a failure\n", test_name);
        return T_FAIL;
    }
    return T_SKIP;
}

void t_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    failures++;
    printf("FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int t_failures(void)
{
    return failures;
}

int t_expect_rc(const char *file, int line, const char *expr, int got, int want)
{
    if (got == want)
        return 1;
    t_fail_at(file, line, "%s = %d (%s), want %d (%s)%s%s%s", expr, got, zcfuse_strerror(got), want,
              zcfuse_strerror(want), got < 0 ? "; zcfuse_last_error: \"" : "",
              got < 0 ? zcfuse_last_error() : "", got < 0 ? "\"" : "");
    return 0;
}

int t_require_mount(void)
{
    if (geteuid() != 0)
        return t_skip("not root: mounting a FUSE file system needs mount(2) on /dev/fuse");
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return t_skip("cannot open /dev/fuse: %s", strerror(errno));
    close(fd);
    return 0;
}

static int read_param(char *buf, size_t n)
{
    FILE *f = fopen(ENABLE_URING, "r");
    if (!f)
        return -1;
    if (!fgets(buf, (int)n, f))
        buf[0] = 0;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

int t_uring_enabled(void)
{
    char v[16];
    return read_param(v, sizeof v) == 0 && strcmp(v, "Y") == 0;
}

int t_require_uring(void)
{
    char v[16], why[128];
    if (read_param(v, sizeof v) < 0)
        snprintf(why, sizeof why, "cannot read %s: %s", ENABLE_URING, strerror(errno));
    else if (strcmp(v, "Y") == 0)
        return 0;
    else
        snprintf(why, sizeof why, "%s is %s", ENABLE_URING, v);
    const char *req = getenv("ZCFUSE_REQUIRE_URING");
    if (req && strcmp(req, "1") == 0) {
        printf("FAIL %s: FUSE-over-io_uring required (ZCFUSE_REQUIRE_URING=1) but %s\n", test_name,
               why);
        return T_FAIL;
    }
    printf("SKIP %s: FUSE-over-io_uring not available: %s (echo Y > %s)\n", test_name, why,
           ENABLE_URING);
    return T_SKIP;
}

const char *t_scratch(void)
{
    char tmpl[64], real[PATH_MAX];
    if (nscratch == MAX_SCRATCH) {
        t_fail("t_scratch: more than %d scratch directories", MAX_SCRATCH);
        return NULL;
    }
    snprintf(tmpl, sizeof tmpl, "/dev/shm/zcfuse-ctest-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(tmpl) || chmod(tmpl, 0755) < 0 || !realpath(tmpl, real)) {
        t_fail("scratch directory %s: %s", tmpl, strerror(errno));
        return NULL;
    }
    return scratch[nscratch++] = strdup(real);
}

char *t_path(const char *dir, const char *name, int mkdir_it)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    if (mkdir_it && (mkdir(p, 0755) < 0 || chmod(p, 0755) < 0))
        t_fail("mkdir %s: %s", p, strerror(errno));
    return p;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *w = s;
    for (; *s; s++, w++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *w = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *w = *s;
        }
    }
    *w = 0;
}

/* Calls fn(mount point, arg) for each mount point in mountinfo, newest
 * last, until fn returns non-zero; returns that value or 0. */
static int each_mount(int (*fn)(const char *mp, void *arg), void *arg)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char *line = NULL;
    size_t cap = 0;
    int ret = 0;
    if (!f)
        return 0;
    while (!ret && getline(&line, &cap, f) > 0) {
        char mp[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
            continue;
        unescape(mp);
        ret = fn(mp, arg);
    }
    free(line);
    fclose(f);
    return ret;
}

static int same_path(const char *mp, void *arg)
{
    return strcmp(mp, (const char *)arg) == 0;
}

int t_is_mounted(const char *path)
{
    return each_mount(same_path, (void *)path);
}

/* Copies the first mount point at or below the directory in arg[0] into arg[1]. */
static int under(const char *mp, void *arg)
{
    char **a = arg;
    size_t n = strlen(a[0]);
    if (strncmp(mp, a[0], n) == 0 && (mp[n] == 0 || mp[n] == '/')) {
        snprintf(a[1], PATH_MAX, "%s", mp);
        return 1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0)
        printf("cleanup: remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* Detaches whatever is still mounted below dir; returns how many. */
static int unmount_under(const char *dir)
{
    char found[PATH_MAX];
    char *arg[2] = {(char *)dir, found};
    int n = 0;
    while (n < 32 && each_mount(under, arg)) {
        printf("cleanup: %s is still mounted; umount -l\n", found);
        if (umount2(found, MNT_DETACH) < 0) {
            printf("cleanup: umount -l %s: %s\n", found, strerror(errno));
            return n + 1;
        }
        n++;
    }
    return n;
}

int t_done(int rc)
{
    int leftovers = 0;
    for (int i = 0; i < nscratch; i++) {
        leftovers += unmount_under(scratch[i]);
        nftw(scratch[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        free(scratch[i]);
    }
    nscratch = 0;
    if (leftovers)
        t_fail("%d mount(s) were left behind", leftovers);
    if (rc == T_PASS && failures)
        rc = T_FAIL;
    if (rc == T_PASS)
        printf("PASS %s\n", test_name);
    return rc;
}

int t_sh(const char *script, ...)
{
    char *argv[16] = {"sh", "-c", (char *)script, "sh"};
    int argc = 4;
    va_list ap;
    va_start(ap, script);
    for (char *a; argc < 15 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    pid_t pid;
    fflush(NULL);
    int err = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (err) {
        t_fail("posix_spawn /bin/sh: %s", strerror(err));
        return -1;
    }
    int status;
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0;; waited++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            t_fail("waitpid: %s", strerror(errno));
            return -1;
        }
        if (waited == 6000) { /* 60 s */
            t_fail("child `%s` still running after 60 s; killing it", script);
            kill(pid, SIGKILL);
        }
        nanosleep(&tick, NULL);
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static unsigned char pattern_byte(size_t i, unsigned seed)
{
    uint32_t x = (uint32_t)(i / 4) * 2654435761u ^ seed * 40503u;
    return (unsigned char)(x >> (8 * (i % 4)));
}

int t_write_pattern(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < size; i++)
        putc(pattern_byte(i, seed), f);
    return fclose(f) == 0 ? 0 : -1;
}

int t_check_pattern(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        t_fail("open %s: %s", path, strerror(errno));
        return 0;
    }
    size_t i = 0;
    int c, ok = 1;
    for (; (c = getc(f)) != EOF; i++) {
        if (i >= size || c != pattern_byte(i, seed)) {
            t_fail("%s differs from what was written at byte %zu", path, i);
            ok = 0;
            break;
        }
    }
    fclose(f);
    if (ok && i != size) {
        t_fail("%s holds %zu bytes, want %zu", path, i, size);
        ok = 0;
    }
    return ok;
}

int t_count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return strcmp(path, "/proc/self/fd") == 0 ? n - 1 : n;
}

int t_stats(zcfuse_server_t *srv, zcfuse_server_stats_t *stats)
{
    memset(stats, 0, sizeof *stats);
    stats->struct_size = sizeof *stats;
    return zcfuse_server_stats(srv, stats);
}

void t_fill(void *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15u + 1;
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (unsigned char)x;
    }
}

int t_file_holds(const char *path, const void *want, size_t n, off_t off)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *got = malloc(n ? n : 1);
    ssize_t r = fd >= 0 && got ? pread(fd, got, n, off) : -1;
    int ok = r == (ssize_t)n && memcmp(got, want, n) == 0;
    if (fd >= 0)
        close(fd);
    free(got);
    return ok;
}

