/*
 * header_cxx.cpp - include/zcfuse.h from C++ (C++11, -pedantic-errors
 * -Wall -Wextra -Werror): it compiles, and its extern "C" gives the
 * functions C linkage, so calls link against libzcfuse.so (a missing
 * extern "C" would leave mangled names undefined at link time).
 */
#include "zcfuse.h"

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(std::is_standard_layout<zcfuse_server_opts_t>::value, "opts layout");
static_assert(std::is_standard_layout<zcfuse_server_stats_t>::value, "stats layout");
static_assert(std::is_standard_layout<zcfuse_op_t>::value, "op layout");
static_assert(offsetof(zcfuse_op_t, buf) == offsetof(zcfuse_op_t, arena_off), "op union");

int main()
{
    char want[32];
    std::snprintf(want, sizeof want, "%d.%d.%d", ZCFUSE_VERSION_MAJOR, ZCFUSE_VERSION_MINOR,
                  ZCFUSE_VERSION_PATCH);
    if (std::strcmp(zcfuse_version(), want) != 0) {
        std::printf("FAIL header_cxx: zcfuse_version() %s, header %s\n", zcfuse_version(), want);
        return 1;
    }
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    zcfuse_server_t *srv = nullptr;
    int rc = zcfuse_server_create(nullptr, &srv);
    if (rc != -EINVAL || opts.struct_size != sizeof opts) {
        std::printf("FAIL header_cxx: create(nullptr) = %d (%s)\n", rc, zcfuse_strerror(rc));
        return 1;
    }
    zcfuse_server_destroy(srv);
    std::printf("PASS header_cxx: zcfuse %s called from C++\n", zcfuse_version());
    return 0;
}
