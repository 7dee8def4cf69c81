// Package server mounts a backing directory through zcfuse: the
// project's own file-system layer (package fs: fd-based, each request
// with its caller's rights) served over FUSE-over-io_uring (package
// fusering), with the classic /dev/fuse transport as fallback, plus the
// control plane (package control: client sessions, arenas, attached
// files) and the data plane (package dataplane: the workers that run
// zero-copy ring ops).
//
// It composes, and owns only what joins the parts: their lifetimes (the
// data plane outlives the control plane, the transport outlives both: the
// workers write cache invalidations to it), the root's virtual attributes,
// and Stats, the one source of the stats model. It resolves no names,
// opens no backing file and runs no I/O itself, and no package below
// imports it. What it adds to the layer goes through fs.Hooks: the attach
// ioctl and RELEASE go to the control plane (an open file's fd, node id and
// access mode come from fs.Handle), and the read and write hooks see FUSE
// requests (ring ops' hooks run in the control plane). Ring writes of
// sessions without CAP_FSETID clear setuid/setgid/capability through
// fs.Handle.KillPriv, as write(2) would.
//
// Kernel FUSE passthrough stays off unless Options.Passthrough is set (it
// routes READ and WRITE around the server and its counters). File locks
// stay in the kernel (the server never takes one for a client).
//
// The mount root answers a virtual extended attribute, StatsXattr, with
// the server's statistics as JSON; it never reaches the backing
// directory and is not listed. `zcfuse stats MOUNTPOINT` reads it.
// Stats.Counters gives every number of that JSON by name (the C ABI's
// zcfuse_server_counters and the bindings use it): a counter added to one
// of the stats structs reaches every language with no other edit.
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
