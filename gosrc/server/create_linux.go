package server

import (
	"context"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// Creating files, directories and special files with the mode the caller
// asked for. go-fuse's loopback passes modes through os.FileMode (which
// drops setuid, setgid and sticky), lets the server's umask apply, and
// chowns by path afterwards (which clears setuid and setgid again). Here
// the request thread's umask is the caller's for the request
// (acl_linux.go: FUSE_DONT_MASK, so a parent's default ACL can take its
// place as on a local file system), the object is made relative to its
// parent directory's fd with the exact mode, as the caller (creds_linux.go);
// a root caller's object is owned through an fd on the new object itself
// (adopt), with the setuid and setgid bits that chown cleared put back.

var (
	_ fs.NodeCreater  = (*node)(nil)
	_ fs.NodeMkdirer  = (*node)(nil)
	_ fs.NodeMknoder  = (*node)(nil)
	_ fs.NodeTmpfiler = (*node)(nil)
)

// resolveHow resolves a path below the backing root: never through a
// symlink or a magic link, never above the root.
const resolveHow = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openAt opens n's backing inode relative to the backing root's fd, with
// flags (O_CLOEXEC added), resolved by resolveHow.
func (n *node) openAt(flags int) (int, error) {
	return unix.Openat2(n.srv.rootFd, n.relPath(), &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveHow})
}

// relPath is n's path relative to the backing root ("." for the root).
func (n *node) relPath() string {
	if rel := n.Path(n.srv.root.EmbeddedInode()); rel != "" {
		return rel
	}
	return "."
}

// parent opens n as a directory (O_PATH) for *at calls, and reports
// whether it is setgid (new objects then take its group).
func (n *node) parent() (fd int, setgid bool, errno syscall.Errno) {
	fd, err := n.openAt(unix.O_PATH | unix.O_DIRECTORY)
	if err != nil {
		return -1, false, fs.ToErrno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, fs.ToErrno(err)
	}
	return fd, st.Mode&unix.S_ISGID != 0, 0
}

// adopt makes the new object fd refers to (an O_PATH fd will do) the
// caller's, as a local file system would have made it: the caller's uid,
// and the caller's gid unless the parent is setgid (then the parent's,
// which the object has already). A root server's chown clears setuid and
// setgid on non-directories; the bits of mode it cleared are put back.
// A server that is not root cannot give files away and leaves them as
// they are.
func adopt(ctx context.Context, fd int, mode uint32, parentSetgid bool) syscall.Errno {
	caller, ok := fuse.FromContext(ctx)
	if !ok || os.Geteuid() != 0 {
		return 0
	}
	gid := int(caller.Gid)
	if parentSetgid {
		gid = -1
	}
	if err := unix.Fchownat(fd, "", int(caller.Uid), gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fs.ToErrno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	if lost := mode & (unix.S_ISUID | unix.S_ISGID) &^ st.Mode; lost != 0 {
		return passthrough.Fchmod(fd, st.Mode|lost)
	}
	return 0
}

// made finishes a new object called name in the directory pfd: ownership
// (adopt) through an O_PATH fd opened without following a symlink, then
// the inode, as a lookup builds it. On failure the object is removed.
func (n *node) made(ctx context.Context, pfd int, name string, mode uint32, setgid bool, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	undo := func() {
		flags := 0
		if mode&unix.S_IFMT == unix.S_IFDIR {
			flags = unix.AT_REMOVEDIR
		}
		unix.Unlinkat(pfd, name, flags)
	}
	fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		undo()
		return nil, fs.ToErrno(err)
	}
	errno := adopt(ctx, fd, mode, setgid)
	unix.Close(fd)
	if errno != 0 {
		undo()
		return nil, errno
	}
	return n.LoopbackNode.Lookup(ctx, name, out)
}

// mkdir makes a directory with exactly mode (sticky included).
func (n *node) mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	pfd, setgid, errno := n.parent()
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, name, mode&07777); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.made(ctx, pfd, name, unix.S_IFDIR|mode&07777, setgid, out)
}

// mknod makes a special file or FIFO with exactly mode.
func (n *node) mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	pfd, setgid, errno := n.parent()
	if errno != 0 {
		return nil, errno
	}
	defer unix.Close(pfd)
	if err := unix.Mknodat(pfd, name, mode, int(rdev)); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.made(ctx, pfd, name, mode, setgid, out)
}

// create makes and opens a regular file with exactly mode. It never opens
// a file that exists already (O_EXCL on the backing file system, whatever
// the caller asked): the kernel sends CREATE only for a name it found
// missing, and a file made meanwhile directly on the backing file system
// must not be opened, or given to the caller, as root. That race answers
// EEXIST.
func (n *node) create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	pfd, setgid, errno := n.parent()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer unix.Close(pfd)
	// O_APPEND would make the backing pwrite ignore the kernel's offsets.
	oflags := int(flags&^(syscall.O_APPEND|fuse.FMODE_EXEC)) | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, name, oflags, mode&07777)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	fail := func(errno syscall.Errno) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
		unix.Close(fd)
		unix.Unlinkat(pfd, name, 0)
		return nil, nil, 0, errno
	}
	if errno := adopt(ctx, fd, unix.S_IFREG|mode&07777, setgid); errno != 0 {
		return fail(errno)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(fs.ToErrno(err))
	}
	child, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno != 0 {
		return fail(errno)
	}
	if out.Attr.Ino != st.Ino { // the name was swapped on the backing file system
		unix.Close(fd)
		return nil, nil, 0, syscall.EIO
	}
	fh := fs.FileHandle(fs.NewLoopbackFile(fd))
	noteFd(fh)
	if c, ok := child.Operations().(*node); ok {
		fh = c.wrapFile(fh, flags)
	}
	n.srv.raw.noteOpened(ctx, fh)
	return child, fh, 0, 0
}

// tmpfile makes an unnamed file (O_TMPFILE) in n with exactly mode, owned
// by the caller: go-fuse's loopback left it to root, with whatever mode
// was asked (04755 included), outside the caller's quota.
func (n *node) tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	pfd, setgid, errno := n.parent()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	unix.Close(pfd)
	child, fh, fuseFlags, errno := n.LoopbackNode.Tmpfile(ctx, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	lf, ok := fh.(*fs.LoopbackFile)
	fd := -1
	if ok {
		fd, ok = lf.PassthroughFd()
	}
	if !ok {
		return nil, nil, 0, syscall.EIO
	}
	if errno := adopt(ctx, fd, unix.S_IFREG|mode&07777, setgid); errno != 0 {
		lf.Release(ctx)
		return nil, nil, 0, errno
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		lf.Release(ctx)
		return nil, nil, 0, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	noteFd(fh)
	if c, ok := child.Operations().(*node); ok {
		fh = c.wrapFile(fh, flags)
	}
	n.srv.raw.noteOpened(ctx, fh)
	return child, fh, fuseFlags, 0
}

// Create, Mkdir, Mknod and Tmpfile run as the caller (creds_linux.go):
// the object is then the caller's from the start, and adopt, which gives
// a root server's objects away, has nothing to do.

// Create makes and opens a regular file as the caller (create).
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, fh fs.FileHandle, fuseFlags uint32, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, fh, fuseFlags, errno = n.create(ctx, name, flags, mode, out)
		return errno
	})
	return ch, fh, fuseFlags, errno
}

// Mkdir makes a directory as the caller (mkdir).
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, errno = n.mkdir(ctx, name, mode, out)
		return errno
	})
	return ch, errno
}

// Mknod makes a special file or FIFO as the caller (mknod).
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, errno = n.mknod(ctx, name, mode, rdev, out)
		return errno
	})
	return ch, errno
}

// Tmpfile makes an unnamed file as the caller (tmpfile).
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, fh fs.FileHandle, fuseFlags uint32, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, fh, fuseFlags, errno = n.tmpfile(ctx, flags, mode, out)
		return errno
	})
	return ch, fh, fuseFlags, errno
}
