package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// StatsXattr is the extended attribute on the mount root that returns the
// server's Stats as JSON.
const StatsXattr = "user.zcfuse.stats"

// Options configure a Server. The zero value is a sane default: auto
// transport, depth 4, 1 s entry and attribute timeouts.
type Options struct {
	Transport  fusering.Transport
	QueueDepth int
	// AllowOther lets other users use the mount; it implies the kernel's
	// default_permissions checks.
	AllowOther  bool
	ReadOnly    bool
	Passthrough bool
	Debug       bool
	// EntryTimeout and AttrTimeout are how long the kernel caches lookups
	// and attributes; zero means 1 s, negative means no caching.
	EntryTimeout time.Duration
	AttrTimeout  time.Duration
	Logger       *log.Logger
	// ControlDir holds the control socket that clients find through
	// ControlXattr; default /run/zcfuse (root) or the temp directory.
	ControlDir string
	// Limits bound what clients may hold; zero fields take DefaultLimits.
	Limits Limits
	// Hooks see the data of every write and read, on every path.
	Hooks *Hooks
}

// Stats is what the server reports about itself.
type Stats struct {
	fusering.Stats
	Passthrough bool   `json:"passthrough"`
	ReadOnly    bool   `json:"read_only"`
	Backing     string `json:"backing"`
	Mountpoint  string `json:"mountpoint"`
	PID         int    `json:"pid"`
	// The control plane: client sessions, the arenas they share, and how
	// many of those bytes sit in io_uring fixed buffers.
	ControlSocket   string `json:"control_socket"`
	Sessions        uint64 `json:"sessions"`
	Arenas          uint64 `json:"arenas"`
	RegisteredBytes uint64 `json:"registered_bytes"`
	AttachedFiles   uint64 `json:"attached_files"`
	FixedSlotsUsed  uint64 `json:"fixed_slots_used"`
	// RegisteredFiles are attached files in the workers' registered-file
	// tables (the rest are served by their fds).
	RegisteredFiles uint64 `json:"registered_files"`
	// The ring path (zero-copy ops from sessions' op queues; not to be
	// confused with the FUSE ring transport): ops, those that failed, the
	// bytes they moved between arenas and backing files, bytes the server
	// copied in user space (CopyForHooks), and the most ops one session
	// had in flight.
	ZCOps          uint64 `json:"zc_ops"`
	ZCErrors       uint64 `json:"zc_errors"`
	ZCReadBytes    uint64 `json:"zc_read_bytes"`
	ZCWriteBytes   uint64 `json:"zc_write_bytes"`
	ZeroCopyBytes  uint64 `json:"zero_copy_bytes"`
	CopiedBytes    uint64 `json:"copied_bytes"`
	QueueHighWater uint64 `json:"queue_high_water"`
	Workers        int    `json:"workers"`
}

// Server is a mounted passthrough of a backing directory.
type Server struct {
	backing    string
	mountpoint string
	opts       Options

	mu      sync.Mutex // serialises Start and Stop
	started bool
	conn    atomic.Pointer[fusering.Conn] // set once serving
	ctl     atomic.Pointer[sessions]      // the control plane, once serving
	lastCtl atomic.Pointer[sessions]      // the control plane, also after Stop (its counters)
	root    *rootNode
	// rootFd is the backing directory (O_PATH): the node tree resolves
	// names below it with openat2 (RESOLVE_BENEATH, no symlinks).
	rootFd int
	// raw is the RawFileSystem the transport serves (kill-priv flags).
	raw *rawFS
	// nosecTTL is how long a kill-priv check that found nothing holds:
	// the attribute timeout.
	nosecTTL time.Duration
	// switchCreds: the server is root, so requests run with their
	// callers' identities (creds_linux.go); groups finds their groups.
	switchCreds bool
	groups      passthrough.GroupCache
	// callbacks is the node tree's notifier; set before any node exists.
	callbacks *callbacks
}

// logf logs through the connection's logger, or the options' one.
func (s *Server) logf(format string, args ...any) {
	if c := s.conn.Load(); c != nil {
		c.Logger().Printf(format, args...)
	} else if s.opts.Logger != nil {
		s.opts.Logger.Printf(format, args...)
	}
}

// ErrStarted is returned by a second Start: a Server mounts once.
var ErrStarted = fmt.Errorf("server already started: %w", syscall.EALREADY)

// New checks the backing directory and the mountpoint.
func New(backing, mountpoint string, opts Options) (*Server, error) {
	if opts.QueueDepth < 0 || opts.QueueDepth > fusering.MaxQueueDepth {
		return nil, fmt.Errorf("queue depth %d out of range [1, %d]: %w", opts.QueueDepth, fusering.MaxQueueDepth, syscall.EINVAL)
	}
	var err error
	if backing, err = filepath.Abs(backing); err != nil {
		return nil, err
	}
	if mountpoint, err = filepath.Abs(mountpoint); err != nil {
		return nil, err
	}
	st, err := os.Stat(backing)
	if err != nil {
		return nil, fmt.Errorf("backing directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("backing directory %s: %w", backing, syscall.ENOTDIR)
	}
	if err := fusering.CheckMountpoint(mountpoint); err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(mountpoint, backing); err == nil && rel == "." {
		return nil, fmt.Errorf("backing directory and mountpoint are the same: %s: %w", backing, syscall.EINVAL)
	}
	if inside(backing, mountpoint) {
		// The server would serve lookups of its own mount from its own
		// request threads, one level deeper each time, until none is left:
		// `ls -la` three levels down hung in D state.
		return nil, fmt.Errorf("mountpoint %s is inside the backing directory %s: %w", mountpoint, backing, syscall.EINVAL)
	}
	return &Server{backing: backing, mountpoint: mountpoint, opts: opts, rootFd: -1}, nil
}

// inside reports whether path lies below dir, both resolved through
// symlinks (as far as they exist).
func inside(dir, path string) bool {
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

func timeout(d time.Duration) *time.Duration {
	switch {
	case d == 0:
		d = time.Second
	case d < 0:
		d = 0
	}
	return &d
}

// Start mounts and serves; it returns once the mount is ready. A second
// call returns ErrStarted.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return ErrStarted
	}
	s.started = true
	var err error
	if s.rootFd, err = unix.Open(s.backing, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("backing directory: %w", err)
	}
	s.switchCreds = os.Geteuid() == 0 && os.Getenv(TestRootRequestsEnv) != "1"
	s.groups = passthrough.GroupCache{TTL: 2 * time.Second, Max: 4096}
	conn, err := fusering.Open(fusering.Config{
		Mountpoint:  s.mountpoint,
		Source:      s.backing,
		Transport:   s.opts.Transport,
		QueueDepth:  s.opts.QueueDepth,
		AllowOther:  s.opts.AllowOther,
		ReadOnly:    s.opts.ReadOnly,
		Passthrough: s.opts.Passthrough,
		Logger:      s.opts.Logger,
		NoFastRead:  s.opts.Hooks != nil && s.opts.Hooks.OnRead != nil,
		// Every request thread works in the backing root, so that the
		// node tree's paths (relative: LoopbackRoot.Path is ".") need no
		// rights above it when a request runs as its caller.
		ThreadInit: s.threadInit,
		MountOptions: fuse.MountOptions{
			Debug:         s.opts.Debug,
			EnableLocks:   true,
			MaxBackground: 64,
			Logger:        s.opts.Logger,
			// The server clears setuid/setgid itself when the kernel
			// says so (killpriv_linux.go), and the kernel stops asking
			// GETXATTR security.capability before every WRITE.
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2 | aclCaps,
			EnableAcl:         s.opts.AllowOther, // acl_linux.go
		},
	})
	if err != nil {
		s.closeRoot()
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.backing, &st); err != nil {
		conn.Stop()
		return fmt.Errorf("backing directory: %w", err)
	}
	s.nosecTTL = *timeout(s.opts.AttrTimeout)
	lr := &fs.LoopbackRoot{Path: ".", Dev: uint64(st.Dev)}
	root := &rootNode{node: node{LoopbackNode: fs.LoopbackNode{RootData: lr}, srv: s}}
	lr.RootNode = root
	lr.NewNode = func(rd *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: rd}, srv: s}
	}
	s.root = root
	cb, sc := serverCallbacks(conn)
	s.callbacks = cb
	s.raw = &rawFS{srv: s, RawFileSystem: fs.NewNodeFS(root, &fs.Options{
		EntryTimeout:    timeout(s.opts.EntryTimeout),
		AttrTimeout:     timeout(s.opts.AttrTimeout),
		ServerCallbacks: sc,
		Logger:          s.opts.Logger,
		// A mode of 0000 stays 0000: go-fuse would show it as 0644.
		NullPermissions: true,
	})}
	dir := s.opts.ControlDir
	if dir == "" {
		dir = os.TempDir()
		if os.Geteuid() == 0 {
			dir = "/run/zcfuse"
		}
	}
	ctl, err := listenSessions(dir, s.opts.AllowOther, s.opts.Limits, conn.Logger(), s.callbacks, s.opts.Hooks)
	if err != nil {
		conn.Stop()
		return err
	}
	s.ctl.Store(ctl) // before the mount exists, so ControlXattr always answers
	s.lastCtl.Store(ctl)
	if err := conn.Start(s.raw); err != nil {
		conn.Stop()
		s.ctl.Store(nil)
		ctl.close()
		return err
	}
	s.conn.Store(conn)
	return nil
}

// Running reports whether the file system is mounted and served.
func (s *Server) Running() bool {
	c := s.conn.Load()
	if c == nil {
		return false
	}
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

// Run starts the server unless it was started already, and blocks until
// the file system is unmounted (by Stop or from outside).
func (s *Server) Run() error {
	if err := s.Start(); err != nil && err != ErrStarted {
		return err
	}
	s.Wait()
	return nil
}

// Wait blocks until the file system is unmounted; it returns at once if
// the server never started serving.
func (s *Server) Wait() {
	if c := s.conn.Load(); c != nil {
		c.Wait()
	}
}

// Done is closed once the file system is unmounted, and at once when the
// server is not serving.
func (s *Server) Done() <-chan struct{} {
	if c := s.conn.Load(); c != nil {
		return c.Done()
	}
	return closed
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Stop unmounts and releases the connection. It is safe from any
// goroutine, more than once, and before Start (then it does nothing).
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true // a stopped server does not start again
	// Sessions first: their workers write cache invalidations to the
	// connection, which must outlive them.
	if ctl := s.ctl.Swap(nil); ctl != nil {
		ctl.close()
	}
	var err error
	if c := s.conn.Load(); c != nil {
		err = c.Stop()
		select {
		case <-c.Done(): // no request can use the root fd any more
			s.closeRoot()
		default:
		}
	} else {
		s.closeRoot()
	}
	return err
}

func (s *Server) closeRoot() {
	if s.rootFd >= 0 {
		unix.Close(s.rootFd)
		s.rootFd = -1
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Passthrough: s.opts.Passthrough,
		ReadOnly:    s.opts.ReadOnly,
		Backing:     s.backing,
		Mountpoint:  s.mountpoint,
		PID:         os.Getpid(),
	}
	if c := s.conn.Load(); c != nil {
		st.Stats = c.Stats()
	}
	if ctl := s.lastCtl.Load(); ctl != nil {
		cs := ctl.stats()
		st.Sessions, st.Arenas, st.RegisteredBytes = cs.Sessions, cs.Arenas, cs.RegisteredBytes
		if s.ctl.Load() != nil {
			st.ControlSocket = ctl.path // while it can be reached
		}
		st.AttachedFiles, st.FixedSlotsUsed = cs.AttachedFiles, uint64(ctl.exec.used())
		st.RegisteredFiles = uint64(ctl.exec.files.used())
		d := &ctl.data
		st.ZCOps, st.ZCErrors = d.ops.Load(), d.errors.Load()
		st.ZCReadBytes, st.ZCWriteBytes = d.readBytes.Load(), d.writeBytes.Load()
		st.ZeroCopyBytes, st.CopiedBytes, st.QueueHighWater = d.zeroCopyBytes.Load(), d.copiedBytes.Load(), d.highWater.Load()
		st.Workers = len(ctl.exec.workers)
	}
	return st
}

// Mountpoint is the absolute mountpoint.
func (s *Server) Mountpoint() string { return s.mountpoint }

// node is a loopback node that tells the ring thread serving an OPEN or
// CREATE which backing fd the new handle reads from, so READs on it can
// take the transport's fast path (fusering.NoteOpenFd), and whose open
// files can be attached to client sessions (file).
type node struct {
	fs.LoopbackNode
	nosec
	srv *Server
}

var _ fs.NodeOpener = (*node)(nil)

// openFlags are the open flags passed on to the backing file: not
// O_APPEND (the kernel gives every WRITE its offset, which O_APPEND would
// override), not FUSE's FMODE_EXEC or anything else openat2 refuses.
const openFlags = syscall.O_ACCMODE | syscall.O_TRUNC | syscall.O_DIRECT | syscall.O_SYNC | syscall.O_DSYNC |
	syscall.O_NOATIME | syscall.O_NONBLOCK | syscall.O_LARGEFILE

func noteFd(fh fs.FileHandle) {
	if p, ok := fh.(fs.FilePassthroughFder); ok {
		if fd, ok := p.PassthroughFd(); ok {
			fusering.NoteOpenFd(fd)
		}
	}
}

// Open opens the backing file and notes its fd for the READ fast path.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	var fh fs.FileHandle
	errno := n.srv.asCaller(ctx, func() syscall.Errno {
		// Relative to the backing root's fd, never through a symlink: the
		// caller needs no rights on the directories above the backing one.
		fd, err := n.openAt(int(flags & openFlags))
		if err != nil {
			return fs.ToErrno(err)
		}
		fh = fs.NewLoopbackFile(fd)
		return 0
	})
	if errno == 0 {
		noteFd(fh)
		fh = n.wrapFile(fh, flags)
		if f, ok := fh.(*file); ok && n.srv.opts.Passthrough {
			passthroughOpen(ctx, f, flags)
		}
		n.srv.raw.noteOpened(ctx, fh)
	}
	return fh, 0, errno
}

// passthroughOpen clears setuid/setgid/capability (killPriv) when a
// caller without CAP_FSETID opens a file for writing in passthrough mode:
// the kernel then writes to the backing file itself, with the server's
// credentials, and the server never sees the WRITE that would clear them.
// It clears them at the open rather than at the first write (one way a
// passthrough mount differs from a local file system), on every such
// open, since go-fuse puts every handle of an inode in passthrough once
// one is.
func passthroughOpen(ctx context.Context, f *file, flags uint32) {
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return
	}
	fd, ok := f.LoopbackFile.PassthroughFd()
	caller, ok2 := fuse.FromContext(ctx)
	if !ok || !ok2 || !passthrough.HasPriv(fd) || callerHasFsetid(caller.Uid, caller.Pid) {
		return
	}
	f.killPriv(true, f.srv.callerOf(caller))
}

var (
	_ fs.NodeGetxattrer = (*node)(nil)
	_ fs.NodeSetxattrer = (*node)(nil)
)

// virtualXattr reports whether attr is one of the root's own attributes.
func virtualXattr(attr string) bool { return attr == StatsXattr || attr == ControlXattr }

// Getxattr hides the root's attribute names below the root: a backing
// file carrying user.zcfuse.control must not steer a client that looks
// for its server from inside the mount to another socket.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if virtualXattr(attr) {
		return 0, syscall.ENODATA
	}
	if aclXattr(attr) {
		return n.getACL(ctx, attr, dest)
	}
	var size uint32
	errno := n.srv.asCaller(ctx, func() (errno syscall.Errno) {
		size, errno = n.LoopbackNode.Getxattr(ctx, attr, dest)
		return errno
	})
	return size, errno
}

// Setxattr refuses the root's attribute names everywhere.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if virtualXattr(attr) {
		return syscall.EPERM
	}
	n.attrsChanged()
	defer n.attrsChanged()
	if attr == passthrough.CapabilityXattr {
		// The kernel let the caller ask (CAP_SETFCAP in its own user
		// namespace over its own file), and a switched thread has no
		// capabilities: the server's job, on this inode only.
		return n.withProcPath(func(p string) error { return unix.Setxattr(p, attr, data, int(flags)) })
	}
	return n.srv.asCaller(ctx, func() syscall.Errno { return n.LoopbackNode.Setxattr(ctx, attr, data, flags) })
}

// rootNode is the loopback root plus the virtual stats attribute.
type rootNode struct {
	node
}

var (
	_ fs.NodeGetxattrer    = (*rootNode)(nil)
	_ fs.NodeSetxattrer    = (*rootNode)(nil)
	_ fs.NodeRemovexattrer = (*rootNode)(nil)
)

// Getxattr answers StatsXattr and ControlXattr itself and passes other
// names on.
func (n *rootNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	switch attr {
	case StatsXattr:
		var err error
		if b, err = json.Marshal(n.srv.Stats()); err != nil {
			return 0, syscall.EIO
		}
	case ControlXattr:
		ctl := n.srv.ctl.Load()
		if ctl == nil {
			return 0, syscall.ENODATA
		}
		b = []byte(ctl.path)
	default:
		return n.node.Getxattr(ctx, attr, dest)
	}
	if len(dest) == 0 {
		return uint32(len(b)), 0
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// Setxattr refuses to change the virtual attribute.
func (n *rootNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.node.Setxattr(ctx, attr, data, flags)
}

// Removexattr refuses to remove the virtual attribute.
func (n *rootNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.node.Removexattr(ctx, attr)
}

// ReadStats reads the stats of the server behind mountpoint.
func ReadStats(mountpoint string) (Stats, []byte, error) {
	var st Stats
	buf := make([]byte, 64<<10)
	n, err := syscall.Getxattr(mountpoint, StatsXattr, buf)
	if err != nil {
		return st, nil, fmt.Errorf("%s: no zcfuse server answers there (getxattr %s: %w)", mountpoint, StatsXattr, err)
	}
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		return st, nil, fmt.Errorf("%s: bad stats: %w", mountpoint, err)
	}
	return st, buf[:n], nil
}
