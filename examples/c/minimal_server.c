/* minimal_server.c - the smallest zcfuse server: serves BACKING on MOUNTPOINT
 * until SIGINT/SIGTERM (the handler only posts a semaphore; main stops the server).
 * Build: cc minimal_server.c $(pkg-config --cflags --libs zcfuse) -o minimal_server
 * Usage (as root): ./minimal_server BACKING MOUNTPOINT */
#define _GNU_SOURCE
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <zcfuse.h>

static sem_t quit;
static void on_signal(int sig) { (void)sig; sem_post(&quit); }

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: %s BACKING MOUNTPOINT\n", argv[0]), 2;
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    opts.backing_dir = argv[1];
    opts.mountpoint = argv[2];
    sem_init(&quit, 0, 0);
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_ONSTACK | SA_RESTART};
    sigaction(SIGINT, &sa, NULL), sigaction(SIGTERM, &sa, NULL);
    zcfuse_server_t *srv = NULL;
    int rc = zcfuse_server_create(&opts, &srv);
    if (rc == 0 && (rc = zcfuse_server_start(srv)) == 0) {
        printf("serving %s on %s\n", argv[1], argv[2]), fflush(stdout);
        while (sem_wait(&quit) < 0 && errno == EINTR)
            ;
        rc = zcfuse_server_stop(srv);
    }
    if (rc < 0)
        fprintf(stderr, "minimal_server: %s: %s\n", zcfuse_strerror(rc), zcfuse_last_error());
    zcfuse_server_destroy(srv);
    return rc < 0;
}
