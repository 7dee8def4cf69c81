package fusering

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

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
	hdr     []byte // hdrMem[:288], the entry's struct fuse_uring_req_header
	req     *uapi.FuseURingReqHeader
	in      *uapi.FuseInHeader  // in req.InOut: the request's header
	out     *uapi.FuseOutHeader // in req.InOut too: the reply's header
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
	if err := w.mapHeader(w.hdrMem[:uapi.FuseURingHeaderSize]); err != nil {
		return err
	}
	iov := iovecsAt(w.hdrMem[iovecOff:], 2)
	if iov == nil {
		return fmt.Errorf("no room for the entry's iovecs in its header page")
	}
	iov[0].Base = &w.hdr[0]
	iov[0].SetLen(len(w.hdr))
	iov[1].Base = &w.payload[0]
	iov[1].SetLen(len(w.payload))

	sqe := w.r.GetSQE()
	ring.PrepUringCmd(sqe, w.c.devFd, uapi.FuseURingCmdRegister, tagEntry)
	sqe.Addr = addrOf(&iov[0])
	sqe.Len = 2
	if err := w.putCmd(sqe, 0); err != nil {
		return err
	}
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

// iovecOff is where the entry's iovec[2] lies in its header page.
const iovecOff = 512

// mapHeader makes hdr (mmap'd, 288 bytes) the entry's
// fuse_uring_req_header and views the request and reply headers in it.
func (w *ringWorker) mapHeader(hdr []byte) error {
	w.hdr = hdr
	w.req = structAt[uapi.FuseURingReqHeader](hdr)
	if w.req == nil {
		return fmt.Errorf("ring entry header: %d bytes, want %d", len(hdr), uapi.FuseURingHeaderSize)
	}
	w.in = structAt[uapi.FuseInHeader](w.req.InOut[:])
	w.out = structAt[uapi.FuseOutHeader](w.req.InOut[:])
	if w.in == nil || w.out == nil {
		return fmt.Errorf("ring entry header: in_out cannot hold the FUSE headers")
	}
	return nil
}

// putCmd fills sqe's command area: the entry's queue and, for
// COMMIT_AND_FETCH, the commit id of the request it answers.
func (w *ringWorker) putCmd(sqe *uapi.SQE, commitID uint64) error {
	cmd := structAt[uapi.FuseURingCmdReq](w.r.Cmd(sqe))
	if cmd == nil {
		return fmt.Errorf("the ring's SQEs have no room for struct fuse_uring_cmd_req (SQE128 needed)")
	}
	*cmd = uapi.FuseURingCmdReq{CommitID: commitID, QID: uint16(w.qid)}
	return nil
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
		if err := w.putCmd(sqe, w.req.Ent.CommitID); err != nil {
			w.c.logger.Printf("queue %d: %v", w.qid, err)
			return
		}
	}
}

// handle serves the request in the entry's header and payload and leaves
// the reply there.
func (w *ringWorker) handle() {
	req := w.req
	total := int(w.in.Len)
	op := uapi.FuseOpcode(w.in.Opcode)
	if op == uapi.FuseOpRead && w.c.readFd != nil && w.fastRead() {
		return
	}
	psz := int(req.Ent.PayloadSz)
	argSz := total - uapi.FuseInHeaderSize - psz
	if psz > len(w.payload) || argSz < 0 || argSz > len(req.OpIn) {
		w.c.logger.Printf("queue %d: malformed %s request (len %d, payload %d)", w.qid, OpName(uint32(op)), total, psz)
		putError(w.out, w.in.Unique, syscall.EIO)
		w.c.cnt.errors.Add(1)
		req.Ent.PayloadSz = 0
		return
	}
	in := [3][]byte{req.InOut[:uapi.FuseInHeaderSize], req.OpIn[:argSz], w.payload[:psz]}
	if op != uapi.FuseOpWrite && psz > 0 {
		// The payload buffer also receives the reply: give the handler a
		// private copy of inputs such as names and xattr values.
		if cap(w.scratch) < psz {
			w.scratch = make([]byte, psz)
		}
		in[2] = w.scratch[:psz]
		copy(in[2], w.payload[:psz])
	}
	out := [2][]byte{req.InOut[:uapi.FuseOutHeaderSize], w.payload}
	n := w.c.serve(chanRing, in[:], out[:])
	if n < uapi.FuseOutHeaderSize {
		// Every ring request needs a commit; a request the server would
		// not answer gets an error instead.
		putError(w.out, w.in.Unique, syscall.EIO)
		n = uapi.FuseOutHeaderSize
	}
	req.Ent.PayloadSz = uint32(n - uapi.FuseOutHeaderSize)
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
