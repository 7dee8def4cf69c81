package server

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// A client finds the server from the mountpoint, shares arenas of 4 KiB,
// 64 MiB and 1 GiB (registered as fixed buffers), and both sides count
// the same; closing the session gives back every fd, mapping and slot.
func TestSessionShareArenas(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportURing, Options{})
	fds, slots := countFds(t), srv.Stats().FixedSlotsUsed

	s, err := client.Connect(mnt)
	require.NoError(t, err)
	require.NotZero(t, s.ID())
	var total uint64
	var ids []uint32
	for _, size := range []int64{4096, 64 << 20, 1 << 30} {
		a, err := arena.Create(size, arena.Options{})
		require.NoError(t, err)
		copy(a.Bytes(), "shared")
		start := time.Now()
		id, registered, err := s.Share(a)
		require.NoError(t, err, "share %d bytes", size)
		t.Logf("shared %d MiB in %v (registered: %v)", size>>20, time.Since(start), registered)
		require.True(t, registered, "root has the memlock budget: the arena must be a fixed buffer")
		require.NoError(t, a.Close(), "the server holds its own reference")
		ids = append(ids, id)
		total += uint64(size)
	}
	cs, err := s.Stats()
	require.NoError(t, err)
	require.Equal(t, wire.StatsReply{Sessions: 1, Arenas: 3, RegisteredBytes: total}, cs)
	st := srv.Stats()
	require.Equal(t, []uint64{1, 3, total}, []uint64{st.Sessions, st.Arenas, st.RegisteredBytes})
	require.Equal(t, slots+3, srv.Stats().FixedSlotsUsed)

	require.NoError(t, s.Unshare(ids[0]))
	require.ErrorIs(t, s.Unshare(ids[0]), unix.ENOENT, "released twice")
	require.NoError(t, s.Close())
	require.Eventually(t, func() bool {
		st := srv.Stats()
		return st.Sessions == 0 && st.Arenas == 0 && st.RegisteredBytes == 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, slots, srv.Stats().FixedSlotsUsed, "fixed-buffer slots back")
	// The server closes its end of the socket just after answering Bye.
	require.Eventually(t, func() bool { return countFds(t) == fds }, 5*time.Second, 10*time.Millisecond,
		"fds back (%d before)", fds)
}

// Bad input gets its errno, and neither the session nor another one is
// disturbed by it.
func TestSessionRefusals(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportClassic, Options{Limits: Limits{ArenasPerSession: 2}})
	good, err := client.Connect(mnt)
	require.NoError(t, err)
	defer good.Close()
	bad, err := client.Connect(mnt)
	require.NoError(t, err)
	defer bad.Close()

	unsealed, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	require.NoError(t, err)
	defer unix.Close(unsealed)
	require.NoError(t, unix.Ftruncate(unsealed, 1<<20))
	_, _, err = bad.ShareFd(unsealed, 1<<20)
	require.ErrorIs(t, err, unix.EPERM, "unsealed memfd")

	short, err := arena.Create(4096, arena.Options{})
	require.NoError(t, err)
	defer short.Close()
	_, _, err = bad.ShareFd(short.Fd(), 1<<20)
	require.ErrorIs(t, err, unix.EINVAL, "memfd smaller than declared")

	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	_, _, err = bad.ShareFd(p[0], 4096)
	require.ErrorIs(t, err, unix.EINVAL, "pipe")
	var sp [2]int
	sp, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	_, _, err = bad.ShareFd(sp[0], 4096)
	require.ErrorIs(t, err, unix.EINVAL, "socket")
	// A regular file: on a disk file system it is no memfd at all; on
	// tmpfs it is shmem like a memfd but can never be sealed.
	for dir, want := range map[string]unix.Errno{t.TempDir(): unix.EINVAL, shmDir(t, "regular"): unix.EPERM} {
		reg, err := os.Create(join(dir, "file"))
		require.NoError(t, err)
		defer reg.Close()
		require.NoError(t, reg.Truncate(4096))
		_, _, err = bad.ShareFd(int(reg.Fd()), 4096)
		require.ErrorIs(t, err, want, "a regular file in %s", dir)
	}

	_, _, err = bad.ShareFd(short.Fd(), arena.MaxSize*2)
	require.ErrorIs(t, err, unix.EINVAL, "over the size limit")

	for i := range 2 {
		_, _, err := bad.Share(short)
		require.NoError(t, err, "arena %d", i)
	}
	_, _, err = bad.Share(short)
	require.ErrorIs(t, err, unix.ENOSPC, "more arenas than the limit")

	a, err := arena.Create(1<<20, arena.Options{})
	require.NoError(t, err)
	defer a.Close()
	_, registered, err := good.Share(a)
	require.NoError(t, err, "the other session keeps working")
	require.True(t, registered)
	st, err := good.Stats()
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Sessions)
	require.EqualValues(t, 3, st.Arenas)

	// A server that goes away makes calls fail with ENOTCONN, not hang.
	require.NoError(t, srv.Stop())
	_, err = good.Stats()
	require.ErrorIs(t, err, unix.ENOTCONN)
}

// The control socket is named on the mount root, not in the backing
// directory, and cannot be changed.
func TestControlXattr(t *testing.T) {
	srv, backing, mnt := mount(t, fusering.TransportClassic, Options{})
	path, err := client.SocketPath(mnt)
	require.NoError(t, err)
	require.Equal(t, srv.Stats().ControlSocket, path)
	_, err = unix.Getxattr(backing, ControlXattr, make([]byte, 256))
	require.Error(t, err)
	require.ErrorIs(t, unix.Setxattr(mnt, ControlXattr, []byte("/tmp/x"), 0), unix.EPERM)

	// From inside the mount the client looks up to the root. A backing
	// file carrying the attribute cannot steer it elsewhere: below the
	// root the name is hidden and cannot be set through the mount.
	require.NoError(t, os.MkdirAll(join(backing, "a", "b"), 0o755))
	writeFile(t, join(backing, "a", "b", "f"), nil)
	require.NoError(t, unix.Setxattr(join(backing, "a", "b", "f"), ControlXattr, []byte("/tmp/evil.sock"), 0))
	require.NoError(t, unix.Setxattr(join(backing, "a"), ControlXattr, []byte("/tmp/evil.sock"), 0))
	for _, p := range []string{join(mnt, "a", "b", "f"), join(mnt, "a", "b"), join(mnt, "a")} {
		got, err := client.SocketPath(p)
		require.NoError(t, err, p)
		require.Equal(t, path, got, "from %s", p)
	}
	require.ErrorIs(t, unix.Setxattr(join(mnt, "a"), ControlXattr, []byte("/tmp/x"), 0), unix.EPERM)
	s, err := client.Connect(join(mnt, "a", "b"))
	require.NoError(t, err, "connect from a directory inside the mount")
	require.NoError(t, s.Close())
	t.Setenv(client.ControlSocketEnv, "/nonexistent.sock")
	_, err = client.Connect(mnt)
	require.ErrorIs(t, err, unix.ENOENT, "the environment overrides discovery")
}

// skipQueue receives and closes the op queue a server sends after
// HelloReply.
func skipQueue(t *testing.T, fd int) {
	t.Helper()
	m, fds, err := wire.Recv(fd, nil)
	require.NoError(t, err)
	oq, ok := m.(*wire.OpQueue)
	require.True(t, ok, "got %v, want OpQueue", m)
	for range oq.Doorbells {
		_, more, err := wire.Recv(fd, nil)
		require.NoError(t, err)
		fds = append(fds, more...)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Malformed messages get an Error reply with their errno; the fds that
// came with them are closed; the session goes on, and so does another.
func TestSessionBadMessages(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportURing, Options{})
	other, err := client.Connect(mnt)
	require.NoError(t, err)
	defer other.Close()

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Connect(fd, &unix.SockaddrUnix{Name: srv.Stats().ControlSocket}))
	_, err = wire.Call(fd, &wire.Hello{Version: wire.ProtocolVersion + 7})
	require.NoError(t, err, "a newer client is answered with the version both speak")
	skipQueue(t, fd)

	stats, err := wire.Encode(&wire.Stats{})
	require.NoError(t, err)
	share, err := wire.Encode(&wire.ShareArena{Size: 4096})
	require.NoError(t, err)
	with := func(b []byte, off int, v ...byte) []byte {
		c := append([]byte(nil), b...)
		copy(c[off:], v)
		return c
	}
	a, err := arena.Create(4096, arena.Options{})
	require.NoError(t, err)
	defer a.Close()
	fds := settledFds(t)
	for _, c := range []struct {
		name string
		msg  []byte
		fd   int
		want unix.Errno
	}{
		{"garbage", []byte("not a zcfuse message"), -1, unix.EPROTO},
		{"shorter than a header", stats[:7], -1, unix.EPROTO},
		{"truncated body", share[:wire.HeaderSize+4], -1, unix.EPROTO},
		{"length field lies", with(share, 8, 40), -1, unix.EPROTO},
		{"oversized", append(append([]byte(nil), stats...), make([]byte, 2*wire.MaxMsgSize)...), -1, unix.EMSGSIZE},
		{"wire version 2", with(stats, 4, 2), -1, unix.EPROTONOSUPPORT},
		{"unknown type", with(stats, 6, 99), -1, unix.EBADMSG},
		{"an OpQueue, which only the server sends", with(stats, 6, byte(wire.TypeOpQueue)), -1, unix.EBADMSG},
		{"fd on Stats", stats, a.Fd(), unix.EBADMSG},
		{"ShareArena without its fd", share, -1, unix.EBADMSG},
		{"a reply sent as a request", with(stats, 6, byte(wire.TypeOk)), -1, unix.EBADMSG},
	} {
		var oob []byte
		if c.fd >= 0 {
			oob = unix.UnixRights(c.fd)
		}
		require.NoError(t, unix.Sendmsg(fd, c.msg, oob, nil, 0), c.name)
		m, _, err := wire.Recv(fd, make([]byte, wire.MaxMsgSize))
		require.NoError(t, err, c.name)
		e, ok := m.(*wire.Error)
		require.True(t, ok, "%s: got %v, want an Error", c.name, m)
		require.Equal(t, c.want, e.Errno, "%s: %s", c.name, e.Message)

		_, err = wire.Call(fd, &wire.Stats{})
		require.NoError(t, err, "%s: the session goes on", c.name)
		_, err = other.Stats()
		require.NoError(t, err, "%s: another session is not disturbed", c.name)
	}
	require.Equal(t, fds, countFds(t), "the fds that came with bad messages are closed")
}

// settledFds counts this process's fds once the count holds still: an
// earlier test's attachments close theirs asynchronously (their file
// slots are unregistered on a goroutine).
func settledFds(t *testing.T) int {
	t.Helper()
	n := countFds(t)
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		m := countFds(t)
		if m == n {
			return n
		}
		n = m
	}
	return n
}
