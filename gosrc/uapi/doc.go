// Package uapi holds the kernel ABI that zcfuse speaks: the io_uring
// structures, opcodes and flags; the FUSE request and reply headers, the
// FUSE structures the transport reads or writes itself (INIT's and READ's
// arguments, WRITE's reply, the notifications) and the FUSE-over-io_uring
// command and header layouts; and the one table of FUSE opcodes and their
// names (FuseOpcode). Nothing here makes a system call, and nothing
// allocates but the name of an opcode the kernel does not define. The
// layouts are pinned by tests against the sizes and offsets of the
// kernel's include/uapi/linux/io_uring.h and include/uapi/linux/fuse.h.
//
// The structures are plain Go structs with the kernel's field order and
// sizes, so a pointer to one may be laid over kernel memory (a ring
// entry's header) or a buffer read from /dev/fuse, provided the memory is
// long enough and aligned for the struct; the FUSE transport does that in
// one place (gosrc/fusering's unsafe.go).
//
// golang.org/x/sys/unix has the three io_uring system call numbers and
// none of the structures, so they are written out here by hand.
package uapi
