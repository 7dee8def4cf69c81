package control

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

const (
	// The accept loop's back-off after an accept that failed for want
	// of a resource: from minBackoff, doubling, up to maxBackoff.
	minBackoff = time.Millisecond
	maxBackoff = 100 * time.Millisecond
	// lingerTime bounds how long the server waits for a client to take
	// a last answer (a refusal, Bye's Ok) before it closes anyway.
	lingerTime = time.Second
	// listenBacklog is the control socket's listen(2) backlog.
	listenBacklog = 128
)

// Listen creates the control socket in cfg.Dir (socket 0600, or 0666
// with AllowOther; SO_PEERCRED decides in any case) and accepts sessions,
// whose queues and registrations dp serves.
//
// The directory is made ready first (prepareDir): created 0700, or 0755
// with AllowOther; an existing one must belong to this server's uid or to
// root (refused otherwise: its owner could swap the socket), gets 0755
// with AllowOther when it is ours, and never keeps write access for group
// or others unless it is a sticky shared directory such as /tmp.
func Listen(cfg Config, dp DataPlane) (*Control, error) {
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	limits := cfg.Limits.WithDefaults()
	dir := cfg.Dir
	if err := prepareDir(dir, cfg.AllowOther); err != nil {
		return nil, err
	}
	sweepStaleSockets(dir)
	var nonce [4]byte
	rand.Read(nonce[:])
	path := filepath.Join(dir, fmt.Sprintf("zcfuse-%d-%x.sock", os.Getpid(), nonce))
	owner := uint32(os.Geteuid())
	s := &Control{path: path, ownerUID: owner, allowOther: cfg.AllowOther, limits: limits, users: newUsers(limits, owner),
		dp: dp, logger: cfg.Logger, hooks: cfg.Hooks, done: make(chan struct{}),
		live: map[uint64]*session{}, half: map[uint64]*session{}}
	s.users.report = func(msg string) { s.logger.Print(msg) }
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	sockMode := uint32(0o600)
	if cfg.AllowOther {
		sockMode = 0o666
	}
	if err = unix.Chmod(path, sockMode); err == nil {
		err = unix.Listen(lfd, listenBacklog)
	}
	if err == nil {
		// On the netpoller: the accept loop waits without a thread, and
		// closing the File wakes it.
		s.lf = os.NewFile(uintptr(lfd), path)
		if s.lrc, err = s.lf.SyscallConn(); err == nil {
			err = s.lf.SetReadDeadline(time.Time{}) // fails unless on the poller
		}
		if err != nil {
			s.lf.Close()
			lfd = -1
		}
	}
	if err != nil {
		if lfd >= 0 {
			unix.Close(lfd)
		}
		os.Remove(path)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// prepareDir makes dir fit to hold the control socket (see Listen), or
// says why it is not.
func prepareDir(dir string, allowOther bool) error {
	mode := os.FileMode(0o700)
	if allowOther {
		mode = 0o755
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("control directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("control directory: %w", err)
	}
	perm, err := dirMode(dir, st.Mode, st.Uid, uint32(os.Geteuid()), allowOther)
	if err != nil || perm == st.Mode&0o7777 {
		return err
	}
	if err := unix.Chmod(dir, perm); err != nil {
		return fmt.Errorf("control directory %s: chmod %#o: %w", dir, perm, err)
	}
	return nil
}

// dirMode decides what an existing control directory of mode (st_mode)
// and owner needs for a server running as euid: the permission bits it
// must have (mode's own when nothing is to change), or why the server
// cannot use it.
//
//   - Ours (and so root's when the server is root): with allowOther
//     0755, so other users can reach the socket; without, the same bits
//     less group and other write. An existing 0755 stays 0755: another
//     server may share the directory with --allow-other (the socket's
//     own mode and SO_PEERCRED keep others out of this one). A sticky
//     directory (a shared /tmp) is left as it is.
//   - Root's while the server is not root: used as it is if nobody else
//     can replace the socket (not writable by group or other, or
//     sticky), and with allowOther if others can search it.
//   - Anybody else's: refused; its owner could replace the socket.
func dirMode(dir string, mode, owner, euid uint32, allowOther bool) (uint32, error) {
	perm := mode & 0o7777
	switch {
	case mode&unix.S_IFMT == unix.S_IFLNK:
		return 0, fmt.Errorf("control directory %s is a symbolic link; give the directory itself: %w", dir, unix.ENOTDIR)
	case mode&unix.S_IFMT != unix.S_IFDIR:
		return 0, fmt.Errorf("control directory %s is not a directory: %w", dir, unix.ENOTDIR)
	case owner != euid && owner != 0:
		who := "root or this server's uid " + fmt.Sprint(euid)
		if euid == 0 {
			who = "root"
		}
		return 0, fmt.Errorf("control directory %s belongs to uid %d, not %s: its owner could replace the control socket; remove it or choose another directory: %w",
			dir, owner, who, unix.EPERM)
	}
	sticky := perm&unix.S_ISVTX != 0
	searchable := perm&0o001 != 0
	if owner == euid && !sticky {
		if allowOther {
			return 0o755, nil
		}
		return perm &^ 0o022, nil
	}
	switch {
	case perm&0o022 != 0 && !sticky:
		return 0, fmt.Errorf("control directory %s (mode %#o, uid %d) is writable by others, who could replace the control socket: %w",
			dir, perm, owner, unix.EPERM)
	case allowOther && !searchable:
		return 0, fmt.Errorf("control directory %s (mode %#o, uid %d) does not let other users reach the socket, as --allow-other needs, and is not this server's to change: %w",
			dir, perm, owner, unix.EACCES)
	}
	return perm, nil
}

// accept admits connections until Close closes the listener; nothing
// else ends it. An accept that fails for want of a resource (EMFILE,
// ENFILE, ENOMEM, ENOBUFS; any error but a connection aborted by its
// client) is counted and retried after a back-off from minBackoff,
// doubling up to maxBackoff; the connection waits in the backlog
// meanwhile.
func (s *Control) accept() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		var fd int
		var aerr error
		err := s.lrc.Read(func(lfd uintptr) bool {
			for {
				fd, _, aerr = unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if aerr != unix.EINTR {
					return aerr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return // the listener is closed
		}
		switch aerr {
		case nil:
			backoff = 0
			s.admit(fd)
			continue
		case unix.ECONNABORTED:
			continue
		}
		s.acceptErrors.Add(1)
		if backoff == 0 {
			s.logger.Printf("control socket: accept: %v; retrying, at most %v apart", aerr, maxBackoff)
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// admit checks the peer of a new connection fd, charges its uid a
// session and, while the server waits for its Hello, a connection
// before Hello, and starts serving it. A connection it cannot admit is
// refused: the client reads an Error with the errno (EACCES not
// admitted, EAGAIN over a limit, ESHUTDOWN stopping), then the close.
func (s *Control) admit(fd int) {
	refused := func(err error) {
		s.refused.Add(1)
		refuse(fd, err)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		refused(err)
		return
	}
	uid := cred.Uid
	if !s.allowOther && uid != s.ownerUID && uid != 0 {
		refused(fmt.Errorf("uid %d may not use this mount (owner %d; mount with --allow-other to let others in): %w", uid, s.ownerUID, unix.EACCES))
		return
	}
	u := s.users
	if err := u.take(uid, resSessions, 1); err != nil {
		refused(err)
		return
	}
	// A client that sent its Hello with its connect costs the server no
	// wait: only one whose first message is not there yet is half-open.
	// (A burst of well-behaved clients is not refused for being fast.)
	waiting := !pending(fd)
	if waiting {
		if err := u.take(uid, resHalfOpen, 1); err != nil {
			u.give(uid, resSessions, 1)
			refused(err)
			return
		}
	}
	unadmit := func() {
		if waiting {
			u.give(uid, resHalfOpen, 1)
		}
		u.give(uid, resSessions, 1)
	}
	ss := &session{s: s, fd: fd, id: s.nextID.Add(1), cred: *cred, halfOpen: waiting,
		arenas: map[uint32]*sharedArena{}, files: map[uint32]*attachment{}}
	// Both from the socket, as the kernel took them at connect(): /proc
	// would show whatever the peer exec'd since (a setuid-root binary's
	// CAP_FSETID, a setgid binary's group).
	ss.priv = passthrough.Caller{Uid: cred.Uid, Gid: cred.Gid, Groups: peerGroups(fd)}
	rand.Read(ss.token[:])
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		unadmit()
		refused(fmt.Errorf("server stopping: %w", unix.ESHUTDOWN))
		return
	}
	if ss.conn, err = wire.NewConn(fd); err != nil { // fd is closed
		s.mu.Unlock()
		unadmit()
		s.refused.Add(1)
		s.logger.Printf("control socket: connection of uid %d dropped: %v", uid, err)
		return
	}
	s.half[ss.id] = ss
	s.wg.Add(1)
	s.mu.Unlock()
	go ss.serve()
}

// pending reports whether a message waits on socket fd, or the peer has
// gone already.
func pending(fd int) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err != unix.EAGAIN
}

// refuse answers a connection the server will not serve with an Error
// that says why and closes it, so that the client reads that Error and
// not ECONNRESET: what the client sent already (its Hello) is read and
// dropped before the close, as closing a socket with unread messages
// resets its peer. A client whose Hello goes out only after the close
// gets EPIPE and finds the Error waiting (wire.Call reads it then).
// Nothing here blocks: fd is non-blocking, and a fresh connection has
// room for one message.
func refuse(fd int, why error) {
	wire.Send(fd, wire.ErrorFrom(why))
	unix.Shutdown(fd, unix.SHUT_WR)
	buf := make([]byte, wire.MaxMsgSize)
	for range 16 { // a client has only so much queued: its socket's send buffer
		_, fds, err := wire.Recv(fd, buf)
		for _, f := range fds {
			unix.Close(f)
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) {
			break
		}
	}
	unix.Close(fd)
}
