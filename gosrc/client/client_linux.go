package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// ControlSocketEnv overrides the discovery through the mount.
const ControlSocketEnv = "ZCFUSE_CONTROL_SOCKET"

// Session is one connection to a zcfuse server.
type Session struct {
	mu     sync.Mutex
	fd     int
	hello  wire.HelloReply
	closed bool
	dev    uint64 // st_dev of the mount: attach takes only its files

	ops opState // the op queue (ops_linux.go)
}

// SocketPath returns the control socket of the server behind path: the
// mount's root or any file or directory inside the mount (it looks up
// the directories, within the same file system, for the root, which is
// the only node that answers the attribute).
func SocketPath(path string) (string, error) {
	if p := os.Getenv(ControlSocketEnv); p != "" {
		return p, nil
	}
	buf := make([]byte, 4096)
	var first unix.Stat_t
	if err := unix.Stat(path, &first); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for {
		n, xerr := unix.Getxattr(p, wire.ControlXattr, buf)
		if xerr == nil {
			return string(buf[:n]), nil
		}
		parent := filepath.Dir(p)
		var st unix.Stat_t
		if parent == p || unix.Stat(parent, &st) != nil || st.Dev != first.Dev {
			return "", fmt.Errorf("%s: no zcfuse server answers there (getxattr %s): %w", path, wire.ControlXattr, xerr)
		}
		p = parent
	}
}

// Connect opens a session with the server behind mountpoint (the mount's
// root, or any path inside the mount).
//
// A refusal comes back with the errno the server gave and its words:
// EACCES when this user may not use the server (it admits users other
// than its owner and root only with --allow-other; the mount itself, or
// the control socket, may refuse first, with the same errno), EAGAIN
// over a session limit of this user or when the server is full, the
// limit named in the message; ESHUTDOWN when it is stopping.
func Connect(mountpoint string) (*Session, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		if errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: %w (uid %d may not use it: a FUSE mount lets in users other than its owner only with --allow-other)",
				mountpoint, err, os.Geteuid())
		}
		return nil, fmt.Errorf("%s: %w", mountpoint, err)
	}
	path, err := SocketPath(mountpoint)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("connect %s: %w (the control socket does not let uid %d in: the server admits users other than its owner and root only with --allow-other)",
				path, err, os.Geteuid())
		}
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	s := &Session{fd: fd, dev: st.Dev}
	// A refusal is an Error then the close; wire.Call reads that Error
	// even when the close came before the Hello went out (EPIPE) or the
	// kernel reports the reset first.
	reply, err := s.call(&wire.Hello{Version: wire.ProtocolVersion, PID: uint32(os.Getpid())})
	if err != nil {
		unix.Close(fd)
		var e *wire.Error
		if errors.As(err, &e) {
			return nil, fmt.Errorf("%s refused the session: %w", path, err)
		}
		return nil, fmt.Errorf("hello: %w", err)
	}
	s.hello = *reply.(*wire.HelloReply)
	if err := s.openQueue(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("op queue: %w", err)
	}
	return s, nil
}

// call sends one request and waits for its reply; a server that went
// away reads as ENOTCONN.
func (s *Session) call(req wire.Msg, fds ...int) (wire.Msg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("session closed: %w", unix.EBADF)
	}
	m, err := wire.Call(s.fd, req, fds...)
	if errors.Is(err, io.EOF) || errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) {
		return nil, fmt.Errorf("server gone: %w", unix.ENOTCONN)
	}
	return m, err
}

// ID is the session's id on the server.
func (s *Session) ID() uint64 { return s.hello.SessionID }

// Token is the session's secret attach token.
func (s *Session) Token() [16]byte { return s.hello.Token }

// Limits are what the server lets this session hold.
func (s *Session) Limits() wire.HelloReply { return s.hello }

// Share hands the arena to the server. It returns the arena's id in the
// session and whether the server registered it as a fixed buffer.
func (s *Session) Share(a *arena.Arena) (id uint32, registered bool, err error) {
	id, registered, err = s.shareFd(a.Fd(), uint64(a.Size()))
	if err == nil {
		s.noteArena(id, uint64(a.Size()), a.Bytes())
		// Closed while shared, its address range must not count as this
		// arena any more (memory mapped there later is something else),
		// nor its id: ops by id fail with EFAULT from then on.
		a.OnClose(func() { s.forgetArena(id) })
	}
	return id, registered, err
}

// ShareFd shares a memfd of size bytes that is not wrapped in an Arena;
// the server validates it (sealed against shrinking, long enough). Ops
// reach it by id (ArenaRef, PreadArena, PwriteArena) until Unshare or
// Close; by address never, as the session knows no mapping of it.
func (s *Session) ShareFd(fd int, size uint64) (uint32, bool, error) {
	id, registered, err := s.shareFd(fd, size)
	if err == nil {
		s.noteArena(id, size, nil)
	}
	return id, registered, err
}

func (s *Session) shareFd(fd int, size uint64) (uint32, bool, error) {
	m, err := s.call(&wire.ShareArena{Size: size}, fd)
	if err != nil {
		return 0, false, err
	}
	r := m.(*wire.ShareArenaReply)
	return r.ArenaID, r.Registered, nil
}

// Unshare asks the server to release arena id.
func (s *Session) Unshare(id uint32) error {
	_, err := s.call(&wire.ReleaseArena{ArenaID: id})
	if err == nil {
		s.forgetArena(id)
	}
	return err
}

// Attach binds fd, a regular file opened through this session's mount, to
// the session for zero-copy I/O, and returns its file id. The server
// learns the file and the caller's uid and gid from the kernel (the
// attach travels as an ioctl on fd) and the session from its secret
// token. Errors: EXDEV (fd is not on this mount), EINVAL (not a regular
// file), EPERM (the server knows no such session, the token is not its
// own, or the caller's uid or gid is not the session's),
// EMFILE (the session's limit), EBADF (session closed or fd not open).
// A file id lives until Detach, the session's end, or the kernel's
// release of the open file (the last close of fd and its duplicates).
func (s *Session) Attach(fd int) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("attach fd %d: %w", fd, err)
	}
	switch {
	case st.Dev != s.dev:
		return 0, fmt.Errorf("attach fd %d: not a file on this session's mount: %w", fd, unix.EXDEV)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return 0, fmt.Errorf("attach fd %d: not a regular file: %w", fd, unix.EINVAL)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("session closed: %w", unix.EBADF)
	}
	arg := wire.AttachArg{SessionID: s.hello.SessionID, Token: s.hello.Token}
	out, err := AttachIoctl(fd, arg)
	if err != nil {
		return 0, fmt.Errorf("attach fd %d: %w", fd, err)
	}
	s.noteFile(out.FileID, fd, &st)
	return out.FileID, nil
}

// AttachIoctl issues the raw attach ioctl on fd with arg and returns the
// server's answer. Attach is what applications want; this is for tests
// and for tools that speak the protocol themselves.
func AttachIoctl(fd int, arg wire.AttachArg) (wire.AttachArg, error) {
	var b [wire.AttachArgSize]byte
	arg.Encode(b[:])
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(wire.AttachIoctl), uintptr(unsafe.Pointer(&b[0])))
	if e != 0 {
		return wire.AttachArg{}, e
	}
	return wire.DecodeAttachArg(b[:])
}

// Detach ends the attachment of file id; ENOENT when there is none (the
// kernel may have released the file already).
func (s *Session) Detach(id uint32) error {
	_, err := s.call(&wire.Detach{FileID: id})
	if err == nil {
		s.forgetFile(id)
	}
	return err
}

// Stats returns the server's control-plane counters.
func (s *Session) Stats() (wire.StatsReply, error) {
	m, err := s.call(&wire.Stats{})
	if err != nil {
		return wire.StatsReply{}, err
	}
	return *m.(*wire.StatsReply), nil
}

// Close ends the session; the server releases what it held. Safe twice.
func (s *Session) Close() error {
	_, err := s.call(&wire.Bye{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if cerr := unix.Close(s.fd); err == nil {
		err = cerr
	}
	s.closeQueue()
	return err
}
