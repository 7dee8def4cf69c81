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
	q     *opq.Queue
	bell  int
	tail  uint32
	head  uint32
	bells []int // every worker's doorbell
}

// openTestQueue opens a queue for src whose client rings the doorbell of
// worker bell.
func openTestQueue(t *testing.T, e *Executor, src Source, bell int) *testQueue {
	t.Helper()
	q, fds, err := e.OpenQueue(src, opq.DefaultEntries)
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
	return &testQueue{q: cq, bell: fds[2+bell], bells: fds[2:]}
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

// waitFor reaps until ud completes and says how long it took.
func (c *testQueue) waitFor(ud uint64, max time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < max {
		for c.head != c.q.CQTail().Load() {
			e := c.q.ReadCQE(c.head)
			c.head++
			c.q.CQHead().Store(c.head)
			if e.UserData == ud {
				return time.Since(start), true
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	return max, false
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
	c := openTestQueue(t, e, src, 0)
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

// slowInvalidator takes d for each invalidation of node slow (a file
// whose pages readers through the mount keep locked), nothing for others.
type slowInvalidator struct {
	slow  uint64
	d     time.Duration
	mu    sync.Mutex
	calls int
}

func (s *slowInvalidator) InvalidateNow(node uint64, off, n int64) error {
	if node == s.slow {
		time.Sleep(s.d)
		s.mu.Lock()
		s.calls++
		s.mu.Unlock()
	}
	return nil
}

// twoFiles makes files 1 and 2 and an 8 MiB arena for a fileSource.
func twoFiles(t *testing.T) (map[uint32]*os.File, []byte) {
	t.Helper()
	files := map[uint32]*os.File{}
	for _, id := range []uint32{1, 2} {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"))
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		files[id] = f
	}
	a, err := arena.Create(8<<20, arena.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	return files, a.Bytes()
}

// Client A piles up writes on a file whose invalidations are slow (2 ms
// each), in one round or in many; client B's write on another file, on
// the same worker or another, waits for at most a few of them, never
// for A's whole pile: a worker hands off once invalidations are slow or
// it has other work, each worker has its own invalidation goroutine, and
// the writes of a file waiting together cost one invalidation.
func TestSlowInvalidationsDelayOnlyTheirClient(t *testing.T) {
	for _, tc := range []struct {
		name            string
		bWorker         int
		bigFirst, split bool
	}{
		{"same worker, one round", 0, false, false},
		{"same worker, one write per round", 0, false, true},
		{"other worker, worker busy", 1, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := &slowInvalidator{slow: 1, d: 2 * time.Millisecond}
			e, err := New(Config{Slots: 4, Workers: 2, Invalidator: inv})
			require.NoError(t, err)
			t.Cleanup(e.Close)
			files, buf := twoFiles(t)
			A := openTestQueue(t, e, &fileSource{files: files, buf: buf, finished: map[uint64]int64{}}, 0)
			B := openTestQueue(t, e, &fileSource{files: files, buf: buf, finished: map[uint64]int64{}}, tc.bWorker)
			var es []opq.SQE
			if tc.bigFirst { // ring I/O in flight: worker 0 busy
				es = append(es, opq.SQE{Opcode: opq.OpWrite, FileID: 1, Len: 4 * InlineMax, UserData: 1})
			}
			for i := range 200 {
				es = append(es, opq.SQE{Opcode: opq.OpWrite, FileID: 1, ArenaOff: 1 << 20, FileOff: uint64(i) * 4096, Len: 4096, UserData: uint64(100 + i)})
			}
			if tc.split {
				for _, e := range es {
					A.submit(e)
					time.Sleep(20 * time.Microsecond)
				}
			} else {
				A.submit(es...)
			}
			time.Sleep(10 * time.Millisecond)
			B.submit(opq.SQE{Opcode: opq.OpWrite, FileID: 2, ArenaOff: 2 << 20, Len: 4 * InlineMax, UserData: 7},
				opq.SQE{Opcode: opq.OpWrite, FileID: 2, ArenaOff: 4 << 20, Len: 4096, UserData: 8})
			lat, ok := B.waitFor(8, 5*time.Second)
			require.True(t, ok)
			_, ok = A.waitFor(299, 5*time.Second)
			require.True(t, ok, "A's writes all complete")
			inv.mu.Lock()
			calls := inv.calls
			inv.mu.Unlock()
			t.Logf("B's write took %v; A's 200 writes cost %d invalidations; %d handed off", lat, calls, e.Stats().HandedOffInvalidations)
			require.Less(t, lat, 50*time.Millisecond, "B waited for A's pile (200 x 2 ms)")
			require.Less(t, calls, 100, "A's writes waiting together share an invalidation")
		})
	}
}
