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
//   - Queue.mu guards a queue's indices, in-flight count and poll budget:
//     any worker may drain a queue or post to it, and so may the
//     invalidation goroutine. Source.Prepare and Source.Broken run under
//     it.
//   - Source.BeforeWrite runs on a worker; Source.Finish on a worker or
//     the invalidation goroutine. Neither may block nor wait for the
//     executor.
//
// # Poll mode
//
// A client in poll mode (opq mode 1) asks its worker to spin on its queue
// instead of waiting for doorbells. The server spins only while ops
// arrive: each descriptor taken buys a little spinning, a queue may
// waste only a small share of a CPU on spins that find nothing, and a
// queue whose doorbells bring nothing is throttled for a back-off that
// grows while it goes on (its poll-mode requests are ignored and its
// empty doorbells wait for the back-off's end). An idle or
// doorbell-spamming session costs the server a few wake-ups a second;
// Stats counts the throttlings.
//
// # Cache coherence
//
// A ring write bypasses the kernel's page cache of the mount, so its
// completion is posted only once the node's cached pages and attributes
// are dropped (Config.Invalidator): once per file for the writes of a
// round, over the range they cover. Writing an invalidation may wait on
// the page locks of READs in flight through the mount (readers of the
// same file: up to hundreds of milliseconds), so a worker does it itself
// only when it has nothing else to serve: then the client pays no
// wake-up. Otherwise the worker hands the round's writes to its own
// invalidation goroutine, which takes every batch waiting in one pass
// (again once per file) and wakes each client as soon as its file is
// clean. A client that makes its invalidations slow thus delays others on
// its worker by a few invalidations at most (what arrives while the
// worker invalidates, and one per file per pass of the goroutine), never
// by its whole backlog, and no other worker's clients. Stats counts the
// hand-offs.
//
// The data plane never waits for a FUSE request thread and no FUSE
// request thread may wait for it (package control registers attached
// files off the request thread): a worker may be waiting on a page lock
// that only a FUSE request releases.
package dataplane
