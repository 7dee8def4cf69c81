package server

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// cpuTime is the CPU time, user and system, of the process or of the
// calling thread (unix.RUSAGE_SELF, unix.RUSAGE_THREAD).
func cpuTime(t *testing.T, who int) time.Duration {
	t.Helper()
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(who, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A session in poll mode (spin 1 ms) that rings its doorbell every
// millisecond with nothing published used to keep its worker spinning
// (183% of a CPU with both doorbells); now its 5 s of rings cost the
// server's whole process under 5% of a CPU. The session's real ops are
// served afterwards.
func TestPollModeDoorbellSpam(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s")
	}
	srv, _, s, a, f, _ := zcSetup(t, fusering.TransportURing, Options{}, 1<<20)
	s.SetMode(client.ModePoll, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // setup's work done

	runtime.LockOSThread() // the ringing thread's own CPU time is the client's
	defer runtime.UnlockOSThread()
	// The process's CPU time but this thread's, while this thread wakes
	// every millisecond for d, ringing or not: the difference is what the
	// rings cost the server (the Go runtime's own work for a thread that
	// sleeps this way is the same in both).
	others := func(d time.Duration, ring bool) (time.Duration, time.Duration, int) {
		p0, c0, start := cpuTime(t, unix.RUSAGE_SELF), cpuTime(t, unix.RUSAGE_THREAD), time.Now()
		rings := 0
		for time.Since(start) < d {
			if ring {
				s.Ring()
				rings++
			}
			// On this thread: time.Sleep's timers would cost other threads.
			unix.Nanosleep(&unix.Timespec{Nsec: int64(time.Millisecond)}, nil)
		}
		return cpuTime(t, unix.RUSAGE_SELF) - p0 - (cpuTime(t, unix.RUSAGE_THREAD) - c0), time.Since(start), rings
	}
	const spam = 5 * time.Second
	quiet, _, _ := others(spam, false)
	busy, wall, rings := others(spam, true)
	server := busy - quiet
	t.Logf("%d rings in %v: the other threads used %v (%v without the rings): the rings cost the server %v (%.2f%% of a CPU); %d queue back-offs",
		rings, wall.Round(time.Millisecond), busy.Round(time.Millisecond), quiet.Round(time.Millisecond),
		server.Round(time.Millisecond), 100*server.Seconds()/wall.Seconds(), srv.Stats().QueueBackoffs)
	require.Less(t, server.Seconds(), 0.05*wall.Seconds(), "the server spun for a session with nothing to do")

	// Real ops: at once, served in sleep mode while the back-off lasts
	// (a second at most), then polled again.
	mem := a.Bytes()
	writes := func() time.Duration {
		const n = 2000
		start := time.Now()
		for i := range n {
			got, err := s.Pwrite(f, mem[:4096], int64(i%64)*4096, client.RequireZC)
			require.NoError(t, err)
			require.Equal(t, 4096, got)
		}
		return time.Since(start) / n
	}
	during := writes()
	time.Sleep(time.Second)
	t.Logf("then poll-mode writes at QD1: %v each at once, %v each a second later", during, writes())
}
