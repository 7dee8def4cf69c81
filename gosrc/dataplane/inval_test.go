package dataplane

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"golang.org/x/sys/unix"
)

// stuckInvalidator blocks the invalidations of one node until released,
// and records every call.
type stuckInvalidator struct {
	stuck   uint64
	release chan struct{}
	mu      sync.Mutex
	calls   []uint64
}

func (s *stuckInvalidator) InvalidateNow(node uint64, off, n int64) error {
	s.mu.Lock()
	s.calls = append(s.calls, node)
	s.mu.Unlock()
	if node == s.stuck {
		<-s.release
	}
	return nil
}

func (s *stuckInvalidator) called(node uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c == node {
			return true
		}
	}
	return false
}

// fileSource resolves file id i to files[i], node i, and every op's
// buffer to one arena; it counts Finish calls.
type fileSource struct {
	files    map[uint32]*os.File
	buf      []byte
	mu       sync.Mutex
	finished map[uint64]int64 // user data -> res
}

func (s *fileSource) Prepare(e opq.SQE) (*Op, unix.Errno) {
	f := s.files[e.FileID]
	if f == nil {
		return nil, unix.EBADF
	}
	return &Op{SQE: e, File: File{Fd: int(f.Fd()), Node: uint64(e.FileID)},
		Buf: Buffer{Bytes: s.buf[e.ArenaOff : e.ArenaOff+e.Len]}}, 0
}

func (s *fileSource) BeforeWrite(o *Op) []byte { return nil }

func (s *fileSource) Finish(o *Op, res int64) {
	s.mu.Lock()
	s.finished[o.SQE.UserData] = res
	s.mu.Unlock()
}

func (s *fileSource) Broken(why string) { panic("queue broken: " + why) }

// testQueue is a client's view of a queue: its mapping and doorbell.
type testQueue struct {
	q    *opq.Queue
	bell int
	tail uint32
	head uint32
}

func openTestQueue(t *testing.T, e *Executor, src Source) *testQueue {
	t.Helper()
	q, fds, err := e.OpenQueue(src)
	require.NoError(t, err)
	t.Cleanup(q.Close)
	mem, err := unix.Mmap(fds[0], 0, opq.Size(q.Entries()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(mem) })
	cq, ok := opq.Open(mem)
	require.True(t, ok)
	for _, fd := range fds[:2] {
		unix.Close(fd)
	}
	t.Cleanup(func() {
		for _, fd := range fds[2:] {
			unix.Close(fd)
		}
	})
	return &testQueue{q: cq, bell: fds[2]}
}

func (c *testQueue) submit(es ...opq.SQE) {
	for i := range es {
		c.q.WriteSQE(c.tail, &es[i])
		c.tail++
	}
	c.q.SQTail().Store(c.tail)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(c.bell, one[:])
}

// reap returns the completions that arrive within d.
func (c *testQueue) reap(d time.Duration) map[uint64]int64 {
	got := map[uint64]int64{}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for c.head != c.q.CQTail().Load() {
			e := c.q.ReadCQE(c.head)
			got[e.UserData] = e.Res
			c.head++
		}
		c.q.CQHead().Store(c.head)
		time.Sleep(time.Millisecond)
	}
	return got
}

// A ring write's completion is posted only once its node's cache is
// dropped; a worker that has ring I/O in flight hands the invalidation to
// the invalidation goroutine and goes on: with one invalidation stuck, a
// large write on another file still completes, and the stuck one
// completes once released.
func TestInvalidationBeforeCompletionAndHandOff(t *testing.T) {
	inv := &stuckInvalidator{stuck: 1, release: make(chan struct{})}
	e, err := New(Config{Slots: 4, Workers: 1, Invalidator: inv})
	require.NoError(t, err)
	t.Cleanup(e.Close) // cleanups run last first: the queue closes before it
	dir := t.TempDir()
	files := map[uint32]*os.File{}
	for _, id := range []uint32{1, 2} {
		f, err := os.Create(filepath.Join(dir, string(rune('a'+id))))
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		files[id] = f
	}
	a, err := arena.Create(4<<20, arena.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	src := &fileSource{files: files, buf: a.Bytes(), finished: map[uint64]int64{}}
	c := openTestQueue(t, e, src)
	released := false
	t.Cleanup(func() {
		if !released {
			close(inv.release) // a failed test must not leave the queue stuck
		}
	})

	// A large write (through the ring) on file 2 and a small one (done
	// inline) on file 1, whose invalidation sticks, in one round.
	big := uint64(InlineMax * 4)
	c.submit(opq.SQE{Opcode: opq.OpWrite, FileID: 2, Len: big, UserData: 20},
		opq.SQE{Opcode: opq.OpWrite, FileID: 1, ArenaOff: big, Len: 4096, UserData: 10})
	got := c.reap(200 * time.Millisecond)
	require.Equal(t, map[uint64]int64{20: int64(big)}, got, "the large write completes while the small one's invalidation is stuck")
	require.True(t, inv.called(1) && inv.called(2), "both nodes invalidated")
	require.EqualValues(t, 1, e.Stats().HandedOffInvalidations, "the busy worker handed the small write off")
	src.mu.Lock()
	_, finished := src.finished[10]
	src.mu.Unlock()
	require.False(t, finished, "no Finish before the cache is clean")

	close(inv.release)
	released = true
	got = c.reap(200 * time.Millisecond)
	require.Equal(t, map[uint64]int64{10: 4096}, got, "posted once the invalidation returned")

	// An idle worker invalidates inline: no hand-off.
	c.submit(opq.SQE{Opcode: opq.OpWrite, FileID: 2, Len: 4096, UserData: 30})
	require.Equal(t, map[uint64]int64{30: 4096}, c.reap(100*time.Millisecond))
	require.EqualValues(t, 1, e.Stats().HandedOffInvalidations)
	st := e.Stats()
	require.EqualValues(t, 3, st.ZCOps)
	require.EqualValues(t, 2*4096+big, st.ZCWriteBytes)
}
