package server

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/control"
	"github.com/zcfuse/zcfuse/gosrc/dataplane"
	zfs "github.com/zcfuse/zcfuse/gosrc/fs"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// ControlXattr names the control socket on the mount root (wire.ControlXattr).
const ControlXattr = wire.ControlXattr

// Hooks and HookInfo are the control plane's (package control).
type (
	Hooks    = control.Hooks
	HookInfo = control.HookInfo
	// Limits bound what clients may hold on a server.
	Limits = control.Limits
)

// DefaultLimits are used for zero fields of Options.Limits.
var DefaultLimits = control.DefaultLimits

// StatsXattr is the extended attribute on the mount root that returns the
// server's statistics as JSON, in the view the caller may see: the full
// Stats for root and the mount owner, a UserView for anyone else.
const StatsXattr = "user.zcfuse.stats"

// The views of StatsXattr, by its JSON's "view".
const (
	// ViewFull is Stats: every counter, the server's paths and pid, and
	// every user's usage (root and the mount owner).
	ViewFull = "full"
	// ViewUser is UserView: the caller's own usage and the transport
	// (everybody else).
	ViewUser = "user"
)

// maxStatsXattr bounds StatsXattr's value below what getxattr(2) returns
// (XATTR_SIZE_MAX, 64 KiB), with room for counters that grow between a
// caller's size query and its read: Stats.Users is cut to fit.
const maxStatsXattr = 60 << 10

// Options configure a Server. The zero value is a sane default: auto
// transport, depth 4, 1 s entry and attribute timeouts.
type Options struct {
	Transport fusering.Transport
	// RequireURing makes the auto transport fail instead of falling back
	// to /dev/fuse (fusering.Config.RequireURing).
	RequireURing bool
	QueueDepth   int
	// AllowOther lets other users use the mount; it implies the kernel's
	// default_permissions checks.
	AllowOther  bool
	ReadOnly    bool
	Passthrough bool
	// CrossMounts serves file systems mounted below the backing directory
	// too; by default a root server serves a detached clone of the backing
	// mount, where they are not (the directories they cover show).
	CrossMounts bool
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
	// TestRootRequests serves the layer the project had before its own:
	// go-fuse's loopback node tree, which resolves path strings and runs
	// every request as root. It is the control half of tests that show an
	// attack biting. Never for real use.
	TestRootRequests bool

	// workerUser, set by tests, is the uid and gid the data plane's
	// threads take (dataplane.Config.ThreadUser).
	workerUser *unix.Ucred
}

// Stats is what the server reports about itself: the transport's, the
// file-system layer's, the control plane's and the data plane's counters.
// It is the one source of the stats model: the JSON of StatsXattr, the
// counters by name (Counters) and every binding's view of them come from
// it.
type Stats struct {
	// View is ViewFull. ReadStats sets ViewUser when the caller may see
	// only its own usage: then User, Transport, ReadOnly and Passthrough
	// are all that is set.
	View string `json:"view"`
	fusering.Stats
	// FS is the file-system layer: the inodes the kernel remembers, the
	// descriptors held for them, open files.
	FS          zfs.Stats `json:"fs"`
	Passthrough bool      `json:"passthrough"`
	ReadOnly    bool      `json:"read_only"`
	Backing     string    `json:"backing"`
	Mountpoint  string    `json:"mountpoint"`
	PID         int       `json:"pid"`
	// ControlSocket is where clients connect, while they can.
	ControlSocket string `json:"control_socket"`
	control.SessionStats
	dataplane.RingStats
	// Users is what every uid holding something holds, against its
	// limits, by uid. StatsXattr lists the biggest holders only when all
	// would not fit, and says how many it left out in UsersOmitted.
	Users        []UserStats `json:"users"`
	UsersOmitted int         `json:"users_omitted"`
	// User is the caller's own usage, from a ViewUser answer (ReadStats).
	User *UserStats `json:"-"`
}

// UserStats is what one uid holds on the server against its per-user
// limits (Options.Limits): the control plane's (sessions, connections
// before Hello, arenas, attached files) and the files and directories it
// holds open through the mount.
type UserStats struct {
	control.UserUsage
	OpenFiles      uint64 `json:"open_files"`
	OpenFilesLimit uint64 `json:"open_files_limit"`
}

// UserView is what StatsXattr answers a caller who is neither root nor
// the mount owner: its own usage against its limits and how the mount is
// served, and nothing about other users (no server-wide counter: bytes,
// requests and sessions count everybody's) or about the server (its
// backing directory, mountpoint, pid and control socket). A client finds
// the control socket through ControlXattr, which answers everyone who
// may connect.
type UserView struct {
	View        string    `json:"view"` // ViewUser
	Transport   string    `json:"transport"`
	ReadOnly    bool      `json:"read_only"`
	Passthrough bool      `json:"passthrough"`
	User        UserStats `json:"user"`
}

// Server is a mounted passthrough of a backing directory.
type Server struct {
	backing    string
	mountpoint string
	opts       Options

	mu      sync.Mutex // serialises Start and Stop
	started bool
	conn    atomic.Pointer[fusering.Conn]      // set once serving
	ctl     atomic.Pointer[control.Control]    // the control plane, while serving
	lastCtl atomic.Pointer[control.Control]    // the control plane, also after Stop (its counters)
	exec    atomic.Pointer[dataplane.Executor] // the data plane, once started
	// fsys is the file-system layer the transport serves.
	fsys *zfs.FS
	// root: the server runs as root (request threads drop
	// CAP_SYS_RESOURCE).
	root bool
	// owner is the mount owner's uid (the server's): with root, it sees
	// the full stats.
	owner uint32
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
	return &Server{backing: backing, mountpoint: mountpoint, opts: opts, owner: uint32(os.Geteuid())}, nil
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
	s.root = os.Geteuid() == 0
	conn, err := fusering.Open(fusering.Config{
		Mountpoint:   s.mountpoint,
		Source:       s.backing,
		Transport:    s.opts.Transport,
		RequireURing: s.opts.RequireURing,
		QueueDepth:   s.opts.QueueDepth,
		AllowOther:   s.opts.AllowOther,
		ReadOnly:     s.opts.ReadOnly,
		Passthrough:  s.opts.Passthrough,
		Logger:       s.opts.Logger,
		NoFastRead:   s.opts.Hooks != nil && s.opts.Hooks.OnRead != nil,
		ThreadInit:   s.threadInit,
		MountOptions: fuse.MountOptions{
			Debug: s.opts.Debug,
			// Locks stay in the kernel: it keeps POSIX and flock locks
			// for the mount itself, and no request thread ever blocks
			// in F_SETLKW for a client.
			EnableLocks:   false,
			MaxBackground: 64,
			Logger:        s.opts.Logger,
			// The layer clears setuid/setgid itself when the kernel says
			// so, and the kernel stops asking GETXATTR security.capability
			// before every WRITE. FUSE_DONT_MASK: the request thread
			// applies the caller's umask, or the parent's default ACL.
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2 | fuse.CAP_DONT_MASK | fuse.CAP_SETXATTR_EXT,
			EnableAcl:         s.opts.AllowOther, // see aclDoc
		},
	})
	if err != nil {
		return err
	}
	limits := s.opts.Limits.WithDefaults()
	fo := zfs.Options{
		EntryTimeout:     *timeout(s.opts.EntryTimeout),
		AttrTimeout:      *timeout(s.opts.AttrTimeout),
		Logger:           conn.Logger(),
		RequestThread:    fusering.OnRequestThread,
		CrossMounts:      s.opts.CrossMounts,
		Hooks:            s.fsHooks(),
		OpenFilesPerUser: limits.OpenFilesPerUser,
	}
	if b, ok := conn.Notifier().(zfs.BackingRegistrar); ok && s.opts.Passthrough {
		fo.Backing = b
	}
	if s.fsys, err = zfs.New(s.backing, fo); err != nil {
		conn.Stop()
		return err
	}
	dir := s.opts.ControlDir
	if dir == "" {
		dir = os.TempDir()
		if os.Geteuid() == 0 {
			dir = "/run/zcfuse"
		}
	}
	exec, err := dataplane.New(dataplane.Config{Slots: limits.FixedSlots, Invalidator: conn.Invalidator(),
		Logger: conn.Logger(), ThreadUser: s.opts.workerUser})
	if err != nil {
		conn.Stop()
		s.fsys.Close()
		return err
	}
	s.exec.Store(exec)
	ctl, err := control.Listen(control.Config{Dir: dir, AllowOther: s.opts.AllowOther, Limits: limits,
		Logger: conn.Logger(), Hooks: s.opts.Hooks}, exec)
	if err != nil {
		exec.Close()
		conn.Stop()
		s.fsys.Close()
		return err
	}
	s.ctl.Store(ctl) // before the mount exists, so ControlXattr always answers
	s.lastCtl.Store(ctl)
	var raw fuse.RawFileSystem = s.fsys
	if s.opts.TestRootRequests {
		raw = s.oldLayer()
	}
	if err := conn.Start(raw); err != nil {
		conn.Stop()
		s.ctl.Store(nil)
		ctl.Close()
		exec.Close()
		s.fsys.Close()
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
	// Sessions first, then the data plane: its workers write cache
	// invalidations to the connection, which must outlive them.
	if ctl := s.ctl.Swap(nil); ctl != nil {
		ctl.Close()
		s.exec.Load().Close()
	}
	var err error
	if c := s.conn.Load(); c != nil {
		err = c.Stop()
		select {
		case <-c.Done(): // no request can use the layer's fds any more
			s.fsys.Close()
		default:
		}
	}
	return err
}

// Stats returns a snapshot of the counters, the full view.
func (s *Server) Stats() Stats {
	st := Stats{
		View:        ViewFull,
		Passthrough: s.opts.Passthrough,
		ReadOnly:    s.opts.ReadOnly,
		Backing:     s.backing,
		Mountpoint:  s.mountpoint,
		PID:         os.Getpid(),
	}
	if c := s.conn.Load(); c != nil {
		st.Stats = c.Stats()
	}
	if s.fsys != nil {
		st.FS = s.fsys.Stats()
	}
	if ctl := s.lastCtl.Load(); ctl != nil {
		st.SessionStats = ctl.Stats()
		if s.ctl.Load() != nil {
			st.ControlSocket = ctl.Path() // while it can be reached
		}
	}
	if exec := s.exec.Load(); exec != nil {
		st.RingStats = exec.Stats()
	}
	st.Users = s.users()
	return st
}

// userStats is what uid holds, against its limits.
func (s *Server) userStats(uid uint32) UserStats {
	u := UserStats{UserUsage: control.UserUsage{UID: uid}}
	if ctl := s.lastCtl.Load(); ctl != nil {
		u.UserUsage = ctl.UsageOf(uid)
	}
	if s.fsys != nil {
		u.OpenFiles = uint64(s.fsys.OpenFilesOf(uid))
		u.OpenFilesLimit = uint64(s.fsys.OpenFilesLimit())
	}
	return u
}

// users is what every uid holding something holds, by uid.
func (s *Server) users() []UserStats {
	var open map[uint32]int
	limit := 0
	if s.fsys != nil {
		open, limit = s.fsys.OpenFilesByUser(), s.fsys.OpenFilesLimit()
	}
	out := []UserStats{}
	if ctl := s.lastCtl.Load(); ctl != nil {
		for _, u := range ctl.Usage() {
			n := open[u.UID]
			delete(open, u.UID)
			out = append(out, UserStats{UserUsage: u, OpenFiles: uint64(n), OpenFilesLimit: uint64(limit)})
		}
	}
	for uid := range open { // holding open files only
		out = append(out, s.userStats(uid))
	}
	slices.SortFunc(out, func(a, b UserStats) int { return cmp.Compare(a.UID, b.UID) })
	return out
}

// held is how much u holds, in things (not bytes), to rank the holders.
func (u *UserStats) held() uint64 {
	return u.Sessions + u.HalfOpen + u.Arenas + u.AttachedFiles + u.OpenFiles
}

// privileged reports whether uid sees the full stats: root and the mount
// owner.
func (s *Server) privileged(uid uint32) bool { return uid == 0 || uid == s.owner }

// statsFor is StatsXattr's value for caller.
func (s *Server) statsFor(c *fuse.Caller) ([]byte, error) {
	if !s.privileged(c.Uid) {
		return json.Marshal(UserView{View: ViewUser, Transport: s.transport(), ReadOnly: s.opts.ReadOnly,
			Passthrough: s.opts.Passthrough, User: s.userStats(c.Uid)})
	}
	st := s.Stats()
	b, err := json.Marshal(st)
	if err != nil || len(b) <= maxStatsXattr || len(st.Users) == 0 {
		return b, err
	}
	// Too many users to list: the biggest holders, as many as fit.
	all := st.Users
	slices.SortStableFunc(all, func(a, b UserStats) int { return cmp.Compare(b.held(), a.held()) })
	per := max(len(b)/len(all), 1) // an upper bound on one entry's share
	for keep := len(all) - (len(b)-maxStatsXattr)/per - 1; keep >= 0; keep-- {
		st.Users = slices.Clone(all[:keep])
		slices.SortFunc(st.Users, func(a, b UserStats) int { return cmp.Compare(a.UID, b.UID) })
		st.UsersOmitted = len(all) - keep
		if b, err = json.Marshal(st); err != nil || len(b) <= maxStatsXattr {
			break
		}
	}
	return b, err
}

// transport is the transport in use ("" before Start).
func (s *Server) transport() string {
	if c := s.conn.Load(); c != nil {
		return string(c.Transport()) // not a whole counters snapshot
	}
	return ""
}

// Mountpoint is the absolute mountpoint.
func (s *Server) Mountpoint() string { return s.mountpoint }

// released detaches a released handle from every session before its fd
// is closed.
func (s *Server) released(h *zfs.Handle) {
	if ctl := s.lastCtl.Load(); ctl != nil {
		ctl.Released(h)
	}
}

// virtualXattr reports whether attr is one of the root's own attributes.
func virtualXattr(attr string) bool { return attr == StatsXattr || attr == ControlXattr }

// fsHooks are the server's part of the file-system layer: the attach
// ioctl, the root's virtual attributes (StatsXattr, ControlXattr; below
// the root they read as absent, so a backing file carrying
// user.zcfuse.control cannot steer a client that looks for its server from
// inside the mount to another socket, and no client sets or removes them
// anywhere), detaching on release, and the read and write hooks.
func (s *Server) fsHooks() zfs.Hooks {
	h := zfs.Hooks{
		Ioctl: func(h *zfs.Handle, c *fuse.Caller, cmd uint32, in, out []byte) (bool, int32, syscall.Errno) {
			if cmd != wire.AttachIoctl {
				return false, 0, 0
			}
			ctl := s.ctl.Load()
			if ctl == nil {
				return true, 0, syscall.ESHUTDOWN
			}
			res, errno := ctl.Attach(h, c.Uid, c.Gid, in, out)
			return true, res, errno
		},
		RootXattr: s.rootXattr,
		Reserved:  virtualXattr,
		Released:  s.released,
	}
	if hk := s.opts.Hooks; hk != nil {
		if hk.OnWrite != nil {
			h.OnWrite = func(fh *zfs.Handle, data []byte, off int64) { hk.OnWrite(control.HandleInfo(fh, 0, off, false), data) }
		}
		if hk.OnRead != nil {
			h.OnRead = func(fh *zfs.Handle, data []byte, off int64) { hk.OnRead(control.HandleInfo(fh, 0, off, false), data) }
		}
	}
	return h
}

// rootXattr answers the root's virtual attributes for caller: the stats
// in the view it may see, the control socket to anyone (every user who
// reaches the mount may try to connect; the server decides by
// SO_PEERCRED).
func (s *Server) rootXattr(attr string, caller *fuse.Caller) ([]byte, bool, syscall.Errno) {
	switch attr {
	case StatsXattr:
		b, err := s.statsFor(caller)
		if err != nil {
			return nil, false, syscall.EIO
		}
		return b, true, 0
	case ControlXattr:
		ctl := s.ctl.Load()
		if ctl == nil {
			return nil, false, syscall.ENODATA
		}
		return []byte(ctl.Path()), true, 0
	}
	return nil, false, 0
}

// ReadStats reads the stats of the server behind mountpoint, in the view
// the calling process may see (by its fsuid): st.View is ViewFull for root
// and the mount owner; for anyone else it is ViewUser, and st holds only
// the transport, ReadOnly, Passthrough and User (its counters read 0, not
// because nothing happened). raw is the JSON as the server sent it.
func ReadStats(mountpoint string) (st Stats, raw []byte, err error) {
	buf := make([]byte, 64<<10)
	n, err := syscall.Getxattr(mountpoint, StatsXattr, buf)
	if err != nil {
		return st, nil, fmt.Errorf("%s: no zcfuse server answers there (getxattr %s: %w)", mountpoint, StatsXattr, err)
	}
	raw = buf[:n]
	var view struct {
		View string `json:"view"`
	}
	if err := json.Unmarshal(raw, &view); err != nil {
		return st, nil, fmt.Errorf("%s: bad stats: %w", mountpoint, err)
	}
	if view.View == ViewUser {
		var uv UserView
		if err := json.Unmarshal(raw, &uv); err != nil {
			return st, nil, fmt.Errorf("%s: bad stats: %w", mountpoint, err)
		}
		st = Stats{View: ViewUser, ReadOnly: uv.ReadOnly, Passthrough: uv.Passthrough, User: &uv.User}
		st.Transport = uv.Transport
		return st, raw, nil
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("%s: bad stats: %w", mountpoint, err)
	}
	return st, raw, nil
}
