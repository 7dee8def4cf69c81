package dataplane

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"golang.org/x/sys/unix"
)

// workersCPU is the CPU time the executor's worker threads have used
// (the scheduler's count, in nanoseconds).
func workersCPU(t *testing.T, e *Executor) time.Duration {
	t.Helper()
	var sum time.Duration
	for _, w := range e.workers {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", w.tid))
		require.NoError(t, err)
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		require.NoError(t, err)
		sum += time.Duration(ns)
	}
	return sum
}

// processCPU is the CPU time of the whole process, user and system.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pollClient is a client in poll mode: its queue and every doorbell.
type pollClient struct {
	*testQueue
	bells []int
	rings int // doorbells rung
}

func openPollClient(t *testing.T, e *Executor, src Source, spin time.Duration) *pollClient {
	t.Helper()
	tq := openTestQueue(t, e, src, 0)
	tq.q.Mode().Store(1)
	tq.q.Spin().Store(uint32(spin / time.Microsecond))
	return &pollClient{testQueue: tq, bells: tq.bells}
}

// ring rings doorbell i, whatever need_wake says.
func (c *pollClient) ring(i int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(c.bells[i], one[:])
	c.rings++
}

// publish writes e and publishes it, ringing doorbell 0 only when no
// worker polls the queue (as package client does).
func (c *pollClient) publish(e opq.SQE) {
	c.q.WriteSQE(c.tail, &e)
	c.tail++
	c.q.SQTail().Store(c.tail)
	if c.q.NeedWake().Load() != 0 {
		c.ring(0)
	}
}

// reapAll consumes every completion posted.
func (c *pollClient) reapAll() int {
	n := 0
	for c.head != c.q.CQTail().Load() {
		c.head++
		n++
	}
	c.q.CQHead().Store(c.head)
	return n
}

// pinAway keeps the calling goroutine's thread off worker i's CPU, as a
// poll-mode client rings the worker of another CPU than its own (two
// spinning threads on one CPU wait for each other's time slice); the
// returned function undoes it. False when there is no other CPU.
func pinAway(t *testing.T, e *Executor, i int) (func(), bool) {
	t.Helper()
	var old, set unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &old))
	set = old
	set.Clear(e.workers[i].cpu)
	if e.workers[i].cpu < 0 || set.Count() == 0 {
		return func() {}, false
	}
	runtime.LockOSThread()
	require.NoError(t, unix.SchedSetaffinity(0, &set))
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}, true
}

// qd1 runs n ops one at a time, spinning for each completion as a poll
// client does, and returns the doorbells it had to ring.
func (c *pollClient) qd1(t *testing.T, n int, e opq.SQE) int {
	t.Helper()
	rings := c.rings
	for i := range n {
		e.UserData = uint64(i)
		c.publish(e)
		deadline := time.Now().Add(5 * time.Second)
		for c.head == c.q.CQTail().Load() {
			require.True(t, time.Now().Before(deadline), "op %d never completed", i)
		}
		c.reapAll()
	}
	return c.rings - rings
}

// A client in poll mode that rings every doorbell every millisecond with
// nothing published, or one doorbell with one bad op each time, asks the
// workers to spin (up to a millisecond each time) for nothing: they must
// not. Over 5 s of it the worker threads spend under 5% of one CPU on it
// (beyond what the bad ops cost in sleep mode), and once the client
// sends real ops back to back it is polled again: it rings only now and
// then.
func TestPollModeSpamCostsLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("5 to 7 s per case")
	}
	for _, tc := range []struct {
		name string
		op   bool
	}{{"empty doorbells", false}, {"one bad op per doorbell", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Config{Slots: 4, Workers: 2})
			require.NoError(t, err)
			t.Cleanup(e.Close)
			files, buf := twoFiles(t)
			c := openPollClient(t, e, &fileSource{files: files, buf: buf, finished: map[uint64]int64{}}, time.Millisecond)
			// For d, every millisecond: ring every doorbell, or publish a
			// bad op and ring one. It returns the CPU time of the worker
			// threads and of the process, the time it took and the rings.
			spam := func(d time.Duration) (w, p, wall time.Duration, rings int) {
				w0, p0, r0, start := workersCPU(t, e), processCPU(t), c.rings, time.Now()
				for i := 0; time.Since(start) < d; i++ {
					c.reapAll()
					switch {
					case !tc.op:
						for b := range c.bells {
							c.ring(b)
						}
					case c.tail-c.head < c.q.Entries():
						bad := opq.SQE{Opcode: opq.OpRead, FileID: 99, Len: 4096} // EBADF
						c.q.WriteSQE(c.tail, &bad)
						c.tail++
						c.q.SQTail().Store(c.tail)
						c.ring(i % len(c.bells))
					}
					time.Sleep(time.Millisecond)
				}
				return workersCPU(t, e) - w0, processCPU(t) - p0, time.Since(start), c.rings - r0
			}
			// The ops cost what they cost in sleep mode too: measured
			// first, they are not the spinning's.
			var perRing time.Duration
			if tc.op {
				c.q.Mode().Store(0)
				w, _, wall, rings := spam(2 * time.Second)
				perRing = w / time.Duration(rings)
				t.Logf("sleep mode: %d doorbells with an op each in %v: the workers used %v (%.2f%% of a CPU), %v a doorbell",
					rings, wall.Round(time.Millisecond), w.Round(time.Microsecond), 100*w.Seconds()/wall.Seconds(), perRing)
				c.q.Mode().Store(1)
			}
			w, p, wall, rings := spam(5 * time.Second)
			spun := w - time.Duration(rings)*perRing
			t.Logf("poll mode: %d doorbells in %v: the workers used %v (%.2f%% of a CPU; %.2f%% more than sleep mode would), the process %v (%.2f%%, the spamming client included); %d throttlings",
				rings, wall.Round(time.Millisecond), w.Round(time.Microsecond), 100*w.Seconds()/wall.Seconds(),
				100*spun.Seconds()/wall.Seconds(), p.Round(time.Microsecond), 100*p.Seconds()/wall.Seconds(), e.Stats().QueueBackoffs)
			require.Less(t, spun.Seconds(), 0.05*wall.Seconds(), "the workers spun for a client with nothing to do")
			require.NotZero(t, e.Stats().QueueBackoffs)

			// Real ops, one at a time, once the back-off is over: polled.
			time.Sleep(maxBackoff + 10*time.Millisecond)
			c.reapAll()
			unpin, ok := pinAway(t, e, 0)
			defer unpin()
			if !ok {
				t.Skip("one CPU: a poll-mode client and its worker would share it")
			}
			const n = 2000
			rings = c.qd1(t, n, opq.SQE{Opcode: opq.OpWrite, FileID: 1, Len: 4096})
			t.Logf("%d ops at QD1 rang %d doorbells", n, rings)
			if !raceEnabled {
				require.Less(t, rings, n/20, "a client publishing real ops keeps its worker spinning")
			}
		})
	}
}

// A client whose ops come one at a time faster than the credit each
// earns is polled throughout: it rings now and then, not once per op;
// one whose ops come slower than its spin goes back to sleep mode after
// each and, once its spins that found nothing pass its allowance, is
// throttled.
func TestPollModeBudget(t *testing.T) {
	e, err := New(Config{Slots: 4, Workers: 1})
	require.NoError(t, err)
	t.Cleanup(e.Close)
	files, buf := twoFiles(t)
	a, err := arena.Create(1<<20, arena.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	c := openPollClient(t, e, &fileSource{files: files, buf: buf, finished: map[uint64]int64{}}, 100*time.Microsecond)
	unpin, ok := pinAway(t, e, 0)
	defer unpin()
	if !ok {
		t.Skip("one CPU: a poll-mode client and its worker would share it")
	}
	const n = 5000
	rings := c.qd1(t, n, opq.SQE{Opcode: opq.OpRead, FileID: 1, Len: 4096})
	t.Logf("%d reads at QD1 rang %d doorbells (%d back-offs)", n, rings, e.Stats().QueueBackoffs)
	if !raceEnabled { // under -race the client stalls for milliseconds at a time
		require.Less(t, rings, n/20)
	}
	backoffs := e.Stats().QueueBackoffs

	// One op every 2 ms (spin 100 µs): each spin ends finding nothing,
	// and past its allowance the queue is served in sleep mode.
	w0, start := workersCPU(t, e), time.Now()
	for i := 0; e.Stats().QueueBackoffs == backoffs; i++ {
		require.Less(t, time.Since(start), 5*time.Second, "spins that find nothing are never throttled")
		c.qd1(t, 1, opq.SQE{Opcode: opq.OpRead, FileID: 1, Len: 4096, UserData: uint64(i)})
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("throttled after %v, the workers having used %v", time.Since(start).Round(time.Millisecond), workersCPU(t, e)-w0)
	c.qd1(t, 1, opq.SQE{Opcode: opq.OpRead, FileID: 1, Len: 4096})
	time.Sleep(time.Millisecond)
	require.Equal(t, uint32(1), c.q.NeedWake().Load(), "sleep mode")
}
