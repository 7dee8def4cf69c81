package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

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
}

// SocketPath returns the control socket of the server behind mountpoint.
func SocketPath(mountpoint string) (string, error) {
	if p := os.Getenv(ControlSocketEnv); p != "" {
		return p, nil
	}
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(mountpoint, wire.ControlXattr, buf)
	if err != nil {
		return "", fmt.Errorf("%s: no zcfuse server answers there (getxattr %s): %w", mountpoint, wire.ControlXattr, err)
	}
	return string(buf[:n]), nil
}

// Connect opens a session with the server behind mountpoint.
func Connect(mountpoint string) (*Session, error) {
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
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	s := &Session{fd: fd}
	reply, err := s.call(&wire.Hello{Version: wire.ProtocolVersion, PID: uint32(os.Getpid())})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hello: %w", err)
	}
	s.hello = *reply.(*wire.HelloReply)
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
	return s.ShareFd(a.Fd(), uint64(a.Size()))
}

// ShareFd shares a memfd of size bytes that is not wrapped in an Arena;
// the server validates it (sealed against shrinking, long enough).
func (s *Session) ShareFd(fd int, size uint64) (uint32, bool, error) {
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
	return err
}
