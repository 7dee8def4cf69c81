package control

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
	"github.com/zcfuse/zcfuse/gosrc/dataplane"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// DataPlane is what the control plane asks of the data plane
// (dataplane.Executor): tables to register arenas and files in, and op
// queues. Never called with a lock of this package held that a worker
// may need.
type DataPlane interface {
	RegisterBuffer(buf []byte) (uint32, error)
	UnregisterBuffer(slot uint32) error
	RegisterFile(fd int) (uint32, error)
	UnregisterFile(slot uint32) error
	OpenQueue(src dataplane.Source) (*dataplane.Queue, []int, error)
}

// Config configures the control plane.
type Config struct {
	// Dir holds the control socket (created 0700, or 0755 with
	// AllowOther).
	Dir string
	// AllowOther admits sessions of every user; else only the server's
	// owner and root.
	AllowOther bool
	// Limits bound what clients may hold; zero fields take DefaultLimits.
	Limits Limits
	Logger *log.Logger
	// Hooks (may be nil) see the bytes of ring ops.
	Hooks *Hooks
}

// Control is the control plane: a SOCK_SEQPACKET listener whose
// connections are client sessions holding shared arenas and attached
// files.
type Control struct {
	path       string
	lfd        int
	ownerUID   uint32
	allowOther bool
	limits     Limits
	users      *users // what each uid holds
	dp         DataPlane
	logger     *log.Logger
	hooks      *Hooks

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
	// files are the open handles attached to sessions (Handle -> *file).
	files sync.Map
}

// session is one client connection.
type session struct {
	s     *Control
	fd    int
	id    uint64
	token [16]byte
	cred  unix.Ucred // the peer, from SO_PEERCRED at connect
	// priv is the peer for kill-priv: a peer that is not root has its ring
	// writes clear setuid/setgid/capability as its write(2) would.
	priv  passthrough.Caller
	queue *dataplane.Queue
	// arenas is changed by the session's goroutine and read by workers.
	amu    sync.RWMutex
	arenas map[uint32]*sharedArena
	bytes  uint64
	nextID uint32

	files    map[uint32]*attachment // by file id; see Control.fmu
	nextFile uint32
	ended    bool
}

// sharedArena is an arena a session shared. Ops in flight hold
// references: the arena is unregistered and unmapped when the last one
// goes, so no I/O and no hook ever sees it unmapped.
type sharedArena struct {
	s          *Control
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
		err = sa.s.dp.UnregisterBuffer(sa.slot)
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

// Listen creates the control socket in cfg.Dir (socket 0600, or 0666
// with AllowOther; SO_PEERCRED decides in any case) and accepts sessions,
// whose queues and registrations dp serves.
func Listen(cfg Config, dp DataPlane) (*Control, error) {
	limits, dir, allowOther := cfg.Limits, cfg.Dir, cfg.AllowOther
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	limits = limits.WithDefaults()
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
	owner := uint32(os.Geteuid())
	s := &Control{path: path, ownerUID: owner, allowOther: allowOther, limits: limits, users: newUsers(limits, owner),
		dp: dp, logger: cfg.Logger, hooks: cfg.Hooks, live: map[uint64]*session{}}
	var err error
	if s.lfd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := unix.Bind(s.lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(s.lfd)
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
		s.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *Control) accept() {
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
func (s *Control) admit(fd int) error {
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
	q, qfds, err := ss.s.dp.OpenQueue(ss)
	if err != nil {
		wire.Send(ss.fd, wire.ErrorFrom(err))
		return
	}
	ss.queue = q
	err = sendQueue(ss.fd, q, qfds)
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

// sendQueue sends the OpQueue and Doorbell messages with the queue's fds.
func sendQueue(sock int, q *dataplane.Queue, fds []int) error {
	if err := wire.Send(sock, &wire.OpQueue{Entries: q.Entries(), Doorbells: uint32(q.Doorbells())}, fds[0], fds[1]); err != nil {
		return err
	}
	for i, fd := range fds[2:] {
		if err := wire.Send(sock, &wire.Doorbell{Index: uint32(i)}, fd); err != nil {
			return err
		}
	}
	return nil
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
		st := ss.s.Stats()
		return &wire.StatsReply{Sessions: st.Sessions, Arenas: st.Arenas, RegisteredBytes: st.RegisteredBytes,
			AttachedFiles: st.AttachedFiles}, false
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
	slot, err := ss.s.dp.RegisterBuffer(a.Bytes())
	switch {
	case err == nil:
		sa.slot, sa.registered = slot, true
		ss.s.registered.Add(int64(m.Size))
	case errors.Is(err, dataplane.ErrNoMemlock), errors.Is(err, unix.ENOSPC):
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
		ss.queue.Close() // waits for the ops in flight
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
	ss.releaseAll() // before the close: Control.Close must not shut a reused fd
	unix.Close(ss.fd)
}

// SessionStats are the control plane's counters. The JSON names are part of the
// server's stats.
type SessionStats struct {
	// Sessions are the client sessions connected, Arenas the arenas they
	// share, RegisteredBytes those of their bytes in io_uring fixed
	// buffers.
	Sessions        uint64 `json:"sessions"`
	Arenas          uint64 `json:"arenas"`
	RegisteredBytes uint64 `json:"registered_bytes"`
	// AttachedFiles are the files attached to sessions.
	AttachedFiles uint64 `json:"attached_files"`
}

// Stats returns a snapshot of the counters; it works after Close too.
func (s *Control) Stats() SessionStats {
	s.mu.Lock()
	n := len(s.live)
	s.mu.Unlock()
	return SessionStats{Sessions: uint64(n), Arenas: uint64(s.arenas.Load()), RegisteredBytes: uint64(s.registered.Load()),
		AttachedFiles: uint64(s.attached.Load())}
}

// Path is the control socket's path.
func (s *Control) Path() string { return s.path }

// Close stops accepting and ends every session: its queue (once its ops
// in flight are done), its arenas and its attachments. It returns when
// nothing of any session is left; the data plane outlives it.
func (s *Control) Close() {
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
