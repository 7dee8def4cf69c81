package fs

import (
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// Handle is an open file or directory: the fd an OPEN, CREATE, TMPFILE or
// OPENDIR made, with the caller's rights checked by the backing file
// system when it was opened. Reads, writes and other operations on it use
// the fd and are not switched.
type Handle struct {
	fs    *FS
	id    uint64
	in    *inode
	fd    int
	flags uint32 // the open flags
	uid   uint32 // the opener's, charged one open file (FS.open) until release
	dir   *dirStream
	// backing: this handle holds a reference on the inode's backing id.
	backing bool
	// The fd's loans (LendFd): it is closed once the handle is released
	// and every loan is back.
	lmu      sync.Mutex
	lent     int
	released bool
}

// LendFd lends the handle's own fd to an embedder that may keep it past
// RELEASE (the control plane's attachments and the ops in flight on
// them): the fd is closed only when the handle is released and every loan
// is given back, so its number is never reused under them. giveBack may
// be called from any goroutine; more than once is harmless. EBADF once the
// handle is released.
func (h *Handle) LendFd() (fd int, giveBack func(), err error) {
	h.lmu.Lock()
	defer h.lmu.Unlock()
	if h.released {
		return -1, nil, syscall.EBADF
	}
	h.lent++
	var once sync.Once
	return h.fd, func() { once.Do(h.giveBackFd) }, nil
}

func (h *Handle) giveBackFd() {
	h.lmu.Lock()
	h.lent--
	last := h.released && h.lent == 0
	h.lmu.Unlock()
	if last {
		unix.Close(h.fd)
	}
}

// closeFd closes the fd at release, or leaves it to the last loan.
func (h *Handle) closeFd() {
	h.lmu.Lock()
	h.released = true
	now := h.lent == 0
	h.lmu.Unlock()
	if now {
		unix.Close(h.fd)
	}
}

// Fd is the backing fd; valid until the handle's release.
func (h *Handle) Fd() int { return h.fd }

// NodeID is the FUSE node id of the handle's inode (for cache
// invalidation).
func (h *Handle) NodeID() uint64 { return h.in.id }

// Ino is the backing inode number.
func (h *Handle) Ino() uint64 { return h.in.ino }

// AccessMode is the open's O_ACCMODE.
func (h *Handle) AccessMode() uint32 { return h.flags & syscall.O_ACCMODE }

// Path is the file's name now, relative to the backing root, as the
// backing file system tells it ("" when it has none or lies outside).
func (h *Handle) Path() string {
	p, err := readlink(procPath(h.fd))
	if err != nil {
		return ""
	}
	root := h.fs.rootPath
	if root == "/" {
		return strings.TrimPrefix(p, "/")
	}
	rel, ok := strings.CutPrefix(p, root+"/")
	if !ok {
		return ""
	}
	return rel
}

// KillPriv clears setuid/setgid/capability of the handle's file before a
// write by c, which lacks CAP_FSETID, through fd (the handle's or a
// duplicate of it), unless a check within the attribute timeout found the
// file clean.
func (h *Handle) KillPriv(fd int, c passthrough.Caller) {
	h.fs.killPriv(h.in, fd, false, c)
}

func readlink(p string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlink(p, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func itoa(fd int) string { return strconv.Itoa(fd) }

// openHandle files fd as a new open handle of in, opened by uid (which
// holds the open file it took), and fills out. It runs as the server
// (kernel passthrough registration needs CAP_SYS_ADMIN).
func (f *FS) openHandle(in *inode, fd int, flags, uid uint32, out *fuse.OpenOut) *Handle {
	h := f.register(&Handle{fs: f, in: in, fd: fd, flags: flags, uid: uid}, out)
	if f.opts.Backing != nil && in.ftype == unix.S_IFREG {
		f.passthroughOpen(h, out)
	}
	return h
}

// register files h under a new FUSE file handle, which out carries; from
// here the open file h.uid took is given back when h leaves the table.
func (f *FS) register(h *Handle, out *fuse.OpenOut) *Handle {
	f.fhMu.Lock()
	h.id = f.nextFh
	f.nextFh++
	f.fhs[h.id] = h
	f.fhMu.Unlock()
	*out = fuse.OpenOut{Fh: h.id}
	return h
}

// passthroughOpen puts the handle in kernel passthrough: one backing id
// per inode, registered with the first handle's fd and dropped with the
// last.
func (f *FS) passthroughOpen(h *Handle, out *fuse.OpenOut) {
	in := h.in
	in.bmu.Lock()
	defer in.bmu.Unlock()
	if in.backingN == 0 {
		id, errno := f.opts.Backing.RegisterBackingFd(&fuse.BackingMap{Fd: int32(h.fd)})
		if errno != 0 {
			f.logger.Printf("kernel passthrough refused (%v): serving inode %d without it", errno, in.ino)
			return
		}
		in.backingID = id
	}
	in.backingN++
	h.backing = true
	out.BackingID = in.backingID
	out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
}

// handle returns the open handle fh, or nil.
func (f *FS) handle(fh uint64) *Handle {
	f.fhMu.RLock()
	h := f.fhs[fh]
	f.fhMu.RUnlock()
	return h
}

// ReadFd returns the fd a READ of handle fh may pread from, for a
// transport's fast path; ok is false for anything else (unknown, not
// readable, a directory, or read hooks are installed).
func (f *FS) ReadFd(fh uint64) (fd int, ok bool) {
	h := f.handle(fh)
	if h == nil || h.dir != nil || h.AccessMode() == syscall.O_WRONLY || f.opts.Hooks.OnRead != nil {
		return -1, false
	}
	return h.fd, true
}

// Open opens the inode itself, as the caller, by its /proc name (the
// backing file system checks the caller's rights on the inode; no name
// is resolved), and clears setuid/setgid on O_TRUNC when the kernel says
// so.
func (f *FS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	if p.in.ftype != unix.S_IFREG {
		return status(syscall.EINVAL) // the kernel opens nothing else here
	}
	if errno := f.open.take(in.Uid); errno != 0 {
		return status(errno)
	}
	var fd int
	errno = f.asCaller(&in.Caller, func() syscall.Errno {
		var err error
		fd, err = unix.Openat(f.procFd, itoa(p.fd), int(in.Flags&openFlags)|unix.O_CLOEXEC, 0)
		return errnoOf(err)
	})
	if errno != 0 {
		f.open.give(in.Uid)
		return status(errno)
	}
	if in.Mode&fuse.OPEN_KILL_SUIDGID != 0 && in.Flags&syscall.O_TRUNC != 0 {
		f.killPriv(p.in, fd, true, f.callerOf(&in.Caller))
	}
	h := f.openHandle(p.in, fd, in.Flags, in.Uid, out)
	if h.backing && in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		f.passthroughWriteOpen(h, &in.Caller)
	}
	return fuse.OK
}

// Release closes an open file once the embedder has let go of it, and
// gives back its opener's open file.
func (f *FS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	f.fhMu.Lock()
	h := f.fhs[in.Fh]
	delete(f.fhs, in.Fh)
	f.fhMu.Unlock()
	if h == nil {
		return
	}
	if h.dir == nil && f.opts.Hooks.Released != nil {
		f.opts.Hooks.Released(h)
	}
	if h.backing {
		in := h.in
		in.bmu.Lock()
		if in.backingN--; in.backingN == 0 {
			if errno := f.opts.Backing.UnregisterBackingFd(in.backingID); errno != 0 {
				f.logger.Printf("dropping backing id %d: %v", in.backingID, errno)
			}
			in.backingID = 0
		}
		in.bmu.Unlock()
	}
	h.closeFd()
	f.open.give(h.uid)
}

// ReleaseDir closes an open directory.
func (f *FS) ReleaseDir(in *fuse.ReleaseIn) { f.Release(nil, in) }

// fileOf returns the open file fh for an operation on its data.
func (f *FS) fileOf(fh uint64) (*Handle, syscall.Errno) {
	h := f.handle(fh)
	if h == nil {
		return nil, syscall.EBADF
	}
	return h, 0
}

// Read reads from the backing file.
func (f *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	h, errno := f.fileOf(in.Fh)
	if errno != 0 {
		return nil, status(errno)
	}
	n, err := unix.Pread(h.fd, buf[:min(int(in.Size), len(buf))], int64(in.Offset))
	if err != nil {
		return nil, status(errnoOf(err))
	}
	if f.opts.Hooks.OnRead != nil {
		f.opts.Hooks.OnRead(h, buf[:n], int64(in.Offset))
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

// beforeWrite runs kill-priv (when the kernel says the writer lacks
// CAP_FSETID) and the write hook.
func (f *FS) beforeWrite(h *Handle, in *fuse.WriteIn, data [][]byte) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		f.killPriv(h.in, h.fd, false, f.callerOf(&in.Caller))
	}
	if hook := f.opts.Hooks.OnWrite; hook != nil {
		off := int64(in.Offset)
		for _, d := range data {
			hook(h, d, off)
			off += int64(len(d))
		}
	}
}

// Write writes to the backing file.
func (f *FS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return f.Writev(cancel, in, [][]byte{data})
}

// Writev writes the request's pieces with one pwritev.
func (f *FS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	h, errno := f.fileOf(in.Fh)
	if errno != 0 {
		return 0, status(errno)
	}
	f.beforeWrite(h, in, data)
	var n int
	var err error
	if len(data) == 1 {
		n, err = unix.Pwrite(h.fd, data[0], int64(in.Offset))
	} else {
		n, err = unix.Pwritev(h.fd, data, int64(in.Offset))
	}
	if err != nil {
		return 0, status(errnoOf(err))
	}
	return uint32(n), fuse.OK
}

// Flush is a close(2) on the mount: the backing file sees one too (a
// duplicate closed), so file systems that report errors at close (NFS)
// report them here.
func (f *FS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	h, errno := f.fileOf(in.Fh)
	if errno != 0 {
		return status(errno)
	}
	d, err := unix.Dup(h.fd)
	if err != nil {
		return status(errnoOf(err))
	}
	return status(errnoOf(unix.Close(d)))
}

// Fsync syncs the file (data only with FUSE_FSYNC_FDATASYNC).
func (f *FS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	h, errno := f.fileOf(in.Fh)
	if errno != 0 {
		return status(errno)
	}
	if in.FsyncFlags&1 != 0 {
		return status(errnoOf(unix.Fdatasync(h.fd)))
	}
	return status(errnoOf(unix.Fsync(h.fd)))
}

// FsyncDir syncs an open directory.
func (f *FS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return f.Fsync(cancel, in)
}

// Fallocate allocates or punches; it carries no kill flag, so kill-priv
// asks the caller's capabilities itself (unflagged).
func (f *FS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	h, errno := f.fileOf(in.Fh)
	if errno != 0 {
		return status(errno)
	}
	f.unflagged(h, &in.Caller)
	return status(errnoOf(unix.Fallocate(h.fd, in.Mode, int64(in.Offset), int64(in.Length))))
}

// CopyFileRange copies between two open files on the backing file system.
func (f *FS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	src, errno := f.fileOf(in.FhIn)
	if errno != 0 {
		return 0, status(errno)
	}
	dst, errno := f.fileOf(in.FhOut)
	if errno != 0 {
		return 0, status(errno)
	}
	f.unflagged(dst, &in.Caller)
	offIn, offOut := int64(in.OffIn), int64(in.OffOut)
	n, err := unix.CopyFileRange(src.fd, &offIn, dst.fd, &offOut, int(min(in.Len, 1<<30)), int(in.Flags))
	if err != nil {
		return 0, status(errnoOf(err))
	}
	return uint32(n), fuse.OK
}

// Lseek answers SEEK_DATA and SEEK_HOLE from the backing file.
func (f *FS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	h, errno := f.fileOf(in.Fh)
	if errno != 0 {
		return status(errno)
	}
	off, err := unix.Seek(h.fd, int64(in.Offset), int(in.Whence))
	if err != nil {
		return status(errnoOf(err))
	}
	out.Offset = uint64(off)
	return fuse.OK
}

// Ioctl is the one place every FUSE_IOCTL arrives, for files and
// directories alike: the embedder's (the attach ioctl), then
// passthrough's allow-list on the handle's fd; everything else is ENOTTY,
// and no other ioctl ever reaches a backing file.
func (f *FS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	h := f.handle(in.Fh)
	if h == nil {
		clear(outbuf)
		return status(syscall.ENOTTY)
	}
	if hook := f.opts.Hooks.Ioctl; hook != nil && h.dir == nil {
		if handled, res, errno := hook(h, &in.Caller, in.Cmd, inbuf, outbuf); handled {
			out.Result = res
			return status(errno)
		}
	}
	res, errno := passthrough.Ioctl(in.Cmd, outbuf, passthrough.FdIoctl(h.fd))
	out.Result = res
	return status(errno)
}

// StatFs reports the backing file system.
func (f *FS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(p.fd, &st); err != nil {
		return status(errnoOf(err))
	}
	out.FromStatfsT(&st)
	return fuse.OK
}

// dirStream is an open directory's read position.
type dirStream struct {
	mu   sync.Mutex
	buf  []byte
	todo []byte
	off  uint64 // the offset after the last entry handed out
}

// OpenDir opens the directory itself, as the caller, by its /proc name.
func (f *FS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	if errno := f.open.take(in.Uid); errno != 0 {
		return status(errno)
	}
	var fd int
	errno = f.asCaller(&in.Caller, func() syscall.Errno {
		var err error
		fd, err = unix.Openat(f.procFd, itoa(p.fd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return errnoOf(err)
	})
	if errno != 0 {
		f.open.give(in.Uid)
		return status(errno)
	}
	f.register(&Handle{fs: f, in: p.in, fd: fd, flags: in.Flags, uid: in.Uid, dir: &dirStream{buf: make([]byte, 8192)}}, out)
	return fuse.OK
}

// ReadDir lists entries.
func (f *FS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return f.readDir(in, out, false)
}

// ReadDirPlus lists entries with their attributes: each entry is a
// lookup (as the server, see Lookup) the kernel then remembers.
func (f *FS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return f.readDir(in, out, true)
}

func (f *FS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	h := f.handle(in.Fh)
	if h == nil || h.dir == nil {
		return status(syscall.EBADF)
	}
	ds := h.dir
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if in.Offset != ds.off {
		if _, err := unix.Seek(h.fd, int64(in.Offset), 0); err != nil {
			return status(errnoOf(err))
		}
		ds.todo, ds.off = nil, in.Offset
	}
	for {
		if len(ds.todo) == 0 {
			n, err := unix.Getdents(h.fd, ds.buf)
			if err != nil {
				return status(errnoOf(err))
			}
			if n <= 0 {
				return fuse.OK
			}
			ds.todo = ds.buf[:n]
		}
		var e fuse.DirEntry
		size := e.Parse(ds.todo)
		if plus {
			eo := out.AddDirLookupEntry(e)
			if eo == nil {
				return fuse.OK
			}
			if e.Name != "." && e.Name != ".." {
				if fd, errno := f.openChild(h.fd, e.Name); errno == 0 {
					if f.enter(fd, 0, eo) == 0 {
						out.FixMode(eo.Attr.Mode)
					}
				}
			}
		} else if !out.AddDirEntry(e) {
			return fuse.OK
		}
		ds.todo = ds.todo[size:]
		ds.off = e.Off
	}
}
