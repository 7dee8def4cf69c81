package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func seqpair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents) - 1 // the directory's own fd
}

func sendRaw(t *testing.T, fd int, b []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	require.NoError(t, unix.Sendmsg(fd, b, oob, nil, unix.MSG_NOSIGNAL))
}

// writers returns n write ends of one pipe and a function that closes
// them and reports whether the read end sees hang-up, i.e. whether no
// other copy of any write end (such as one received over a socket) is
// still open anywhere.
func writers(t *testing.T, n int) ([]int, func() bool) {
	t.Helper()
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	ws := []int{p[1]}
	for len(ws) < n {
		d, err := unix.FcntlInt(uintptr(p[1]), unix.F_DUPFD_CLOEXEC, 0)
		require.NoError(t, err)
		ws = append(ws, d)
	}
	return ws, func() bool {
		closeAll(ws)
		pfd := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}
		_, err := unix.Poll(pfd, 0)
		require.NoError(t, err)
		unix.Close(p[0])
		return pfd[0].Revents&unix.POLLHUP != 0
	}
}

func mustEncode(t *testing.T, m Msg) []byte {
	t.Helper()
	b, err := Encode(m)
	require.NoError(t, err)
	return b
}

func TestSendRecvEveryType(t *testing.T) {
	a, b := seqpair(t)
	for _, m := range samples() {
		var fds []int
		var done func() bool
		if n := m.Type().FDs(); n > 0 {
			fds, done = writers(t, n)
		}
		require.NoError(t, Send(a, m, fds...))
		got, rfds, err := Recv(b, nil)
		require.NoError(t, err, "%T", m)
		require.Equal(t, m, got)
		require.Len(t, rfds, len(fds))
		for _, fd := range rfds {
			flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			require.NoError(t, err)
			require.NotZero(t, flags&unix.FD_CLOEXEC, "received fd without close-on-exec")
		}
		if done != nil {
			require.False(t, done(), "received fd should still be open")
			closeAll(rfds)
		}
	}
}

func TestMessageBoundaries(t *testing.T) {
	a, b := seqpair(t)
	require.NoError(t, Send(a, &Detach{FileID: 1}))
	require.NoError(t, Send(a, &Detach{FileID: 2}))
	for _, id := range []uint32{1, 2} {
		m, _, err := Recv(b, nil)
		require.NoError(t, err)
		require.Equal(t, &Detach{FileID: id}, m)
	}
}

// TestRecvClosesFDs sends bad messages carrying fds over a real
// socketpair and checks that Recv rejects each and closed every fd it
// received: the process's fd count is unchanged and the pipe's read end
// sees hang-up once the sender's copies are closed.
func TestRecvClosesFDs(t *testing.T) {
	share := func(t *testing.T) []byte { return mustEncode(t, &ShareArena{Size: 4096}) }
	cases := []struct {
		name  string
		msg   func(t *testing.T) []byte
		nfds  int
		buf   int
		errno syscall.Errno
	}{
		{"missing fd", share, 0, 0, syscall.EBADMSG},
		{"extra fd", share, 2, 0, syscall.EBADMSG},
		{"fd on Hello", func(t *testing.T) []byte { return mustEncode(t, &Hello{Version: 1}) }, 1, 0, syscall.EBADMSG},
		{"fds on Bye", func(t *testing.T) []byte { return mustEncode(t, &Bye{}) }, 3, 0, syscall.EBADMSG},
		{"more fds than the control buffer", share, maxRecvFDs + 12, 0, syscall.EBADMSG},
		{"bad magic", func(t *testing.T) []byte { b := share(t); b[0] = 0; return b }, 1, 0, syscall.EPROTO},
		{"wrong version", func(t *testing.T) []byte { b := share(t); b[4] = 9; return b }, 1, 0, syscall.EPROTONOSUPPORT},
		{"unknown type", func(t *testing.T) []byte { return frame(200, nil) }, 1, 0, syscall.EBADMSG},
		{"short header", func(t *testing.T) []byte { return []byte{1, 2, 3} }, 1, 0, syscall.EPROTO},
		{"zero-length message", func(t *testing.T) []byte { return nil }, 1, 0, syscall.EPROTO},
		{"oversized datagram", func(t *testing.T) []byte { return frame(TypeShareArena, make([]byte, 5000)) }, 1, 0, syscall.EMSGSIZE},
		{"truncated by a small buffer", share, 1, HeaderSize, syscall.EMSGSIZE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := seqpair(t)
			before := countFDs(t)
			ws, done := writers(t, max(c.nfds, 1))
			sendRaw(t, a, c.msg(t), ws[:c.nfds]...)
			var buf []byte
			if c.buf > 0 {
				buf = make([]byte, c.buf)
			}
			m, fds, err := Recv(b, buf)
			require.Nil(t, m)
			require.Nil(t, fds)
			require.ErrorIs(t, err, c.errno, "got %v", err)
			require.True(t, done(), "a received fd was left open")
			require.Equal(t, before, countFDs(t), "fd count changed")
		})
	}
}

func TestRecvPeerClosed(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	unix.Close(fds[0])
	_, _, err = Recv(fds[1], nil)
	require.ErrorIs(t, err, io.EOF)
	require.ErrorIs(t, err, unix.ENOTCONN)

	err = Send(fds[1], &Bye{})
	require.ErrorIs(t, err, unix.EPIPE)
}

func TestRecvErrors(t *testing.T) {
	_, _, err := Recv(-1, nil)
	require.ErrorIs(t, err, unix.EBADF)
	a, _ := seqpair(t)
	_, _, err = Recv(a, []byte{})
	require.ErrorIs(t, err, unix.EINVAL)
	require.NoError(t, unix.SetNonblock(a, true))
	_, _, err = Recv(a, nil)
	require.ErrorIs(t, err, unix.EAGAIN)
}

func TestSendChecksFDs(t *testing.T) {
	a, b := seqpair(t)
	ws, done := writers(t, 2)
	require.ErrorIs(t, Send(a, &ShareArena{Size: 4096}), unix.EINVAL)
	require.ErrorIs(t, Send(a, &ShareArena{Size: 4096}, ws...), unix.EINVAL)
	require.ErrorIs(t, Send(a, &Hello{Version: 1}, ws[0]), unix.EINVAL)
	require.ErrorIs(t, Send(a, &Hello{}), unix.EINVAL)
	require.ErrorIs(t, Send(a, nil), unix.EINVAL)
	require.True(t, done())
	// nothing was sent
	require.NoError(t, unix.SetNonblock(b, true))
	_, _, err := Recv(b, nil)
	require.ErrorIs(t, err, unix.EAGAIN)
}

// serve answers requests on fd with reply until the peer goes away or fd
// is shut down (never once it is closed: its number may name another
// test's socket by then).
func serve(fd int, reply func(Msg) Msg) {
	for {
		m, fds, err := Recv(fd, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.EBADF) {
				return
			}
			Send(fd, ErrorFrom(err))
			continue
		}
		closeAll(fds)
		Send(fd, reply(m))
	}
}

// serving starts serve on one end of a socketpair and returns the other;
// cleanup stops it before the sockets are closed.
func serving(t *testing.T, reply func(Msg) Msg) int {
	t.Helper()
	a, b := seqpair(t)
	done := make(chan struct{})
	t.Cleanup(func() { unix.Shutdown(b, unix.SHUT_RDWR); <-done }) // before seqpair's close
	go func() {
		defer close(done)
		serve(b, reply)
	}()
	return a
}

func TestCall(t *testing.T) {
	a := serving(t, func(m Msg) Msg {
		switch m := m.(type) {
		case *Stats:
			return &StatsReply{Sessions: 1}
		case *ShareArena:
			if m.Size > 1<<20 {
				return &Error{Errno: syscall.ENOSPC, Message: "arena over the size limit"}
			}
			return &ShareArenaReply{ArenaID: 1}
		default:
			return &Ok{}
		}
	})
	r, err := Call(a, &Stats{})
	require.NoError(t, err)
	require.Equal(t, &StatsReply{Sessions: 1}, r)

	ws, done := writers(t, 1)
	_, err = Call(a, &ShareArena{Size: 1 << 30}, ws...)
	require.ErrorIs(t, err, syscall.ENOSPC)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "arena over the size limit", e.Message)
	require.True(t, done())

	_, err = Call(a, &Hello{Version: 1}) // answered by Ok: wrong type
	require.ErrorIs(t, err, syscall.EPROTO)

	// a bad message gets an Error reply, and the session goes on
	sendRaw(t, a, bytes.Repeat([]byte{0xee}, 20))
	m, _, err := Recv(a, nil)
	require.NoError(t, err)
	require.Equal(t, syscall.EPROTO, m.(*Error).Errno)

	_, err = Call(a, &Ok{})
	require.ErrorIs(t, err, syscall.EINVAL)
	_, err = Call(a, nil)
	require.ErrorIs(t, err, syscall.EINVAL)
	r, err = Call(a, &Bye{})
	require.NoError(t, err)
	require.Equal(t, &Ok{}, r)
}
