package server

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/control"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// Limits by name: set before Start, defaults where unset, refused after.
func TestSetLimit(t *testing.T) {
	srv, err := New(shmDir(t, "backing"), shmDir(t, "mnt"), Options{})
	require.NoError(t, err)
	require.NoError(t, srv.SetLimit("sessions_per_user", 3))
	v, ok := srv.Limit("sessions_per_user")
	require.True(t, ok)
	require.EqualValues(t, 3, v)
	v, _ = srv.Limit("attached_files")
	require.EqualValues(t, control.DefaultLimits.AttachedFiles, v, "unset: the default")
	require.ErrorIs(t, srv.SetLimit("no_such_limit", 1), syscall.ENOENT)
	require.Equal(t, control.LimitNames(), LimitNames())

	started, _, _ := mount(t, fusering.TransportURing, Options{})
	require.ErrorIs(t, started.SetLimit("sessions_per_user", 1), syscall.EALREADY)
}

// A session's queue has queue_depth entries (rounded down to a power of
// two), and a uid's sessions together at most queue_depth_per_user: the
// session past it is refused EAGAIN. A batch deeper than the queue still
// goes through (the client submits what fits, waits, goes on).
func TestQueueDepthLimits(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportURing, Options{Limits: Limits{QueueDepth: 12, QueueDepthPerUser: 16}})
	v, _ := srv.Limit("queue_depth")
	require.EqualValues(t, 12, v)
	a, err := arena.Create(1<<20, arena.Options{})
	require.NoError(t, err)
	defer a.Close()
	s1, err := client.Connect(mnt)
	require.NoError(t, err)
	defer s1.Close()
	s2, err := client.Connect(mnt)
	require.NoError(t, err, "8 + 8 entries: within 16")
	defer s2.Close()
	_, err = client.Connect(mnt)
	require.ErrorIs(t, err, syscall.EAGAIN, "a third queue of 8 is past the uid's 16")

	_, _, err = s1.Share(a)
	require.NoError(t, err)
	writeFile(t, join(mnt, "f"), make([]byte, 64<<10))
	fd := openFd(t, join(mnt, "f"), unix.O_RDWR)
	defer unix.Close(fd)
	id, err := s1.Attach(fd)
	require.NoError(t, err)
	ops := make([]client.Op, 32) // four times the queue
	for i := range ops {
		ops[i] = client.Op{Opcode: client.OpWrite, Flags: client.RequireZC, File: id,
			Buf: a.Bytes()[i*1024 : (i+1)*1024], Off: int64(i * 1024), UserData: uint64(i)}
	}
	n, err := s1.Submit(ops)
	require.NoError(t, err)
	require.Equal(t, 8, n, "the queue takes its depth")
	done := 0
	var comps [32]client.Completion
	for done < len(ops) {
		if n < len(ops) {
			k, err := s1.Submit(ops[n:])
			if err == nil {
				n += k
			}
		}
		got, err := s1.Wait(comps[:], 1, -1)
		require.NoError(t, err)
		for _, c := range comps[:got] {
			require.EqualValues(t, 1024, c.Res)
		}
		done += got
	}
	require.NoError(t, s2.Close())
	s3, err := client.Connect(mnt)
	require.NoError(t, err, "a closed session gives its entries back")
	s3.Close()
}
