/*
 * serve.c - serve a directory through zcfuse from a C program.
 *
 * What it shows: a server's life through the C API. Options start from
 * zcfuse_server_opts_init(); zcfuse_server_start() returns once the mount
 * answers; the main thread then waits for SIGINT/SIGTERM and calls
 * zcfuse_server_stop() itself (never from the signal handler), prints the
 * stats and destroys the server. With --once it instead writes and reads
 * a file through the mount from a child process and stops: libzcfuse
 * carries a Go runtime, which does not survive fork(), so the child is
 * started with posix_spawn().
 *
 * Build: cc serve.c $(pkg-config --cflags --libs zcfuse) -o serve
 *
 * Usage (as root): ./serve [--once] [BACKING MOUNTPOINT]
 * Without directories it serves a fresh directory under /dev/shm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fuse.h> /* FUSE_READ, FUSE_WRITE: the stats' opcode slots */
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zcfuse.h>

extern char **environ;

static sem_t quit;

/*
 * The library's threads do not block SIGINT/SIGTERM, so blocking them and
 * calling sigwait() is not enough: the signal may land on one of those
 * threads and kill the process with the file system still mounted. A
 * handler that only posts a semaphore works whichever thread runs it;
 * SA_ONSTACK because that may be a Go thread.
 */
static void on_signal(int sig)
{
    (void)sig;
    sem_post(&quit);
}

/* Writes and reads back a file through the mount from a child process,
 * then checks that the bytes landed in the backing directory. */
static int once(const char *backing, const char *mountpoint)
{
    static const char text[] = "hello through zcfuse\n";
    char *argv[] = {"sh", "-c", "printf '%s' \"$1\" > \"$2/hello.txt\" && cat \"$2/hello.txt\"",
                    "sh", (char *)text, (char *)mountpoint, NULL};
    pid_t pid;
    int status, err = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (err || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "serve: I/O through %s failed\n", mountpoint);
        return -1;
    }
    char path[4096], got[sizeof text] = "";
    snprintf(path, sizeof path, "%s/hello.txt", backing);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(got, 1, sizeof got - 1, f) : 0;
    if (f)
        fclose(f);
    unlink(path);
    if (n != strlen(text) || memcmp(got, text, n) != 0) {
        fprintf(stderr, "serve: %s does not hold what was written through the mount\n", path);
        return -1;
    }
    printf("wrote and read %zu bytes through %s\n", n, mountpoint);
    return 0;
}

static void print_stats(zcfuse_server_t *srv)
{
    zcfuse_server_stats_t st = {.struct_size = sizeof st};
    if (zcfuse_server_stats(srv, &st) < 0)
        return;
    printf("stats: READ %llu (%llu bytes), WRITE %llu (%llu bytes), errors %llu\n",
           (unsigned long long)(st.ring_requests[FUSE_READ] + st.dev_requests[FUSE_READ]),
           (unsigned long long)st.bytes_read,
           (unsigned long long)(st.ring_requests[FUSE_WRITE] + st.dev_requests[FUSE_WRITE]),
           (unsigned long long)st.bytes_written, (unsigned long long)st.errors);
}

int main(int argc, char **argv)
{
    int once_mode = argc > 1 && strcmp(argv[1], "--once") == 0;
    argc -= once_mode;
    argv += once_mode;
    if (argc != 1 && argc != 3) {
        fprintf(stderr, "usage: serve [--once] [BACKING MOUNTPOINT]\n");
        return 2;
    }
    char tmp[] = "/dev/shm/zcfuse-serve-XXXXXX", backing[64], mountpoint[64];
    if (argc == 1) {
        if (!mkdtemp(tmp)) {
            perror("serve: mkdtemp");
            return 1;
        }
        snprintf(backing, sizeof backing, "%s/backing", tmp);
        snprintf(mountpoint, sizeof mountpoint, "%s/mnt", tmp);
        mkdir(backing, 0755);
        mkdir(mountpoint, 0755);
    }

    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = argc == 3 ? argv[1] : backing;
    opts.mountpoint = argc == 3 ? argv[2] : mountpoint;

    /* Catch the signals before mounting, so Ctrl-C always unmounts. */
    sem_init(&quit, 0, 0);
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_ONSTACK | SA_RESTART};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    zcfuse_server_t *srv = NULL;
    int rc = zcfuse_server_create(&opts, &srv);
    if (rc == 0)
        rc = zcfuse_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "serve: %s: %s\n", zcfuse_strerror(rc), zcfuse_last_error());
    } else {
        zcfuse_server_stats_t st = {.struct_size = sizeof st};
        zcfuse_server_stats(srv, &st);
        printf("serving %s on %s, transport %s%s%s\n", opts.backing_dir, opts.mountpoint,
               st.transport == ZCFUSE_TRANSPORT_URING ? "uring" : "classic",
               st.fallback_reason[0] ? ": " : "", st.fallback_reason);
        fflush(stdout);
        if (once_mode)
            rc = once(opts.backing_dir, opts.mountpoint);
        else
            while (sem_wait(&quit) < 0 && errno == EINTR)
                ;
        int stop_rc = zcfuse_server_stop(srv);
        if (stop_rc < 0) {
            fprintf(stderr, "serve: stop: %s: %s\n", zcfuse_strerror(stop_rc), zcfuse_last_error());
            rc = stop_rc;
        }
        print_stats(srv);
    }
    zcfuse_server_destroy(srv);
    if (argc == 1) {
        rmdir(mountpoint);
        rmdir(backing);
        rmdir(tmp);
    }
    return rc < 0 ? 1 : 0;
}
