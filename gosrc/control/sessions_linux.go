package control

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	OpenQueue(src dataplane.Source, entries uint32) (*dataplane.Queue, []int, error)
}

// Config configures the control plane.
type Config struct {
	// Dir holds the control socket: 0700 and ours, or with AllowOther
	// 0755 and root's when the server is root (see Listen).
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
	ownerUID   uint32
	allowOther bool
	limits     Limits
	users      *users // what each uid holds
	dp         DataPlane
	logger     *log.Logger
	hooks      *Hooks

	// lf is the listening socket, on the netpoller (lrc); closing it
	// ends the accept loop, and done ends its back-off.
	lf   *os.File
	lrc  syscall.RawConn
	done chan struct{}

	nextID atomic.Uint64
	mu     sync.Mutex
	live   map[uint64]*session // past Hello
	half   map[uint64]*session // connections not yet past Hello
	closed bool
	wg     sync.WaitGroup

	arenas     atomic.Int64
	registered atomic.Int64 // bytes in fixed buffers

	acceptErrors  atomic.Uint64
	refused       atomic.Uint64
	helloTimeouts atomic.Uint64
	overBudget    atomic.Uint64

	// fmu guards the attachments: session.files, session.nextFile,
	// session.ended and file.attached, which the session's goroutine and
	// the FUSE handlers (attach ioctl, RELEASE) both change.
	fmu      sync.Mutex
	attached atomic.Int64
	// files are the open handles attached to sessions (Handle -> *file).
	files sync.Map
}

// session is one client connection, from accept on: "half-open" until
// its Hello is answered, then live.
type session struct {
	s    *Control
	conn *wire.Conn // on the netpoller: a waiting session holds no thread
	// fd is conn's descriptor: Broken and Close shut it down, only while
	// the session is in Control.live or Control.half (it is closed after).
	fd    int
	id    uint64
	token [16]byte
	cred  unix.Ucred // the peer, from SO_PEERCRED at connect
	// halfOpen: the session holds its uid's resHalfOpen (its goroutine's).
	halfOpen bool
	// depth is the queue entries charged to the uid (0 before its queue).
	depth uint32
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
// goes, so no I/O and no hook ever sees it unmapped. Its charges to its
// uid go back then too.
type sharedArena struct {
	s          *Control
	a          *arena.Arena
	uid        uint32
	size       uint64 // charged as resArenaBytes
	pinned     uint64 // charged as resRegisteredBytes: faulted in (and registered unless that failed)
	slot       uint32
	registered bool
	refs       atomic.Int32
}

func (sa *sharedArena) put() {
	if sa.refs.Add(-1) == 0 {
		go sa.free() // maybe on a worker thread, which must not wait for workers
	}
}

// free unregisters and unmaps the arena and gives its charges back.
func (sa *sharedArena) free() error {
	var err error
	if sa.registered {
		err = sa.s.dp.UnregisterBuffer(sa.slot)
		sa.s.registered.Add(-sa.a.Size())
	}
	sa.s.arenas.Add(-1)
	err = errors.Join(err, sa.a.Close())
	u := sa.s.users
	u.give(sa.uid, resArenas, 1)
	u.give(sa.uid, resArenaBytes, sa.size)
	if sa.pinned != 0 {
		u.give(sa.uid, resRegisteredBytes, sa.pinned)
	}
	return err
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

// serve answers the session's requests until the client goes, says Bye
// or breaks its queue; first its Hello, which must come within
// HelloTimeout of the connect.
func (ss *session) serve() {
	defer ss.s.wg.Done()
	defer ss.end()
	s, l := ss.s, ss.s.limits
	buf := make([]byte, wire.MaxMsgSize)
	ss.conn.SetReadDeadline(time.Now().Add(l.HelloTimeout))
	m, _, err := ss.conn.Recv(buf)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.helloTimeouts.Add(1)
		ss.fail(fmt.Errorf("no Hello within %v of the connect: %w", l.HelloTimeout, unix.ETIMEDOUT))
		return
	case err != nil:
		return
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		ss.fail(fmt.Errorf("first message must be Hello, not %v: %w", m.Type(), unix.EPROTO))
		return
	}
	if hello.Flags != 0 {
		ss.fail(fmt.Errorf("unknown hello flags %#x: %w", hello.Flags, unix.EINVAL))
		return
	}
	ss.conn.SetReadDeadline(time.Time{})
	// Live before the reply: the client may attach as soon as it has it.
	s.mu.Lock()
	delete(s.half, ss.id)
	s.live[ss.id] = ss
	s.mu.Unlock()
	if ss.halfOpen {
		s.users.give(ss.cred.Uid, resHalfOpen, 1)
		ss.halfOpen = false
	}
	if err := ss.conn.Send(&wire.HelloReply{Version: min(hello.Version, wire.ProtocolVersion), SessionID: ss.id, Token: ss.token,
		MaxArenas: uint32(l.ArenasPerSession), MaxArenaSize: arena.MaxSize, MaxArenaBytes: l.ArenaBytes,
		MaxAttachedFiles: uint32(l.AttachedFiles)}); err != nil {
		return
	}
	depth := l.queueDepth()
	if err := s.users.take(ss.cred.Uid, resQueueEntries, uint64(depth)); err != nil {
		ss.conn.Send(wire.ErrorFrom(err))
		return
	}
	ss.depth = depth
	q, qfds, err := s.dp.OpenQueue(ss, depth)
	if err != nil {
		ss.conn.Send(wire.ErrorFrom(err))
		return
	}
	ss.queue = q
	err = sendQueue(ss.conn, q, qfds)
	for _, fd := range qfds {
		unix.Close(fd)
	}
	if err != nil {
		return
	}
	for {
		m, fds, err := ss.conn.Recv(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EBADF) {
				return
			}
			// A bad message costs the client that request, not the session.
			if ss.conn.Send(wire.ErrorFrom(err)) != nil {
				return
			}
			continue
		}
		reply, bye := ss.handle(m, fds)
		if bye {
			// Out of the live table now: Close can no longer wake a
			// send to a client that stopped reading.
			ss.conn.SetWriteDeadline(time.Now().Add(lingerTime))
		}
		if ss.conn.Send(reply) != nil || bye {
			return
		}
	}
}

// fail answers a connection that ends before it is a session with the
// Error that says why, without waiting long for a client that does not
// read.
func (ss *session) fail(err error) {
	ss.conn.SetWriteDeadline(time.Now().Add(lingerTime))
	ss.conn.Send(wire.ErrorFrom(err))
}

// sendQueue sends the OpQueue and Doorbell messages with the queue's fds.
func sendQueue(c *wire.Conn, q *dataplane.Queue, fds []int) error {
	if err := c.Send(&wire.OpQueue{Entries: q.Entries(), Doorbells: uint32(q.Doorbells())}, fds[0], fds[1]); err != nil {
		return err
	}
	for i, fd := range fds[2:] {
		if err := c.Send(&wire.Doorbell{Index: uint32(i)}, fd); err != nil {
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

// share maps the arena a client hands over and charges it to the
// session (ENOSPC past ArenasPerSession or ArenaBytes) and to its peer's
// uid (EDQUOT past ArenasPerUser or ArenaBytesPerUser: mapped bytes).
//
// Only within the uid's RegisteredBytesPerUser does the server fault the
// arena in (MADV_POPULATE_WRITE, here on the session's goroutine, so that
// registration on the executor's threads only pins) and register it as a
// fixed buffer; the whole size is charged, resident or not, as
// registration pins every page. Past that budget the arena is accepted
// unregistered and left as it is: served from its mapping, still without
// a copy, its pages faulted in only by the ops that touch them (counted
// in arenas_over_budget). The server never asks mincore: what is resident
// already does not change what registration pins. An arena faulted in
// whose registration then fails (no memlock budget, the fixed-buffer
// table full) keeps its charge, since the server did fault it in.
// Everything goes back when the last reference to the arena goes.
func (ss *session) share(fd int, m *wire.ShareArena) (*wire.ShareArenaReply, error) {
	s, l := ss.s, ss.s.limits
	switch {
	case m.Flags != 0:
		return nil, fmt.Errorf("unknown share flags %#x: %w", m.Flags, unix.EINVAL)
	case len(ss.arenas) >= l.ArenasPerSession:
		return nil, fmt.Errorf("session holds %d arenas, the limit: %w", len(ss.arenas), unix.ENOSPC)
	case m.Size > l.ArenaBytes-ss.bytes:
		return nil, fmt.Errorf("arena of %d bytes would pass the session's limit of %d: %w", m.Size, l.ArenaBytes, unix.ENOSPC)
	}
	uid, u := ss.cred.Uid, s.users
	if err := u.take(uid, resArenas, 1); err != nil {
		return nil, err
	}
	if err := u.take(uid, resArenaBytes, m.Size); err != nil {
		u.give(uid, resArenas, 1)
		return nil, err
	}
	a, err := arena.Import(fd, int64(m.Size))
	if err != nil {
		u.give(uid, resArenas, 1)
		u.give(uid, resArenaBytes, m.Size)
		return nil, err
	}
	sa := &sharedArena{s: s, a: a, uid: uid, size: m.Size}
	sa.refs.Store(1)
	s.arenas.Add(1) // free takes it back
	if u.take(uid, resRegisteredBytes, m.Size) != nil {
		s.overBudget.Add(1)
	} else {
		sa.pinned = m.Size
		if err := unix.Madvise(a.Bytes(), unix.MADV_POPULATE_WRITE); err != nil {
			sa.free()
			return nil, fmt.Errorf("populate arena: %w", err)
		}
		slot, err := s.dp.RegisterBuffer(a.Bytes())
		switch {
		case err == nil:
			sa.slot, sa.registered = slot, true
			s.registered.Add(int64(m.Size))
		case errors.Is(err, dataplane.ErrNoMemlock), errors.Is(err, unix.ENOSPC):
			// Served without a fixed buffer: still no copy in user space.
		default:
			sa.free()
			return nil, err
		}
	}
	ss.nextID++
	ss.amu.Lock()
	ss.arenas[ss.nextID] = sa
	ss.amu.Unlock()
	ss.bytes += m.Size
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
	delete(ss.s.half, ss.id)
	ss.s.mu.Unlock()
}

// end frees everything the session held, gives its uid back the session
// (and the connection before Hello, if it never got past it) and closes
// its socket.
func (ss *session) end() {
	ss.releaseAll() // before the close: Control.Close must not shut a reused fd
	if ss.halfOpen {
		ss.s.users.give(ss.cred.Uid, resHalfOpen, 1)
	}
	if ss.depth != 0 {
		ss.s.users.give(ss.cred.Uid, resQueueEntries, uint64(ss.depth))
	}
	ss.s.users.give(ss.cred.Uid, resSessions, 1)
	ss.conn.Close()
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
	// HalfOpen are the connections not yet past Hello.
	HalfOpen uint64 `json:"half_open"`
	// AcceptErrors counts the accepts that failed for want of a
	// resource (EMFILE, ENFILE, ENOMEM, ENOBUFS, ...) and were retried
	// after a back-off.
	AcceptErrors uint64 `json:"accept_errors"`
	// ConnectionsRefused counts the connections answered with an Error
	// and closed at once: a user not admitted, over a limit, the server
	// stopping.
	ConnectionsRefused uint64 `json:"connections_refused"`
	// HelloTimeouts counts the connections closed for sending no Hello
	// within Limits.HelloTimeout.
	HelloTimeouts uint64 `json:"hello_timeouts"`
	// ArenasOverBudget counts the arenas accepted unregistered, and not
	// faulted in, because their uid's RegisteredBytesPerUser was spent.
	ArenasOverBudget uint64 `json:"arenas_over_budget"`
	// AccountingErrors are gives of more than a user held: bugs, logged;
	// the tests' servers must show none.
	AccountingErrors uint64 `json:"accounting_errors"`
}

// Stats returns a snapshot of the counters; it works after Close too.
func (s *Control) Stats() SessionStats {
	s.mu.Lock()
	n, h := len(s.live), len(s.half)
	s.mu.Unlock()
	return SessionStats{Sessions: uint64(n), Arenas: uint64(s.arenas.Load()), RegisteredBytes: uint64(s.registered.Load()),
		AttachedFiles: uint64(s.attached.Load()), HalfOpen: uint64(h), AcceptErrors: s.acceptErrors.Load(),
		ConnectionsRefused: s.refused.Load(), HelloTimeouts: s.helloTimeouts.Load(), ArenasOverBudget: s.overBudget.Load(),
		AccountingErrors: s.users.bugs.Load()}
}

// Path is the control socket's path.
func (s *Control) Path() string { return s.path }

// Close stops accepting and ends every session, and every connection not
// yet past Hello: its queue (once its ops in flight are done), its
// arenas and its attachments. It returns when nothing of any session is
// left; the data plane outlives it.
func (s *Control) Close() {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	for _, ss := range s.live {
		unix.Shutdown(ss.fd, unix.SHUT_RDWR) // wakes its Recv
	}
	for _, ss := range s.half {
		unix.Shutdown(ss.fd, unix.SHUT_RDWR)
	}
	s.mu.Unlock()
	if first {
		close(s.done)
		s.lf.Close() // wakes the accept loop
		os.Remove(s.path)
	}
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
