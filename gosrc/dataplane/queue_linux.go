package dataplane

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/ring"
	"golang.org/x/sys/unix"
)

// Source is what stands behind a queue: the client session whose
// descriptors it checks and resolves (package control). Its methods run on
// worker threads, and Finish on the invalidation goroutine too: they must
// not block, and must never wait for the executor (no registration).
type Source interface {
	// Prepare checks descriptor e against what the session holds and
	// resolves it into an Op, taking references on what it uses; a
	// non-zero errno completes the op at once with -errno.
	Prepare(e opq.SQE) (*Op, unix.Errno)
	// BeforeWrite runs before a write's I/O starts (kill-priv, the write
	// hook); it returns a private copy of o.Buf.Bytes to write instead,
	// or nil.
	BeforeWrite(o *Op) []byte
	// Finish runs once the op's I/O is over and, after a write, the
	// kernel's cache of the file is clean; res is the bytes moved or
	// -errno. It runs the read hook and drops the op's references; the
	// completion is posted after it returns.
	Finish(o *Op, res int64)
	// Broken ends the session of a client that broke the queue's
	// protocol (why says how); its calls then fail with ENOTCONN instead
	// of waiting for completions that never come.
	Broken(why string)
}

// Queue is the server's side of a session's op queue (package opq):
// the mapping, the completion eventfd, and one doorbell per worker. The
// indices the server relies on are its own (sqHead, cqTail); what the
// client writes in shared memory is only ever read once and checked.
type Queue struct {
	src   Source
	e     *Executor
	a     *arena.Arena // the queue's memfd and mapping
	q     *opq.Queue
	evfd  int
	bells []bellRef

	mu       sync.Mutex // any worker may drain the queue or post to it
	sqHead   uint32
	cqTail   uint32
	inflight uint32
	broken   bool // the client broke the protocol: its queue is dead
	closing  bool

	refs atomic.Int64 // doorbells armed + ops in flight + the session's
	idle chan struct{}
}

// Entries is the queue's depth.
func (q *Queue) Entries() uint32 { return q.q.Entries() }

// Doorbells is the number of doorbells: one per worker.
func (q *Queue) Doorbells() int { return len(q.bells) }

type bellRef struct {
	w  *worker
	id uint64
}

// doorbell is an eventfd whose READ waits in a worker's ring: a client
// write completes it, and the worker drains the queue.
type doorbell struct {
	q         *Queue
	fd        int
	buf       []byte
	canceling bool
}

// OpenQueue creates a queue for src, with its doorbells armed. It returns
// the fds the client needs, in the order of the back channel's messages
// (memfd, completion eventfd, one doorbell per worker); the caller sends
// them and closes them.
func (exec *Executor) OpenQueue(src Source) (*Queue, []int, error) {
	entries := uint32(opq.DefaultEntries)
	size := opq.Size(entries)
	a, err := arena.Create(int64(size), arena.Options{Name: "zcfuse-opq"})
	if err != nil {
		return nil, nil, fmt.Errorf("op queue: %w", err)
	}
	// A copy of the memfd (sealed against shrinking and growing by
	// arena.Create) goes to the client.
	q := &Queue{src: src, e: exec, a: a, evfd: -1, q: opq.Init(a.Bytes(), entries, uint32(len(exec.workers))), idle: make(chan struct{})}
	q.refs.Store(1)
	fds := []int{}
	fail := func(err error) (*Queue, []int, error) {
		q.Close()
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, err
	}
	dup, err := unix.FcntlInt(uintptr(a.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	fds = append(fds, dup)
	if q.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		q.evfd = -1
		return fail(fmt.Errorf("completion eventfd: %w", err))
	}
	evdup, err := unix.FcntlInt(uintptr(q.evfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	fds = append(fds, evdup)
	for _, w := range exec.workers {
		bfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return fail(fmt.Errorf("doorbell: %w", err))
		}
		buf, err := ring.Alloc(4096)
		if err != nil {
			unix.Close(bfd)
			return fail(err)
		}
		b := &doorbell{q: q, fd: bfd, buf: buf[:8]}
		q.refs.Add(1)
		var id uint64
		err = w.do(func(w *worker) error {
			w.nextBell++
			id = w.nextBell
			w.bells[id] = b
			return w.armBell(id, b)
		})
		if err != nil {
			q.put() // the bell never armed
			ring.Free(buf)
			unix.Close(bfd)
			return fail(err)
		}
		q.bells = append(q.bells, bellRef{w, id})
		send, err := unix.FcntlInt(uintptr(bfd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		fds = append(fds, send)
	}
	return q, fds, nil
}

// Close stops the queue: no more draining, doorbells cancelled; it
// returns once no worker touches the queue any more (every op in flight
// completed and posted), and unmaps it. Never from a worker thread.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	for _, b := range q.bells {
		id := b.id
		b.w.do(func(w *worker) error {
			if bell := w.bells[id]; bell != nil {
				w.cancelBell(id, bell)
			}
			return nil
		})
	}
	q.put()
	<-q.idle
	if q.evfd >= 0 {
		unix.Close(q.evfd)
	}
	q.a.Close()
}

func (q *Queue) put() {
	if q.refs.Add(-1) == 0 {
		close(q.idle)
	}
}

// armBell queues the doorbell's READ (owner thread).
func (w *worker) armBell(id uint64, b *doorbell) error {
	sqe := w.sqe()
	if sqe == nil {
		return fmt.Errorf("arm doorbell: submission queue full: %w", unix.EBUSY)
	}
	ring.PrepRead(sqe, b.fd, b.buf, ^uint64(0), tag(kindBell, id))
	return nil
}

// cancelBell asks the kernel to cancel the doorbell's READ; its
// completion (rang) then frees it.
func (w *worker) cancelBell(id uint64, b *doorbell) {
	if b.canceling {
		return
	}
	b.canceling = true
	if sqe := w.sqe(); sqe != nil {
		sqe.Opcode = opAsyncCancel
		sqe.Addr = tag(kindBell, id)
		sqe.UserData = tag(kindCancel, id)
	}
}

// opAsyncCancel is IORING_OP_ASYNC_CANCEL.
const opAsyncCancel = 14

// rang handles a doorbell READ completion.
func (w *worker) rang(id uint64, res int32) {
	b := w.bells[id]
	if b == nil {
		return
	}
	if b.canceling || res == -int32(unix.ECANCELED) || (res < 0 && res != -int32(unix.EAGAIN)) {
		delete(w.bells, id)
		unix.Close(b.fd)
		ring.Free(b.buf[:cap(b.buf)])
		b.q.put()
		return
	}
	w.drain(b.q)
	if b.q.q.Mode().Load() == 1 {
		w.startPolling(b.q)
	}
	if err := w.armBell(id, b); err != nil {
		b.canceling = true // cannot wait for it any more: free it
		w.rang(id, -int32(unix.ECANCELED))
	}
}

// startPolling makes the worker spin on q (poll mode): the client then
// publishes ops without ringing.
func (w *worker) startPolling(q *Queue) {
	if w.polled == nil {
		w.polled = map[*Queue]time.Time{}
	}
	if _, ok := w.polled[q]; !ok {
		q.refs.Add(1)
	}
	w.polled[q] = time.Now()
	q.q.NeedWake().Store(0)
}

// poll drains the polled queues that have new ops and lets go of those
// idle for longer than their spin time (from 1 µs to 1 ms, default 50).
func (w *worker) poll() {
	now := time.Now()
	for q, last := range w.polled {
		if q.q.SQTail().Load() != q.q.SQHead().Load() {
			w.drain(q)
			w.polled[q] = now
			continue
		}
		spin := time.Duration(q.q.Spin().Load()) * time.Microsecond
		if spin <= 0 {
			spin = 50 * time.Microsecond
		}
		spin = min(spin, time.Millisecond)
		if now.Sub(last) < spin && q.q.Mode().Load() == 1 && !q.isClosing() {
			continue
		}
		q.q.NeedWake().Store(1)
		if q.q.SQTail().Load() != q.q.SQHead().Load() && !q.isClosing() {
			q.q.NeedWake().Store(0) // an op slipped in before the flag: go on
			w.drain(q)
			w.polled[q] = now
			continue
		}
		delete(w.polled, q)
		q.put()
	}
}

func (q *Queue) isClosing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing || q.broken
}
