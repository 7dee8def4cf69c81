package wire

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxRecvFDs is how many fds Recv makes room for. More than any message
// carries, so that a message with extra fds is received whole, counted,
// and its fds closed; beyond this the kernel sets MSG_CTRUNC and drops
// the rest itself.
const maxRecvFDs = 8

// Send encodes m and sends it on the SOCK_SEQPACKET socket fd as one
// message, with fds attached as SCM_RIGHTS. len(fds) must be m.Type().FDs()
// (EINVAL otherwise). The fds stay open and owned by the caller: the peer
// receives duplicates. Send uses MSG_NOSIGNAL, so a gone peer is EPIPE,
// never SIGPIPE.
func Send(fd int, m Msg, fds ...int) error {
	return send(m, fds, func(b, oob []byte) (int, error) {
		for {
			n, err := unix.SendmsgN(fd, b, oob, nil, unix.MSG_NOSIGNAL)
			if err != unix.EINTR {
				return n, err
			}
		}
	})
}

// send encodes m with fds and hands the bytes and the SCM_RIGHTS control
// data to sendmsg, which sends them as one message.
func send(m Msg, fds []int, sendmsg func(b, oob []byte) (int, error)) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	if want := m.Type().FDs(); len(fds) != want {
		return errorf(syscall.EINVAL, "send %v: %d fds, want %d", m.Type(), len(fds), want)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, err := sendmsg(b, oob)
	switch {
	case err != nil:
		return fmt.Errorf("wire: send %v: %w", m.Type(), err)
	case n != len(b):
		return errorf(syscall.EMSGSIZE, "send %v: sent %d of %d bytes (not a SOCK_SEQPACKET socket?)", m.Type(), n, len(b))
	}
	return nil
}

// Recv receives one message from the SOCK_SEQPACKET socket fd into buf
// (nil: a new MaxMsgSize buffer) and decodes it. The fds it returns were
// received with MSG_CMSG_CLOEXEC and belong to the caller. On any error
// every fd that arrived with the message has been closed already: a
// truncated message (MSG_TRUNC: EMSGSIZE), too many fds for the control
// buffer (MSG_CTRUNC: EBADMSG), or anything Decode rejects. A peer that
// closed the connection reads as an error that is both io.EOF and
// ENOTCONN. EINTR is retried; other recvmsg errors (EAGAIN on a
// non-blocking socket) come back wrapped.
func Recv(fd int, buf []byte) (Msg, []int, error) {
	return recv(buf, func(b, oob []byte) (int, int, int, error) { return recvmsg(fd, b, oob, 0) })
}

// recvmsg is one recvmsg(2) of fd with MSG_CMSG_CLOEXEC and flags,
// retried on EINTR.
func recvmsg(fd int, b, oob []byte, flags int) (n, oobn, rflags int, err error) {
	for {
		n, oobn, rflags, _, err = unix.Recvmsg(fd, b, oob, unix.MSG_CMSG_CLOEXEC|flags)
		if err != unix.EINTR {
			return n, oobn, rflags, err
		}
	}
}

// recv receives one message with recvmsg into buf and decodes it, as
// Recv says.
func recv(buf []byte, recvmsg func(b, oob []byte) (n, oobn, flags int, err error)) (Msg, []int, error) {
	if buf == nil {
		buf = make([]byte, MaxMsgSize)
	}
	if len(buf) == 0 {
		return nil, nil, errorf(syscall.EINVAL, "recv: empty buffer")
	}
	oob := make([]byte, unix.CmsgSpace(maxRecvFDs*4))
	n, oobn, flags, err := recvmsg(buf, oob)
	if err != nil {
		return nil, nil, fmt.Errorf("wire: recv: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	fail := func(err error) (Msg, []int, error) {
		closeAll(fds)
		return nil, nil, err
	}
	switch {
	case err != nil:
		return fail(err)
	case flags&unix.MSG_CTRUNC != 0:
		return fail(errorf(syscall.EBADMSG, "recv: control data truncated (more than %d fds)", maxRecvFDs))
	case flags&unix.MSG_TRUNC != 0:
		return fail(errorf(syscall.EMSGSIZE, "recv: message truncated to the %d-byte buffer", len(buf)))
	case n == 0 && len(fds) == 0:
		return nil, nil, fmt.Errorf("wire: recv: peer closed the connection: %w (%w)", io.EOF, unix.ENOTCONN)
	}
	m, err := Decode(buf[:n], len(fds))
	if err != nil {
		return fail(err)
	}
	return m, fds, nil
}

// parseRights returns the fds in SCM_RIGHTS control messages. Fds that
// arrive otherwise (SCM_PIDFD, if someone set SO_PASSPIDFD) are closed:
// they are no part of a message. On error, the fds parsed so far are
// returned with it, for the caller to close.
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("wire: recv: control data: %w", err)
	}
	var fds []int
	for i := range cmsgs {
		c := &cmsgs[i]
		if c.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch c.Header.Type {
		case unix.SCM_RIGHTS:
			got, err := unix.ParseUnixRights(c)
			if err != nil {
				return fds, fmt.Errorf("wire: recv: SCM_RIGHTS: %w", err)
			}
			fds = append(fds, got...)
		case unix.SCM_PIDFD:
			if len(c.Data) >= 4 {
				unix.Close(int(int32(le.Uint32(c.Data))))
			}
		}
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Call sends req (with its fds) on fd and receives the reply. It returns
// the reply, of type req.Type().Reply(); an Error reply comes back as the
// error (an *Error, which unwraps to its errno); any other reply type is
// EPROTO. Call is for a client with one request in flight per socket.
//
// A server that refuses a connection sends an Error and closes it, maybe
// before req went out: when the send fails because the peer is gone
// (EPIPE, ECONNRESET, ENOTCONN), an Error already waiting on fd is the
// answer, not the send's error. The same when the receive fails with
// ECONNRESET: the kernel reports a peer that closed with req unread
// before the messages it sent.
func Call(fd int, req Msg, fds ...int) (Msg, error) {
	if isNil(req) {
		return nil, errorf(syscall.EINVAL, "call: nil request")
	}
	want := req.Type().Reply()
	if want == 0 {
		return nil, errorf(syscall.EINVAL, "call: %v is not a request", req.Type())
	}
	if err := Send(fd, req, fds...); err != nil {
		if e := pendingError(fd, err); e != nil {
			return nil, e
		}
		return nil, err
	}
	rep, rfds, err := Recv(fd, nil)
	if err != nil {
		if e := pendingError(fd, err); e != nil {
			return nil, e // the reset came first, the Error is behind it
		}
		return nil, err
	}
	closeAll(rfds) // no reply type carries fds yet
	switch r := rep.(type) {
	case *Error:
		return nil, r
	default:
		if r.Type() != want {
			return nil, errorf(syscall.EPROTO, "call %v: reply %v, want %v", req.Type(), r.Type(), want)
		}
		return r, nil
	}
}

// pendingError returns the Error message waiting on fd, without blocking,
// when err says the peer is gone; else nil. Any other message waiting
// there is dropped (its fds closed): the peer is gone, nothing follows.
func pendingError(fd int, err error) *Error {
	if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.ENOTCONN) {
		return nil
	}
	m, fds, err := recv(nil, func(b, oob []byte) (int, int, int, error) { return recvmsg(fd, b, oob, unix.MSG_DONTWAIT) })
	if err != nil {
		return nil
	}
	closeAll(fds)
	e, _ := m.(*Error)
	return e
}
