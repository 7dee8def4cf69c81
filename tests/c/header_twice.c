/*
 * header_twice.c - including include/zcfuse.h twice is harmless (its
 * include guard covers everything), here with <stdint.h> in between.
 */
#include "zcfuse.h"
#include <stdint.h>
#include "zcfuse.h"

int main(void)
{
    zcfuse_server_opts_t opts;
    zcfuse_server_opts_init(&opts);
    return opts.struct_size == sizeof opts && ZCFUSE_STATS_OPCODES == 64 ? 0 : 1;
}
