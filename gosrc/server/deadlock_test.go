package server

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// pinThread locks the goroutine to its thread and the thread to cpu.
func pinThread(cpu int) {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	unix.SchedSetaffinity(0, &set) // advice: one CPU only leaves it unpinned
}

// A worker invalidating the cache of a file after a ring write waits on
// the page locks of READs of that file in flight through the mount; the
// READs need the ring threads of their CPU. Attach ioctls run on those
// same ring threads. If an attach waited for the workers (registering the
// file in their tables), four of them would hold every ring thread of the
// CPU while the worker waits for a READ queued there: a deadlock of that
// CPU's queue, every session on the worker, and Stop (found by a review;
// it took about 6 s here). Ring writes, readers of the same file and
// attach ioctls run for 8 s, and writes must keep completing.
func TestAttachWhileInvalidating(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportURing, Options{})
	const size = 8 << 20
	writeFile(t, join(mnt, "x"), make([]byte, size))
	var st unix.Stat_t
	require.NoError(t, unix.Stat(mnt, &st))
	abort := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(st.Dev))

	s, err := client.Connect(mnt)
	require.NoError(t, err)
	defer s.Close()
	a, err := arena.Create(1<<20, arena.Options{})
	require.NoError(t, err)
	defer a.Close()
	_, _, err = s.Share(a)
	require.NoError(t, err)
	wfd := openFd(t, join(mnt, "x"), unix.O_RDWR)
	defer unix.Close(wfd)
	id, err := s.Attach(wfd)
	require.NoError(t, err)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes, attaches, reads atomic.Int64
	wg.Add(1)
	go func() { // small ring writes (inline: the worker is never busy)
		defer wg.Done()
		pinThread(1)
		for n := 0; !stop.Load(); n++ {
			if _, err := s.Pwrite(id, a.Bytes()[:64<<10], int64(n%(size>>16))<<16, client.RequireZC); err != nil {
				return
			}
			writes.Add(1)
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() { // readers of the same file, on CPU 0's queue
			defer wg.Done()
			pinThread(0)
			fd, err := unix.Open(join(mnt, "x"), unix.O_RDONLY, 0)
			if err != nil {
				return
			}
			defer unix.Close(fd)
			buf := make([]byte, 256<<10)
			for n := 0; !stop.Load(); n++ {
				unix.Pread(fd, buf, int64(n%(size>>18))<<18)
				reads.Add(1)
			}
		}()
	}
	arg := wire.AttachArg{SessionID: s.ID(), Token: s.Token()}
	for range 8 {
		wg.Add(1)
		go func() { // attach ioctls on CPU 0's ring threads
			defer wg.Done()
			pinThread(0)
			for !stop.Load() {
				fd, err := unix.Open(join(mnt, "x"), unix.O_RDONLY, 0)
				if err != nil {
					return
				}
				if _, err := client.AttachIoctl(fd, arg); err == nil {
					attaches.Add(1)
				}
				unix.Close(fd)
			}
		}()
	}
	last, still := int64(-1), 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		time.Sleep(500 * time.Millisecond)
		w := writes.Load()
		if w == last {
			still++
		} else {
			still = 0
		}
		last = w
		if still >= 6 {
			buf := make([]byte, 4<<20)
			var stuck []string
			for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
				if strings.Contains(g, "InvalidateNow") || strings.Contains(g, "everywhere") {
					stuck = append(stuck, g)
				}
			}
			os.WriteFile(abort, []byte("1"), 0) // frees the threads so the test can end
			stop.Store(true)
			wg.Wait()
			t.Fatalf("no ring write completed for 3 s (writes %d, reads %d, attaches %d): deadlocked; connection aborted\n%s",
				w, reads.Load(), attaches.Load(), strings.Join(stuck, "\n\n"))
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("8 s: %d ring writes, %d reads, %d attaches, %d invalidations handed off",
		writes.Load(), reads.Load(), attaches.Load(), srv.Stats().HandedOffInvalidations)
	require.NotZero(t, attaches.Load())
}
