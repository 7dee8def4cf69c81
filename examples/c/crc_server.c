/*
 * crc_server.c - a zcfuse server whose write hook checksums every write.
 *
 * What it shows: server hooks. on_write sees every byte written through
 * the mount, in place and before it reaches the backing file: FUSE WRITEs
 * (plain write(2) by any program: the posix path) and zero-copy ops from
 * client sessions (the ring path) alike. The hook computes the CRC32C
 * (Castagnoli) of each write and records it by (path, offset, length) in
 * a table; hooks run concurrently on the server's threads, so a mutex
 * guards it. SIGUSR1 prints the table; SIGINT/SIGTERM unmount, print it
 * and, with --dump FILE, write it to FILE. --copy sets
 * ZCFUSE_SERVER_HOOK_COPY: the hook then sees a private copy of a ring
 * write's bytes, and that copy is what gets written, so a client cannot
 * change the bytes after they were checksummed.
 *
 * Build: cc crc_server.c $(pkg-config --cflags --libs zcfuse) -o crc_server
 *
 * Usage (as root): ./crc_server [--copy] [--dump FILE] BACKING MOUNTPOINT
 * A table line is "PATH OFFSET LENGTH CRC32C VIA": PATH relative to the
 * mount root, CRC32C in hex, VIA "posix" or "ring". A later write of the
 * same region replaces its line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zcfuse.h>

/* CRC32C: reflected polynomial 0x82F63B78, initial value and final xor ~0. */
static uint32_t crc_table[256];

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t c = ~0u;
    while (len--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* The table: a hash of (path, off, len), chained. */
#define BUCKETS 4096

struct entry {
    struct entry *next;
    char *path;
    int64_t off;
    uint64_t len;
    uint32_t crc;
    int ring;
};

static struct {
    pthread_mutex_t mu;
    struct entry *bucket[BUCKETS];
    size_t count;
} table = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t hash(const char *path, int64_t off, uint64_t len)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const char *c = path; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211u;
    h = (h ^ (uint64_t)off) * 1099511628211u;
    h = (h ^ len) * 1099511628211u;
    return (size_t)(h % BUCKETS);
}

/* The write hook: checksum outside the lock, record inside it. */
static void on_write(void *ctx, const zcfuse_hook_info_t *info, const void *data, size_t len)
{
    (void)ctx;
    const char *path = info->path ? info->path : "";
    uint32_t crc = crc32c(data, len);
    int ring = (info->flags & ZCFUSE_HOOK_RING) != 0;
    size_t b = hash(path, info->off, len);
    pthread_mutex_lock(&table.mu);
    struct entry *e = table.bucket[b];
    while (e && (e->off != info->off || e->len != len || strcmp(e->path, path) != 0))
        e = e->next;
    if (!e && (e = calloc(1, sizeof *e)) != NULL && (e->path = strdup(path)) != NULL) {
        e->off = info->off, e->len = len;
        e->next = table.bucket[b];
        table.bucket[b] = e;
        table.count++;
    }
    if (e && e->path)
        e->crc = crc, e->ring = ring;
    pthread_mutex_unlock(&table.mu);
}

static int by_region(const void *x, const void *y)
{
    const struct entry *a = x, *b = y;
    int c = strcmp(a->path, b->path);
    if (c)
        return c;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Writes the table to f, sorted by path, offset and length: a snapshot
 * taken under the lock (paths are never freed while serving). */
static void print_table(FILE *f)
{
    pthread_mutex_lock(&table.mu);
    struct entry *all = malloc((table.count + 1) * sizeof *all);
    size_t n = 0;
    for (size_t b = 0; all && b < BUCKETS; b++)
        for (struct entry *e = table.bucket[b]; e; e = e->next)
            all[n++] = *e;
    pthread_mutex_unlock(&table.mu);
    qsort(all, n, sizeof *all, by_region);
    fprintf(f, "crc table: %zu entries\n", n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s %lld %llu %08x %s\n", all[i].path, (long long)all[i].off, (unsigned long long)all[i].len,
                all[i].crc, all[i].ring ? "ring" : "posix");
    fprintf(f, "crc table end\n");
    fflush(f);
    free(all);
}

/* Writes the table to path through a temporary file, so that a reader
 * never sees half of it. */
static int dump(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    print_table(f);
    if (fclose(f) != 0 || rename(tmp, path) < 0)
        return -1;
    return 0;
}

static sem_t wake;
static volatile sig_atomic_t want_table, want_quit;

/* Only flags and a semaphore post: the handler may run on a library thread. */
static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        want_table = 1;
    else
        want_quit = 1;
    sem_post(&wake);
}

int main(int argc, char **argv)
{
    const char *dump_path = NULL;
    uint32_t flags = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--copy") == 0)
            flags |= ZCFUSE_SERVER_HOOK_COPY;
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump_path = argv[++i];
        else
            break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: crc_server [--copy] [--dump FILE] BACKING MOUNTPOINT\n");
        return 2;
    }
    crc32c_init();

    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = argv[i];
    opts.mountpoint = argv[i + 1];
    opts.flags = flags;
    opts.on_write = on_write;

    sem_init(&wake, 0, 0);
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_ONSTACK | SA_RESTART};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    zcfuse_server_t *srv = NULL;
    int rc = zcfuse_server_create(&opts, &srv);
    if (rc == 0)
        rc = zcfuse_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "crc_server: %s: %s\n", zcfuse_strerror(rc), zcfuse_last_error());
        zcfuse_server_destroy(srv);
        return 1;
    }
    printf("serving %s on %s%s\n", opts.backing_dir, opts.mountpoint, flags ? " (hooks see copies)" : "");
    fflush(stdout);
    while (!want_quit) {
        while (sem_wait(&wake) < 0 && errno == EINTR)
            ;
        if (want_table) {
            want_table = 0;
            print_table(stdout);
        }
    }
    rc = zcfuse_server_stop(srv); /* no hook runs after this */
    if (rc < 0)
        fprintf(stderr, "crc_server: stop: %s: %s\n", zcfuse_strerror(rc), zcfuse_last_error());
    /* The counters outlive the server: the final ones. */
    zcfuse_server_stats_t st = {.struct_size = sizeof st};
    int have_stats = zcfuse_server_stats(srv, &st) == 0;
    if (have_stats)
        printf("stats: zc_write_bytes %llu zero_copy_bytes %llu copied_bytes %llu bytes_written %llu\n",
               (unsigned long long)st.zc_write_bytes, (unsigned long long)st.zero_copy_bytes,
               (unsigned long long)st.copied_bytes, (unsigned long long)st.bytes_written);
    zcfuse_server_destroy(srv);
    print_table(stdout);
    if (dump_path && dump(dump_path) < 0) {
        fprintf(stderr, "crc_server: --dump %s: %s\n", dump_path, strerror(errno));
        rc = -1;
    }
    return rc < 0 ? 1 : 0;
}
