package fusering

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/ring"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// Completion tags on a worker's ring.
const (
	tagEntry = 1
	tagWake  = 2
)

// ringWorker is one ring thread: an OS thread pinned to its queue's CPU
// that owns a SINGLE_ISSUER io_uring holding exactly one FUSE ring entry
// of that queue. The kernel gives a request only to an entry whose
// thread is waiting for one, so a handler that blocks traps nothing but
// its own request; queue depth comes from several workers per queue.
type ringWorker struct {
	c       *Conn
	qid     int
	r       *ring.Ring
	waker   *ring.Waker
	hdrMem  []byte // header page: req header at 0, iovec[2] at 512
	hdr     []byte
	payload []byte
	scratch []byte // private copy of non-WRITE input payloads
	tid     int
}

// startRings starts QueueDepth workers per queue and waits until each has
// registered its entry. On error the workers that did start are stopped.
func (c *Conn) startRings() error {
	n := c.nqueues * c.cfg.QueueDepth
	results := make(chan error, n)
	for q := 0; q < c.nqueues; q++ {
		for d := 0; d < c.cfg.QueueDepth; d++ {
			w := &ringWorker{c: c, qid: q}
			c.wg.Add(1)
			go w.run(results)
		}
	}
	var errs []error
	timeout := time.After(c.cfg.ReadyTimeout)
	for i := 0; i < n; i++ {
		select {
		case err := <-results:
			if err != nil {
				errs = append(errs, err)
			}
		case <-timeout:
			errs = append(errs, fmt.Errorf("ring entries not registered within %v: %w", c.cfg.ReadyTimeout, unix.ETIMEDOUT))
			i = n
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.mu.Lock()
		for _, w := range c.workers {
			w.waker.Wake()
		}
		c.mu.Unlock()
		return fmt.Errorf("FUSE-over-io_uring: %w", err)
	}
	return nil
}

func (w *ringWorker) run(registered chan<- error) {
	defer w.c.wg.Done()
	// The thread stays locked until the goroutine ends, so the Go runtime
	// retires it with its affinity and its ring.
	runtime.LockOSThread()
	if err := w.c.requestThread(); err != nil {
		registered <- fmt.Errorf("queue %d: %w", w.qid, err)
		return
	}
	defer requestThreads.Delete(unix.Gettid())
	if err := w.setup(); err != nil {
		w.teardown()
		registered <- fmt.Errorf("queue %d: %w", w.qid, err)
		return
	}
	w.c.mu.Lock()
	w.c.workers = append(w.c.workers, w)
	w.c.mu.Unlock()
	w.tid = unix.Gettid()
	registered <- nil
	w.loop()
	w.c.mu.Lock()
	for i, o := range w.c.workers {
		if o == w {
			w.c.workers = append(w.c.workers[:i], w.c.workers[i+1:]...)
			break
		}
	}
	w.c.mu.Unlock()
	w.teardown()
}

func (w *ringWorker) setup() error {
	var set unix.CPUSet
	set.Set(w.qid)
	// A possible CPU may be offline; the worker then runs unpinned.
	_ = unix.SchedSetaffinity(0, &set)

	var err error
	if w.r, err = ring.New(ring.Config{Entries: 4, SQE128: true, SingleIssuer: true}); err != nil {
		return err
	}
	if w.waker, err = ring.NewWaker(tagWake); err != nil {
		return err
	}
	if w.hdrMem, err = ring.Alloc(4096); err != nil {
		return err
	}
	if w.payload, err = ring.AllocHuge(MaxWrite); err != nil {
		return err
	}
	w.hdr = w.hdrMem[:uapi.FuseURingHeaderSize]
	iov := unsafe.Slice((*unix.Iovec)(unsafe.Pointer(&w.hdrMem[512])), 2)
	iov[0].Base = &w.hdr[0]
	iov[0].SetLen(len(w.hdr))
	iov[1].Base = &w.payload[0]
	iov[1].SetLen(len(w.payload))

	sqe := w.r.GetSQE()
	ring.PrepUringCmd(sqe, w.c.devFd, uapi.FuseURingCmdRegister, tagEntry)
	sqe.Addr = uint64(uintptr(unsafe.Pointer(&iov[0])))
	sqe.Len = 2
	w.putCmd(sqe, 0)
	if err := w.waker.Arm(w.r); err != nil {
		return err
	}
	if _, err := w.r.Submit(); err != nil {
		return fmt.Errorf("submit REGISTER: %w", err)
	}
	// A registration the kernel refuses completes at once; one it accepts
	// stays pending until a request arrives.
	if cqe := w.r.PeekCQE(); cqe != nil {
		res := cqe.Res
		w.r.CQESeen()
		return fmt.Errorf("REGISTER: %w", syscall.Errno(-res))
	}
	return nil
}

func (w *ringWorker) putCmd(sqe *uapi.SQE, commitID uint64) {
	cmd := w.r.Cmd(sqe)
	binary.NativeEndian.PutUint64(cmd[0:], 0)
	binary.NativeEndian.PutUint64(cmd[8:], commitID)
	binary.NativeEndian.PutUint16(cmd[16:], uint16(w.qid))
}

func (w *ringWorker) loop() {
	for {
		cqe, err := w.r.WaitCQE(-1)
		if err != nil {
			w.c.logger.Printf("queue %d: wait: %v", w.qid, err)
			return
		}
		tag, res := cqe.UserData, cqe.Res
		w.r.CQESeen()
		if tag == tagWake {
			return
		}
		if res < 0 {
			if e := syscall.Errno(-res); e != unix.ENOTCONN && e != unix.ECANCELED && !w.c.ending.Load() {
				w.c.logger.Printf("queue %d: ring entry ended: %v", w.qid, e)
			}
			return
		}
		w.handle()
		sqe := w.r.GetSQE()
		ring.PrepUringCmd(sqe, w.c.devFd, uapi.FuseURingCmdCommitAndFetch, tagEntry)
		w.putCmd(sqe, binary.NativeEndian.Uint64(w.hdr[uapi.FuseURingCommitIDOff:]))
	}
}

// handle serves the request in the entry's header and payload and leaves
// the reply there.
func (w *ringWorker) handle() {
	hdr := w.hdr
	total := int(binary.NativeEndian.Uint32(hdr[0:]))
	op := binary.NativeEndian.Uint32(hdr[4:])
	if op == opRead && w.c.readFd != nil && w.fastRead() {
		return
	}
	psz := int(binary.NativeEndian.Uint32(hdr[uapi.FuseURingPayloadSzOff:]))
	argSz := total - uapi.FuseInHeaderSize - psz
	if psz > len(w.payload) || argSz < 0 || argSz > uapi.FuseURingEntOff-uapi.FuseURingOpInOff {
		w.c.logger.Printf("queue %d: malformed %s request (len %d, payload %d)", w.qid, OpName(op), total, psz)
		putErrorHeader(hdr, hdr, syscall.EIO)
		w.c.cnt.errors.Add(1)
		binary.NativeEndian.PutUint32(hdr[uapi.FuseURingPayloadSzOff:], 0)
		return
	}
	in := [3][]byte{hdr[:uapi.FuseInHeaderSize], hdr[uapi.FuseURingOpInOff : uapi.FuseURingOpInOff+argSz], w.payload[:psz]}
	if op != opWrite && psz > 0 {
		// The payload buffer also receives the reply: give the handler a
		// private copy of inputs such as names and xattr values.
		if cap(w.scratch) < psz {
			w.scratch = make([]byte, psz)
		}
		in[2] = w.scratch[:psz]
		copy(in[2], w.payload[:psz])
	}
	out := [2][]byte{hdr[:uapi.FuseOutHeaderSize], w.payload}
	n := w.c.serve(chanRing, in[:], out[:])
	if n < uapi.FuseOutHeaderSize {
		// Every ring request needs a commit; a request the server would
		// not answer gets an error instead.
		putErrorHeader(hdr, hdr, syscall.EIO)
		n = uapi.FuseOutHeaderSize
	}
	binary.NativeEndian.PutUint32(hdr[uapi.FuseURingPayloadSzOff:], uint32(n-uapi.FuseOutHeaderSize))
}

func (w *ringWorker) teardown() {
	if w.r != nil {
		w.r.Close()
	}
	if w.waker != nil {
		w.waker.Close()
	}
	ring.Free(w.hdrMem)
	ring.Free(w.payload)
}
