// Package dataplane runs the ring path: the zero-copy ops clients publish
// in their op queues (package opq), moved between shared arenas and
// backing files by io_uring, without a copy in user space.
//
// It owns the Executor: one worker per CPU, each a locked OS thread pinned
// to its CPU that owns an io_uring and waits in it for everything at once
// (the doorbells of the queues it serves, the I/O it started, and jobs
// other goroutines hand it); the fixed-buffer and registered-file tables
// (every worker keeps its own, with the same slots); the server's side of
// each op queue (Queue: what the client may write is read once and
// checked); the ring path's counters; and the goroutine that takes cache
// invalidations off busy workers.
//
// It knows nothing of sessions, arenas, attachments, hooks or file
// systems: a queue's Source (package control) checks each descriptor and
// resolves it into an Op, an fd and a buffer, and is told when the op is
// done. It never resolves a name and never opens a file.
//
// # Threads and locks
//
//   - A worker's ring, its tables and its owner-thread state (ops in
//     flight, doorbells, polled queues, wake-ups, writes awaiting
//     invalidation) are touched only on its thread; other goroutines hand
//     it jobs (worker.do), and only the registration calls (never from a
//     worker thread: they wait for every worker).
//   - Queue.mu guards a queue's indices and in-flight count: any worker
//     may drain a queue or post to it, and so may the invalidation
//     goroutine. Source.Prepare and Source.Broken run under it.
//   - Source.BeforeWrite runs on a worker; Source.Finish on a worker or
//     the invalidation goroutine. Neither may block nor wait for the
//     executor.
//
// # Cache coherence
//
// A ring write bypasses the kernel's page cache of the mount, so its
// completion is posted only once the node's cached pages and attributes
// are dropped (Config.Invalidator). A worker with nothing else to serve
// does that itself at the end of its round; a busy one hands the round's
// writes, in one batch, to the invalidation goroutine, which invalidates
// and posts them, so one slow invalidation (it may wait on page locks of
// READs in flight) does not stall the worker's other queues. Stats counts
// the hand-offs.
package dataplane
