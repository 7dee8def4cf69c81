package wire

import (
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// connPair is a Conn and the raw fd of its peer.
func connPair(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	c, err := NewConn(fds[0])
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

// threads is this process's OS thread count.
func threads(t *testing.T) int {
	t.Helper()
	n, err := mountproc.StatusField(0, "Threads")
	require.NoError(t, err)
	return int(n)
}

// Every message type goes both ways between a Conn and a raw fd, fds
// included.
func TestConnEveryType(t *testing.T) {
	c, peer := connPair(t)
	for _, m := range samples() {
		var fds []int
		var done func() bool
		if n := m.Type().FDs(); n > 0 {
			fds, done = writers(t, n)
		}
		require.NoError(t, c.Send(m, fds...))
		got, rfds, err := Recv(peer, nil)
		require.NoError(t, err, "%T", m)
		require.Equal(t, m, got)
		require.Len(t, rfds, len(fds))
		require.NoError(t, Send(peer, m, rfds...))
		closeAll(rfds)
		got, rfds, err = c.Recv(nil)
		require.NoError(t, err, "%T", m)
		require.Equal(t, m, got)
		require.Len(t, rfds, len(fds))
		closeAll(rfds)
		if done != nil {
			require.True(t, done(), "every copy of the fds closed")
		}
	}
}

// A bad message on a Conn is refused as by Recv, its fds closed.
func TestConnRecvClosesFDs(t *testing.T) {
	c, peer := connPair(t)
	before := countFDs(t)
	ws, done := writers(t, 2)
	sendRaw(t, peer, mustEncode(t, &ShareArena{Size: 4096}), ws...)
	m, fds, err := c.Recv(nil)
	require.Nil(t, m)
	require.Nil(t, fds)
	require.ErrorIs(t, err, syscall.EBADMSG)
	require.True(t, done(), "a received fd was left open")
	require.Equal(t, before, countFDs(t))
	sendRaw(t, peer, frame(TypeShareArena, make([]byte, 5000)))
	_, _, err = c.Recv(nil)
	require.ErrorIs(t, err, syscall.EMSGSIZE, "a message over the buffer")
}

// Recv waits past its deadline with ETIMEDOUT; a shutdown of the fd from
// elsewhere (as the control plane's Broken and Close do) wakes it with
// EOF; Close wakes it with EBADF.
func TestConnWakeups(t *testing.T) {
	c, _ := connPair(t)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	start := time.Now()
	_, _, err := c.Recv(nil)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.ErrorIs(t, err, syscall.ETIMEDOUT)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	require.NoError(t, c.SetReadDeadline(time.Time{}))

	for name, wake := range map[string]func(c *Conn) error{
		"unix.Shutdown of Fd": func(c *Conn) error { return unix.Shutdown(c.Fd(), unix.SHUT_RDWR) },
		"Shutdown":            func(c *Conn) error { return c.Shutdown(unix.SHUT_RDWR) },
	} {
		c, _ := connPair(t)
		errc := make(chan error)
		go func() { _, _, err := c.Recv(nil); errc <- err }()
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, wake(c), name)
		select {
		case err := <-errc:
			require.ErrorIs(t, err, io.EOF, name)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Recv not woken", name)
		}
	}

	c, _ = connPair(t)
	errc := make(chan error)
	go func() { _, _, err := c.Recv(nil); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, syscall.EBADF)
		require.ErrorIs(t, err, os.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Recv not woken by Close")
	}
	require.ErrorIs(t, c.Send(&Ok{}), syscall.EBADF)
}

// Send to a peer that does not read waits, without a thread, until its
// write deadline.
func TestConnSendDeadline(t *testing.T) {
	c, _ := connPair(t)
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	var err error
	for i := 0; i < 1<<20 && err == nil; i++ {
		err = c.Send(&StatsReply{Sessions: uint64(i)})
	}
	require.ErrorIs(t, err, syscall.ETIMEDOUT, "the peer's queue filled up, then the deadline passed")
}

// A goroutine waiting in Conn.Recv holds no OS thread: 300 of them add
// only a few threads (blocking recvmsg would pin one each).
func TestConnRecvHoldsNoThread(t *testing.T) {
	base := threads(t)
	const n = 300
	errc := make(chan error, n)
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i], _ = connPair(t)
		go func(c *Conn) { _, _, err := c.Recv(nil); errc <- err }(conns[i])
	}
	time.Sleep(200 * time.Millisecond)
	during := threads(t)
	t.Logf("threads: %d before, %d with %d goroutines in Recv", base, during, n)
	require.LessOrEqual(t, during, base+8)
	for _, c := range conns {
		c.Shutdown(unix.SHUT_RDWR)
	}
	for range n {
		require.ErrorIs(t, <-errc, io.EOF)
	}
}

// A server that refuses a connection answers with an Error and closes;
// a client whose request goes out only afterwards (EPIPE) still gets the
// Error from Call, not the send's error.
func TestCallReadsPendingError(t *testing.T) {
	a, b := seqpair(t)
	require.NoError(t, Send(b, &Error{Errno: syscall.EACCES, Message: "not for you"}))
	require.NoError(t, unix.Shutdown(b, unix.SHUT_RDWR))
	_, err := Call(a, &Hello{Version: 1})
	require.ErrorIs(t, err, syscall.EACCES)
	require.ErrorContains(t, err, "not for you")

	// The server closes with a message of ours unread: the kernel
	// reports ECONNRESET to the next receive before the Error queued
	// ahead of it; Call reads on and returns the Error.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	a, b = sp[0], sp[1]
	defer unix.Close(a)
	sendRaw(t, a, mustEncode(t, &Stats{})) // never read by the server
	errc := make(chan error, 1)
	go func() { _, err := Call(a, &Hello{Version: 1}); errc <- err }()
	time.Sleep(50 * time.Millisecond) // Call waits in its receive
	require.NoError(t, Send(b, &Error{Errno: syscall.EAGAIN, Message: "full"}))
	require.NoError(t, unix.Close(b))
	err = <-errc
	require.ErrorIs(t, err, syscall.EAGAIN)
	require.ErrorContains(t, err, "full")

	// Without an Error waiting, the send's own error.
	a, b = seqpair(t)
	require.NoError(t, unix.Shutdown(b, unix.SHUT_RDWR))
	_, err = Call(a, &Hello{Version: 1})
	require.ErrorIs(t, err, syscall.EPIPE)
}
