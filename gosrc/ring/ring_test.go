package ring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// All tests here run against the real kernel. They do not use
// t.Parallel: TestCloseWithPendingReadNoLeak counts this process's fds.

// newRing sets up a ring closed at the end of the test. It skips only
// when the kernel has no io_uring or it is switched off for us.
func newRing(t *testing.T, cfg Config) *Ring {
	t.Helper()
	r, err := New(cfg)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("io_uring unavailable here (kernel.io_uring_disabled or seccomp): %v", err)
	}
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// alloc is Alloc freed at the end of the test. Call it before newRing so
// the ring is closed (LIFO cleanup) before the memory is unmapped.
func alloc(t *testing.T, size int) []byte {
	t.Helper()
	b, err := Alloc(size)
	check(t, err)
	t.Cleanup(func() { check(t, Free(b)) })
	return b
}

// shmDir is a fresh directory on tmpfs (t.TempDir may be on disk).
func shmDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	dir, err := os.MkdirTemp("/dev/shm", "zcfuse-ring-test-")
	check(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// shmFile creates a file under shmDir holding content and returns an
// O_RDWR fd to it, closed at the end of the test.
func shmFile(t *testing.T, content []byte) (string, int) {
	t.Helper()
	path := filepath.Join(shmDir(t), "data")
	check(t, os.WriteFile(path, content, 0o600))
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	check(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return path, fd
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// waitOne waits for a completion, copies it out and consumes it.
func waitOne(t *testing.T, r *Ring) uapi.CQE {
	t.Helper()
	cqe, err := r.WaitCQE(5 * time.Second)
	if err != nil {
		t.Fatalf("WaitCQE: %v", err)
	}
	c := *cqe
	r.CQESeen()
	return c
}

// do prepares one entry, submits it and returns its completion.
func do(t *testing.T, r *Ring, prep func(*uapi.SQE)) uapi.CQE {
	t.Helper()
	sqe := r.GetSQE()
	if sqe == nil {
		t.Fatal("GetSQE: queue full")
	}
	prep(sqe)
	n, err := r.Submit()
	check(t, err)
	if n != 1 {
		t.Fatalf("Submit consumed %d entries, want 1", n)
	}
	return waitOne(t, r)
}

// wantRes fails unless cqe is user data ud with result res.
func wantRes(t *testing.T, cqe uapi.CQE, ud uint64, res int32) {
	t.Helper()
	if cqe.UserData != ud || cqe.Res != res {
		t.Fatalf("cqe {user_data %#x res %d (%v)}, want {user_data %#x res %d}", cqe.UserData, cqe.Res, Errno(cqe.Res), ud, res)
	}
}

func nopRoundTrip(t *testing.T, r *Ring) {
	t.Helper()
	cqe := do(t, r, func(sqe *uapi.SQE) { PrepNop(sqe, 0xdead_beef_0001) })
	wantRes(t, cqe, 0xdead_beef_0001, 0)
	if c := r.PeekCQE(); c != nil {
		t.Fatalf("completion queue not empty after CQESeen: %+v", *c)
	}
}

func TestNopDefault(t *testing.T) {
	r := newRing(t, Config{})
	if r.SQEntries() != 8 {
		t.Errorf("SQEntries %d, want the default 8", r.SQEntries())
	}
	if p := r.Params(); p.CQEntries != 16 || p.Features&uapi.FeatExtArg == 0 {
		t.Errorf("params: cq_entries %d (want 16), features %#x (want EXT_ARG)", p.CQEntries, p.Features)
	}
	nopRoundTrip(t, r)
	sqe := r.GetSQE()
	if n := len(r.Cmd(sqe)); n != 16 {
		t.Errorf("Cmd area %d bytes with 64-byte SQEs, want 16", n)
	}
	PrepNop(sqe, 1)
	PrepNop(r.GetSQE(), 2)
	if n, err := r.Submit(); err != nil || n != 2 {
		t.Fatalf("Submit: %d, %v; want 2", n, err)
	}
	wantRes(t, waitOne(t, r), 1, 0)
	wantRes(t, waitOne(t, r), 2, 0)
	if b := r.BigCQE(&uapi.CQE{}); b != nil {
		t.Errorf("BigCQE on a 16-byte CQE ring: %d bytes, want nil", len(b))
	}
}

func TestNopCQSize(t *testing.T) {
	r := newRing(t, Config{Entries: 4, CQEntries: 64})
	if p := r.Params(); p.SQEntries != 4 || p.CQEntries != 64 {
		t.Fatalf("entries sq %d cq %d, want 4 and 64", p.SQEntries, p.CQEntries)
	}
	nopRoundTrip(t, r)
}

func TestNopSQE128(t *testing.T) {
	r := newRing(t, Config{SQE128: true})
	if r.Params().Flags&uapi.SetupSQE128 == 0 {
		t.Fatal("SetupSQE128 not in params flags")
	}
	a, b := r.GetSQE(), r.GetSQE()
	if d := uintptr(unsafe.Pointer(b)) - uintptr(unsafe.Pointer(a)); d != 128 {
		t.Fatalf("consecutive SQEs %d bytes apart, want 128", d)
	}
	if n := len(r.Cmd(a)); n != 80 {
		t.Errorf("Cmd area %d bytes with SQE128, want 80", n)
	}
	PrepNop(a, 10)
	PrepNop(b, 11)
	if n, err := r.Submit(); err != nil || n != 2 {
		t.Fatalf("Submit: %d, %v; want 2", n, err)
	}
	wantRes(t, waitOne(t, r), 10, 0)
	wantRes(t, waitOne(t, r), 11, 0)
	nopRoundTrip(t, r)
}

func TestNopSQE128CQE32(t *testing.T) {
	r := newRing(t, Config{SQE128: true, CQE32: true})
	if f := r.Params().Flags; f&uapi.SetupCQE32 == 0 || f&uapi.SetupSQE128 == 0 {
		t.Fatalf("params flags %#x lack SQE128|CQE32", f)
	}
	// Several in a row: a wrong CQE stride would garble the later ones.
	for i := uint64(0); i < 4; i++ {
		PrepNop(r.GetSQE(), 100+i)
	}
	if n, err := r.Submit(); err != nil || n != 4 {
		t.Fatalf("Submit: %d, %v; want 4", n, err)
	}
	for i := uint64(0); i < 4; i++ {
		cqe, err := r.WaitCQE(5 * time.Second)
		check(t, err)
		big := r.BigCQE(cqe)
		if len(big) != 16 {
			t.Fatalf("BigCQE: %d bytes, want 16", len(big))
		}
		if !bytes.Equal(big, make([]byte, 16)) {
			t.Errorf("BigCQE of a NOP not zero: %x", big)
		}
		wantRes(t, *cqe, 100+i, 0)
		r.CQESeen()
	}
}

func TestNopSingleIssuer(t *testing.T) {
	// The ring belongs to this OS thread. The lock is never released: the
	// thread ends with the test's goroutine.
	runtime.LockOSThread()
	r := newRing(t, Config{SingleIssuer: true})
	want := uint32(uapi.SetupSingleIssuer | uapi.SetupDeferTaskrun)
	if f := r.Params().Flags; f&want != want {
		t.Fatalf("params flags %#x lack SINGLE_ISSUER|DEFER_TASKRUN", f)
	}
	nopRoundTrip(t, r)

	// Another thread may not enter the ring: the kernel says EEXIST.
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, err := r.Submit()
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, unix.EEXIST) {
		t.Errorf("Submit from another thread: %v, want EEXIST", err)
	}
	nopRoundTrip(t, r)
}

func TestSubmissionQueueFull(t *testing.T) {
	r := newRing(t, Config{Entries: 4})
	for i := range 4 {
		sqe := r.GetSQE()
		if sqe == nil {
			t.Fatalf("GetSQE %d of 4 returned nil", i)
		}
		PrepNop(sqe, uint64(i))
	}
	if sqe := r.GetSQE(); sqe != nil {
		t.Fatal("GetSQE on a full queue returned an entry")
	}
	n, err := r.Submit()
	check(t, err)
	if n != 4 {
		t.Fatalf("Submit consumed %d, want 4", n)
	}
	for i := range 4 {
		wantRes(t, waitOne(t, r), uint64(i), 0)
	}
	// The queue drained: entries are available again, and wrap around.
	for round := range 3 {
		for i := range 4 {
			sqe := r.GetSQE()
			if sqe == nil {
				t.Fatalf("round %d: GetSQE %d returned nil after the queue drained", round, i)
			}
			PrepNop(sqe, uint64(round*10+i))
		}
		if n, err := r.Submit(); err != nil || n != 4 {
			t.Fatalf("round %d: Submit: %d, %v", round, n, err)
		}
		for i := range 4 {
			wantRes(t, waitOne(t, r), uint64(round*10+i), 0)
		}
	}
}

func TestWaitCQETimeout(t *testing.T) {
	for _, cfg := range []Config{{}, {SingleIssuer: true}} {
		t.Run(map[bool]string{false: "default", true: "single-issuer"}[cfg.SingleIssuer], func(t *testing.T) {
			runtime.LockOSThread() // needed for SingleIssuer; harmless otherwise
			r := newRing(t, cfg)
			for _, d := range []time.Duration{0, 50 * time.Millisecond} {
				start := time.Now()
				cqe, err := r.WaitCQE(d)
				el := time.Since(start)
				if cqe != nil || !errors.Is(err, unix.ETIME) {
					t.Fatalf("WaitCQE(%v) on an idle ring: %v, %v; want nil, ETIME", d, cqe, err)
				}
				if el < d*9/10 || el > d+2*time.Second {
					t.Errorf("WaitCQE(%v) returned after %v", d, el)
				}
			}
			// The ring still works after timeouts.
			nopRoundTrip(t, r)
		})
	}
}

func TestReadWriteTmpfs(t *testing.T) {
	buf := alloc(t, 8192)
	path, fd := shmFile(t, nil)
	r := newRing(t, Config{})

	want := pattern(8192, 3)
	copy(buf, want)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepWrite(sqe, fd, buf, 0, 1) }), 1, 8192)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepFsync(sqe, fd, 0, 2) }), 2, 0)
	got, err := os.ReadFile(path)
	check(t, err)
	if !bytes.Equal(got, want) {
		t.Fatal("file content differs from what WRITE wrote")
	}

	clear(buf)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepRead(sqe, fd, buf[:100], 1000, 3) }), 3, 100)
	if !bytes.Equal(buf[:100], want[1000:1100]) {
		t.Fatal("READ at offset 1000 returned the wrong bytes")
	}
	// A read past the end is short.
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepRead(sqe, fd, buf, 8000, 4) }), 4, 192)
	if !bytes.Equal(buf[:192], want[8000:]) {
		t.Fatal("short READ returned the wrong bytes")
	}
	// A bad fd fails in the completion, not in Submit.
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepRead(sqe, 1<<20, buf, 0, 5) }), 5, -int32(unix.EBADF))
}

func TestFixedBuffers(t *testing.T) {
	a := alloc(t, 8192)
	b := alloc(t, 4096)
	path, fd := shmFile(t, nil)
	r := newRing(t, Config{})
	check(t, r.RegisterBuffersSparse(4))
	check(t, r.UpdateBuffers(1, [][]byte{a}))

	// WRITE_FIXED from the first half of a, READ_FIXED into the second.
	p1 := pattern(4096, 11)
	copy(a, p1)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepWriteFixed(sqe, fd, a[:4096], 0, 1, 1) }), 1, 4096)
	got, err := os.ReadFile(path)
	check(t, err)
	if !bytes.Equal(got, p1) {
		t.Fatal("file content differs from what WRITE_FIXED wrote")
	}
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepReadFixed(sqe, fd, a[4096:], 0, 1, 2) }), 2, 4096)
	if !bytes.Equal(a[4096:], p1) {
		t.Fatal("READ_FIXED returned the wrong bytes")
	}
	// Slot 0 was never filled.
	if c := do(t, r, func(sqe *uapi.SQE) { PrepReadFixed(sqe, fd, a[:4096], 0, 0, 3) }); c.Res >= 0 {
		t.Fatalf("READ_FIXED on empty slot 0: res %d, want an error", c.Res)
	}

	// Point slot 1 at b: I/O now goes through b, and a is outside the slot.
	check(t, r.UpdateBuffers(1, [][]byte{b}))
	p2 := pattern(4096, 99)
	copy(b, p2)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepWriteFixed(sqe, fd, b, 0, 1, 4) }), 4, 4096)
	got, err = os.ReadFile(path)
	check(t, err)
	if !bytes.Equal(got, p2) {
		t.Fatal("WRITE_FIXED after the slot update did not write the new buffer")
	}
	clear(b)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepReadFixed(sqe, fd, b, 0, 1, 5) }), 5, 4096)
	if !bytes.Equal(b, p2) {
		t.Fatal("READ_FIXED into the new buffer returned the wrong bytes")
	}
	if c := do(t, r, func(sqe *uapi.SQE) { PrepReadFixed(sqe, fd, a[:4096], 0, 1, 6) }); c.Res != -int32(unix.EFAULT) {
		t.Fatalf("READ_FIXED into the old buffer after the update: res %d, want -EFAULT", c.Res)
	}

	// Clear slot 1: fixed I/O on it fails.
	check(t, r.UpdateBuffers(1, [][]byte{nil}))
	if c := do(t, r, func(sqe *uapi.SQE) { PrepReadFixed(sqe, fd, b, 0, 1, 7) }); c.Res >= 0 {
		t.Fatalf("READ_FIXED on a cleared slot: res %d, want an error", c.Res)
	} else {
		t.Logf("READ_FIXED on a cleared slot: %v", Errno(c.Res))
	}
	// Out of range slot and update.
	if c := do(t, r, func(sqe *uapi.SQE) { PrepReadFixed(sqe, fd, b, 0, 4, 8) }); c.Res >= 0 {
		t.Fatalf("READ_FIXED on slot 4 of 4: res %d, want an error", c.Res)
	}
	if err := r.UpdateBuffers(4, [][]byte{b}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("UpdateBuffers past the table: %v, want EINVAL", err)
	}
	check(t, r.UnregisterBuffers())
	if err := r.UpdateBuffers(0, [][]byte{b}); err == nil {
		t.Fatal("UpdateBuffers after UnregisterBuffers succeeded")
	}
}

// TestFixedBufferGoHeap documents what the kernel does with a Go heap
// slice in UpdateBuffers, against the rule in its doc comment. On Linux
// 6.x the kernel pins any anonymous memory, Go heap included, so the
// update succeeds and I/O through the slot works; the rule stands
// because the Go runtime may reuse that memory once the slice is
// unreachable, while the kernel keeps writing there. If a kernel refuses
// the buffer the test skips, saying so.
func TestFixedBufferGoHeap(t *testing.T) {
	path, fd := shmFile(t, nil)
	r := newRing(t, Config{})
	check(t, r.RegisterBuffersSparse(1))
	heap := make([]byte, 64<<10)
	if err := r.UpdateBuffers(0, [][]byte{heap}); err != nil {
		t.Skipf("this kernel refuses a Go heap buffer: %v", err)
	}
	t.Log("the kernel accepted and pinned a Go heap buffer")
	want := pattern(4096, 42)
	copy(heap, want)
	wantRes(t, do(t, r, func(sqe *uapi.SQE) { PrepWriteFixed(sqe, fd, heap[:4096], 0, 0, 1) }), 1, 4096)
	got, err := os.ReadFile(path)
	check(t, err)
	if !bytes.Equal(got, want) {
		t.Fatal("WRITE_FIXED from the Go heap buffer wrote the wrong bytes")
	}
	check(t, r.UpdateBuffers(0, [][]byte{nil}))
	runtime.KeepAlive(heap)
}

func TestRegisteredFiles(t *testing.T) {
	buf := alloc(t, 4096)
	want := pattern(3000, 5)
	_, fd := shmFile(t, want)
	r := newRing(t, Config{})
	check(t, r.RegisterFilesSparse(2))

	// The ring takes its own reference: our fd can go.
	dup, err := unix.Dup(fd)
	check(t, err)
	check(t, r.UpdateFiles(1, []int32{int32(dup)}))
	check(t, unix.Close(dup))

	fixedRead := func(slot int, ud uint64) uapi.CQE {
		return do(t, r, func(sqe *uapi.SQE) {
			PrepRead(sqe, slot, buf, 0, ud)
			UseFixedFile(sqe)
		})
	}
	wantRes(t, fixedRead(1, 1), 1, 3000)
	if !bytes.Equal(buf[:3000], want) {
		t.Fatal("READ on registered file 1 returned the wrong bytes")
	}
	wantRes(t, fixedRead(0, 2), 2, -int32(unix.EBADF))
	wantRes(t, fixedRead(2, 3), 3, -int32(unix.EBADF))

	check(t, r.UpdateFiles(1, []int32{-1}))
	wantRes(t, fixedRead(1, 4), 4, -int32(unix.EBADF))

	if err := r.UpdateFiles(2, []int32{int32(fd)}); err == nil {
		t.Fatal("UpdateFiles past the table succeeded")
	}
	check(t, r.UnregisterFiles())
	wantRes(t, fixedRead(0, 5), 5, -int32(unix.EBADF))
}

func TestUringCmd(t *testing.T) {
	r := newRing(t, Config{SQE128: true})
	var p [2]int
	check(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])

	sqe := r.GetSQE()
	PrepUringCmd(sqe, p[0], 7, 9)
	if sqe.Opcode != uapi.OpUringCmd || sqe.Off != 7 || sqe.Fd != int32(p[0]) {
		t.Fatalf("PrepUringCmd: %+v", *sqe)
	}
	cmd := r.Cmd(sqe)
	cmd[0], cmd[79] = 0xab, 0xcd
	if sqe.Addr3&0xff != 0xab {
		t.Fatalf("Cmd does not alias the SQE at offset %d", uapi.SQECmdOffset)
	}
	if last := *(*byte)(unsafe.Add(unsafe.Pointer(sqe), 127)); last != 0xcd {
		t.Fatal("Cmd's last byte is not the SQE's last byte")
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	// A pipe has no uring_cmd handler.
	wantRes(t, waitOne(t, r), 9, -int32(unix.EOPNOTSUPP))
}

func TestWaker(t *testing.T) {
	// The owner thread: never unlocked, the thread ends with the test.
	runtime.LockOSThread()
	w, err := NewWaker(0xfeed)
	check(t, err)
	t.Cleanup(func() { check(t, w.Close()) }) // runs after the ring's Close
	r := newRing(t, Config{SingleIssuer: true})

	// WaitCQE(-1) cannot be interrupted; a hang must not eat the whole
	// go test timeout silently.
	watchdog := time.AfterFunc(30*time.Second, func() {
		panic("TestWaker: the owner is still blocked in WaitCQE(-1) after 30s")
	})
	defer watchdog.Stop()

	owner := unix.Gettid()
	wake := make(chan struct{})
	wakeErr := make(chan error, 1)
	go func() {
		for range wake {
			// Wake only once the owner sleeps in the kernel, so what is
			// tested is a wake of a blocked io_uring_enter.
			if err := waitInSyscall(owner, unix.SYS_IO_URING_ENTER); err != nil {
				wakeErr <- err
				return
			}
			if err := w.Wake(); err != nil {
				wakeErr <- err
				return
			}
		}
	}()
	defer close(wake)

	for round := range 3 {
		check(t, w.Arm(r))
		if _, err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		if c := r.PeekCQE(); c != nil {
			t.Fatalf("round %d: the armed READ completed before any wake: %+v (%v)", round, *c, Errno(c.Res))
		}
		wake <- struct{}{}
		cqe, err := r.WaitCQE(-1)
		check(t, err)
		c := *cqe
		r.CQESeen()
		select {
		case err := <-wakeErr:
			t.Fatalf("Wake: %v", err)
		default:
		}
		wantRes(t, c, w.UserData(), 8)
		if v := *(*uint64)(unsafe.Pointer(&w.buf[0])); v != 1 {
			t.Errorf("round %d: eventfd count %d, want 1", round, v)
		}
	}

	// Wakes while the owner is not waiting collapse into one completion.
	for range 3 {
		check(t, w.Wake())
	}
	check(t, w.Arm(r))
	wantRes(t, waitOne(t, r), w.UserData(), 8)
	if v := *(*uint64)(unsafe.Pointer(&w.buf[0])); v != 3 {
		t.Errorf("eventfd count after three wakes %d, want 3", v)
	}
	check(t, w.Arm(r))
	if cqe, err := r.WaitCQE(50 * time.Millisecond); !errors.Is(err, unix.ETIME) {
		t.Fatalf("a collapsed wake completed twice: %v, %v", cqe, err)
	}
}

// waitInSyscall waits until thread tid sleeps in system call nr, as
// /proc/self/task/TID/syscall shows it.
func waitInSyscall(tid int, nr int) error {
	path := fmt.Sprintf("/proc/self/task/%d/syscall", tid)
	want := strconv.Itoa(nr) + " "
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasPrefix(string(b), want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d not in system call %d after 10s: %q", tid, nr, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseTwice(t *testing.T) {
	for _, cfg := range []Config{{}, {SQE128: true, CQE32: true}} {
		r, err := New(cfg)
		if err != nil {
			t.Skipf("io_uring unavailable: %v", err)
		}
		fd := r.Fd()
		if err := r.Close(); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if r.Fd() != -1 {
			t.Errorf("Fd after Close: %d, want -1", r.Fd())
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
			t.Errorf("ring fd %d still open after Close: %v", fd, err)
		}
	}
}

func countFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	check(t, err)
	return len(ents)
}

// countRingMaps counts this process's mappings of io_uring fds.
func countRingMaps(t *testing.T) int {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	check(t, err)
	return strings.Count(string(maps), "[io_uring]")
}

// ringWithPendingRead sets up a ring with a READ pending on the read end
// of a fresh pipe and returns both; nothing is ever written.
func ringWithPendingRead(t *testing.T, cfg Config, buf []byte) (*Ring, [2]int) {
	t.Helper()
	r, err := New(cfg)
	check(t, err)
	var p [2]int
	check(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	PrepRead(r.GetSQE(), p[0], buf, ^uint64(0), 1)
	if n, err := r.Submit(); err != nil || n != 1 {
		t.Fatalf("Submit: %d, %v", n, err)
	}
	if c := r.PeekCQE(); c != nil {
		t.Fatalf("READ on an empty pipe completed: res %d", c.Res)
	}
	return r, p
}

func TestCloseWithPendingReadNoLeak(t *testing.T) {
	runtime.LockOSThread() // for the SingleIssuer rings
	buf := alloc(t, 4096)  // never written: nothing goes into the pipes
	one := func(i int) {
		r, p := ringWithPendingRead(t, Config{SingleIssuer: i%2 == 1}, buf)
		start := time.Now()
		if err := r.Close(); err != nil {
			t.Fatalf("Close with a pending READ: %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("Close with a pending READ took %v", el)
		}
		check(t, r.Close())
		check(t, unix.Close(p[0]))
		check(t, unix.Close(p[1]))
	}
	one(0) // warm up whatever the runtime opens lazily
	fds, maps := countFds(t), countRingMaps(t)
	for i := range 50 {
		one(i)
	}
	if n := countFds(t); n != fds {
		t.Errorf("open fds: %d before 50 rings, %d after", fds, n)
	}
	if n := countRingMaps(t); n != maps {
		t.Errorf("io_uring mappings: %d before 50 rings, %d after", maps, n)
	}
}

// TestCloseReleasesPendingFile checks that the kernel drops the ring's
// reference to the file of a READ still pending at Close: once our read
// end is closed too, the pipe has no reader left and a write fails with
// EPIPE. Ring teardown is asynchronous in the kernel, so poll.
func TestCloseReleasesPendingFile(t *testing.T) {
	buf := alloc(t, 4096)
	r, p := ringWithPendingRead(t, Config{}, buf)
	defer unix.Close(p[1])
	check(t, r.Close())
	check(t, unix.Close(p[0]))
	check(t, unix.SetNonblock(p[1], true))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := unix.Write(p[1], []byte{1})
		if errors.Is(err, unix.EPIPE) {
			return
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("write: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed ring still holds the pipe's read end after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestErrno(t *testing.T) {
	if err := Errno(0); err != nil {
		t.Errorf("Errno(0) = %v", err)
	}
	if err := Errno(4096); err != nil {
		t.Errorf("Errno(4096) = %v", err)
	}
	if err := Errno(-int32(unix.EFAULT)); !errors.Is(err, unix.EFAULT) {
		t.Errorf("Errno(-EFAULT) = %v", err)
	}
}

// TestWaitCQETimeoutUnderSignals interrupts the waiting thread with
// signals every few milliseconds: each makes io_uring_enter return
// EINTR, and the retry must wait only for what is left of the timeout,
// not start it over (which, with signals this frequent, never ends).
func TestWaitCQETimeoutUnderSignals(t *testing.T) {
	runtime.LockOSThread()
	r := newRing(t, Config{})
	tid := unix.Gettid()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		quit := time.After(3 * time.Second) // so a regression fails, not hangs
		for {
			select {
			case <-stop:
				return
			case <-quit:
				return
			case <-tick.C:
				// SIGURG: the Go runtime's preemption signal, ignored
				// when it asked for nothing; it only interrupts the wait.
				unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	start := time.Now()
	cqe, err := r.WaitCQE(100 * time.Millisecond)
	el := time.Since(start)
	if cqe != nil || !errors.Is(err, unix.ETIME) {
		t.Fatalf("WaitCQE: %v, %v; want nil, ETIME", cqe, err)
	}
	if el > time.Second {
		t.Fatalf("WaitCQE(100ms) under signals returned after %v", el)
	}
}

// TestWaitCQETimeoutWithSubmission waits with an entry still to submit
// (a READ of an empty pipe, which stays pending). io_uring_enter then
// reports the submission, not the timeout; WaitCQE must not start a
// second full timeout on top of the first.
func TestWaitCQETimeoutWithSubmission(t *testing.T) {
	buf := alloc(t, 4096)
	r := newRing(t, Config{})
	var p [2]int
	check(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	PrepRead(r.GetSQE(), p[0], buf, ^uint64(0), 1)
	const d = 500 * time.Millisecond // the bug it guards against took 2*d
	start := time.Now()
	cqe, err := r.WaitCQE(d)
	el := time.Since(start)
	if cqe != nil || !errors.Is(err, unix.ETIME) {
		t.Fatalf("WaitCQE: %v, %v; want nil, ETIME", cqe, err)
	}
	if el < d*9/10 || el > d*9/5 {
		t.Fatalf("WaitCQE(%v) with an entry to submit returned after %v", d, el)
	}
	// The READ was submitted: a write completes it.
	_, err = unix.Write(p[1], []byte("hi"))
	check(t, err)
	wantRes(t, waitOne(t, r), 1, 2)
	if string(buf[:2]) != "hi" {
		t.Fatalf("READ got %q", buf[:2])
	}
}
