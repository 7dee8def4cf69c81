package wire

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a SOCK_SEQPACKET socket on Go's netpoller: while the socket is
// not ready, Send and Recv park their goroutine, not an OS thread, so a
// server with thousands of idle connections keeps a handful of threads.
// It is a server's end of a client connection; a client keeps the
// blocking Send, Recv and Call on a raw fd.
//
// Send and Recv behave as the functions of the same names (the same
// errors, the same ownership of fds), and besides: past a deadline
// (SetReadDeadline, SetWriteDeadline) they fail with an error that is both
// os.ErrDeadlineExceeded and ETIMEDOUT; on a Conn closed meanwhile, with
// one that is both os.ErrClosed and EBADF. A shutdown of the socket —
// Shutdown, or unix.Shutdown of Fd() by whoever knows the Conn is still
// open — wakes a Recv with io.EOF. Several goroutines may Send at once;
// Recv assumes one reader.
type Conn struct {
	f  *os.File
	rc syscall.RawConn
	fd int
}

// NewConn makes the socket fd non-blocking and puts it on the netpoller.
// The Conn owns fd: Close closes it, and so does NewConn when it fails
// (the poller refused it: out of memory or of epoll watches).
func NewConn(fd int) (*Conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("wire: conn: %w", err)
	}
	f := os.NewFile(uintptr(fd), "zcfuse-socket")
	rc, err := f.SyscallConn()
	if err == nil {
		// Only a File on the poller takes deadlines: NewFile quietly
		// falls back to blocking I/O when epoll refuses the fd.
		err = f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wire: conn: not on the netpoller: %w (%w)", err, syscall.ENOMEM)
	}
	return &Conn{f: f, rc: rc, fd: fd}, nil
}

// Fd is the socket's descriptor, valid until Close. Do not read, write or
// close it; getsockopt and shutdown are fine.
func (c *Conn) Fd() int { return c.fd }

// Send sends m with fds as one message (see Send).
func (c *Conn) Send(m Msg, fds ...int) error {
	return send(m, fds, func(b, oob []byte) (n int, err error) {
		werr := c.rc.Write(func(fd uintptr) bool {
			for {
				n, err = unix.SendmsgN(int(fd), b, oob, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
				if err != unix.EINTR {
					return err != unix.EAGAIN
				}
			}
		})
		if werr != nil {
			return 0, pollError(werr)
		}
		return n, err
	})
}

// Recv receives one message into buf (see Recv).
func (c *Conn) Recv(buf []byte) (Msg, []int, error) {
	return recv(buf, func(b, oob []byte) (n, oobn, flags int, err error) {
		rerr := c.rc.Read(func(fd uintptr) bool {
			n, oobn, flags, err = recvmsg(int(fd), b, oob, unix.MSG_DONTWAIT)
			return err != unix.EAGAIN
		})
		if rerr != nil {
			return 0, 0, 0, pollError(rerr)
		}
		return n, oobn, flags, err
	})
}

// pollError maps what the poller says of a socket it no longer waits on.
func pollError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%w)", os.ErrDeadlineExceeded, syscall.ETIMEDOUT)
	}
	return fmt.Errorf("connection closed here: %w (%w)", os.ErrClosed, syscall.EBADF)
}

// SetReadDeadline makes Recv fail once t has passed (zero: never).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// SetWriteDeadline makes Send fail once t has passed (zero: never).
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// Shutdown shuts down the socket (unix.SHUT_RD, SHUT_WR or SHUT_RDWR):
// both ends see it at once, and a Recv here wakes with io.EOF.
func (c *Conn) Shutdown(how int) error {
	var err error
	if cerr := c.rc.Control(func(fd uintptr) { err = unix.Shutdown(int(fd), how) }); cerr != nil {
		return pollError(cerr)
	}
	return err
}

// Close closes the socket, waking any Send or Recv in progress. The
// descriptor is closed once they have returned.
func (c *Conn) Close() error { return c.f.Close() }
