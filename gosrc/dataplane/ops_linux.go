package dataplane

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/ring"
	"golang.org/x/sys/unix"
)

// File is the backing file an op reads or writes, as its Source resolved
// it.
type File struct {
	Fd    int    // a descriptor the source keeps open until Finish
	Slot  uint32 // in the workers' registered-file tables, when Fixed
	Fixed bool
	// Node is the kernel's node id of the file: its cached pages and
	// attributes are dropped after a write (0: none to drop).
	Node uint64
}

// Buffer is where an op's bytes are: a piece of a shared arena.
type Buffer struct {
	Bytes []byte
	Slot  uint32 // in the fixed-buffer table, when Fixed
	Fixed bool
}

// Op is one descriptor being served. The Source fills the exported
// fields in Prepare; the executor owns the rest.
type Op struct {
	SQE  opq.SQE
	File File
	Buf  Buffer
	// Ctx is the source's own state of the op (the references Finish
	// drops).
	Ctx any

	q      *Queue
	done   uint64 // bytes moved so far
	copied bool   // Buf.Bytes is a private copy (BeforeWrite)
	res    int64  // the result, once the I/O is over
}

// drain takes the descriptors the client published, up to the queue's
// depth in flight, checks them, and starts them; it returns how many it
// took.
func (w *worker) drain(q *Queue) int {
	ops := w.scratch[:0]
	q.mu.Lock()
	if q.broken || q.closing {
		q.mu.Unlock()
		return 0
	}
	tail := q.q.SQTail().Load()
	if n := tail - q.sqHead; n > q.q.Entries() {
		q.breakLocked(fmt.Sprintf("sq_tail %d is %d ahead of sq_head %d (depth %d)", tail, n, q.sqHead, q.q.Entries()))
		q.mu.Unlock()
		return 0
	}
	st := &w.e.stats
	head := q.sqHead
	for q.sqHead != tail && q.inflight < q.q.Entries() && !q.broken {
		e := q.q.ReadSQE(q.sqHead)
		q.sqHead++
		q.inflight++
		if hw := uint64(q.inflight); hw > st.highWater.Load() {
			st.highWater.Store(hw) // advice: a lost race loses one sample
		}
		o, errno := q.src.Prepare(e)
		if errno != 0 {
			w.postLocked(q, e.UserData, -int64(errno))
			continue
		}
		o.q = q
		ops = append(ops, o)
	}
	q.q.SQHead().Store(q.sqHead)
	took := int(q.sqHead - head)
	q.mu.Unlock()
	for i, o := range ops {
		w.start(o)
		ops[i] = nil
	}
	w.scratch = ops[:0]
	return took
}

// breakLocked ends the session of a client that broke the queue's
// protocol; every other session goes on.
func (q *Queue) breakLocked(why string) {
	if q.broken {
		return
	}
	q.broken = true
	q.src.Broken(why)
}

// postLocked publishes a completion and counts the op as done; it
// reports whether the client may need a wake-up.
func (q *Queue) postLocked(ud uint64, res int64) bool {
	q.inflight--
	st := &q.e.stats
	st.ops.Add(1)
	if res < 0 {
		st.errors.Add(1)
	}
	if q.broken || q.closing {
		return false
	}
	head := q.q.CQHead().Load()
	if q.cqTail-head >= q.q.Entries() {
		q.breakLocked(fmt.Sprintf("completion queue full (cq_head %d, cq_tail %d): more ops in flight than its depth", head, q.cqTail))
		return false
	}
	q.q.WriteCQE(q.cqTail, opq.CQE{UserData: ud, Res: res})
	q.cqTail++
	q.q.CQTail().Store(q.cqTail)
	return true
}

// wake writes the completion eventfd when the client asked to be woken.
func (q *Queue) wake() {
	if q.q.CQWake().Load() != 0 {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(q.evfd, one[:])
	}
}

// postLocked posts on the worker: the wake-up waits for the end of the
// round (notifyClients), one per queue however many completions it got.
func (w *worker) postLocked(q *Queue, ud uint64, res int64) {
	if !q.postLocked(ud, res) {
		return
	}
	if w.wakes == nil {
		w.wakes = map[*Queue]bool{}
	}
	if !w.wakes[q] {
		w.wakes[q] = true
		q.refs.Add(1) // the mapping must outlive notifyClients
	}
}

// notifyClients wakes each queue that got completions this round.
func (w *worker) notifyClients() {
	for q := range w.wakes {
		q.wake()
		delete(w.wakes, q)
		q.put()
	}
}

// start runs the source's write step and starts the op's I/O.
func (w *worker) start(o *Op) {
	if o.SQE.Opcode != opq.OpFsync && o.SQE.Len == 0 {
		w.finish(o, 0)
		return
	}
	if o.SQE.Opcode == opq.OpWrite {
		if c := o.q.src.BeforeWrite(o); c != nil {
			o.Buf.Bytes, o.copied = c, true
			w.e.stats.copiedBytes.Add(uint64(len(c)))
		}
	}
	w.submitOp(o)
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
func (w *worker) submitOp(o *Op) {
	if o.SQE.Opcode != opq.OpFsync && o.SQE.Len <= InlineMax {
		buf := o.Buf.Bytes[o.done:]
		off := int64(o.SQE.FileOff + o.done)
		var n int
		var err error
		for {
			if o.SQE.Opcode == opq.OpRead {
				n, err = unix.Pread(o.File.Fd, buf, off)
			} else {
				n, err = unix.Pwrite(o.File.Fd, buf, off)
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
		if o.done > 0 {
			w.finish(o, int64(o.done)) // what moved before the ring refused
		} else {
			w.finish(o, -int64(unix.EBUSY))
		}
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
	fd := o.File.Fd
	if o.File.Fixed {
		fd = int(o.File.Slot)
		defer ring.UseFixedFile(sqe) // after the prep, which sets the flags
	}
	if o.SQE.Opcode == opq.OpFsync {
		ring.PrepFsync(sqe, fd, o.SQE.OpFlags, ud)
		return
	}
	buf := o.Buf.Bytes[o.done:]
	off := o.SQE.FileOff + o.done
	fixed := o.Buf.Fixed && !o.copied
	switch {
	case o.SQE.Opcode == opq.OpRead && fixed:
		ring.PrepReadFixed(sqe, fd, buf, off, uint16(o.Buf.Slot), ud)
	case o.SQE.Opcode == opq.OpRead:
		ring.PrepRead(sqe, fd, buf, off, ud)
	case fixed:
		ring.PrepWriteFixed(sqe, fd, buf, off, uint16(o.Buf.Slot), ud)
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
	defer o.q.put() // after the completion is posted, or handed off
	w.progress(o, res)
}

// progress accounts one transfer of res bytes (or -errno) and goes on
// where a short one stopped, or finishes the op.
func (w *worker) progress(o *Op, res int32) {
	switch {
	case res < 0:
		if o.done > 0 {
			w.finish(o, int64(o.done)) // what moved before the error
		} else {
			w.finish(o, int64(res))
		}
	case o.SQE.Opcode == opq.OpFsync:
		w.finish(o, 0)
	case res == 0: // end of file (read), or a write that cannot go on
		w.finish(o, int64(o.done))
	default:
		o.done += uint64(res)
		if o.done < o.SQE.Len {
			w.submitOp(o)
			return
		}
		w.finish(o, int64(o.done))
	}
}

// finish ends an op's I/O. A write that moved bytes waits for the end of
// the round (flushWritten): the kernel may cache the file's pages and
// size, and readers through the mount must see what was just written
// before the client hears it is done. Everything else completes now.
func (w *worker) finish(o *Op, res int64) {
	o.res = res
	if res > 0 {
		st := &w.e.stats
		switch o.SQE.Opcode {
		case opq.OpWrite:
			st.writeBytes.Add(uint64(res))
		case opq.OpRead:
			st.readBytes.Add(uint64(res))
		}
		if !o.copied {
			st.zeroCopyBytes.Add(uint64(res))
		}
		if o.SQE.Opcode == opq.OpWrite && o.File.Node != 0 && w.e.cfg.Invalidator != nil {
			o.q.refs.Add(1) // until posted
			w.written = append(w.written, written{o})
			return
		}
	}
	w.complete(o)
}

// complete lets the source finish the op and posts its completion (the
// wake-up comes with the round's, notifyClients).
func (w *worker) complete(o *Op) {
	q := o.q
	q.src.Finish(o, o.res)
	q.mu.Lock()
	w.postLocked(q, o.SQE.UserData, o.res)
	q.mu.Unlock()
}

// written is a ring write waiting for its node's cache to be dropped.
type written struct{ o *Op }

// flushWritten drops the kernel's cache for the writes of this round and
// then posts their completions, one invalidation per file for all its
// writes of the round. Writing an invalidation to /dev/fuse is a system
// call that may wait on the page locks of READs in flight through the
// mount, so the worker does it itself only when it has nothing else to
// serve (no completion waiting in its ring, no ring I/O in flight, no
// polled queue with ops waiting): then it costs the client no wake-up.
// Otherwise it hands the round's writes, in one batch, to its own
// invalidation goroutine, which invalidates and posts them, and goes on
// serving. A client that makes its invalidations slow delays others on
// its worker by a few invalidations at most (what arrives while the
// worker invalidates, and one per file per pass of the goroutine), and no
// other worker's clients.
func (w *worker) flushWritten() {
	if len(w.written) == 0 {
		return
	}
	if w.busy() && w.inval.handOff(w.written) {
		w.e.stats.handedOff.Add(uint64(len(w.written)))
		w.written = make([]written, 0, cap(w.written))
		return
	}
	w.settle(w.written, nil)
	clear(w.written)
	w.written = w.written[:0]
}

// busy reports whether the worker has other work waiting: a completion
// in its ring (a doorbell, I/O), ring I/O in flight, or a polled queue
// with ops published (past the server's own head).
func (w *worker) busy() bool {
	if w.busyOps() > 0 || w.r.PeekCQE() != nil {
		return true
	}
	for q := range w.polled {
		q.mu.Lock()
		waiting := q.q.SQTail().Load() != q.sqHead
		q.mu.Unlock()
		if waiting {
			return true
		}
	}
	return false
}

// settle completes writes: for each node among them, one invalidation of
// the range from the lowest to the highest byte they wrote, then their
// completions. On the worker (woken nil) the wake-ups come with the
// round's; on the invalidation goroutine each node's queues are woken as
// soon as its cache is clean, not after the whole batch.
func (w *worker) settle(ws []written, woken map[*Queue]bool) {
	// By node (each file's writes in their order), so each file's are
	// one run: n log n however many files a client writes.
	slices.SortStableFunc(ws, func(a, b written) int { return cmp.Compare(a.o.File.Node, b.o.File.Node) })
	for i := 0; i < len(ws); {
		node := ws[i].o.File.Node
		j := i
		lo, hi := int64(ws[i].o.SQE.FileOff), int64(0)
		for ; j < len(ws) && ws[j].o.File.Node == node; j++ {
			o := ws[j].o
			lo, hi = min(lo, int64(o.SQE.FileOff)), max(hi, int64(o.SQE.FileOff)+o.res)
		}
		w.e.invalidate(node, lo, hi-lo)
		for _, wr := range ws[i:j] {
			o, q := wr.o, wr.o.q
			if woken == nil {
				w.complete(o)
				q.put() // the reference finish took
				continue
			}
			q.src.Finish(o, o.res)
			q.mu.Lock()
			if q.postLocked(o.SQE.UserData, o.res) && !woken[q] {
				woken[q] = true
				q.refs.Add(1)
			}
			q.mu.Unlock()
			q.put() // the reference finish took
		}
		for q := range woken {
			q.wake()
			delete(woken, q)
			q.put()
		}
		i = j
	}
}

// invalidate drops the kernel's cached pages [off, off+n) of node, and
// its attributes. Never on a FUSE request thread: it may wait on page
// locks of READs in flight.
func (e *Executor) invalidate(node uint64, off, n int64) {
	if err := e.cfg.Invalidator.InvalidateNow(node, off, n); err != nil && err != unix.ENOTCONN {
		e.cfg.Logger.Printf("invalidate node %d [%d, +%d): %v", node, off, n, err)
	}
}

// invalidations is a worker's invalidation goroutine: it invalidates and
// posts the writes the worker hands it.
type invalidations struct {
	mu      sync.Mutex
	batches chan []written
	done    chan struct{}
}

// handOffDepth bounds the batches waiting: past it, the worker
// invalidates itself (back-pressure rather than an unbounded queue);
// maxPass bounds the writes one pass of the goroutine takes.
const (
	handOffDepth = 64
	maxPass      = 4096
)

func (iv *invalidations) start(w *worker) {
	if w.e.cfg.Invalidator == nil {
		return
	}
	iv.batches = make(chan []written, handOffDepth)
	iv.done = make(chan struct{})
	go func() {
		defer close(iv.done)
		woken := map[*Queue]bool{}
		var all []written
		for batch := range iv.batches {
			// Every batch waiting goes in one pass, so a file's writes
			// from many rounds cost one invalidation: a write waits for at
			// most one invalidation of each other file, however many
			// writes a client piles up on a slow one.
			all = append(all[:0], batch...)
		more:
			for len(all) < maxPass {
				select {
				case b, ok := <-iv.batches:
					if !ok {
						break more
					}
					all = append(all, b...)
				default:
					break more
				}
			}
			w.settle(all, woken)
			clear(all)
		}
	}()
}

// handOff queues a batch; false when it cannot (no goroutine, or it is
// far behind).
func (iv *invalidations) handOff(batch []written) bool {
	if iv.batches == nil {
		return false
	}
	select {
	case iv.batches <- batch:
		return true
	default:
		return false
	}
}

// stop ends the goroutine once every batch handed to it is done; the
// worker has ended.
func (iv *invalidations) stop() {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.batches == nil {
		return
	}
	close(iv.batches)
	<-iv.done
	iv.batches = nil
}
