/*
 * arena: the C arena API — create, import, accessors, close — and every
 * documented refusal, with no fd or mapping left behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

int main(void)
{
    t_init("arena");
    zcfuse_arena_t *a = NULL, *b = NULL;

    /* Refusals. */
    EXPECT_RC(-EINVAL, zcfuse_arena_create(0, 0, &a));
    EXPECT_RC(-EINVAL, zcfuse_arena_create(4097, 0, &a));
    EXPECT_RC(-EINVAL, zcfuse_arena_create(ZCFUSE_ARENA_MAX_SIZE + 4096, 0, &a));
    EXPECT_RC(-EINVAL, zcfuse_arena_create(4096, 1u << 7, &a));
    EXPECT_RC(-EINVAL, zcfuse_arena_create(4096, 0, NULL));
    EXPECT(zcfuse_arena_base(NULL) == NULL && zcfuse_arena_size(NULL) == 0 && zcfuse_arena_fd(NULL) == -EINVAL,
           "NULL accessors");
    zcfuse_arena_close(NULL);

    int unsealed = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT(unsealed >= 0 && ftruncate(unsealed, 65536) == 0, "memfd: %s", strerror(errno));
    EXPECT_RC(-EPERM, zcfuse_arena_import(unsealed, 65536, &b));
    EXPECT(strstr(zcfuse_last_error(), "F_SEAL_SHRINK") != NULL, "last error names the seal: %s", zcfuse_last_error());
    int p[2];
    EXPECT(pipe(p) == 0, "pipe");
    EXPECT_RC(-EINVAL, zcfuse_arena_import(p[0], 65536, &b));
    close(p[0]), close(p[1]), close(unsealed);

    int fds_before = t_count_entries("/proc/self/fd"), maps_before = count_maps();
    for (int i = 0; i < 100; i++) {
        if (!EXPECT_RC(0, zcfuse_arena_create(1 << 20, 0, &a)))
            break;
        char *base = zcfuse_arena_base(a);
        EXPECT(base && zcfuse_arena_size(a) == 1 << 20 && zcfuse_arena_fd(a) >= 0, "accessors");
        memcpy(base + (1 << 20) - 6, "shared", 6);
        /* The seals hold: the memfd can neither shrink nor grow. */
        EXPECT(ftruncate(zcfuse_arena_fd(a), 4096) < 0 && errno == EPERM, "shrink refused");
        EXPECT(ftruncate(zcfuse_arena_fd(a), 2 << 20) < 0 && errno == EPERM, "grow refused");
        /* Too long a declared size is refused; the right one maps the same pages. */
        EXPECT_RC(-EINVAL, zcfuse_arena_import(zcfuse_arena_fd(a), 2 << 20, &b));
        if (EXPECT_RC(0, zcfuse_arena_import(zcfuse_arena_fd(a), 1 << 20, &b))) {
            EXPECT(memcmp((char *)zcfuse_arena_base(b) + (1 << 20) - 6, "shared", 6) == 0, "import sees the bytes");
            EXPECT(zcfuse_arena_fd(b) != zcfuse_arena_fd(a), "import works on a duplicate fd");
            zcfuse_arena_close(b);
        }
        zcfuse_arena_close(a);
    }
    EXPECT(t_count_entries("/proc/self/fd") == fds_before, "fds: %d before, %d after",
           fds_before, t_count_entries("/proc/self/fd"));
    EXPECT(count_maps() <= maps_before + 1, "mappings: %d before, %d after", maps_before, count_maps());
    return t_done(T_PASS);
}
