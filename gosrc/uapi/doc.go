// Package uapi holds the kernel ABI that zcfuse speaks: the io_uring
// structures, opcodes and flags, and the FUSE-over-io_uring command and
// header layouts. Nothing here allocates or makes a system call; the
// layouts are pinned by tests against the sizes and offsets of the
// kernel's include/uapi/linux/io_uring.h and include/uapi/linux/fuse.h.
//
// golang.org/x/sys/unix has the three io_uring system call numbers and
// none of the structures, so they are written out here by hand.
package uapi
