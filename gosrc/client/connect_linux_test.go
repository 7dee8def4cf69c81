package client

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// refusingServer listens at a socket in a fresh directory and refuses
// every connection as a zcfuse server does: an Error, then the close,
// at once — mostly before the client's Hello has gone out. It returns
// the socket's path.
func refusingServer(t *testing.T, why *wire.Error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 16); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			wire.Send(fd, why)
			unix.Close(fd)
		}
	}()
	t.Cleanup(func() { unix.Shutdown(lfd, unix.SHUT_RDWR); unix.Close(lfd); <-done })
	return path
}

// A refused Connect gives the server's errno and words, whether the
// server's close came before the Hello went out (EPIPE) or after, with
// the Hello unread (ECONNRESET) — never those errnos themselves.
func TestConnectRefused(t *testing.T) {
	for _, why := range []*wire.Error{
		{Errno: syscall.EAGAIN, Message: "uid 65534 holds 32 sessions, its limit is 32"},
		{Errno: syscall.EACCES, Message: "uid 65534 may not use this mount"},
	} {
		t.Setenv(ControlSocketEnv, refusingServer(t, why))
		for range 100 {
			s, err := Connect(t.TempDir())
			if err == nil {
				s.Close()
				t.Fatal("Connect succeeded against a refusing server")
			}
			var e *wire.Error
			if !errors.As(err, &e) || !errors.Is(err, why.Errno) {
				t.Fatalf("Connect: %v; want the server's %v", err, why.Errno)
			}
			if e.Message != why.Message {
				t.Fatalf("Connect: message %q; want %q", e.Message, why.Message)
			}
		}
	}
}
