package server

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/zcfuse/zcfuse/gosrc/ring"
	"golang.org/x/sys/unix"
)

// executor owns the io_uring that moves zero-copy data, and with it the
// sparse fixed-buffer table where shared arenas are registered. A
// SINGLE_ISSUER ring accepts submissions and registrations only from its
// owner thread, so every change to the table runs there: callers hand it
// a function and wake the thread through the ring's eventfd Waker.
type executor struct {
	r     *ring.Ring
	waker *ring.Waker
	slots uint32

	mu     sync.Mutex
	free   []uint32 // free slots, lowest last
	queue  []execJob
	closed bool

	done chan struct{}
}

type execJob struct {
	fn   func(*ring.Ring) error
	errc chan error
}

// errNoMemlock reports that the kernel refused to pin an arena's pages
// (RLIMIT_MEMLOCK without CAP_IPC_LOCK): serve it without a fixed buffer.
var errNoMemlock = errors.New("no memlock budget to register the buffer")

const tagExecWake = 1

// newExecutor starts the owner thread with a table of slots buffers.
func newExecutor(slots uint32) (*executor, error) {
	e := &executor{slots: slots, done: make(chan struct{})}
	for s := slots; s > 0; s-- {
		e.free = append(e.free, s-1)
	}
	started := make(chan error, 1)
	go e.run(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return e, nil
}

// executorUser, when set (by tests), is the uid and gid the executor's
// thread takes before it creates its ring. io_uring charges registered
// buffers to the ring creator's RLIMIT_MEMLOCK unless it has
// CAP_IPC_LOCK, so this makes the thread a non-root server's executor.
var executorUser *unix.Ucred

func (e *executor) run(started chan<- error) {
	defer close(e.done)
	runtime.LockOSThread() // for good: the ring belongs to this thread
	var err error
	if u := executorUser; u != nil {
		// Raw syscalls change this thread's credentials only (Go's
		// Setuid would change every thread's).
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.Gid), uintptr(u.Gid), uintptr(u.Gid)); errno != 0 {
			started <- fmt.Errorf("executor setresgid %d: %w", u.Gid, errno)
			return
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.Uid), uintptr(u.Uid), uintptr(u.Uid)); errno != 0 {
			started <- fmt.Errorf("executor setresuid %d: %w", u.Uid, errno)
			return
		}
	}
	if e.r, err = ring.New(ring.Config{Entries: 64, SingleIssuer: true}); err != nil {
		started <- fmt.Errorf("executor ring: %w", err)
		return
	}
	defer e.r.Close()
	if err = e.r.RegisterBuffersSparse(e.slots); err == nil {
		e.waker, err = ring.NewWaker(tagExecWake)
	}
	if err == nil {
		err = e.waker.Arm(e.r)
	}
	if err != nil {
		if e.waker != nil {
			e.waker.Close()
		}
		started <- fmt.Errorf("executor: %w", err)
		return
	}
	// The waker outlives this thread: close() closes it once no caller
	// can wake it any more.
	started <- nil
	for {
		cqe, err := e.r.WaitCQE(-1)
		if err != nil {
			e.fail(fmt.Errorf("executor wait: %w", err))
			return
		}
		tag := cqe.UserData
		e.r.CQESeen()
		if tag != tagExecWake {
			continue // data operations arrive with the zero-copy ops
		}
		if !e.runQueued() {
			return
		}
		if err := e.waker.Arm(e.r); err != nil {
			e.fail(err)
			return
		}
	}
}

// runQueued runs the queued jobs on the owner thread; false once closed.
func (e *executor) runQueued() bool {
	e.mu.Lock()
	jobs, closed := e.queue, e.closed
	e.queue = nil
	e.mu.Unlock()
	for _, j := range jobs {
		j.errc <- j.fn(e.r)
	}
	return !closed
}

// fail answers every queued and later job with err.
func (e *executor) fail(err error) {
	e.mu.Lock()
	jobs := e.queue
	e.queue, e.closed = nil, true
	e.mu.Unlock()
	for _, j := range jobs {
		j.errc <- err
	}
}

// do runs fn on the owner thread and returns its error.
func (e *executor) do(fn func(*ring.Ring) error) error {
	errc := make(chan error, 1)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("executor closed: %w", unix.ESHUTDOWN)
	}
	e.queue = append(e.queue, execJob{fn, errc})
	err := e.waker.Wake() // under mu: close() closes the waker under it too
	e.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	case <-e.done:
		select {
		case err := <-errc:
			return err
		default:
			return fmt.Errorf("executor stopped: %w", unix.ESHUTDOWN)
		}
	}
}

// register puts buf (mmap'd memory, at most 1 GiB) into a free slot. It
// returns errNoMemlock (wrapped) when the kernel refuses to pin the
// pages, and ENOSPC when the table is full.
func (e *executor) register(buf []byte) (uint32, error) {
	e.mu.Lock()
	if len(e.free) == 0 {
		e.mu.Unlock()
		return 0, fmt.Errorf("all %d fixed-buffer slots in use: %w", e.slots, unix.ENOSPC)
	}
	slot := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	e.mu.Unlock()
	err := e.do(func(r *ring.Ring) error { return r.UpdateBuffers(slot, [][]byte{buf}) })
	if err != nil {
		e.release(slot)
		if errors.Is(err, unix.ENOMEM) {
			return 0, fmt.Errorf("%w: %w", errNoMemlock, err)
		}
		return 0, err
	}
	return slot, nil
}

// unregister empties slot; the kernel unpins the pages once no I/O uses them.
func (e *executor) unregister(slot uint32) error {
	err := e.do(func(r *ring.Ring) error { return r.UpdateBuffers(slot, [][]byte{nil}) })
	e.release(slot)
	return err
}

func (e *executor) release(slot uint32) {
	e.mu.Lock()
	e.free = append(e.free, slot)
	e.mu.Unlock()
}

// used is the number of occupied slots.
func (e *executor) used() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int(e.slots) - len(e.free)
}

// close stops the owner thread; the ring's close unpins every buffer.
func (e *executor) close() {
	e.mu.Lock()
	e.closed = true
	if e.waker != nil {
		e.waker.Wake()
	}
	e.mu.Unlock()
	<-e.done
	e.mu.Lock()
	if e.waker != nil {
		e.waker.Close()
		e.waker = nil
	}
	e.mu.Unlock()
}
