package server

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/ring"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// opQueue is the server's side of a session's op queue (package opq):
// the mapping, the completion eventfd, and one doorbell per worker. The
// indices the server relies on are its own (sqHead, cqTail); what the
// client writes in shared memory is only ever read once and checked.
type opQueue struct {
	ss    *session
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

type bellRef struct {
	w  *worker
	id uint64
}

// doorbell is an eventfd whose READ waits in a worker's ring: a client
// write completes it, and the worker drains the queue.
type doorbell struct {
	q         *opQueue
	fd        int
	buf       []byte
	canceling bool
}

// openQueue creates the session's queue and doorbells and arms them.
// It returns the fds to send (memfd, eventfd, one doorbell per worker);
// the caller closes them once sent.
func (ss *session) openQueue() (*opQueue, []int, error) {
	exec := ss.s.exec
	entries := uint32(opq.DefaultEntries)
	size := opq.Size(entries)
	a, err := arena.Create(int64(size), arena.Options{Name: "zcfuse-opq"})
	if err != nil {
		return nil, nil, fmt.Errorf("op queue: %w", err)
	}
	// A copy of the memfd (sealed against shrinking and growing by
	// arena.Create) goes to the client.
	q := &opQueue{ss: ss, a: a, evfd: -1, q: opq.Init(a.Bytes(), entries, uint32(len(exec.workers))), idle: make(chan struct{})}
	q.refs.Store(1)
	fds := []int{}
	fail := func(err error) (*opQueue, []int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		q.close()
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

// sendQueue sends the OpQueue and Doorbell messages.
func (q *opQueue) send(sock int, fds []int) error {
	if err := wire.Send(sock, &wire.OpQueue{Entries: q.q.Entries(), Doorbells: uint32(len(q.bells))}, fds[0], fds[1]); err != nil {
		return err
	}
	for i, fd := range fds[2:] {
		if err := wire.Send(sock, &wire.Doorbell{Index: uint32(i)}, fd); err != nil {
			return err
		}
	}
	return nil
}

// close stops the queue: no more draining, doorbells cancelled; it
// returns once no worker touches the queue any more, and unmaps it.
func (q *opQueue) close() {
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

func (q *opQueue) put() {
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
func (w *worker) startPolling(q *opQueue) {
	if w.polled == nil {
		w.polled = map[*opQueue]time.Time{}
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

func (q *opQueue) isClosing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing || q.broken
}

// op is one descriptor being served.
type op struct {
	q    *opQueue
	e    opq.SQE
	at   *attachment
	sa   *sharedArena
	buf  []byte // where the bytes are: the arena, or a private copy
	done uint64
	copy bool // buf is a private copy of the arena's bytes
}

// drain takes the descriptors the client published, up to the queue's
// depth in flight, checks them, and starts them.
func (w *worker) drain(q *opQueue) {
	ops := w.scratch[:0]
	q.mu.Lock()
	if q.broken || q.closing {
		q.mu.Unlock()
		return
	}
	tail := q.q.SQTail().Load()
	if n := tail - q.sqHead; n > q.q.Entries() {
		q.breakLocked(fmt.Sprintf("sq_tail %d is %d ahead of sq_head %d (depth %d)", tail, n, q.sqHead, q.q.Entries()))
		q.mu.Unlock()
		return
	}
	for q.sqHead != tail && q.inflight < q.q.Entries() && !q.broken {
		e := q.q.ReadSQE(q.sqHead)
		q.sqHead++
		q.inflight++
		st := &q.ss.s.data
		if hw := uint64(q.inflight); hw > st.highWater.Load() {
			st.highWater.Store(hw) // advice: a lost race loses one sample
		}
		o, errno := q.ss.prepare(e)
		if errno != 0 {
			w.postLocked(q, e.UserData, -int64(errno))
			continue
		}
		o.q = q
		ops = append(ops, o)
	}
	q.q.SQHead().Store(q.sqHead)
	q.mu.Unlock()
	for i, o := range ops {
		w.start(o)
		ops[i] = nil
	}
	w.scratch = ops[:0]
}

// breakLocked ends the session of a client that broke the queue's
// protocol: its calls then fail with ENOTCONN instead of waiting for
// completions that will never come; every other session goes on.
func (q *opQueue) breakLocked(why string) {
	if q.broken {
		return
	}
	q.broken = true
	q.ss.s.logger.Printf("session %d: op queue broken by the client, ending the session: %s", q.ss.id, why)
	unix.Shutdown(q.ss.fd, unix.SHUT_RDWR) // the session's goroutine sees EOF and cleans up
}

// postLocked publishes a completion and counts the op as done.
func (w *worker) postLocked(q *opQueue, ud uint64, res int64) {
	q.inflight--
	q.ss.s.data.ops.Add(1)
	if res < 0 {
		q.ss.s.data.errors.Add(1)
	}
	if q.broken || q.closing {
		return
	}
	head := q.q.CQHead().Load()
	if q.cqTail-head >= q.q.Entries() {
		q.breakLocked(fmt.Sprintf("completion queue full (cq_head %d, cq_tail %d): more ops in flight than its depth", head, q.cqTail))
		return
	}
	q.q.WriteCQE(q.cqTail, opq.CQE{UserData: ud, Res: res})
	q.cqTail++
	q.q.CQTail().Store(q.cqTail)
	if w.wakes == nil {
		w.wakes = map[*opQueue]bool{}
	}
	if !w.wakes[q] {
		w.wakes[q] = true
		q.refs.Add(1) // the mapping must outlive notifyClients
	}
}

// notifyClients writes the completion eventfd of each queue that got
// completions, when its client asked to be woken.
func (w *worker) notifyClients() {
	for q := range w.wakes {
		if q.q.CQWake().Load() != 0 {
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			unix.Write(q.evfd, one[:])
		}
		delete(w.wakes, q)
		q.put()
	}
}

// start runs the write hook and starts the op's I/O.
func (w *worker) start(o *op) {
	q := o.q
	if o.e.Opcode != opq.OpFsync && o.e.Len == 0 {
		w.finish(o, 0)
		return
	}
	if o.e.Opcode == opq.OpWrite {
		if q.ss.priv.Uid != 0 {
			// As write(2) by this peer would (the fs package's kill-priv);
			// the invalidation after the write drops the kernel's cached
			// mode.
			o.at.f.h.KillPriv(o.at.fd, q.ss.priv)
		}
		if hooks := q.ss.s.hooks; hooks != nil && hooks.OnWrite != nil {
			if hooks.CopyForHooks {
				o.buf = append([]byte(nil), o.buf...)
				o.copy = true
				q.ss.s.data.copiedBytes.Add(uint64(len(o.buf)))
			}
			hooks.OnWrite(o.at.f.hookInfo(q.ss.id, int64(o.e.FileOff), true), o.buf)
		}
	}
	w.submitOp(o)
}

// prepare checks a descriptor against the session's attachments and
// arenas and takes references on what it uses.
func (ss *session) prepare(e opq.SQE) (*op, unix.Errno) {
	if e.Flags != 0 {
		return nil, unix.EINVAL
	}
	var need uint32
	switch e.Opcode {
	case opq.OpRead:
		need = wire.AttachRead
	case opq.OpWrite:
		need = wire.AttachWrite
	case opq.OpFsync:
		if e.OpFlags&^opq.FsyncDatasync != 0 {
			return nil, unix.EINVAL
		}
	default:
		return nil, unix.EINVAL
	}
	if e.Opcode != opq.OpFsync && e.OpFlags != 0 {
		return nil, unix.EINVAL
	}
	at := ss.s.lookupFile(ss, e.FileID)
	if at == nil {
		return nil, unix.EBADF
	}
	if at.mode&need != need {
		at.put()
		return nil, unix.EBADF
	}
	o := &op{e: e, at: at}
	if e.Opcode == opq.OpFsync || e.Len == 0 {
		return o, 0
	}
	sa := ss.lookupArena(e.ArenaID)
	if sa == nil {
		at.put()
		return nil, unix.EBADF
	}
	size := uint64(sa.a.Size())
	if e.ArenaOff > size || e.Len > size-e.ArenaOff || e.FileOff > math.MaxInt64-e.Len {
		sa.put()
		at.put()
		return nil, unix.EINVAL
	}
	o.sa = sa
	o.buf = sa.a.Bytes()[e.ArenaOff : e.ArenaOff+e.Len]
	return o, 0
}

// InlineMax is the largest read or write a worker does itself, with
// pread/pwrite between the arena's mapping and the backing file, instead
// of through its ring: on tmpfs io_uring hands every READ_FIXED and
// WRITE_FIXED to an io-wq thread (io_uring:io_uring_queue_async_work
// fires once per op), two extra context switches that cost more than a
// small copy takes. Larger ops go through the ring with fixed buffers.
const InlineMax = 64 << 10

// submitOp prepares the op's next piece of I/O in the worker's ring, or
// does a small read or write at once (InlineMax).
func (w *worker) submitOp(o *op) {
	if o.e.Opcode != opq.OpFsync && o.e.Len <= InlineMax {
		buf := o.buf[o.done:]
		off := int64(o.e.FileOff + o.done)
		var n int
		var err error
		for {
			if o.e.Opcode == opq.OpRead {
				n, err = unix.Pread(o.at.fd, buf, off)
			} else {
				n, err = unix.Pwrite(o.at.fd, buf, off)
			}
			if err != unix.EINTR {
				break
			}
		}
		res := int32(n)
		if err != nil {
			res = -int32(err.(unix.Errno))
		}
		w.progress(o, res)
		return
	}
	sqe := w.sqe()
	if sqe == nil {
		w.finish(o, -int64(unix.EBUSY))
		return
	}
	var idx uint32
	if n := len(w.freeOps); n > 0 {
		idx = w.freeOps[n-1]
		w.freeOps = w.freeOps[:n-1]
		w.ops[idx] = o
	} else {
		idx = uint32(len(w.ops))
		w.ops = append(w.ops, o)
	}
	o.q.refs.Add(1)
	ud := tag(kindOp, uint64(idx))
	fd := o.at.fd
	if o.at.fixed {
		fd = int(o.at.slot)
		defer ring.UseFixedFile(sqe) // after the prep, which sets the flags
	}
	if o.e.Opcode == opq.OpFsync {
		ring.PrepFsync(sqe, fd, o.e.OpFlags, ud)
		return
	}
	buf := o.buf[o.done:]
	off := o.e.FileOff + o.done
	fixed := o.sa.registered && !o.copy
	switch {
	case o.e.Opcode == opq.OpRead && fixed:
		ring.PrepReadFixed(sqe, fd, buf, off, uint16(o.sa.slot), ud)
	case o.e.Opcode == opq.OpRead:
		ring.PrepRead(sqe, fd, buf, off, ud)
	case fixed:
		ring.PrepWriteFixed(sqe, fd, buf, off, uint16(o.sa.slot), ud)
	default:
		ring.PrepWrite(sqe, fd, buf, off, ud)
	}
}

func (w *worker) busyOps() int { return len(w.ops) - len(w.freeOps) }

// completed handles an I/O completion: short transfers go on where they
// stopped, the rest finish.
func (w *worker) completed(idx uint32, res int32) {
	if int(idx) >= len(w.ops) || w.ops[idx] == nil {
		return
	}
	o := w.ops[idx]
	w.ops[idx] = nil
	w.freeOps = append(w.freeOps, idx)
	defer o.q.put() // after the completion is posted
	w.progress(o, res)
}

// progress accounts one transfer of res bytes (or -errno) and goes on
// where a short one stopped, or finishes the op.
func (w *worker) progress(o *op, res int32) {
	switch {
	case res < 0:
		if o.done > 0 {
			w.finish(o, int64(o.done)) // what moved before the error
		} else {
			w.finish(o, int64(res))
		}
	case o.e.Opcode == opq.OpFsync:
		w.finish(o, 0)
	case res == 0: // end of file (read), or a write that cannot go on
		w.finish(o, int64(o.done))
	default:
		o.done += uint64(res)
		if o.done < o.e.Len {
			w.submitOp(o)
			return
		}
		w.finish(o, int64(o.done))
	}
}

// finish completes an op: cache coherence and hooks first, then the
// completion the client sees.
func (w *worker) finish(o *op, res int64) {
	q, s := o.q, o.q.ss.s
	if res > 0 {
		switch o.e.Opcode {
		case opq.OpWrite:
			// The kernel may cache this file's pages and size: drop them so
			// readers through the mount see what was just written.
			s.invalidate(o.at.f, int64(o.e.FileOff), res)
			s.data.writeBytes.Add(uint64(res))
		case opq.OpRead:
			if hooks := s.hooks; hooks != nil && hooks.OnRead != nil {
				// The path walk of hookInfo only when a hook wants it.
				hooks.OnRead(o.at.f.hookInfo(q.ss.id, int64(o.e.FileOff), true), o.buf[:res])
			}
			s.data.readBytes.Add(uint64(res))
		}
		if !o.copy {
			s.data.zeroCopyBytes.Add(uint64(res))
		}
	}
	if o.sa != nil {
		o.sa.put()
	}
	o.at.put()
	q.mu.Lock()
	w.postLocked(q, o.e.UserData, res)
	q.mu.Unlock()
}

// dataStats are the ring path's counters.
type dataStats struct {
	ops, errors           atomic.Uint64
	readBytes, writeBytes atomic.Uint64
	zeroCopyBytes         atomic.Uint64
	copiedBytes           atomic.Uint64
	highWater             atomic.Uint64
}

// invalidate drops the kernel's cached pages [off, off+n) and attributes
// of f, from a worker thread (never a FUSE thread: it may wait on page
// locks of READs in flight).
func (s *sessions) invalidate(f *file, off, n int64) {
	if s.cb == nil {
		return
	}
	if err := s.cb.InvalidateNow(f.h.NodeID(), off, n); err != nil && err != unix.ENOTCONN {
		s.logger.Printf("invalidate node %d [%d, +%d): %v", f.h.NodeID(), off, n, err)
	}
}
