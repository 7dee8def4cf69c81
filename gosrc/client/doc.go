// Package client is the application side of zcfuse's back channel: it
// finds the server behind a mountpoint, opens a session, and shares
// arenas (package arena) with it, so that later I/O can name data in an
// arena instead of copying it.
//
// Connect finds the server's control socket through the mount itself
// (the virtual attribute user.zcfuse.control on the mount root, answered
// by the server and never by the backing directory) or, when set, the
// environment variable ZCFUSE_CONTROL_SOCKET (for a client in another
// mount namespace that has the socket bind-mounted somewhere else).
//
// # Lifetimes
//
// A Session owns its socket; Close says goodbye and closes it, and the
// server then releases every arena the session shared. A shared arena
// stays the caller's: Share sends a duplicate of its fd, and the caller
// closes the Arena after Unshare or Close.
//
// An op names its memory by address (Op.Buf: the session searches its
// shared arenas for it) or by arena id and offset (ArenaRef with
// Op.Arena, Op.ArenaOff and Op.Len, or PreadArena and PwriteArena: one
// map lookup, zero copy only). Either way the bytes belong to the server
// from Submit until the op's completion; Unshare, or Close of the Arena,
// makes later ops by its id fail with EFAULT, while ops in flight finish
// on the server's own mapping. include/zcfuse.h, "Buffers in flight",
// has the whole contract.
//
// # Threads
//
// A Session may be used from several goroutines; requests are
// serialised (one in flight per session).
//
// # Errors
//
// Errors wrap an errno: the server's answer (an *wire.Error unwraps to
// it, e.g. EPERM for an unsealed memfd, ENOSPC over a session's limit,
// EDQUOT over its user's), ENOTCONN when the server is gone, ENODATA
// when no zcfuse server answers at the mountpoint. A connection the
// server refuses gives the refusal's errno and text — EACCES (this user
// is not admitted), EAGAIN (over a session limit, or the server full) —
// never the EPIPE or ECONNRESET of the close that follows it.
package client
