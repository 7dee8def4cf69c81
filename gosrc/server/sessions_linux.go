package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// ControlXattr names the control socket on the mount root (wire.ControlXattr).
const ControlXattr = wire.ControlXattr

// Limits bound what clients may hold on a server.
type Limits struct {
	Sessions         int    // sessions at once
	ArenasPerSession int    // arenas per session
	ArenaBytes       uint64 // all arenas of one session together
	FixedSlots       uint32 // fixed-buffer slots for the whole server
	AttachedFiles    int    // attached files per session
}

// DefaultLimits are used for zero fields of Options.Limits.
var DefaultLimits = Limits{Sessions: 256, ArenasPerSession: 64, ArenaBytes: 16 << 30, FixedSlots: 1024, AttachedFiles: 1024}

// sessions is the control plane: a SOCK_SEQPACKET listener whose
// connections are client sessions holding shared arenas.
type sessions struct {
	path       string
	lfd        int
	ownerUID   uint32
	allowOther bool
	limits     Limits
	exec       *executor
	logger     *log.Logger
	hooks      *Hooks
	cb         invalidator // nil: no cache invalidation (tests without a mount)
	data       dataStats

	nextID atomic.Uint64
	mu     sync.Mutex
	live   map[uint64]*session
	closed bool
	wg     sync.WaitGroup

	arenas     atomic.Int64
	registered atomic.Int64 // bytes in fixed buffers

	// fmu guards the attachments: session.files, session.nextFile,
	// session.ended and file.attached, which the session's goroutine and
	// the FUSE handlers (attach ioctl, RELEASE) both change.
	fmu      sync.Mutex
	attached atomic.Int64
}

// session is one client connection.
type session struct {
	s     *sessions
	fd    int
	id    uint64
	token [16]byte
	cred  unix.Ucred // the peer, from SO_PEERCRED at connect
	// priv is the peer for kill-priv: a peer that is not root has its ring
	// writes clear setuid/setgid/capability as its write(2) would.
	priv  passthrough.Caller
	queue *opQueue
	// arenas is changed by the session's goroutine and read by workers.
	amu    sync.RWMutex
	arenas map[uint32]*sharedArena
	bytes  uint64
	nextID uint32

	files    map[uint32]*attachment // by file id; see sessions.fmu
	nextFile uint32
	ended    bool
}

// sharedArena is an arena a session shared. Ops in flight hold
// references: the arena is unregistered and unmapped when the last one
// goes, so no I/O and no hook ever sees it unmapped.
type sharedArena struct {
	s          *sessions
	a          *arena.Arena
	slot       uint32
	registered bool
	refs       atomic.Int32
}

func (sa *sharedArena) put() {
	if sa.refs.Add(-1) == 0 {
		go sa.free() // maybe on a worker thread, which must not wait for workers
	}
}

// free unregisters and unmaps the arena.
func (sa *sharedArena) free() error {
	var err error
	if sa.registered {
		err = sa.s.exec.unregister(sa.slot)
		sa.s.registered.Add(-sa.a.Size())
	}
	sa.s.arenas.Add(-1)
	return errors.Join(err, sa.a.Close())
}

// lookupArena returns arena id of ss with a reference, or nil.
func (ss *session) lookupArena(id uint32) *sharedArena {
	ss.amu.RLock()
	defer ss.amu.RUnlock()
	sa := ss.arenas[id]
	if sa != nil {
		sa.refs.Add(1)
	}
	return sa
}

// listenSessions creates the control socket in dir (mode 0700 directory,
// socket 0600, or 0666 with allowOther; SO_PEERCRED decides in any case).
// cb (may be nil) invalidates the kernel's caches after ring writes;
// hooks (may be nil) see the bytes of ring ops.
func listenSessions(dir string, allowOther bool, limits Limits, logger *log.Logger, cb invalidator, hooks *Hooks) (*sessions, error) {
	if limits.Sessions == 0 {
		limits.Sessions = DefaultLimits.Sessions
	}
	if limits.ArenasPerSession == 0 {
		limits.ArenasPerSession = DefaultLimits.ArenasPerSession
	}
	if limits.ArenaBytes == 0 {
		limits.ArenaBytes = DefaultLimits.ArenaBytes
	}
	if limits.FixedSlots == 0 {
		limits.FixedSlots = DefaultLimits.FixedSlots
	}
	if limits.AttachedFiles == 0 {
		limits.AttachedFiles = DefaultLimits.AttachedFiles
	}
	mode := os.FileMode(0o700)
	if allowOther {
		mode = 0o755
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return nil, fmt.Errorf("control directory: %w", err)
	}
	sweepStaleSockets(dir)
	var nonce [4]byte
	rand.Read(nonce[:])
	path := filepath.Join(dir, fmt.Sprintf("zcfuse-%d-%x.sock", os.Getpid(), nonce))
	exec, err := newExecutor(limits.FixedSlots, 0)
	if err != nil {
		return nil, err
	}
	s := &sessions{path: path, ownerUID: uint32(os.Geteuid()), allowOther: allowOther, limits: limits,
		exec: exec, logger: logger, cb: cb, hooks: hooks, live: map[uint64]*session{}}
	if s.lfd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0); err != nil {
		exec.close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := unix.Bind(s.lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(s.lfd)
		exec.close()
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	sockMode := uint32(0o600)
	if allowOther {
		sockMode = 0o666
	}
	if err := unix.Chmod(path, sockMode); err == nil {
		err = unix.Listen(s.lfd, 64)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *sessions) accept() {
	defer s.wg.Done()
	for {
		fd, _, err := unix.Accept4(s.lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			return // closed
		}
		if err := s.admit(fd); err != nil {
			wire.Send(fd, wire.ErrorFrom(err))
			unix.Close(fd)
			continue
		}
	}
}

// admit checks the peer and starts its session.
func (s *sessions) admit(fd int) error {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return err
	}
	if !s.allowOther && cred.Uid != s.ownerUID && cred.Uid != 0 {
		return fmt.Errorf("uid %d may not use this mount (owner %d; mount with --allow-other to let others in): %w", cred.Uid, s.ownerUID, unix.EACCES)
	}
	ss := &session{s: s, fd: fd, id: s.nextID.Add(1), cred: *cred, arenas: map[uint32]*sharedArena{}, files: map[uint32]*attachment{}}
	// Both from the socket, as the kernel took them at connect(): /proc
	// would show whatever the peer exec'd since (a setuid-root binary's
	// CAP_FSETID, a setgid binary's group).
	ss.priv = passthrough.Caller{Uid: cred.Uid, Gid: cred.Gid, Groups: peerGroups(fd)}
	rand.Read(ss.token[:])
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return fmt.Errorf("server stopping: %w", unix.ESHUTDOWN)
	case len(s.live) >= s.limits.Sessions:
		s.mu.Unlock()
		return fmt.Errorf("%d sessions already: %w", s.limits.Sessions, unix.EAGAIN)
	}
	s.live[ss.id] = ss
	s.wg.Add(1)
	s.mu.Unlock()
	go ss.serve()
	return nil
}

func (ss *session) serve() {
	defer ss.s.wg.Done()
	defer ss.end()
	buf := make([]byte, wire.MaxMsgSize)
	m, _, err := wire.Recv(ss.fd, buf)
	if err != nil {
		return
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		wire.Send(ss.fd, wire.ErrorFrom(fmt.Errorf("first message must be Hello, not %v: %w", m.Type(), unix.EPROTO)))
		return
	}
	if hello.Flags != 0 {
		wire.Send(ss.fd, wire.ErrorFrom(fmt.Errorf("unknown hello flags %#x: %w", hello.Flags, unix.EINVAL)))
		return
	}
	l := ss.s.limits
	if err := wire.Send(ss.fd, &wire.HelloReply{Version: min(hello.Version, wire.ProtocolVersion), SessionID: ss.id, Token: ss.token,
		MaxArenas: uint32(l.ArenasPerSession), MaxArenaSize: arena.MaxSize, MaxArenaBytes: l.ArenaBytes,
		MaxAttachedFiles: uint32(l.AttachedFiles)}); err != nil {
		return
	}
	q, qfds, err := ss.openQueue()
	if err != nil {
		wire.Send(ss.fd, wire.ErrorFrom(err))
		return
	}
	ss.queue = q
	err = q.send(ss.fd, qfds)
	for _, fd := range qfds {
		unix.Close(fd)
	}
	if err != nil {
		return
	}
	for {
		m, fds, err := wire.Recv(ss.fd, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EBADF) {
				return
			}
			// A bad message costs the client that request, not the session.
			if wire.Send(ss.fd, wire.ErrorFrom(err)) != nil {
				return
			}
			continue
		}
		reply, bye := ss.handle(m, fds)
		if wire.Send(ss.fd, reply) != nil || bye {
			return
		}
	}
}

func (ss *session) handle(m wire.Msg, fds []int) (reply wire.Msg, bye bool) {
	switch m := m.(type) {
	case *wire.ShareArena:
		defer unix.Close(fds[0])
		r, err := ss.share(fds[0], m)
		if err != nil {
			return wire.ErrorFrom(err), false
		}
		return r, false
	case *wire.ReleaseArena:
		if err := ss.release(m.ArenaID); err != nil {
			return wire.ErrorFrom(err), false
		}
		return &wire.Ok{}, false
	case *wire.Stats:
		st := ss.s.stats()
		return &st, false
	case *wire.Detach:
		if err := ss.s.detach(ss, m.FileID); err != nil {
			return wire.ErrorFrom(err), false
		}
		return &wire.Ok{}, false
	case *wire.Bye:
		// Release before answering: once Close returns, the client may
		// count on the server holding nothing of this session.
		ss.releaseAll()
		return &wire.Ok{}, true
	}
	return wire.ErrorFrom(fmt.Errorf("%v is not a request: %w", m.Type(), unix.EBADMSG)), false
}

func (ss *session) share(fd int, m *wire.ShareArena) (*wire.ShareArenaReply, error) {
	l := ss.s.limits
	switch {
	case m.Flags != 0:
		return nil, fmt.Errorf("unknown share flags %#x: %w", m.Flags, unix.EINVAL)
	case len(ss.arenas) >= l.ArenasPerSession:
		return nil, fmt.Errorf("session holds %d arenas, the limit: %w", len(ss.arenas), unix.ENOSPC)
	case m.Size > l.ArenaBytes-ss.bytes:
		return nil, fmt.Errorf("arena of %d bytes would pass the session's limit of %d: %w", m.Size, l.ArenaBytes, unix.ENOSPC)
	}
	a, err := arena.Import(fd, int64(m.Size))
	if err != nil {
		return nil, err
	}
	sa := &sharedArena{s: ss.s, a: a}
	sa.refs.Store(1)
	// Fault the pages in here, on this session's goroutine: registration
	// on the executor thread then only pins them (19 ms for a warm GiB,
	// seconds for a cold one), and no hook can ever fault on them.
	if err := unix.Madvise(a.Bytes(), unix.MADV_POPULATE_WRITE); err != nil {
		a.Close()
		return nil, fmt.Errorf("populate arena: %w", err)
	}
	slot, err := ss.s.exec.register(a.Bytes())
	switch {
	case err == nil:
		sa.slot, sa.registered = slot, true
		ss.s.registered.Add(int64(m.Size))
	case errors.Is(err, errNoMemlock), errors.Is(err, unix.ENOSPC):
		// Served without a fixed buffer: still no copy in user space.
	default:
		a.Close()
		return nil, err
	}
	ss.nextID++
	ss.amu.Lock()
	ss.arenas[ss.nextID] = sa
	ss.amu.Unlock()
	ss.bytes += m.Size
	ss.s.arenas.Add(1)
	return &wire.ShareArenaReply{ArenaID: ss.nextID, Registered: sa.registered}, nil
}

// release forgets arena id; it is freed at once unless ops in flight
// still use it (then the last of them frees it).
func (ss *session) release(id uint32) error {
	ss.amu.Lock()
	sa, ok := ss.arenas[id]
	delete(ss.arenas, id)
	ss.amu.Unlock()
	if !ok {
		return fmt.Errorf("no arena %d in this session: %w", id, unix.ENOENT)
	}
	ss.bytes -= uint64(sa.a.Size())
	if sa.refs.Add(-1) == 0 {
		return sa.free()
	}
	return nil
}

// releaseAll drops the session's attachments, its arenas and its place in
// the live table.
func (ss *session) releaseAll() {
	if ss.queue != nil {
		ss.queue.close() // waits for the ops in flight
		ss.queue = nil
	}
	ss.s.detachAll(ss)
	for id := range ss.arenas {
		ss.release(id)
	}
	ss.s.mu.Lock()
	delete(ss.s.live, ss.id)
	ss.s.mu.Unlock()
}

// end frees everything the session held and closes its socket.
func (ss *session) end() {
	ss.releaseAll() // before the close: sessions.close() must not shut a reused fd
	unix.Close(ss.fd)
}

func (s *sessions) stats() wire.StatsReply {
	s.mu.Lock()
	n := len(s.live)
	s.mu.Unlock()
	return wire.StatsReply{Sessions: uint64(n), Arenas: uint64(s.arenas.Load()), RegisteredBytes: uint64(s.registered.Load()),
		AttachedFiles: uint64(s.attached.Load())}
}

// close stops accepting, ends every session, and closes the executor.
func (s *sessions) close() {
	s.mu.Lock()
	s.closed = true
	for _, ss := range s.live {
		unix.Shutdown(ss.fd, unix.SHUT_RDWR) // wakes its Recv
	}
	s.mu.Unlock()
	unix.Shutdown(s.lfd, unix.SHUT_RDWR)
	unix.Close(s.lfd)
	os.Remove(s.path)
	s.wg.Wait()
	s.exec.close()
}

// sweepStaleSockets removes the sockets of servers that died without
// cleaning up (SIGKILL): zcfuse-PID-*.sock whose PID no longer runs.
func sweepStaleSockets(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		var pid int
		var rest string
		if n, _ := fmt.Sscanf(e.Name(), "zcfuse-%d-%s", &pid, &rest); n != 2 || pid <= 0 || e.Type()&os.ModeSocket == 0 {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// invalidator drops the kernel's cache of a node's pages and attributes,
// synchronously (fusering.Notifier.InvalidateNow).
type invalidator interface {
	InvalidateNow(node uint64, off, n int64) error
}

// peerGroups returns the supplementary groups of the peer of socket fd
// as they were at connect() (SO_PEERGROUPS), or none when the kernel does
// not say.
func peerGroups(fd int) []uint32 {
	const soPeerGroups = 59
	for n := 64; n <= 1<<16; n *= 4 {
		buf := make([]uint32, n)
		size := uint32(4 * n)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, soPeerGroups,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch e {
		case 0:
			return buf[:size/4]
		case unix.ERANGE:
			continue
		}
		break
	}
	return []uint32{}
}
