/* Private to libzcfuse: what the C shim and the cgo exports share. */
#ifndef ZCFUSE_CAPI_H
#define ZCFUSE_CAPI_H

#include <stdint.h>
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

/* Records msg as this thread's last error (zcfuse_last_error). */
__attribute__((visibility("hidden"))) void zcfusei_set_error(const char *msg);

#endif
