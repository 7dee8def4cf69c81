package dataplane

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/ring"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
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
	poll     pollBudget

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
// write completes it, and the worker drains the queue. A doorbell of a
// throttled queue that brought nothing waits out the back-off in a
// TIMEOUT (delayed) before its READ is armed again.
type doorbell struct {
	q         *Queue
	fd        int
	buf       []byte // 8 bytes for the READ; the page behind holds the TIMEOUT's timespec
	canceling bool
	delayed   bool
}

// OpenQueue creates a queue of entries (a power of two up to
// opq.DefaultEntries) for src, with its doorbells armed. It returns
// the fds the client needs, in the order of the back channel's messages
// (memfd, completion eventfd, one doorbell per worker); the caller sends
// them and closes them.
func (exec *Executor) OpenQueue(src Source, entries uint32) (*Queue, []int, error) {
	if entries == 0 || entries&(entries-1) != 0 || entries > opq.DefaultEntries {
		return nil, nil, fmt.Errorf("op queue of %d entries: want a power of two up to %d: %w", entries, opq.DefaultEntries, unix.EINVAL)
	}
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

// delayBell queues a TIMEOUT of d after which the doorbell's READ is armed
// again (bellDelayed); the client's rings meanwhile add up in the eventfd
// and complete that READ at once.
func (w *worker) delayBell(id uint64, b *doorbell, d time.Duration) error {
	sqe := w.sqe()
	if sqe == nil {
		return fmt.Errorf("delay doorbell: submission queue full: %w", unix.EBUSY)
	}
	ts := (*uapi.Timespec)(unsafe.Pointer(&b.buf[:cap(b.buf)][64])) // ring.Alloc'd: not the Go heap
	*ts = uapi.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
	sqe.Opcode = uapi.OpTimeout
	sqe.Fd = -1
	sqe.Addr = uint64(uintptr(unsafe.Pointer(ts)))
	sqe.Len = 1
	sqe.UserData = tag(kindDelay, id)
	b.delayed = true
	return nil
}

// cancelBell asks the kernel to cancel the doorbell's READ or TIMEOUT;
// its completion (rang, bellDelayed) then frees it.
func (w *worker) cancelBell(id uint64, b *doorbell) {
	if b.canceling {
		return
	}
	b.canceling = true
	if sqe := w.sqe(); sqe != nil {
		sqe.Opcode, sqe.Addr = opAsyncCancel, tag(kindBell, id)
		if b.delayed {
			sqe.Opcode, sqe.Addr = opTimeoutRemove, tag(kindDelay, id)
		}
		sqe.UserData = tag(kindCancel, id)
	}
}

// IORING_OP_ASYNC_CANCEL and IORING_OP_TIMEOUT_REMOVE.
const (
	opAsyncCancel   = 14
	opTimeoutRemove = 12
)

// freeBell forgets a doorbell whose READ or TIMEOUT is over.
func (w *worker) freeBell(id uint64, b *doorbell) {
	delete(w.bells, id)
	unix.Close(b.fd)
	ring.Free(b.buf[:cap(b.buf)])
	b.q.put()
}

// rang handles a doorbell READ completion: the worker drains the queue.
// A doorbell that brought nothing counts against the queue (strike); once
// the queue is throttled, such a doorbell is armed again only when the
// back-off ends (maxBellDelay at most).
func (w *worker) rang(id uint64, res int32) {
	b := w.bells[id]
	if b == nil {
		return
	}
	if b.canceling || res == -int32(unix.ECANCELED) || (res < 0 && res != -int32(unix.EAGAIN)) {
		w.freeBell(id, b)
		return
	}
	q := b.q
	n := w.drain(q)
	now := time.Now()
	var throttled time.Duration
	if n == 0 {
		throttled = q.strike(now)
	} else if q.q.Mode().Load() == 1 {
		w.pollAsked(q, n, now)
	}
	var err error
	if throttled > 0 {
		err = w.delayBell(id, b, min(throttled, maxBellDelay))
	} else {
		err = w.armBell(id, b)
	}
	if err != nil {
		b.canceling = true // cannot wait for it any more: free it
		w.freeBell(id, b)
	}
}

// bellDelayed handles the completion of a doorbell's TIMEOUT.
func (w *worker) bellDelayed(id uint64, res int32) {
	b := w.bells[id]
	if b == nil {
		return
	}
	b.delayed = false
	if b.canceling || res == -int32(unix.ECANCELED) {
		w.freeBell(id, b)
		return
	}
	if err := w.armBell(id, b); err != nil {
		w.freeBell(id, b)
	}
}

// Poll mode's budget. A worker spins on a queue only while ops arrive:
// each descriptor it takes earns the queue pollCredit of spinning (up to
// maxSpin, and never longer than the client's spin), and the time it
// spins without finding one is spent from it. A queue whose credit runs
// out goes back to sleep mode (need_wake), as when its spin ends.
//
// The spin that finds nothing at the end of each spell (the credit, or
// the client's spin, run out) is wasted, the more so the fewer times the
// spell found ops, and a queue may waste wasteRate of a CPU in the long
// run, wasteBurst at once: past that its poll-mode requests are ignored
// (it is served as in sleep mode, by its doorbells) until its allowance
// is back. A busy client preempted now and then wastes a spin now and
// then; one that asks for spins it does not use (a doorbell with one op
// every millisecond, say) is held to wasteRate.
//
// A doorbell that brought nothing (in either mode) earns the queue a
// strike. Past maxStrikes within strikeWindow the queue is throttled for
// a back-off that doubles, from minBackoff up to maxBackoff, each time it
// is earned again, and starts over once the queue has behaved for
// quietTime: meanwhile its poll-mode requests are ignored, and a doorbell
// that brings nothing is armed again only when the back-off ends,
// maxBellDelay later at most (its rings meanwhile add up and wake the
// worker once). A client that rings only with ops published is never
// delayed (a throttled one that rings for nothing waits maxBellDelay at
// most).
//
// An idle or doorbell-spamming session thus costs the server a wake-up
// per doorbell per maxBellDelay and at most wasteRate of spinning; a
// client whose ops come faster than pollCredit keeps its worker spinning
// for it.
const (
	pollCredit   = 100 * time.Microsecond
	defaultSpin  = 50 * time.Microsecond
	maxSpin      = time.Millisecond
	wasteRate    = 100 // 1/100: 1% of a CPU
	wasteBurst   = 50 * time.Millisecond
	strikeWindow = 100 * time.Millisecond
	maxStrikes   = 4
	minBackoff   = 10 * time.Millisecond
	maxBackoff   = time.Second
	quietTime    = time.Second
	maxBellDelay = 50 * time.Millisecond
)

// polling is a worker's spell of spinning on one queue (owner thread).
type polling struct {
	last   time.Time     // when the worker last found descriptors
	credit time.Duration // how long it may spin without finding any
	found  int           // the times it found some since the spell began
}

// earn accounts n descriptors found at found, and served by now: the
// time between the last ones served and found was idle.
func (p *polling) earn(n int, found, now time.Time) {
	p.credit = min(max(p.credit-found.Sub(p.last), 0)+time.Duration(n)*pollCredit, maxSpin)
	p.last = now
	p.found++
}

// pollBudget is a queue's standing; Queue.mu guards it.
type pollBudget struct {
	// waste is the spin the queue may still waste (below zero: its
	// poll-mode requests are ignored), as of wasteAt.
	waste   time.Duration
	wasteAt time.Time
	// The empty doorbells in the window that began at window, and those
	// owed: doorbells that may find nothing through no fault of the
	// client's (a worker took their ops as it stopped polling).
	emptyBells, owed int
	window           time.Time
	until            time.Time     // throttled until then
	backoff          time.Duration // the next back-off
}

// refill brings the waste allowance up to now (q.mu held).
func (b *pollBudget) refill(now time.Time) {
	if b.wasteAt.IsZero() {
		b.waste = wasteBurst
	} else {
		b.waste = min(b.waste+now.Sub(b.wasteAt)/wasteRate, wasteBurst)
	}
	b.wasteAt = now
}

// wasted accounts d of spin that found nothing.
func (q *Queue) wasted(now time.Time, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := &q.poll
	b.refill(now)
	if b.waste > 0 && b.waste-d <= 0 {
		q.e.stats.backoffs.Add(1)
	}
	b.waste -= d
}

// strike counts a doorbell that brought nothing and starts a back-off
// past maxStrikes in a window; it returns how long the queue stays
// throttled (0: it is not).
func (q *Queue) strike(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.broken {
		return 0
	}
	b := &q.poll
	if b.owed > 0 {
		b.owed--
		return 0
	}
	if now.Before(b.until) {
		return b.until.Sub(now) // what wakes it during a back-off is its own
	}
	if now.Sub(b.window) > strikeWindow {
		b.window, b.emptyBells = now, 0
	}
	if b.emptyBells++; b.emptyBells <= maxStrikes {
		return 0
	}
	if b.backoff == 0 || now.Sub(b.until) > quietTime {
		b.backoff = minBackoff
	}
	b.until = now.Add(b.backoff)
	b.backoff = min(2*b.backoff, maxBackoff)
	b.window, b.emptyBells = b.until, 0
	q.e.stats.backoffs.Add(1)
	return b.until.Sub(now)
}

// owe forgives the doorbell the client may ring for ops a worker took
// while it set need_wake: it finds them gone.
func (q *Queue) owe() {
	q.mu.Lock()
	q.poll.owed = min(q.poll.owed+1, len(q.e.workers))
	q.mu.Unlock()
}

// mayPoll reports whether the queue's poll-mode requests are heard.
func (q *Queue) mayPoll(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.poll.refill(now)
	return q.poll.waste > 0 && !now.Before(q.poll.until) && !q.closing && !q.broken
}

// spin is how long the client asks the worker to spin, within bounds.
func (q *Queue) spin() time.Duration {
	spin := time.Duration(q.q.Spin().Load()) * time.Microsecond
	if spin <= 0 {
		spin = defaultSpin
	}
	return min(spin, maxSpin)
}

// pollAsked handles a doorbell that took n > 0 descriptors of a queue in
// poll mode: the worker spins on it, within its budget.
func (w *worker) pollAsked(q *Queue, n int, now time.Time) {
	if p := w.polled[q]; p != nil {
		p.earn(n, now, now)
		return
	}
	if !q.mayPoll(now) {
		return // throttled: sleep mode for it
	}
	if w.polled == nil {
		w.polled = map[*Queue]*polling{}
	}
	q.refs.Add(1)
	w.polled[q] = &polling{last: now, credit: min(time.Duration(n)*pollCredit, maxSpin)}
	q.q.NeedWake().Store(0)
}

// poll drains the polled queues that have new descriptors and lets go of
// those that found none within their credit and spin.
func (w *worker) poll() {
	now := time.Now()
	for q, p := range w.polled {
		// sq_head is only a hint (the client may scribble on it): drain
		// says what there really was.
		if q.q.SQTail().Load() != q.q.SQHead().Load() {
			if n := w.drain(q); n > 0 {
				p.earn(n, now, time.Now())
				continue
			}
		}
		if now.Sub(p.last) < min(p.credit, q.spin()) && q.q.Mode().Load() == 1 && !q.isClosing() {
			continue
		}
		q.q.NeedWake().Store(1)
		if q.q.SQTail().Load() != q.q.SQHead().Load() && !q.isClosing() {
			// An op slipped in before the flag: go on. The client may
			// have seen the flag and rung for it.
			if n := w.drain(q); n > 0 {
				q.owe()
				q.q.NeedWake().Store(0)
				p.earn(n, now, time.Now())
				continue
			}
		}
		delete(w.polled, q)
		q.wasted(now, now.Sub(p.last)/time.Duration(1+p.found))
		q.put()
	}
}

func (q *Queue) isClosing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing || q.broken
}
