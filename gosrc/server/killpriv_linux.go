package server

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// Kill-priv. The server negotiates FUSE_HANDLE_KILLPRIV_V2, so the kernel
// neither clears setuid/setgid itself nor asks GETXATTR security.capability
// before every WRITE; instead it flags the requests whose caller lacks
// CAP_FSETID, and the server clears what a local file system would
// (passthrough.KillPriv):
//
//	WRITE    FUSE_WRITE_KILL_SUIDGID   rawFS.Write/Writev, by the handle
//	SETATTR  FATTR_KILL_SUIDGID        node.Setattr (truncate; chown of a
//	                                   non-directory)
//	OPEN     FUSE_OPEN_KILL_SUIDGID    rawFS.Open, with O_TRUNC
//
// FALLOCATE and COPY_FILE_RANGE carry no such flag, and the kernel does
// not clear the bits for them under KILLPRIV_V2 (measured: a non-owner's
// fallocate through the mount kept 06777), while a local file system
// clears them for a caller without CAP_FSETID. For those two the server
// reads the caller's effective capabilities from /proc/PID/status
// (callerHasFsetid: root only), only when the inode may carry bits to
// clear. Ring writes of a session whose peer is not root follow the same
// rule (worker.start).
//
// go-fuse's node API drops the WRITE and OPEN flags, so rawFS, a thin layer over its RawFileSystem, reads them and
// finds the handle's file through the handles map; the file an OPEN or
// CREATE made reaches rawFS through opening, keyed by the request's
// cancel channel (unique to a request in flight).
//
// A check that found nothing to clear holds for the attribute timeout
// (node.nosecUntil), as the kernel's own S_NOSEC holds until the next
// attribute change: a SETATTR or an xattr change through the mount ends
// it at once; a change made directly on the backing file system is seen
// within the attribute timeout, as the kernel's attribute cache sees it.

// rawFS is go-fuse's RawFileSystem with kill-priv for WRITE and OPEN.
type rawFS struct {
	fuse.RawFileSystem
	srv     *Server
	opening sync.Map // <-chan struct{} (a request's cancel) -> *file
	handles sync.Map // uint64 (FUSE file handle) -> *file
}

// noteOpened hands the file an OPEN or CREATE being served made to rawFS.
func (r *rawFS) noteOpened(ctx context.Context, fh fs.FileHandle) {
	f, ok := fh.(*file)
	c, ok2 := ctx.(*fuse.Context)
	if r == nil || !ok || !ok2 {
		return
	}
	r.opening.Store(c.Cancel, f)
}

// opened takes the file the request with cancel made, filing it under fh.
func (r *rawFS) opened(cancel <-chan struct{}, fh uint64, ok bool) *file {
	v, found := r.opening.LoadAndDelete(cancel)
	if !found || !ok {
		return nil
	}
	f := v.(*file)
	r.handles.Store(fh, f)
	return f
}

func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := r.RawFileSystem.Open(cancel, in, out)
	f := r.opened(cancel, out.Fh, st == fuse.OK)
	if f != nil && in.Mode&fuse.OPEN_KILL_SUIDGID != 0 && in.Flags&syscall.O_TRUNC != 0 {
		f.killPriv(true, r.srv.callerOf(&in.Caller))
	}
	return st
}

func (r *rawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	// The file is new (node.Create never opens an existing one): nothing
	// to kill, whatever CreateIn.OpenFlags says.
	defer withUmask(&in.Mode, in.Umask)()
	st := r.RawFileSystem.Create(cancel, in, name, out)
	r.opened(cancel, out.Fh, st == fuse.OK)
	return st
}

func (r *rawFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	defer withUmask(&in.Mode, in.Umask)()
	st := r.RawFileSystem.Tmpfile(cancel, in, out)
	r.opened(cancel, out.Fh, st == fuse.OK)
	return st
}

func (r *rawFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	r.unflagged(in.Fh, &in.Caller)
	return r.RawFileSystem.Fallocate(cancel, in)
}

func (r *rawFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	r.unflagged(in.FhOut, &in.Caller)
	return r.RawFileSystem.CopyFileRange(cancel, in)
}

// unflagged clears setuid/setgid/capability of handle fh before an
// operation that modifies it without a kill flag, when caller lacks
// CAP_FSETID.
func (r *rawFS) unflagged(fh uint64, caller *fuse.Caller) {
	v, ok := r.handles.Load(fh)
	if !ok {
		return
	}
	f := v.(*file)
	if time.Now().UnixNano() < f.node.nosecUntil.Load() || callerHasFsetid(caller.Uid, caller.Pid) {
		return
	}
	f.killPriv(false, r.srv.callerOf(caller))
}

func (r *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	r.beforeWrite(in)
	return r.RawFileSystem.Write(cancel, in, data)
}

func (r *rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	r.beforeWrite(in)
	return r.RawFileSystem.Writev(cancel, in, data)
}

func (r *rawFS) beforeWrite(in *fuse.WriteIn) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID == 0 {
		return
	}
	if v, ok := r.handles.Load(in.Fh); ok {
		v.(*file).killPriv(false, r.srv.callerOf(&in.Caller))
	}
}

func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	// Before go-fuse frees the handle number for reuse.
	r.handles.Delete(in.Fh)
	r.RawFileSystem.Release(cancel, in)
}

// privCaller is whom a kill-priv check is for: a caller without
// CAP_FSETID, with a primary group and supplementary groups (known, or
// found through the server's group cache when first needed).
type privCaller struct {
	uid, gid, pid uint32
	groups        []uint32 // nil: ask cache
	cache         *passthrough.GroupCache
	// fixedGid: judge membership of fileGid, whatever the file's group
	// is now (a chown judges the group the file had before).
	fileGid  uint32
	fixedGid bool
}

// callerOf is the kill-priv caller of a FUSE request.
func (s *Server) callerOf(c *fuse.Caller) privCaller {
	return privCaller{uid: c.Uid, gid: c.Gid, pid: c.Pid, cache: &s.groups}
}

// inGroup reports whether the caller is in group gid. Only a setgid file
// without group execute asks, so the groups are looked up only then; the
// cache takes them only from a thread whose fsuid and fsgid are still the
// request's (not a setgid binary the caller exec'd since).
func (c privCaller) inGroup(gid uint32) bool {
	if c.fixedGid {
		gid = c.fileGid
	}
	if gid == c.gid {
		return true
	}
	groups := c.groups
	if groups == nil && c.cache != nil {
		groups = c.cache.Groups(c.pid, c.uid, c.gid)
	}
	return slices.Contains(groups, gid)
}

// openFd returns the backing fd of an open handle of n, or -1: for an
// inode that may no longer have a name. It looks at every open handle
// (rare: only SETATTRs that change nothing come here).
func (r *rawFS) openFd(n *node) int {
	fd := -1
	r.handles.Range(func(_, v any) bool {
		if f := v.(*file); f.node == n {
			if d, ok := f.LoopbackFile.PassthroughFd(); ok {
				fd = d
				return false
			}
		}
		return true
	})
	return fd
}

// killPriv clears f's setuid/setgid/capability for caller
// (passthrough.KillPriv) unless a check within the attribute timeout
// found the file clean and force is false. It reports whether it changed
// anything.
func (f *file) killPriv(force bool, caller privCaller) bool {
	fd, ok := f.LoopbackFile.PassthroughFd()
	if !ok {
		return false
	}
	return f.node.killPriv(fd, force, caller)
}

func (n *node) killPriv(fd int, force bool, caller privCaller) bool {
	now := time.Now().UnixNano()
	if !force && now < n.nosecUntil.Load() {
		return false
	}
	gen := n.attrGen.Load()
	changed, clean, errno := passthrough.KillPriv(fd, caller.inGroup)
	switch {
	case errno != 0:
		n.srv.logf("clearing setuid/setgid of %q: %v", n.Path(nil), errno)
		n.nosecUntil.Store(0)
	case clean:
		// Unless an attribute change began meanwhile: its chmod may have
		// landed after the check.
		if n.attrGen.Load() == gen {
			n.nosecUntil.Store(now + int64(n.srv.nosecTTL))
		}
	default: // a setgid file kept for a group member: check every time
		n.nosecUntil.Store(0)
	}
	return changed
}

// nosec is embedded in node: when the last kill-priv check of the inode
// found nothing to clear, until when that holds (unix nanoseconds), and a
// generation that every attribute change through the mount advances.
type nosec struct {
	nosecUntil atomic.Int64
	attrGen    atomic.Uint64
}

// attrsChanged ends a kill-priv check's validity. Changes call it before
// and after they reach the backing file system, so a check that raced
// with one (a ring write is not serialised with SETATTR by the kernel's
// inode lock) is not kept.
func (n *node) attrsChanged() {
	n.attrGen.Add(1)
	n.nosecUntil.Store(0)
}

var (
	_ fs.NodeSetattrer     = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
)

// setattrBits are the SETATTR fields that change something.
const setattrBits = fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_GID | fuse.FATTR_SIZE | fuse.FATTR_ATIME |
	fuse.FATTR_MTIME | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_CTIME

// Setattr changes attributes, then clears setuid/setgid/capability when
// the kernel says so. FATTR_KILL_SUIDGID comes with a truncate only when
// the caller lacks CAP_FSETID, but with every chown of a non-directory:
// the backing chown (made by the server) has already cleared what it
// clears for a capable caller, so for a chown the rest is cleared only
// when the caller lacks CAP_FSETID, judging its group membership on the
// file's group before the chown, as the kernel does. A SETATTR that
// changes nothing (the kernel's file_remove_privs sends one, also for a
// file that is open but no longer has a name) is answered from an open
// handle of the inode: by its path the inode may be gone.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.attrsChanged()
	defer n.attrsChanged()
	caller, _ := fuse.FromContext(ctx)
	fd := -1
	if f, ok := fh.(*file); ok {
		fd, _ = f.LoopbackFile.PassthroughFd()
	} else if in.Valid&setattrBits == 0 {
		fd = n.srv.raw.openFd(n)
	}
	if in.Valid&setattrBits == 0 && fd >= 0 {
		if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && caller != nil {
			n.killPriv(fd, true, n.srv.callerOf(caller))
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		out.FromStat(&st)
		return 0
	}
	setattr := func() syscall.Errno { return n.setattr(ctx, fh, in, out) }
	if in.Valid&fuse.FATTR_KILL_SUIDGID == 0 || caller == nil {
		return n.srv.asCaller(ctx, setattr)
	}
	if fd < 0 {
		var err error
		if fd, err = n.openAt(unix.O_PATH | unix.O_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
		defer unix.Close(fd)
	}
	var before unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return fs.ToErrno(err)
	}
	if errno := n.srv.asCaller(ctx, setattr); errno != 0 {
		return errno
	}
	pc := n.srv.callerOf(caller)
	if in.Valid&fuse.FATTR_SIZE == 0 { // a chown
		if callerHasFsetid(caller.Uid, caller.Pid) {
			return 0
		}
		pc.fileGid, pc.fixedGid = before.Gid, true
	}
	if before.Ino != out.Ino { // the path led elsewhere meanwhile
		return 0
	}
	if n.killPriv(fd, true, pc) {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		out.Mode = st.Mode
	}
	return 0
}

// setattr is go-fuse's Setattr, except for times set to "now"
// (FATTR_ATIME_NOW, FATTR_MTIME_NOW: touch): go-fuse turns them into
// explicit times, which only the owner may set, while anyone who may
// write the file may set them to now. Times go first, with UTIME_NOW where
// asked, by the handle's fd or by the node's path (relative: this thread
// works in the backing root, as the caller); the rest then as before.
func (n *node) setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	const timeBits = fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW
	if in.Valid&(fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW) == 0 {
		return n.LoopbackNode.Setattr(ctx, fh, in, out)
	}
	when := func(set, now uint32, sec uint64, nsec uint32) unix.Timespec {
		switch {
		case in.Valid&now != 0:
			return unix.Timespec{Nsec: unix.UTIME_NOW}
		case in.Valid&set != 0:
			return unix.Timespec{Sec: int64(sec), Nsec: int64(nsec)}
		}
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	ts := [2]unix.Timespec{
		when(fuse.FATTR_ATIME, fuse.FATTR_ATIME_NOW, in.Atime, in.Atimensec),
		when(fuse.FATTR_MTIME, fuse.FATTR_MTIME_NOW, in.Mtime, in.Mtimensec),
	}
	var e syscall.Errno
	if f, ok := fh.(*file); ok {
		fd, _ := f.LoopbackFile.PassthroughFd()
		_, _, e = unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	} else {
		e = fs.ToErrno(unix.UtimesNanoAt(unix.AT_FDCWD, n.relPath(), ts[:], unix.AT_SYMLINK_NOFOLLOW))
	}
	if e != 0 {
		return e
	}
	rest := *in
	rest.Valid &^= timeBits
	return n.LoopbackNode.Setattr(ctx, fh, &rest, out)
}

// Removexattr removes an attribute (the root's own names excepted).
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if virtualXattr(attr) {
		return syscall.EPERM
	}
	n.attrsChanged()
	defer n.attrsChanged()
	if attr == passthrough.CapabilityXattr {
		// The kernel's own kill-priv removes it for a writer (which may
		// not remove it itself); otherwise the kernel let the caller ask
		// (CAP_SETFCAP, in its own user namespace over its own file).
		// Either way the server's job, on this inode only (withProcPath).
		return n.withProcPath(func(p string) error { return unix.Removexattr(p, attr) })
	}
	return n.srv.asCaller(ctx, func() syscall.Errno { return n.LoopbackNode.Removexattr(ctx, attr) })
}

// withProcPath runs fn, as the server, on the path "/proc/self/fd/N" of
// an O_PATH fd of n resolved below the backing root without following a
// symlink (withPathFd): the inode the caller named, never one a swapped
// directory leads to; for the xattr calls, which take no O_PATH fd.
func (n *node) withProcPath(fn func(path string) error) syscall.Errno {
	return n.withPathFd(func(fd int) error { return fn("/proc/self/fd/" + strconv.Itoa(fd)) })
}
