// Package control is the control plane of the zero-copy path: the control
// socket clients find through the mount root's wire.ControlXattr, the
// sessions they open on it (SO_PEERCRED decides who may), the arenas each
// shares (imported, faulted in, registered as fixed buffers when the
// memlock budget allows), the files each attaches (the attach ioctl on an
// open file of the mount), the limits on all of these, and the hooks that
// see the bytes of ring ops.
//
// A session is the Source of its op queue in the data plane (package
// dataplane): Prepare checks each descriptor against the session's
// attachments and arenas and resolves it into an fd and a buffer, holding
// references until Finish, so no op ever sees an arena unmapped or a file
// closed by a RELEASE.
//
// It owns no thread that does I/O and no ring: registrations and queues
// are asked of a DataPlane; it resolves no names and opens no backing
// file (an attachment duplicates the fd of an open Handle of the
// file-system layer). It never imports the server, the file-system layer
// or the transport.
//
// # Threads and locks
//
//   - Each session has a goroutine that serves its socket; it alone
//     changes the session's arenas (amu, which workers read under RLock).
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
