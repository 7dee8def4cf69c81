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
// directory and is not listed. `zcfuse stats MOUNTPOINT` reads it. What
// it answers depends on who asks (the request's uid): root and the mount
// owner (the server's uid) get the full view, Stats with "view": "full":
// every counter, the backing directory, mountpoint, pid and control
// socket, and every user's usage against its limits (Stats.Users:
// control.UserUsage plus the files it holds open through the mount).
// Anyone else gets UserView, "view": "user": the transport, read-only,
// passthrough, and its own usage against its limits (uid, sessions,
// connections before Hello, arenas and arena bytes, registered bytes,
// attached files, open files through the mount) and nothing more: no
// server-wide counter (they count everybody's requests, bytes and
// sessions), no other uid, and none of the server's paths or its pid.
// ControlXattr, the control socket's path, answers anyone who reaches
// the mount: clients find their server through it, and the server admits
// them by SO_PEERCRED. Stats.Counters gives every number of the full view
// by name (the C ABI's zcfuse_server_counters and the bindings use it): a
// counter added to one of the stats structs reaches every language with
// no other edit.
//
// # Limits
//
// Options.Limits (control.Limits; zero fields take DefaultLimits) bound
// what each uid may hold. The control plane enforces those of sessions,
// arenas and attachments; the file-system layer enforces
// OpenFilesPerUser (fs.Options.OpenFilesPerUser): the files and
// directories one uid, the request's, holds open through the mount, each
// a server fd. Past it that uid's OPEN, CREATE, TMPFILE and OPENDIR fail
// EMFILE, and nobody else notices. Root and the mount owner have the same
// limit, each on a count of its own (fs package doc: there is no
// server-wide open-file limit for other users to use up, and their own
// runaway processes must not take the server's fds from everybody
// either); a negative OpenFilesPerUser means none.
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
