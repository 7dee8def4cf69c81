/*
 * The public names of libzcfuse. cgo cannot export functions with const
 * parameters or with the header's own types in their signatures, so the
 * Go exports (zcfusego_*, not exported from the library) sit behind
 * these one-line forwarders. Argument checks that need no Go live here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capi.h"
#include "_cgo_export.h"

static __thread char last_error[512];

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

void zcfuse_server_opts_init(zcfuse_server_opts_t *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->transport = ZCFUSE_TRANSPORT_AUTO;
}

int zcfuse_server_create(const zcfuse_server_opts_t *opts, zcfuse_server_t **srv_out)
{
    if (!opts || !srv_out)
        return fail(-EINVAL, "zcfuse_server_create: opts and srv_out must not be NULL");
    if (opts->struct_size < sizeof *opts)
        return fail(-EINVAL, "zcfuse_server_create: opts->struct_size too small (call zcfuse_server_opts_init first)");
    zcfuse_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return fail(-ENOMEM, "zcfuse_server_create: out of memory");
    int rc = zcfusego_server_create((zcfuse_server_opts_t *)opts, &srv->handle);
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
    NEED_SRV("zcfuse_server_start");
    return zcfusego_server_start(srv->handle);
}

int zcfuse_server_run(zcfuse_server_t *srv)
{
    NEED_SRV("zcfuse_server_run");
    return zcfusego_server_run(srv->handle);
}

int zcfuse_server_stop(zcfuse_server_t *srv)
{
    NEED_SRV("zcfuse_server_stop");
    return zcfusego_server_stop(srv->handle);
}

int zcfuse_server_stats(zcfuse_server_t *srv, zcfuse_server_stats_t *stats)
{
    NEED_SRV("zcfuse_server_stats");
    if (!stats || stats->struct_size < sizeof *stats)
        return fail(-EINVAL, "zcfuse_server_stats: stats NULL or stats->struct_size too small");
    return zcfusego_server_stats(srv->handle, stats);
}

void zcfuse_server_destroy(zcfuse_server_t *srv)
{
    if (!srv)
        return;
    zcfusego_server_destroy(srv->handle);
    free(srv);
}
