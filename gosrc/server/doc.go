// Package server mounts a backing directory through zcfuse: go-fuse's
// loopback node tree (with relative paths) served over
// FUSE-over-io_uring (package fusering),
// with the classic /dev/fuse transport as fallback.
//
// Kernel FUSE passthrough stays off unless Options.Passthrough is set:
// go-fuse's loopback turns it on by itself when run as root, which would
// route READ and WRITE around the server (and around its counters).
//
// Requests that look up, create, open, change or remove run with their
// caller's uid, gid and groups (creds_linux.go), on request threads whose
// working directory is the backing root, so the backing file system
// decides as it would for the caller. What the node tree does for a
// client is bounded further (package passthrough holds the rules): every FUSE_IOCTL reaches node.Ioctl, which answers the
// attach ioctl and passthrough's allow-list and nothing else; create,
// mkdir and mknod make objects with exactly the mode asked, owned by the
// caller (create_linux.go); FUSE_HANDLE_KILLPRIV_V2 is negotiated and the
// kernel's kill-suid/sgid flags on WRITE, SETATTR and OPEN, and ring
// writes of sessions without CAP_FSETID, clear setuid/setgid/capability
// (killpriv_linux.go). Mode 0000 stays 0000 (go-fuse's NullPermissions).
//
// The mount root answers a virtual extended attribute, StatsXattr, with
// the server's statistics as JSON; it never reaches the backing
// directory and is not listed. `zcfuse stats MOUNTPOINT` reads it.
//
// # Lifetimes
//
// New checks the directories; Start mounts and returns once the mount is
// ready; Wait returns when it is unmounted (by Stop or from outside);
// Stop unmounts and releases everything, and may be called more than once.
//
// # Errors
//
// Errors name the path and the step that failed.
package server
