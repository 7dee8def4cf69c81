package ring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// Config selects the ring's size and flags.
type Config struct {
	// Entries is the submission queue size (rounded up to a power of two
	// by the kernel). Zero means 8.
	Entries uint32
	// CQEntries sizes the completion queue; zero leaves the kernel's
	// default of twice Entries.
	CQEntries uint32
	// SQE128 makes each submission entry 128 bytes (needed for URING_CMD
	// with a large command area, e.g. FUSE-over-io_uring).
	SQE128 bool
	// CQE32 makes each completion entry 32 bytes.
	CQE32 bool
	// SingleIssuer sets IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN: the
	// calling OS thread owns the ring, and completions are processed only
	// when it waits. Lock the OS thread first.
	SingleIssuer bool
}

// Ring is one io_uring instance.
type Ring struct {
	fd      int
	params  uapi.Params
	sqRing  []byte
	cqRing  []byte
	sqesMem []byte
	sqeSize uintptr
	cqeSize uintptr
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqFlags *uint32
	sqArray unsafe.Pointer
	sqes    unsafe.Pointer
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	sqeTail uint32 // next SQE to hand out (local; published on submit)
	sqeHead uint32 // first SQE not yet published
	closed  bool
	// waitTs is the timeout SubmitAndWaitTimeout hands the kernel. Its
	// address travels as an integer inside GeteventsArg, so it must not
	// be on a goroutine stack (which can move); the Ring is on the heap.
	waitTs uapi.Timespec
}

// The kernel reads some memory through addresses carried as integers
// inside structs (the iovec array and the fd array of RsrcUpdate2, the
// timespec of GeteventsArg). The Go runtime does not see those as
// pointers: it would not adjust them when it moves a goroutine stack, so
// such memory must be on the (non-moving) heap. heapEscape forces its
// argument there: escape analysis cannot prove escapeOff false.
var (
	escapeOff  bool
	escapeSink any
)

func heapEscape(x any) {
	if escapeOff {
		escapeSink = x
	}
}

// New sets up a ring. See Config for the flags.
func New(cfg Config) (*Ring, error) {
	if cfg.Entries == 0 {
		cfg.Entries = 8
	}
	r := &Ring{fd: -1}
	p := &r.params
	if cfg.SQE128 {
		p.Flags |= uapi.SetupSQE128
	}
	if cfg.CQE32 {
		p.Flags |= uapi.SetupCQE32
	}
	if cfg.SingleIssuer {
		p.Flags |= uapi.SetupSingleIssuer | uapi.SetupDeferTaskrun
	}
	if cfg.CQEntries != 0 {
		p.Flags |= uapi.SetupCQSize
		p.CQEntries = cfg.CQEntries
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(cfg.Entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r.fd = int(fd)
	if err := r.mapRings(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings() error {
	p := &r.params
	r.sqeSize = 64
	if p.Flags&uapi.SetupSQE128 != 0 {
		r.sqeSize = 128
	}
	r.cqeSize = 16
	if p.Flags&uapi.SetupCQE32 != 0 {
		r.cqeSize = 32
	}
	sqSize := uintptr(p.SQOff.Array) + uintptr(p.SQEntries)*4
	cqSize := uintptr(p.CQOff.CQEs) + uintptr(p.CQEntries)*r.cqeSize
	single := p.Features&uapi.FeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	r.sqRing, err = unix.Mmap(r.fd, uapi.OffSQRing, int(sqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap sq ring: %w", err)
	}
	if single {
		r.cqRing = r.sqRing
	} else {
		r.cqRing, err = unix.Mmap(r.fd, uapi.OffCQRing, int(cqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("mmap cq ring: %w", err)
		}
	}
	r.sqesMem, err = unix.Mmap(r.fd, uapi.OffSQEs, int(uintptr(p.SQEntries)*r.sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap sqes: %w", err)
	}
	sq := unsafe.Pointer(&r.sqRing[0])
	cq := unsafe.Pointer(&r.cqRing[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SQOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SQOff.Tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SQOff.RingMask))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.SQOff.Flags))
	r.sqArray = unsafe.Add(sq, p.SQOff.Array)
	r.sqes = unsafe.Pointer(&r.sqesMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.CQOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.CQOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.CQOff.RingMask))
	r.cqes = unsafe.Add(cq, p.CQOff.CQEs)
	// Identity map of the SQ index array: entry i always names SQE i.
	for i := uint32(0); i < p.SQEntries; i++ {
		*(*uint32)(unsafe.Add(r.sqArray, uintptr(i)*4)) = i
	}
	return nil
}

// Fd is the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// Params returns the parameters the kernel filled in at setup.
func (r *Ring) Params() uapi.Params { return r.params }

// SQEntries is the submission queue size.
func (r *Ring) SQEntries() uint32 { return r.params.SQEntries }

// GetSQE returns a zeroed submission entry, or nil when the queue is full
// (submit first). The entry is published by the next Submit.
func (r *Ring) GetSQE() *uapi.SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.params.SQEntries {
		return nil
	}
	p := unsafe.Add(r.sqes, uintptr(r.sqeTail&r.sqMask)*r.sqeSize)
	clear(unsafe.Slice((*byte)(p), r.sqeSize))
	r.sqeTail++
	return (*uapi.SQE)(p)
}

// Cmd returns the URING_CMD command area of sqe: 16 bytes, or 80 with
// SQE128.
func (r *Ring) Cmd(sqe *uapi.SQE) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(sqe), uapi.SQECmdOffset)), r.sqeSize-uapi.SQECmdOffset)
}

// flush publishes prepared SQEs and returns how many are pending.
func (r *Ring) flush() uint32 {
	if r.sqeHead != r.sqeTail {
		r.sqeHead = r.sqeTail
		atomic.StoreUint32(r.sqTail, r.sqeTail)
	}
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// enterOnce is one io_uring_enter(2); errno is 0 on success.
func (r *Ring) enterOnce(toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSz uintptr) (int, syscall.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), uintptr(arg), argSz)
	return int(n), errno
}

// enter is io_uring_enter(2), retried when a signal interrupts it.
func (r *Ring) enter(toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSz uintptr) (int, error) {
	for {
		n, errno := r.enterOnce(toSubmit, minComplete, flags, arg, argSz)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return n, errno
		}
		return n, nil
	}
}

// Submit publishes the prepared entries and tells the kernel about them.
// It returns how many the kernel consumed. With DEFER_TASKRUN it also
// runs pending completion work (GETEVENTS with no minimum).
func (r *Ring) Submit() (int, error) {
	return r.SubmitAndWait(0)
}

// SubmitAndWait submits the prepared entries and waits until at least
// waitNr completions are ready.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) {
	n := r.flush()
	flags := uint32(0)
	if waitNr > 0 || r.params.Flags&uapi.SetupDeferTaskrun != 0 {
		flags |= uapi.EnterGetEvents
	}
	if n == 0 && flags == 0 {
		return 0, nil
	}
	return r.enter(n, waitNr, flags, nil, 0)
}

// SubmitAndWaitTimeout is SubmitAndWait with a limit: it returns
// unix.ETIME when fewer than waitNr completions arrived in time. A
// negative timeout waits forever. As io_uring_enter(2) does, it reports
// the count of entries it submitted, without an error, even when the
// wait that followed timed out; WaitCQE accounts for that.
func (r *Ring) SubmitAndWaitTimeout(waitNr uint32, timeout time.Duration) (int, error) {
	if timeout < 0 {
		return r.SubmitAndWait(waitNr)
	}
	deadline := time.Now().Add(timeout)
	left := timeout
	for {
		n := r.flush()
		r.waitTs = uapi.Timespec{Sec: int64(left / time.Second), Nsec: int64(left % time.Second)}
		arg := uapi.GeteventsArg{Ts: uint64(uintptr(unsafe.Pointer(&r.waitTs)))}
		got, errno := r.enterOnce(n, waitNr, uapi.EnterGetEvents|uapi.EnterExtArg, unsafe.Pointer(&arg), unsafe.Sizeof(arg))
		// Keep r (and so waitTs) alive across the system call.
		runtimeKeepAlive(r)
		switch errno {
		case 0:
			return got, nil
		case unix.EINTR:
			// A signal cut the wait short. Wait only for what is left:
			// restarting the whole timeout would never end under
			// frequent signals.
			left = max(time.Until(deadline), 0)
		default:
			return got, errno
		}
	}
}

// PeekCQE returns the oldest unconsumed completion without waiting, or
// nil. Consume it with CQESeen once its fields have been read.
func (r *Ring) PeekCQE() *uapi.CQE {
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return nil
	}
	return (*uapi.CQE)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*r.cqeSize))
}

// BigCQE returns the extra 16 bytes of a CQE32 completion (nil otherwise).
func (r *Ring) BigCQE(cqe *uapi.CQE) []byte {
	if r.cqeSize != 32 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(cqe), 16)), 16)
}

// CQESeen consumes the completion PeekCQE returned.
func (r *Ring) CQESeen() {
	atomic.StoreUint32(r.cqHead, atomic.LoadUint32(r.cqHead)+1)
}

// WaitCQE returns the oldest completion, waiting up to timeout for one
// (negative: forever). It returns unix.ETIME on timeout. Consume the
// result with CQESeen.
func (r *Ring) WaitCQE(timeout time.Duration) (*uapi.CQE, error) {
	// One deadline for all rounds: io_uring_enter reports a submission
	// rather than a timeout that followed it, so a round can end with
	// neither a completion nor an error.
	deadline := time.Now().Add(timeout)
	for {
		if cqe := r.PeekCQE(); cqe != nil {
			return cqe, nil
		}
		left := timeout
		if timeout >= 0 {
			left = max(time.Until(deadline), 0)
		}
		if _, err := r.SubmitAndWaitTimeout(1, left); err != nil {
			if cqe := r.PeekCQE(); cqe != nil {
				return cqe, nil
			}
			return nil, err
		}
	}
}

// Close closes the ring fd (the kernel cancels what is still in flight)
// and unmaps the queues. It is safe to call twice.
func (r *Ring) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.fd >= 0 {
		errs = append(errs, unix.Close(r.fd))
		r.fd = -1
	}
	if r.sqesMem != nil {
		errs = append(errs, unix.Munmap(r.sqesMem))
	}
	if r.cqRing != nil && (r.sqRing == nil || &r.cqRing[0] != &r.sqRing[0]) {
		errs = append(errs, unix.Munmap(r.cqRing))
	}
	if r.sqRing != nil {
		errs = append(errs, unix.Munmap(r.sqRing))
	}
	r.sqesMem, r.cqRing, r.sqRing = nil, nil, nil
	return errors.Join(errs...)
}

func (r *Ring) register(op uint32, arg unsafe.Pointer, nr uint32) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(nr), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// RegisterBuffersSparse creates an empty fixed-buffer table of n slots.
func (r *Ring) RegisterBuffersSparse(n uint32) error {
	rr := uapi.RsrcRegister{Nr: n, Flags: uapi.RsrcRegisterSparse}
	if err := r.register(uapi.RegisterBuffers2, unsafe.Pointer(&rr), uint32(unsafe.Sizeof(rr))); err != nil {
		return fmt.Errorf("register sparse buffers: %w", err)
	}
	return nil
}

// UpdateBuffers fills fixed-buffer slots starting at off with bufs; a nil
// or empty buffer clears its slot. Each buffer must be mmap'd memory (not
// Go heap) of at most 1 GiB; its pages are pinned until the slot is
// cleared or the ring closed (charged to RLIMIT_MEMLOCK without
// CAP_IPC_LOCK).
func (r *Ring) UpdateBuffers(off uint32, bufs [][]byte) error {
	if len(bufs) == 0 {
		return nil
	}
	iov, free, err := allocIovecs(bufs)
	if err != nil {
		return err
	}
	defer free()
	up := uapi.RsrcUpdate2{Offset: off, Data: uint64(uintptr(unsafe.Pointer(&iov[0]))), Nr: uint32(len(bufs))}
	if err := r.register(uapi.RegisterBuffersUpdate, unsafe.Pointer(&up), uint32(unsafe.Sizeof(up))); err != nil {
		return fmt.Errorf("update buffers [%d,+%d): %w", off, len(bufs), err)
	}
	return nil
}

// UnregisterBuffers drops the whole fixed-buffer table.
func (r *Ring) UnregisterBuffers() error {
	return r.register(uapi.UnregisterBuffers, nil, 0)
}

// RegisterFilesSparse creates an empty registered-file table of n slots.
func (r *Ring) RegisterFilesSparse(n uint32) error {
	rr := uapi.RsrcRegister{Nr: n, Flags: uapi.RsrcRegisterSparse}
	if err := r.register(uapi.RegisterFiles2, unsafe.Pointer(&rr), uint32(unsafe.Sizeof(rr))); err != nil {
		return fmt.Errorf("register sparse files: %w", err)
	}
	return nil
}

// UpdateFiles puts fds into registered-file slots starting at off; -1
// clears a slot. The ring holds its own reference: the caller may close
// its fds afterwards.
func (r *Ring) UpdateFiles(off uint32, fds []int32) error {
	if len(fds) == 0 {
		return nil
	}
	// A heap copy: the caller's slice may be on its stack (see heapEscape).
	arr := make([]int32, len(fds))
	copy(arr, fds)
	heapEscape(arr)
	up := uapi.RsrcUpdate2{Offset: off, Data: uint64(uintptr(unsafe.Pointer(&arr[0]))), Nr: uint32(len(arr))}
	err := r.register(uapi.RegisterFilesUpdate2, unsafe.Pointer(&up), uint32(unsafe.Sizeof(up)))
	runtimeKeepAlive(arr)
	if err != nil {
		return fmt.Errorf("update files [%d,+%d): %w", off, len(fds), err)
	}
	return nil
}

// UnregisterFiles drops the registered-file table.
func (r *Ring) UnregisterFiles() error {
	return r.register(uapi.UnregisterFiles, nil, 0)
}

// Alloc maps size bytes of anonymous, populated, page-aligned memory
// suitable for buffers whose address the kernel keeps. Free it with Free.
func Alloc(size int) ([]byte, error) {
	return mapAnon(size, unix.MAP_POPULATE)
}

// mapAnon maps anonymous memory outside x/sys/unix's Mmap bookkeeping
// (which only unmaps exactly the slices it returned), so AllocHuge can
// trim its mapping and Free can unmap either kind.
func mapAnon(size int, flags int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|flags)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return unsafe.Slice((*byte)(p), size), nil
}

// HugePageSize is the size of a transparent huge page on x86-64.
const HugePageSize = 2 << 20

// AllocHuge is Alloc for buffers the kernel copies large blocks through:
// the mapping starts on a huge-page boundary, is rounded up to whole huge
// pages and asks for transparent huge pages (MADV_HUGEPAGE), which saves
// TLB misses on every copy. Without THP it is plain Alloc memory. Free
// it with Free.
func AllocHuge(size int) ([]byte, error) {
	full := (size + HugePageSize - 1) &^ (HugePageSize - 1)
	raw, err := mapAnon(full+HugePageSize, 0)
	if err != nil {
		return nil, err
	}
	base := uintptr(unsafe.Pointer(&raw[0]))
	head := int((HugePageSize - base%HugePageSize) % HugePageSize)
	b := raw[head : head+full : head+full]
	// Give back the unaligned head and tail, so b is a mapping of its own.
	if head > 0 {
		Free(raw[:head])
	}
	if tail := raw[head+full:]; len(tail) > 0 {
		Free(tail)
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // best effort: THP may be off
	for i := 0; i < len(b); i += 4096 {
		b[i] = 0 // populate now, not on the first request
	}
	return b[:size], nil
}

// Free unmaps memory from Alloc or AllocHuge.
func Free(b []byte) error {
	if cap(b) == 0 {
		return nil
	}
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(cap(b)))
}

func allocIovecs(bufs [][]byte) ([]unix.Iovec, func(), error) {
	// The kernel reads the iovec array only during the register call, so
	// Go heap memory is fine here, but not stack memory: its address
	// travels as an integer in RsrcUpdate2 (see heapEscape).
	iov := make([]unix.Iovec, len(bufs))
	heapEscape(iov)
	for i, b := range bufs {
		if len(b) > 0 {
			iov[i].Base = &b[0]
			iov[i].SetLen(len(b))
		}
	}
	return iov, func() { runtimeKeepAlive(iov) }, nil
}

// Errno converts a completion result to an error (nil when res >= 0).
func Errno(res int32) error {
	if res >= 0 {
		return nil
	}
	return syscall.Errno(-res)
}
