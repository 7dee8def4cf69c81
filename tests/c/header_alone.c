/*
 * header_alone.c - include/zcfuse.h compiles on its own: it is the only
 * header here, built as C99 with -pedantic-errors -Wall -Wextra -Werror,
 * and every type and function it declares is used.
 */
#include "zcfuse.h"

int main(void)
{
    zcfuse_server_opts_t opts;
    zcfuse_server_stats_t stats;
    zcfuse_server_t *srv = NULL;
    zcfuse_transport_t transport = ZCFUSE_TRANSPORT_CLASSIC;
    const char *v = zcfuse_version();
    zcfuse_op_t op; /* its anonymous union must pass C99 -pedantic-errors */

    op.arena_id = 1;
    op.arena_off = 4096;
    op.buf = NULL;

    zcfuse_server_opts_init(&opts);
    opts.transport = transport;
    opts.flags = ZCFUSE_SERVER_READ_ONLY;
    stats.struct_size = sizeof stats;
    (void)zcfuse_strerror(-1);
    (void)zcfuse_last_error();
    if (zcfuse_server_create(NULL, &srv) == 0 || zcfuse_server_start(srv) == 0 ||
        zcfuse_server_run(srv) == 0 || zcfuse_server_stop(srv) == 0 ||
        zcfuse_server_stats(srv, &stats) == 0)
        return 1; /* all NULL: each must fail */
    zcfuse_server_destroy(srv);
    return v && v[0] && opts.struct_size == sizeof opts && op.arena_id == 1 ? 0 : 1;
}
