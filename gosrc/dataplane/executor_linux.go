package dataplane

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"sync"

	"github.com/zcfuse/zcfuse/gosrc/ring"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// Executor is the data plane: one worker per CPU, each a locked OS thread
// pinned to its CPU that owns an io_uring. A worker waits in its ring for
// everything at once: doorbells of the client queues it serves (an
// eventfd READ each), the I/O it started, and jobs other goroutines hand
// it through its Waker.
//
// Shared arenas are registered in a sparse fixed-buffer table. A table
// belongs to one ring and a SINGLE_ISSUER ring accepts registrations only
// from its owner thread, so every worker keeps its own table with the same
// slots: an arena is registered once per worker (and its pages count once
// per ring against a non-root server's RLIMIT_MEMLOCK).
//
// Attached files are registered the same way, in a sparse file table of
// FileSlots entries per worker, so an op costs the kernel no fd lookup;
// when the table is full a file is served by its fd.
type Executor struct {
	cfg     Config
	slots   uint32
	workers []*worker
	bufs    slotPool
	files   slotPool
	stats   counters
}

// Config configures an Executor.
type Config struct {
	// Slots is the size of the fixed-buffer table (every arena of every
	// session of the server shares it).
	Slots uint32
	// Workers is the number of worker threads; 0 or less: one per CPU
	// this process may run on.
	Workers int
	// Invalidator drops the kernel's cached pages and attributes of a
	// node after a ring write; nil: no mount (tests), nothing to drop.
	Invalidator Invalidator
	// Logger takes what goes wrong that no caller can be told.
	Logger *log.Logger
	// ThreadUser, when set, is the uid and gid the worker threads take
	// before they create their rings. io_uring charges registered buffers
	// to the ring creator's RLIMIT_MEMLOCK unless it has CAP_IPC_LOCK, so
	// this gives a root process the workers of a non-root server (tests of
	// the memlock budget).
	ThreadUser *unix.Ucred
}

// Invalidator drops the kernel's cache of a node's pages [off, off+n) and
// its attributes, synchronously: fusering.Notifier.InvalidateNow.
type Invalidator interface {
	InvalidateNow(node uint64, off, n int64) error
}

// FileSlots is the size of each worker's registered-file table.
const FileSlots = 4096

// slotPool hands out the slots of a sparse table.
type slotPool struct {
	mu   sync.Mutex
	n    uint32
	free []uint32 // lowest last
}

func (p *slotPool) init(n uint32) {
	p.n = n
	for s := n; s > 0; s-- {
		p.free = append(p.free, s-1)
	}
}

func (p *slotPool) get() (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	s := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return s, true
}

func (p *slotPool) put(s uint32) {
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

func (p *slotPool) used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.n) - len(p.free)
}

type execJob struct {
	fn   func(*worker) error
	errc chan error
}

// ErrNoMemlock reports that the kernel refused to pin an arena's pages
// (RLIMIT_MEMLOCK without CAP_IPC_LOCK): serve it without a fixed buffer.
var ErrNoMemlock = errors.New("no memlock budget to register the buffer")

// Completion tags: the kind in the top byte, an index below.
const (
	kindWake   = 1
	kindBell   = 2
	kindOp     = 3
	kindCancel = 4
	kindDelay  = 5 // a doorbell's back-off (delayBell)
	kindShift  = 56
	tagMask    = 1<<kindShift - 1
)

func tag(kind int, idx uint64) uint64 { return uint64(kind)<<kindShift | idx&tagMask }

// workerEntries is each worker ring's submission queue size.
const workerEntries = 256

// New starts the workers, each with its ring and tables, and the
// goroutine of each that takes cache invalidations off it.
func New(cfg Config) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	n := cfg.Workers
	var cpus []int
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		for c := 0; c < len(set)*64 && len(cpus) < set.Count(); c++ {
			if set.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
	}
	if len(cpus) == 0 {
		cpus = []int{-1}
	}
	if n <= 0 {
		n = len(cpus)
	}
	e := &Executor{cfg: cfg, slots: cfg.Slots}
	e.bufs.init(cfg.Slots)
	e.files.init(FileSlots)
	for i := range n {
		w := &worker{e: e, index: i, cpu: cpus[i%len(cpus)], done: make(chan struct{}),
			bells: map[uint64]*doorbell{}}
		started := make(chan error, 1)
		go w.run(started)
		if err := <-started; err != nil {
			e.Close()
			return nil, err
		}
		e.workers = append(e.workers, w)
		w.inval.start(w)
	}
	return e, nil
}

// worker is one data-plane thread and its ring.
type worker struct {
	e     *Executor
	index int
	cpu   int // pinned to; -1: not pinned
	tid   int // the thread's id (its CPU time is in /proc)
	r     *ring.Ring
	waker *ring.Waker

	mu     sync.Mutex
	queue  []execJob
	closed bool
	done   chan struct{}

	// Owner-thread state.
	bells    map[uint64]*doorbell
	nextBell uint64
	ops      []*Op
	freeOps  []uint32
	wakes    map[*Queue]bool // queues that got completions this round
	scratch  []*Op
	polled   map[*Queue]*polling // poll-mode queues and their spin
	// written are the ring writes of this round whose node's cache must
	// be dropped before their completions are posted (flushWritten).
	written []written
	// inval takes this worker's invalidations when it is busy.
	inval invalidations
}

func (w *worker) run(started chan<- error) {
	defer close(w.done)
	runtime.LockOSThread() // for good: the ring belongs to this thread
	w.tid = unix.Gettid()
	if err := w.setup(); err != nil {
		if w.r != nil {
			w.r.Close()
		}
		if w.waker != nil {
			w.waker.Close()
			w.waker = nil
		}
		started <- err
		return
	}
	defer w.r.Close()
	started <- nil
	w.loop()
}

func (w *worker) setup() error {
	if u := w.e.cfg.ThreadUser; u != nil {
		// Raw system calls change this thread's credentials only (Go's
		// Setuid would change every thread's).
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.Gid), uintptr(u.Gid), uintptr(u.Gid)); errno != 0 {
			return fmt.Errorf("executor setresgid %d: %w", u.Gid, errno)
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.Uid), uintptr(u.Uid), uintptr(u.Uid)); errno != 0 {
			return fmt.Errorf("executor setresuid %d: %w", u.Uid, errno)
		}
	}
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		_ = unix.SchedSetaffinity(0, &set) // advice: an offline CPU just leaves it unpinned
	}
	var err error
	if w.r, err = ring.New(ring.Config{Entries: workerEntries, SingleIssuer: true}); err != nil {
		return fmt.Errorf("executor ring: %w", err)
	}
	if err := w.r.RegisterBuffersSparse(w.e.slots); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	if err := w.r.RegisterFilesSparse(FileSlots); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	if w.waker, err = ring.NewWaker(tag(kindWake, 0)); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	return w.waker.Arm(w.r)
}

// loop serves completions until the worker is closed. While it polls
// queues (poll mode) it spins instead of sleeping in the ring.
func (w *worker) loop() {
	for {
		var cqe *uapi.CQE
		if len(w.polled) == 0 {
			var err error
			if cqe, err = w.r.WaitCQE(-1); err != nil {
				w.fail(fmt.Errorf("executor wait: %w", err))
				return
			}
		} else {
			if w.busyOps() > 0 {
				w.r.Submit() // reaps: with DEFER_TASKRUN completions need an enter
			}
			cqe = w.r.PeekCQE()
			w.poll()
		}
		for ; cqe != nil; cqe = w.r.PeekCQE() {
			ud, res := cqe.UserData, cqe.Res
			w.r.CQESeen()
			switch ud >> kindShift {
			case kindWake:
				if !w.runQueued() {
					w.shutdown()
					return
				}
				if err := w.waker.Arm(w.r); err != nil {
					w.fail(err)
					return
				}
			case kindBell:
				w.rang(ud&tagMask, res)
			case kindDelay:
				w.bellDelayed(ud&tagMask, res)
			case kindOp:
				w.completed(uint32(ud&tagMask), res)
			}
		}
		w.flushWritten()
		w.notifyClients()
		if _, err := w.r.Submit(); err != nil {
			w.fail(fmt.Errorf("executor submit: %w", err))
			return
		}
	}
}

// sqe returns a submission entry, submitting what is prepared when the
// queue is full.
func (w *worker) sqe() *uapi.SQE {
	for {
		if s := w.r.GetSQE(); s != nil {
			return s
		}
		if _, err := w.r.Submit(); err != nil {
			return nil
		}
	}
}

// runQueued runs the queued jobs on the owner thread; false once closed.
func (w *worker) runQueued() bool {
	w.mu.Lock()
	jobs, closed := w.queue, w.closed
	w.queue = nil
	w.mu.Unlock()
	for _, j := range jobs {
		j.errc <- j.fn(w)
	}
	return !closed
}

// shutdown cancels what is in flight and waits for it, so no kernel write
// lands in memory that is about to be freed.
func (w *worker) shutdown() {
	for q := range w.polled {
		delete(w.polled, q)
		q.put()
	}
	for id, b := range w.bells {
		w.cancelBell(id, b)
	}
	for len(w.bells) > 0 || w.busyOps() > 0 {
		cqe, err := w.r.WaitCQE(-1)
		if err != nil {
			return
		}
		ud, res := cqe.UserData, cqe.Res
		w.r.CQESeen()
		switch ud >> kindShift {
		case kindBell:
			w.rang(ud&tagMask, res)
		case kindDelay:
			w.bellDelayed(ud&tagMask, res)
		case kindOp:
			w.completed(uint32(ud&tagMask), res)
		}
		w.r.Submit()
		w.flushWritten()
	}
	w.flushWritten()
	w.notifyClients()
}

// fail answers every queued and later job with err.
func (w *worker) fail(err error) {
	w.mu.Lock()
	jobs := w.queue
	w.queue, w.closed = nil, true
	w.mu.Unlock()
	for _, j := range jobs {
		j.errc <- err
	}
}

// do runs fn on the owner thread and returns its error.
func (w *worker) do(fn func(*worker) error) error {
	errc := make(chan error, 1)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("executor closed: %w", unix.ESHUTDOWN)
	}
	w.queue = append(w.queue, execJob{fn, errc})
	err := w.waker.Wake() // under mu: close() closes the waker under it too
	w.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	case <-w.done:
		select {
		case err := <-errc:
			return err
		default:
			return fmt.Errorf("executor stopped: %w", unix.ESHUTDOWN)
		}
	}
}

// RegisterBuffer puts buf (mmap'd memory, at most 1 GiB) into a free
// slot of every worker's table. It returns ErrNoMemlock (wrapped) when
// the kernel refuses to pin the pages, and ENOSPC when the table is full.
// Never from a worker thread (it waits for every worker), as the other
// registrations.
func (e *Executor) RegisterBuffer(buf []byte) (uint32, error) {
	slot, ok := e.bufs.get()
	if !ok {
		return 0, fmt.Errorf("all %d fixed-buffer slots in use: %w", e.slots, unix.ENOSPC)
	}
	err := e.everywhere(func(w *worker) error { return w.r.UpdateBuffers(slot, [][]byte{buf}) },
		func(w *worker) error { return w.r.UpdateBuffers(slot, [][]byte{nil}) })
	if err != nil {
		e.bufs.put(slot)
		if errors.Is(err, unix.ENOMEM) {
			return 0, fmt.Errorf("%w: %w", ErrNoMemlock, err)
		}
		return 0, err
	}
	return slot, nil
}

// UnregisterBuffer empties slot in every table; the kernel unpins the
// pages once no I/O uses them.
func (e *Executor) UnregisterBuffer(slot uint32) error {
	err := e.everywhere(func(w *worker) error { return w.r.UpdateBuffers(slot, [][]byte{nil}) }, nil)
	e.bufs.put(slot)
	return err
}

// RegisterFile puts fd in a free slot of every worker's file table (each
// ring holds its own reference); ENOSPC when the table is full.
func (e *Executor) RegisterFile(fd int) (uint32, error) {
	slot, ok := e.files.get()
	if !ok {
		return 0, fmt.Errorf("all %d registered-file slots in use: %w", FileSlots, unix.ENOSPC)
	}
	err := e.everywhere(func(w *worker) error { return w.r.UpdateFiles(slot, []int32{int32(fd)}) },
		func(w *worker) error { return w.r.UpdateFiles(slot, []int32{-1}) })
	if err != nil {
		e.files.put(slot)
		return 0, err
	}
	return slot, nil
}

// UnregisterFile empties a file slot; ops in flight keep their reference.
func (e *Executor) UnregisterFile(slot uint32) error {
	err := e.everywhere(func(w *worker) error { return w.r.UpdateFiles(slot, []int32{-1}) }, nil)
	e.files.put(slot)
	return err
}

// everywhere runs fn on every worker; when one fails, undo runs on those
// that had succeeded (if undo is not nil) and the error is returned. Never
// call it from a worker thread: it waits for every worker.
func (e *Executor) everywhere(fn, undo func(*worker) error) error {
	var errs []error
	for i, w := range e.workers {
		if err := w.do(fn); err != nil {
			if undo == nil {
				errs = append(errs, err)
				continue
			}
			for _, done := range e.workers[:i] {
				done.do(undo)
			}
			return err
		}
	}
	return errors.Join(errs...)
}

// Close stops every worker, then their invalidation goroutines; closing a
// ring unpins its buffers. Close every queue first.
func (e *Executor) Close() {
	for _, w := range e.workers {
		w.mu.Lock()
		w.closed = true
		if w.waker != nil {
			w.waker.Wake()
		}
		w.mu.Unlock()
	}
	for _, w := range e.workers {
		<-w.done
		w.mu.Lock()
		if w.waker != nil {
			w.waker.Close()
			w.waker = nil
		}
		w.mu.Unlock()
	}
	for _, w := range e.workers {
		w.inval.stop()
	}
}
