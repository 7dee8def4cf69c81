// Package control is the control plane of the zero-copy path: the control
// socket clients find through the mount root's wire.ControlXattr, the
// sessions they open on it (SO_PEERCRED decides who may), the arenas each
// shares (imported; faulted in and registered as fixed buffers within
// their user's budget and the memlock budget), the files each attaches
// (the attach ioctl on an open file of the mount), the limits on all of
// these, and the hooks that see the bytes of ring ops.
//
// A session is the Source of its op queue in the data plane (package
// dataplane): Prepare checks each descriptor against the session's
// attachments and arenas and resolves it into an fd and a buffer, holding
// references until Finish, so no op ever sees an arena unmapped or a file
// closed by a RELEASE.
//
// It owns no thread that does I/O and no ring: registrations and queues
// are asked of a DataPlane; it resolves no names and opens no backing
// file: the sessions attaching an open Handle of the file-system layer
// share its own fd, lent by the layer (FdLender; one duplicate for a
// Handle that does not lend), whose last reference (an attachment or an
// op in flight) gives it back. It never imports the server, the
// file-system layer or the transport.
//
// # Admission
//
// The control socket and every connection live on Go's netpoller
// (wire.Conn): a connection waiting for its client holds a goroutine and
// no OS thread, so a storm of idle connections leaves the server's
// threads where they were. The accept loop ends only when Close closes
// the listener: an accept that fails for want of a resource (EMFILE,
// ENFILE, ENOMEM, ENOBUFS) backs off from 1 ms, doubling to 100 ms, and
// retries, counted in SessionStats.AcceptErrors.
//
// A connection is admitted by the peer's uid (SO_PEERCRED): root, the
// server's owner, or anyone with AllowOther (else EACCES). It is charged
// a session of its uid at accept (SessionsPerUser; Sessions for
// unprivileged users together), and, when its first message is not
// there yet, a connection before Hello (HalfOpenPerUser; HalfOpen), given
// back once its Hello is answered; without a Hello within HelloTimeout it
// is told ETIMEDOUT and closed. A client whose Hello came with its
// connect keeps nobody waiting and is not charged for it, so a burst of
// well-behaved connects is not refused for being fast. Over a limit the
// connection is refused with the limit's errno (EAGAIN): the server sends
// the Error, shuts down its side, reads and drops what the client sent
// (closing a socket with unread messages resets the peer), and closes;
// wire.Call on the client returns that Error even when its Hello went
// out after the close (EPIPE) or the kernel reports the reset first.
//
// The socket's directory (Listen) is created 0700, or 0755 with
// AllowOther; an existing one must be the server's uid's or root's (else
// Listen fails: its owner could swap the socket), and gets 0755 with
// AllowOther when it is ours. Group and other lose write access; a
// directory another server shares is not made private.
//
// # Arenas and memory
//
// A shared arena is charged to its session (ArenasPerSession,
// ArenaBytes: ENOSPC) and to its uid (ArenasPerUser, ArenaBytesPerUser:
// EDQUOT, mapped bytes). Only within the uid's RegisteredBytesPerUser is
// it faulted in (MADV_POPULATE_WRITE) and registered as a fixed buffer,
// charged at its whole size since registration pins every page; past it
// the arena is accepted unregistered (ShareArenaReply.Registered false,
// SessionStats.ArenasOverBudget) and never touched by the server: served
// from its mapping, its pages faulted in by the ops that use them. The
// server does not consult mincore: what is resident already does not
// change what registration pins. Every charge goes back, once, when the
// last reference to the arena goes.
//
// # Threads and locks
//
//   - Each connection has a goroutine that serves its socket (parked on
//     the netpoller while it waits); it alone changes the session's
//     arenas (amu, which workers read under RLock).
//   - fmu guards attachments, which the session's goroutine, FUSE request
//     threads (Attach, Released) and workers (Prepare) all touch; it is
//     never held while asking the data plane anything (registration waits
//     for the workers, and the workers take fmu).
//   - A FUSE request thread never waits for the data plane: Attach
//     registers the file in the workers' tables on a goroutine of its own
//     (ops are served by the fd until then). A worker may be waiting on a
//     page lock that only a FUSE request can release (a cache
//     invalidation), so a request waiting for a worker could deadlock the
//     CPU's queue.
//   - Prepare and Broken run on workers under the queue's lock; Finish on
//     a worker or the data plane's invalidation goroutine. The last
//     reference to an arena or attachment frees it on a goroutine of its
//     own, never on a worker.
package control
