// Package fusering serves a go-fuse RawFileSystem over the kernel's FUSE
// transports: FUSE-over-io_uring (Linux 6.14+) with the classic
// /dev/fuse read/write loop as fallback. It mounts by itself (mount(2)
// on an fd of /dev/fuse), answers INIT through go-fuse's
// ProtocolServer, registers one ring entry per ring thread for each
// queue (one queue per possible CPU), and handles each request inline on
// the ring thread that received it, pinned to its queue's CPU.
//
// It owns the connection (the /dev/fuse fd, the rings, the ring and reader
// threads, the per-opcode counters) and may not touch what it serves: it
// knows no file system but the RawFileSystem it is given, and no session,
// arena or data plane; the environment is never read here (programs set
// Config.RequireURing).
//
// Both transports feed one ProtocolServer: after the ring is live the
// kernel still sends FORGET and INTERRUPT over /dev/fuse, and
// notifications (cache invalidation) must be written there, from a
// dedicated goroutine (see Notifier).
//
// Kernel structures (request and reply headers, a ring entry's header,
// the uring command, INIT's and READ's arguments, notifications) are read
// and written through their gosrc/uapi types, laid over the bytes without
// a copy by the one helper in unsafe.go, which refuses a buffer too short
// for the struct; opcodes and their names are uapi.FuseOpcode's.
//
// A file system that implements ReadFder gives ring threads the READ fast
// path: a READ on a handle it names an fd for is one pread into the ring
// payload, without the ProtocolServer.
//
// Every request runs on a locked OS thread of this package (a ring thread
// or a /dev/fuse reader) with a file-system context of its own and umask
// 0 (requestThread): the server's umask never applies to a caller's
// create, and a file system may set the thread's umask (the caller's,
// with FUSE_DONT_MASK) or working directory for a request without
// touching the process's, which belong to a program that embeds the
// server. OnRequestThread tells a file system whether it runs on one.
//
// # Lifetimes
//
// Open creates a Conn (it opens /dev/fuse, nothing is mounted). Build the
// RawFileSystem (Conn.Notifier and Conn.Invalidator are its way back to
// the kernel), then Start mounts and returns once the mount is ready: every queue has
// its entries registered and a stat of the root was answered. A mount
// that does not become ready is aborted and unmounted before Start
// returns its error. Wait returns when the file system is unmounted
// (by Stop or from outside). Stop unmounts, aborts the connection so
// that requests in flight fail with ENOTCONN instead of hanging, waits
// for every thread, and closes the rings, then /dev/fuse, in that order.
//
// # Errors
//
// Start's errors say which step failed and why; the fallback reason of
// the auto transport is kept in Stats.FallbackReason.
package fusering
