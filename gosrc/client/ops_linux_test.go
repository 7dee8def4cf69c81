package client

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"golang.org/x/sys/unix"
)

const testEntries = 64

// fakeServer answers every descriptor of a session's queue with its Len,
// as a server that moved all the bytes would, and records them.
type fakeServer struct {
	mu   sync.Mutex
	seen []opq.SQE
	stop chan struct{}
	done chan struct{}
}

// newTestSession builds a session around an op queue in process memory,
// with no server behind it: ops are prepared and queued as with a real
// one. With serve, a fake server answers them.
func newTestSession(t testing.TB, serve bool) (*Session, *fakeServer) {
	t.Helper()
	mem := make([]byte, opq.Size(testEntries))
	q := opq.Init(mem, testEntries, 1)
	q.NeedWake().Store(0) // "a server thread polls": no doorbell
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{fd: sp[0]}
	o := &s.ops
	o.q, o.evfd, o.files = q, evfd, map[uint32]fileRef{}
	o.slots = make([]slotInfo, testEntries)
	for i := uint32(testEntries); i > 0; i-- {
		o.freeSlots = append(o.freeSlots, i-1)
	}
	o.syncDone = map[uint64]int64{}
	var fs *fakeServer
	if serve {
		fs = &fakeServer{stop: make(chan struct{}), done: make(chan struct{})}
		go fs.run(q, evfd)
	}
	t.Cleanup(func() {
		if fs != nil {
			close(fs.stop)
			<-fs.done
		}
		unix.Close(evfd)
		unix.Close(sp[0])
		unix.Close(sp[1])
	})
	return s, fs
}

func (fs *fakeServer) run(q *opq.Queue, evfd int) {
	defer close(fs.done)
	var head, cqTail uint32
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for {
		select {
		case <-fs.stop:
			return
		default:
		}
		tail := q.SQTail().Load()
		if head == tail {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		for ; head != tail; head++ {
			e := q.ReadSQE(head)
			fs.mu.Lock()
			fs.seen = append(fs.seen, e)
			fs.mu.Unlock()
			q.WriteCQE(cqTail, opq.CQE{UserData: e.UserData, Res: int64(e.Len)})
			cqTail++
		}
		q.CQTail().Store(cqTail)
		unix.Write(evfd, one)
	}
}

func (fs *fakeServer) take() []opq.SQE {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	seen := fs.seen
	fs.seen = nil
	return seen
}

func newArena(t testing.TB, size int64) *arena.Arena {
	t.Helper()
	a, err := arena.Create(size, arena.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestPrepareArenaRef checks how ops by arena id become descriptors or
// local errors, next to ops by pointer.
func TestPrepareArenaRef(t *testing.T) {
	s, _ := newTestSession(t, false)
	const size = 1 << 20
	a := newArena(t, size)
	s.noteArena(7, size, a.Bytes())
	s.noteArena(9, 2*size, nil) // ShareFd: known by id only
	o := &s.ops
	o.fsize = math.MaxUint64

	type want struct {
		res      int64 // local result; 0 with sent
		sent     bool
		id       uint32
		arenaOff uint64
		n        uint64
	}
	ref := func(id uint32, off, n uint64) Op {
		return Op{Opcode: OpRead, Flags: ArenaRef, File: 1, Arena: id, ArenaOff: off, Len: n, UserData: 5}
	}
	efault, einval := -int64(unix.EFAULT), -int64(unix.EINVAL)
	for _, tc := range []struct {
		name string
		op   Op
		want want
	}{
		{"inside", ref(7, 4096, 8192), want{sent: true, id: 7, arenaOff: 4096, n: 8192}},
		{"whole arena", ref(7, 0, size), want{sent: true, id: 7, n: size}},
		{"len 0 at the end", ref(7, size, 0), want{sent: true, id: 7, arenaOff: size}},
		{"shared by fd", ref(9, size, size), want{sent: true, id: 9, arenaOff: size, n: size}},
		{"with RequireZC", Op{Opcode: OpWrite, Flags: ArenaRef | RequireZC, File: 1, Arena: 7, Len: 1}, want{sent: true, id: 7, n: 1}},
		{"Buf ignored", Op{Opcode: OpWrite, Flags: ArenaRef, File: 1, Arena: 7, ArenaOff: 64, Len: 1, Buf: make([]byte, 9)}, want{sent: true, id: 7, arenaOff: 64, n: 1}},
		{"unknown id", ref(8, 0, 4096), want{res: efault}},
		{"id 0", ref(0, 0, 4096), want{res: efault}},
		{"offset past the end", ref(7, size+4096, 4096), want{res: efault}},
		{"at the end", ref(7, size, 1), want{res: efault}},
		{"straddling the end", ref(7, size-2048, 4096), want{res: efault}},
		{"off+len overflows", ref(7, 4096, math.MaxUint64-100), want{res: efault}},
		{"off near 2^64", ref(7, math.MaxUint64, 2), want{res: efault}},
		{"len over the arena", ref(7, 0, size+1), want{res: efault}},
		{"unknown flag", Op{Opcode: OpRead, Flags: ArenaRef | 1<<7, File: 1, Arena: 7, Len: 1}, want{res: einval}},
		{"negative offset", Op{Opcode: OpRead, Flags: ArenaRef, File: 1, Arena: 7, Len: 1, Off: -1}, want{res: einval}},
		{"pointer inside", Op{Opcode: OpRead, File: 1, Buf: a.Bytes()[100:200]}, want{sent: true, id: 7, arenaOff: 100, n: 100}},
		{"pointer, Arena ignored", Op{Opcode: OpRead, File: 1, Arena: 9, Buf: a.Bytes()[:1]}, want{sent: true, id: 7, n: 1}},
		{"pointer at the end", Op{Opcode: OpRead, File: 1, Buf: a.Bytes()[size-10:]}, want{sent: true, id: 7, arenaOff: size - 10, n: 10}},
		{"pointer, unknown flag", Op{Opcode: OpRead, Flags: 1 << 9, File: 1, Buf: a.Bytes()[:1]}, want{res: einval}},
		{"pointer outside, RequireZC", Op{Opcode: OpRead, Flags: RequireZC, File: 1, Buf: make([]byte, 8)}, want{res: efault}},
		{"fsync, unknown flag", Op{Opcode: OpFsync, Flags: 1 << 3, File: 1}, want{res: einval}},
	} {
		op := tc.op
		e, res, local := o.prepare(&op)
		if local == tc.want.sent || res != tc.want.res {
			t.Errorf("%s: local %v res %d, want sent %v res %d", tc.name, local, res, tc.want.sent, tc.want.res)
			continue
		}
		if tc.want.sent && (e.ArenaID != tc.want.id || e.ArenaOff != tc.want.arenaOff || e.Len != tc.want.n || e.Opcode != op.Opcode) {
			t.Errorf("%s: descriptor %+v, want arena %d off %d len %d", tc.name, e, tc.want.id, tc.want.arenaOff, tc.want.n)
		}
	}

	// The file size limit counts for writes by id as by pointer.
	o.fsize = 1 << 20
	w := Op{Opcode: OpWrite, Flags: ArenaRef, File: 1, Arena: 7, Len: 4096, Off: 1<<20 - 2048}
	if _, res, local := o.prepare(&w); !local || res != -int64(unix.EFBIG) {
		t.Errorf("write past RLIMIT_FSIZE: local %v res %d, want EFBIG", local, res)
	}
	o.fsize = math.MaxUint64

	// Forgotten (unshared, or its Arena closed): EFAULT by id, and by
	// pointer no longer an arena.
	s.forgetArena(7)
	op := ref(7, 0, 1)
	if _, res, local := o.prepare(&op); !local || res != efault {
		t.Errorf("forgotten arena by id: local %v res %d, want EFAULT", local, res)
	}
	op = Op{Opcode: OpRead, Flags: RequireZC, File: 1, Buf: a.Bytes()[:1]}
	if _, res, local := o.prepare(&op); !local || res != efault {
		t.Errorf("forgotten arena by pointer: local %v res %d, want EFAULT", local, res)
	}
}

// TestArenaRefSplits checks that PreadArena and PwriteArena split as
// Pread and Pwrite do, and refuse a bad range before sending anything.
func TestArenaRefSplits(t *testing.T) {
	s, fs := newTestSession(t, true)
	const size = 64 << 20
	s.noteArena(3, size, nil)
	const n = 40 << 20
	got, err := s.PreadArena(1, 3, 4096, n, 1000, 0)
	if err != nil || got != n {
		t.Fatalf("PreadArena: %d, %v; want %d", got, err, n)
	}
	seen := fs.take()
	if len(seen) != 3 {
		t.Fatalf("%d descriptors, want 3", len(seen))
	}
	for i, e := range seen {
		done := uint64(i) * MaxChunk
		if e.Opcode != OpRead || e.ArenaID != 3 || e.ArenaOff != 4096+done || e.Len != min(n-done, MaxChunk) || e.FileOff != 1000+done {
			t.Errorf("piece %d: %+v", i, e)
		}
	}
	if got, err := s.PwriteArena(1, 3, 0, 4096, 0, ArenaRef|RequireZC); err != nil || got != 4096 {
		t.Errorf("PwriteArena: %d, %v", got, err)
	}
	if seen := fs.take(); len(seen) != 1 || seen[0].Opcode != OpWrite || seen[0].Len != 4096 {
		t.Errorf("PwriteArena sent %+v", seen)
	}

	for _, tc := range []struct {
		name     string
		id       uint32
		off, n   uint64
		flags    uint32
		want     unix.Errno
		pointer  bool
		ptrFlags uint32
	}{
		{name: "last piece past the end", id: 3, off: size - n + 4096, n: n, want: unix.EFAULT},
		{name: "unknown id", id: 4, n: 1, want: unix.EFAULT},
		{name: "overflow", id: 3, off: 1 << 63, n: 1 << 63, want: unix.EFAULT},
		{name: "Datasync", id: 3, n: 1, flags: Datasync, want: unix.EINVAL},
		{name: "unknown flag", id: 3, n: 1, flags: 1 << 30, want: unix.EINVAL},
		{name: "pointer call with ArenaRef", pointer: true, ptrFlags: ArenaRef, want: unix.EINVAL},
	} {
		var err error
		if tc.pointer {
			_, err = s.Pread(1, make([]byte, 8), 0, tc.ptrFlags)
		} else {
			_, err = s.PwriteArena(1, tc.id, tc.off, tc.n, 0, tc.flags)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if seen := fs.take(); len(seen) != 0 {
			t.Errorf("%s: sent %d descriptors, want none", tc.name, len(seen))
		}
	}
}

// The client-side cost of one 4 KiB op, by pointer and by arena id, with
// every other arena of a full session in the way of the pointer search.
func BenchmarkPrepare(b *testing.B) {
	s, _ := newTestSession(b, false)
	o := &s.ops
	o.fsize = math.MaxUint64
	var last *arena.Arena
	for id := uint32(1); id <= 16; id++ {
		last = newArena(b, 1<<20)
		s.noteArena(id, 1<<20, last.Bytes())
	}
	b.Run("pointer", func(b *testing.B) {
		op := Op{Opcode: OpWrite, File: 1, Buf: last.Bytes()[4096:8192]}
		for b.Loop() {
			o.prepare(&op)
		}
	})
	b.Run("arena", func(b *testing.B) {
		op := Op{Opcode: OpWrite, Flags: ArenaRef, File: 1, Arena: 16, ArenaOff: 4096, Len: 4096}
		for b.Loop() {
			o.prepare(&op)
		}
	})
}
