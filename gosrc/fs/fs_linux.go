package fs

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// Options configure an FS.
type Options struct {
	// EntryTimeout and AttrTimeout are how long the kernel may cache a
	// lookup and attributes (0: not at all).
	EntryTimeout, AttrTimeout time.Duration
	Logger                    *log.Logger
	// RequestThread reports whether the calling goroutine runs on a
	// locked request thread of the transport, the only place a request
	// may take its caller's identity. Nil: nowhere (a root server then
	// answers a non-root caller's switched operations with EIO).
	RequestThread func() bool
	// Backing registers backing files for the kernel's FUSE passthrough
	// (nil: no passthrough).
	Backing BackingRegistrar
	// MaxFds bounds the O_PATH fds kept for inodes that have file
	// handles; 0 means DefaultMaxFds.
	MaxFds int
	// Hooks are the embedding server's part.
	Hooks Hooks
	// CrossMounts serves file systems mounted below the backing directory
	// (their inodes are held by fd, without file handles). Without it a
	// root server serves a detached clone of the backing mount, where
	// nothing is mounted below, and a server that is not root answers
	// EXDEV for a name a mount covers.
	CrossMounts bool
	// OpenFilesPerUser bounds the files and directories one uid (the
	// request's) holds open through the mount: past it OPEN, CREATE,
	// TMPFILE and OPENDIR answer EMFILE to that uid alone, before anything
	// is opened. Root and the server's owner have the same limit, each on
	// its own count. 0 or less: none.
	OpenFilesPerUser int
}

// DefaultMaxFds is the default bound on cached O_PATH fds.
const DefaultMaxFds = 4096

// BackingRegistrar is the transport's side of kernel passthrough.
type BackingRegistrar interface {
	RegisterBackingFd(*fuse.BackingMap) (int32, syscall.Errno)
	UnregisterBackingFd(id int32) syscall.Errno
}

// Hooks let the embedding server extend the layer. Nil fields are absent.
type Hooks struct {
	// Ioctl sees every FUSE_IOCTL on an open handle first; handled false
	// passes it on to the allow-list.
	Ioctl func(h *Handle, caller *fuse.Caller, cmd uint32, in, out []byte) (handled bool, result int32, errno syscall.Errno)
	// RootXattr answers the root's own attributes for caller (the
	// value may depend on who asks): ok false passes name on.
	RootXattr func(name string, caller *fuse.Caller) (value []byte, ok bool, errno syscall.Errno)
	// Reserved names are never set or removed through the mount (EPERM)
	// and read as absent below the root.
	Reserved func(name string) bool
	// Released runs when the kernel releases an open file, before its fd
	// is closed.
	Released func(h *Handle)
	// OnWrite runs before a FUSE WRITE's bytes reach the backing file;
	// OnRead after a READ, with the bytes read.
	OnWrite func(h *Handle, data []byte, off int64)
	OnRead  func(h *Handle, data []byte, off int64)
}

// FS is the passthrough of one backing directory, a fuse.RawFileSystem.
type FS struct {
	fuse.RawFileSystem // ENOSYS for what is not below
	opts               Options
	logger             *log.Logger

	rootFd    int // O_PATH, of the (detached clone of the) backing root
	mountFd   int // O_RDONLY on the same mount, for open_by_handle_at
	procFd    int // /proc/self/fd
	rootPath  string
	detached  bool   // serving a detached clone: no submount is ever crossed
	handles   bool   // inodes on the root's file system are kept as file handles
	rootDev   uint64 // the root's st_dev
	resolve   uint64
	switching bool // requests run with their callers' identities

	nodes             *table
	groups            passthrough.GroupCache
	entryTTL, attrTTL time.Duration

	fhMu   sync.RWMutex
	fhs    map[uint64]*Handle
	nextFh uint64
	// open counts the handles in fhs by the uid that opened them.
	open openFiles

	closed atomic.Bool
}

var _ fuse.RawFileSystem = (*FS)(nil)

// New opens backing and prepares to serve it.
func New(backing string, opts Options) (*FS, error) {
	f := &FS{opts: opts, logger: opts.Logger, rootFd: -1, mountFd: -1, procFd: -1, fhs: map[uint64]*Handle{}, nextFh: 1,
		RawFileSystem: fuse.NewDefaultRawFileSystem(), open: openFiles{limit: opts.OpenFilesPerUser}}
	if f.logger == nil {
		f.logger = log.New(os.Stderr, "zcfuse: ", log.LstdFlags)
	}
	f.entryTTL, f.attrTTL = max(opts.EntryTimeout, 0), max(opts.AttrTimeout, 0)
	f.groups = passthrough.GroupCache{TTL: 2 * time.Second, Max: 4096}
	root := os.Geteuid() == 0
	f.switching = root
	var err error
	// A root server serves a detached clone of the backing directory's
	// mount: nothing mounted below the backing directory, now or later,
	// is ever crossed, the server's own mount included.
	if root && !opts.CrossMounts {
		if fd, err := unix.OpenTree(unix.AT_FDCWD, backing, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC); err == nil {
			f.rootFd, f.detached = fd, true
		}
	}
	if f.rootFd < 0 {
		if f.rootFd, err = unix.Open(backing, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("backing directory: %w", err)
		}
	}
	f.resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	if !opts.CrossMounts {
		f.resolve |= unix.RESOLVE_NO_XDEV
	}
	fail := func(err error) (*FS, error) { f.Close(); return nil, err }
	if f.mountFd, err = unix.Openat(f.rootFd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fail(fmt.Errorf("backing directory: %w", err))
	}
	if f.procFd, err = unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return fail(fmt.Errorf("/proc/self/fd: %w", err))
	}
	f.rootPath, _ = os.Readlink(procPath(f.rootFd))
	// File handles, when they can be opened again: a root server
	// (CAP_DAC_READ_SEARCH) on a file system that makes them.
	if root {
		if h, _, err := unix.NameToHandleAt(f.rootFd, "", unix.AT_EMPTY_PATH); err == nil {
			if fd, err := unix.OpenByHandleAt(f.mountFd, h, unix.O_PATH|unix.O_CLOEXEC); err == nil {
				unix.Close(fd)
				f.handles = true
			}
		}
	}
	maxFds := opts.MaxFds
	if maxFds <= 0 {
		maxFds = DefaultMaxFds
	}
	f.nodes = newTable(maxFds, f.mountFd)
	var st unix.Stat_t
	if err := unix.Fstat(f.rootFd, &st); err != nil {
		return fail(err)
	}
	rfd, err := unix.Openat(f.rootFd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	f.rootDev = st.Dev
	f.nodes.setRoot(rfd, &st)
	f.nodes.cache.start()
	return f, nil
}

// Close releases every descriptor the layer holds: the inodes', the open
// files' (the kernel need not release them before an unmount ends) and
// the root's. The FS must no longer be served.
func (f *FS) Close() {
	if !f.closed.CompareAndSwap(false, true) {
		return
	}
	if f.nodes != nil {
		c := &f.nodes.cache
		c.stopSweep()
		f.nodes.mu.Lock()
		c.mu.Lock()
		for _, in := range f.nodes.byID {
			in.dead = true
			if in.fd >= 0 {
				unix.Close(in.fd)
				in.fd = -1
			}
		}
		c.mu.Unlock()
		f.nodes.mu.Unlock()
	}
	f.fhMu.Lock()
	for id, h := range f.fhs {
		h.closeFd()
		delete(f.fhs, id)
		f.open.give(h.uid)
	}
	f.fhMu.Unlock()
	for _, fd := range []*int{&f.rootFd, &f.mountFd, &f.procFd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

func (f *FS) String() string { return "zcfuse passthrough" }

// Stats describe the layer's tables.
type Stats struct {
	Inodes      int    `json:"inodes"`       // entries the kernel remembers (root included)
	InodeFds    int    `json:"inode_fds"`    // O_PATH fds held for inodes (the root's not counted)
	HandleOpens uint64 `json:"handle_opens"` // open_by_handle_at calls (cache misses)
	OpenFiles   int    `json:"open_files"`   // open file and directory handles
	FileHandles bool   `json:"file_handles"` // inodes are kept as file handles
	Detached    bool   `json:"detached"`     // serving a detached clone of the backing mount
	// OpenFilesMaxUser is the most open handles one uid holds now, and
	// OpenFilesRefused the opens refused at a uid's limit so far
	// (Options.OpenFilesPerUser; EMFILE).
	OpenFilesMaxUser int    `json:"open_files_max_user"`
	OpenFilesRefused uint64 `json:"open_files_refused"`
}

// Stats returns a snapshot.
func (f *FS) Stats() Stats {
	s := Stats{Inodes: f.nodes.size(), FileHandles: f.handles, Detached: f.detached}
	f.nodes.cache.mu.Lock()
	s.InodeFds = f.nodes.cache.open + f.nodes.cache.held
	f.nodes.cache.mu.Unlock()
	s.HandleOpens = f.nodes.cache.opened.Load()
	f.fhMu.RLock()
	s.OpenFiles = len(f.fhs)
	f.fhMu.RUnlock()
	s.OpenFilesMaxUser = f.open.most()
	s.OpenFilesRefused = f.open.refused.Load()
	return s
}

// procPath is the /proc name of one of this process's fds.
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// errnoOf turns an error from a system call into an errno.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// status is a FUSE reply's status: an errno the kernel takes (1..511), or
// EIO.
func status(e syscall.Errno) fuse.Status {
	if e >= 512 {
		e = syscall.EIO
	}
	return fuse.Status(e)
}

// pinned is an inode with an fd held for one request.
type pinned struct {
	in *inode
	fd int
}

// pin finds node id and holds an fd of it (as the server: reopening by
// handle needs CAP_DAC_READ_SEARCH, so before any credential switch).
func (f *FS) pin(id uint64) (pinned, syscall.Errno) {
	in := f.nodes.get(id)
	if in == nil {
		return pinned{}, syscall.ESTALE
	}
	fd, errno := f.nodes.cache.acquire(in)
	if errno != 0 {
		return pinned{}, errno
	}
	return pinned{in, fd}, 0
}

func (f *FS) unpin(p pinned) {
	if p.in != nil {
		f.nodes.cache.release(p.in)
	}
}

// asCaller runs fn with the identity of caller (see the package doc). A
// root caller keeps the server's identity but for its group (fsgid), so
// that what it makes is its group's from the start.
func (f *FS) asCaller(c *fuse.Caller, fn func() syscall.Errno) syscall.Errno {
	if !f.switching || c.Uid == 0 && c.Gid == 0 {
		return fn()
	}
	onThread := f.opts.RequestThread != nil && f.opts.RequestThread()
	if c.Uid == 0 {
		if !onThread {
			return fn()
		}
		passthrough.SetFsgid(c.Gid)
		defer passthrough.RestoreFsgid()
		return fn()
	}
	if !onThread {
		f.logger.Printf("request outside a request thread: refused rather than run as root")
		return syscall.EIO
	}
	creds := passthrough.Creds{Uid: c.Uid, Gid: c.Gid, Groups: f.groups.Groups(c.Pid, c.Uid, c.Gid)}
	if err := passthrough.Become(creds); err != nil {
		f.logger.Printf("switching to uid %d gid %d: %v", c.Uid, c.Gid, err)
		return syscall.EIO
	}
	defer passthrough.Restore()
	return fn()
}

// withUmask makes umask the calling request thread's umask (its own: the
// transport unshared CLONE_FS) until the returned function puts 0 back.
// Off a request thread it masks *mode itself instead: the process umask
// belongs to the program embedding the server.
func (f *FS) withUmask(mode *uint32, umask uint32) (undo func()) {
	if f.opts.RequestThread == nil || !f.opts.RequestThread() {
		*mode &^= umask & 0o777
		return func() {}
	}
	unix.Umask(int(umask & 0o777))
	return func() { unix.Umask(0) }
}

// fillAttr converts a stat into FUSE attributes.
func fillAttr(st *unix.Stat_t, out *fuse.Attr) {
	out.FromStat((*syscall.Stat_t)(unsafe.Pointer(st)))
}

// checkName refuses a name that is not a single component (EINVAL) or is
// longer than a backing file system takes (ENAMETOOLONG: the kernel lets
// FUSE names reach 1024 bytes).
func checkName(name string) syscall.Errno {
	if name == "" || name == "." || name == ".." {
		return syscall.EINVAL
	}
	if len(name) > 255 {
		return syscall.ENAMETOOLONG
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return syscall.EINVAL
		}
	}
	return 0
}

// openChild opens name in the directory dfd as an O_PATH fd, never
// through a symlink, never above dfd, never across a mount.
func (f *FS) openChild(dfd int, name string) (int, syscall.Errno) {
	fd, err := unix.Openat2(dfd, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: f.resolve})
	if err != nil {
		return -1, errnoOf(err)
	}
	return fd, 0
}

// enter makes fd (an O_PATH fd of an inode that a lookup or creation
// found; the table takes it) an entry the kernel now remembers once more,
// and fills out. A creation names the type it made (want, S_IFMT bits; 0
// for a lookup): a name that leads to another type by now was swapped
// meanwhile, and answers EIO (the kernel would refuse the entry anyway).
func (f *FS) enter(fd int, want uint32, out *fuse.EntryOut) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return errnoOf(err)
	}
	if want != 0 && st.Mode&unix.S_IFMT != want {
		unix.Close(fd)
		return syscall.EIO
	}
	// Evictable only on the root's file system (open_by_handle_at opens
	// it through the root's mount fd); anything else (a crossed mount)
	// keeps its fd.
	in := f.nodes.ref(fd, f.handles && st.Dev == f.rootDev, &st)
	*out = fuse.EntryOut{NodeId: in.id}
	fillAttr(&st, &out.Attr)
	out.SetEntryTimeout(f.entryTTL)
	out.SetAttrTimeout(f.attrTTL)
	return 0
}

// Init is called by the protocol server; the layer needs nothing from it.
func (f *FS) Init(*fuse.Server) {}

// OnUnmount is called once the kernel is gone.
func (f *FS) OnUnmount() {}

// SetDebug is ignored: the transport logs requests.
func (f *FS) SetDebug(bool) {}

// Lookup finds name in the directory parent. It runs as the server: the
// kernel has checked the caller's search permission on the parent
// (default_permissions, which every mount another user can reach has),
// an O_PATH open needs no right on the child, and the name resolves
// below the parent's fd only.
func (f *FS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	p, errno := f.pinParent(h.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	fd, errno := f.openChild(p.fd, name)
	if errno != 0 {
		return status(errno)
	}
	return status(f.enter(fd, 0, out))
}

// Forget gives back the kernel's lookups of a node.
func (f *FS) Forget(nodeid, nlookup uint64) { f.nodes.forget(nodeid, nlookup) }

// NodeOf returns the node id under which the kernel knows the backing
// inode ino (for a cache invalidation of a file changed behind the
// kernel's back), or false when the kernel remembers no such inode.
func (f *FS) NodeOf(ino uint64) (uint64, bool) {
	f.nodes.mu.RLock()
	defer f.nodes.mu.RUnlock()
	for id, in := range f.nodes.byID {
		if in.ino == ino {
			return id, true
		}
	}
	return 0, false
}
