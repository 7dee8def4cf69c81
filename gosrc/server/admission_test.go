package server

import (
	"io"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// asUser runs fn on a thread of its own that has taken uid and dies with
// it (uidThread).
func asUser(t *testing.T, uid uint32, fn func()) {
	t.Helper()
	uidThread(t, uid)(fn)
}

// connectAs connects to the server behind mnt as uid.
func connectAs(t *testing.T, uid uint32, mnt string) (*client.Session, error) {
	t.Helper()
	var s *client.Session
	var err error
	asUser(t, uid, func() { s, err = client.Connect(mnt) })
	if s != nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// requireRefused checks a refused Connect: the errno and words of the
// server (or of the kernel, for want), never the EPIPE, ECONNRESET or
// ENOTCONN of the close that follows a refusal.
func requireRefused(t *testing.T, err error, errno syscall.Errno, want string) {
	t.Helper()
	require.ErrorIs(t, err, errno, "got %v", err)
	require.ErrorContains(t, err, want)
}

// A user the server does not admit gets EACCES, and the words say why:
// from the kernel when the mount lacks --allow-other, from the server's
// own check (SO_PEERCRED) when the socket lets the user that far.
func TestConnectNotAdmitted(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportClassic, Options{ControlDir: shmDir(t, "ctl")})
	_, err := connectAs(t, nobody, mnt)
	requireRefused(t, err, unix.EACCES, "--allow-other")

	sock := srv.Stats().ControlSocket
	require.NoError(t, os.Chmod(sock, 0o666))
	t.Setenv(client.ControlSocketEnv, sock)
	for range 30 {
		_, err = connectAs(t, nobody, "/")
		requireRefused(t, err, unix.EACCES, "uid 65534 may not use this mount")
	}
	require.EqualValues(t, 30, srv.Stats().ConnectionsRefused)
	require.Zero(t, srv.Stats().Sessions)
}

const nobody = 65534

// Sessions are limited per user and, for users other than root and the
// owner together, server-wide: each refusal is EAGAIN naming its limit.
// Root has a budget of its own and is never refused by the server-wide
// limit; a user's session back lets it in again.
func TestConnectSessionLimits(t *testing.T) {
	const third = 4242
	srv, _, mnt := mount(t, fusering.TransportURing, Options{AllowOther: true, Limits: Limits{SessionsPerUser: 2, Sessions: 3}})
	a, err := connectAs(t, nobody, mnt)
	require.NoError(t, err)
	_, err = connectAs(t, nobody, mnt)
	require.NoError(t, err)
	for range 20 {
		_, err = connectAs(t, nobody, mnt)
		requireRefused(t, err, unix.EAGAIN, "uid 65534 holds 2 sessions, its limit is 2")
	}
	_, err = connectAs(t, third, mnt)
	require.NoError(t, err)
	_, err = connectAs(t, third, mnt)
	requireRefused(t, err, unix.EAGAIN, "the server holds 3 sessions of its users, its limit is 3")
	for range 2 {
		s, err := client.Connect(mnt)
		require.NoError(t, err, "root has its own budget, and no server-wide limit")
		defer s.Close()
	}
	_, err = client.Connect(mnt)
	requireRefused(t, err, unix.EAGAIN, "uid 0 holds 2 sessions, its limit is 2")
	require.EqualValues(t, 5, srv.Stats().Sessions)
	require.NoError(t, a.Close())
	require.Eventually(t, func() bool { return srv.Stats().Sessions == 4 }, 5*time.Second, 5*time.Millisecond)
	_, err = connectAs(t, third, mnt)
	require.NoError(t, err, "room again")
}

// rawConnect opens a connection to the control socket that says nothing.
func rawConnect(t *testing.T, sock string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Connect(fd, &unix.SockaddrUnix{Name: sock}))
	return fd
}

// A connection with no Hello within HelloTimeout is told ETIMEDOUT and
// closed; over the per-user limit of such connections a client gets
// EAGAIN from Connect.
func TestHelloDeadline(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportClassic, Options{AllowOther: true,
		Limits: Limits{HelloTimeout: 1500 * time.Millisecond, HalfOpenPerUser: 2}})
	sock := srv.Stats().ControlSocket
	fd := rawConnect(t, sock)
	m, _, err := wire.Recv(fd, nil)
	require.NoError(t, err)
	e, ok := m.(*wire.Error)
	require.True(t, ok, "got %v", m)
	require.Equal(t, unix.ETIMEDOUT, e.Errno, e.Message)
	_, _, err = wire.Recv(fd, nil)
	require.ErrorIs(t, err, io.EOF)
	require.EqualValues(t, 1, srv.Stats().HelloTimeouts)

	// Two silent connections of uid 65534: its third is refused.
	asUser(t, nobody, func() {
		for range 2 {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				defer unix.Close(fd) // at the thread's end: after the refusal below
				err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
			}
			if err != nil {
				t.Error(err)
			}
		}
		for end := time.Now().Add(time.Second); srv.Stats().HalfOpen < 2 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
		if srv.Stats().HalfOpen < 2 {
			t.Error("the two silent connections were not seen waiting")
		}
		var s *client.Session
		if s, err = client.Connect(mnt); err == nil {
			s.Close()
		}
	})
	// The client's Hello may come with its connect, before the server
	// sees it (then it is no connection before Hello and is let in).
	if err != nil {
		requireRefused(t, err, unix.EAGAIN, "uid 65534 holds 2 connections before Hello, its limit is 2")
	}
	require.Eventually(t, func() bool { return srv.Stats().HalfOpen == 0 }, 5*time.Second, 5*time.Millisecond)
}

// osThreads is this process's OS thread count.
func osThreads(t *testing.T) int {
	t.Helper()
	n, err := mountproc.StatusField(0, "Threads")
	require.NoError(t, err)
	return int(n)
}

// 300 connections that never say Hello leave the server's OS threads
// within a few of where they were, while they wait and after the
// deadline closed them (a blocking recvmsg each took 22 threads to 274,
// for good).
func TestSilentConnectionsThreads(t *testing.T) {
	const n = 300
	srv, _, mnt := mount(t, fusering.TransportURing, Options{Limits: Limits{HalfOpenPerUser: 2 * n, SessionsPerUser: 2 * n,
		HelloTimeout: 3 * time.Second}})
	s, err := client.Connect(mnt)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	time.Sleep(100 * time.Millisecond)
	base := osThreads(t)
	sock := srv.Stats().ControlSocket
	for range n {
		rawConnect(t, sock)
	}
	require.Eventually(t, func() bool { return srv.Stats().HalfOpen == n }, 10*time.Second, 5*time.Millisecond)
	during := osThreads(t)
	require.Eventually(t, func() bool { return srv.Stats().HalfOpen == 0 }, 10*time.Second, 5*time.Millisecond)
	after := osThreads(t)
	t.Logf("OS threads: %d before, %d with %d silent connections, %d after the deadline", base, during, n, after)
	require.EqualValues(t, n, srv.Stats().HelloTimeouts)
	require.LessOrEqual(t, during, base+8)
	require.LessOrEqual(t, after, base+8)
	s, err = client.Connect(mnt)
	require.NoError(t, err, "still serving")
	require.NoError(t, s.Close())
}

// residentPages counts the pages of b in memory.
func residentPages(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	require.Zero(t, e)
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// An untouched 1 GiB arena past its user's registered budget is accepted
// unregistered and left untouched by the server (none of its pages
// faulted in), and ops on it still run without a copy; one within the
// budget is registered. Past the user's mapped bytes: EDQUOT.
func TestArenaBudget(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportURing, Options{Limits: Limits{RegisteredBytesPerUser: 64 << 20,
		ArenaBytesPerUser: 2 << 30}})
	s, err := client.Connect(mnt)
	require.NoError(t, err)
	defer s.Close()
	small, err := arena.Create(64<<20, arena.Options{})
	require.NoError(t, err)
	defer small.Close()
	_, registered, err := s.Share(small)
	require.NoError(t, err)
	require.True(t, registered, "within the budget")

	big, err := arena.Create(1<<30, arena.Options{})
	require.NoError(t, err)
	defer big.Close()
	id, registered, err := s.Share(big)
	require.NoError(t, err, "past the registered budget the arena is still accepted")
	require.False(t, registered)
	require.Zero(t, residentPages(t, big.Bytes()), "the server faulted none of it in")
	st := srv.Stats()
	require.Equal(t, []uint64{2, 64 << 20, 1}, []uint64{st.Arenas, st.RegisteredBytes, st.ArenasOverBudget})

	writeFile(t, join(mnt, "f"), nil)
	fd, err := unix.Open(join(mnt, "f"), unix.O_RDWR, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	file, err := s.Attach(fd)
	require.NoError(t, err)
	copy(big.Bytes()[1<<20:], "served from its mapping")
	n, err := s.PwriteArena(file, id, 1<<20, 23, 0, 0)
	require.NoError(t, err)
	require.Equal(t, 23, n)
	b, err := os.ReadFile(join(mnt, "f"))
	require.NoError(t, err)
	require.Equal(t, "served from its mapping", string(b))

	more, err := arena.Create(1<<30, arena.Options{})
	require.NoError(t, err)
	defer more.Close()
	_, _, err = s.Share(more)
	require.ErrorIs(t, err, unix.EDQUOT, "2 GiB mapped and more is past the user's limit")
	require.ErrorContains(t, err, "arena bytes")
	require.Zero(t, residentPages(t, more.Bytes()))
}
