/* Private to libzcfuse: what the C shim and the cgo exports share. */
#ifndef ZCFUSE_CAPI_H
#define ZCFUSE_CAPI_H

#include <stdint.h>
#include <stdlib.h>
#include "zcfuse.h"

/* A server handle as C sees it: a runtime/cgo.Handle of a Go *server.Server. */
struct zcfuse_server {
    uintptr_t handle;
};

/* An arena as C sees it: the handle of a Go *arena.Arena, plus its
 * mapping, size and fd cached so the accessors never enter Go. */
struct zcfuse_arena {
    uintptr_t handle;
    void *base;
    size_t size;
    int fd;
};

/* A session as C sees it: the handle of a Go *client.Session. */
struct zcfuse_session {
    uintptr_t handle;
};

/* Calls a server hook (cgo cannot call C function pointers itself). */
static inline void zcfusei_call_hook(zcfuse_hook_fn fn, void *ctx, const zcfuse_hook_info_t *info,
                                     const void *data, size_t len)
{
    fn(ctx, info, data, len);
}

/* Records msg as this thread's last error (zcfuse_last_error). */
__attribute__((visibility("hidden"))) void zcfusei_set_error(const char *msg);

#endif
