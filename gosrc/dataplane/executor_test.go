package dataplane

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"golang.org/x/sys/unix"
)

// Arenas of 4 KiB, 64 MiB and 1 GiB register into the executor's sparse
// table by slot update; slots are reused after unregister; a full table
// says ENOSPC. The registration time of each size is logged (it pins
// every page).
func TestExecutorRegistersArenas(t *testing.T) {
	e, err := New(Config{Slots: 4})
	require.NoError(t, err)
	defer e.Close()
	var slots []uint32
	for _, size := range []int64{4096, 64 << 20, 1 << 30} {
		a, err := arena.Create(size, arena.Options{})
		require.NoError(t, err)
		defer a.Close()
		start := time.Now()
		slot, err := e.RegisterBuffer(a.Bytes())
		require.NoError(t, err, "register %d bytes", size)
		t.Logf("registered %d MiB in %v", size>>20, time.Since(start))
		slots = append(slots, slot)
	}
	require.Equal(t, 3, e.bufs.used())
	small, err := arena.Create(4096, arena.Options{})
	require.NoError(t, err)
	defer small.Close()
	_, err = e.RegisterBuffer(small.Bytes())
	require.NoError(t, err)
	_, err = e.RegisterBuffer(small.Bytes())
	require.ErrorIs(t, err, unix.ENOSPC)
	for _, s := range slots {
		require.NoError(t, e.UnregisterBuffer(s))
	}
	require.Equal(t, 1, e.bufs.used())
	_, err = e.RegisterBuffer(small.Bytes())
	require.NoError(t, err, "a freed slot is reused")
}

// Registration runs on the executor's thread while other goroutines ask
// for it concurrently; close wakes the thread and refuses later jobs.
func TestExecutorConcurrentAndClose(t *testing.T) {
	fds := countFds(t)
	e, err := New(Config{Slots: 64})
	require.NoError(t, err)
	a, err := arena.Create(1<<20, arena.Options{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				slot, err := e.RegisterBuffer(a.Bytes())
				if err != nil {
					t.Error(err)
					return
				}
				if err := e.UnregisterBuffer(slot); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, e.bufs.used())
	e.Close()
	_, err = e.RegisterBuffer(a.Bytes())
	require.ErrorIs(t, err, unix.ESHUTDOWN)
	require.NoError(t, a.Close())
	require.Equal(t, fds, countFds(t), "the executor's ring and eventfd are closed")
}

func countFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}
