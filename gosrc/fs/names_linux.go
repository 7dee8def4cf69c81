package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Operations on names: each runs as its caller on the pinned fd of the
// parent directory (and, for LINK, of the inode linked), with the single
// name the kernel sent. New objects get exactly the mode asked for (the
// request thread's umask is the caller's, or none where the parent has a
// default ACL: FUSE_DONT_MASK), owned by the caller because the caller
// made them (a root caller with its own group: asCaller). Nothing is
// chowned afterwards: by then the name could lead to something else.

// made finishes a new object called name in the directory p: an O_PATH fd
// of it (never through a symlink), then the entry. On failure the object
// is removed again.
func (f *FS) made(p pinned, name string, mode uint32, out *fuse.EntryOut) syscall.Errno {
	fd, errno := f.openChild(p.fd, name)
	if errno != 0 {
		flags := 0
		if mode&unix.S_IFMT == unix.S_IFDIR {
			flags = unix.AT_REMOVEDIR
		}
		unix.Unlinkat(p.fd, name, flags)
		return errno
	}
	return f.enter(fd, mode&unix.S_IFMT, out)
}

// pinParent pins a directory for a name operation and checks the name.
func (f *FS) pinParent(id uint64, name string) (pinned, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return pinned{}, errno
	}
	return f.pin(id)
}

// Mkdir makes a directory with exactly the mode asked (sticky included).
func (f *FS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	p, errno := f.pinParent(in.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	defer f.withUmask(&in.Mode, in.Umask)()
	mode := in.Mode & 07777
	return status(f.asCaller(&in.Caller, func() syscall.Errno {
		if err := unix.Mkdirat(p.fd, name, mode); err != nil {
			return errnoOf(err)
		}
		return f.made(p, name, unix.S_IFDIR|mode, out)
	}))
}

// Mknod makes a special file or FIFO with exactly the mode asked.
func (f *FS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	p, errno := f.pinParent(in.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	defer f.withUmask(&in.Mode, in.Umask)()
	return status(f.asCaller(&in.Caller, func() syscall.Errno {
		if err := unix.Mknodat(p.fd, name, in.Mode, int(in.Rdev)); err != nil {
			return errnoOf(err)
		}
		return f.made(p, name, in.Mode, out)
	}))
}

// Symlink makes a symlink to target called name.
func (f *FS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target string, name string, out *fuse.EntryOut) fuse.Status {
	p, errno := f.pinParent(h.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	return status(f.asCaller(&h.Caller, func() syscall.Errno {
		if err := unix.Symlinkat(target, p.fd, name); err != nil {
			return errnoOf(err)
		}
		return f.made(p, name, unix.S_IFLNK|0o777, out)
	}))
}

// Link makes name in the directory NodeId a hard link to Oldnodeid,
// reached through its fd (linkat of the /proc name with
// AT_SYMLINK_FOLLOW: the inode itself, a symlink included, never what a
// name now leads to). protected_hardlinks applies to the caller.
func (f *FS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	p, errno := f.pinParent(in.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	t, errno := f.pin(in.Oldnodeid)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(t)
	return status(f.asCaller(&in.Caller, func() syscall.Errno {
		if err := unix.Linkat(unix.AT_FDCWD, procPath(t.fd), p.fd, name, unix.AT_SYMLINK_FOLLOW); err != nil {
			return errnoOf(err)
		}
		fd, errno := f.openChild(p.fd, name)
		if errno != 0 {
			return errno
		}
		return f.enter(fd, t.in.ftype, out)
	}))
}

// Unlink removes name.
func (f *FS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return f.remove(h, name, 0)
}

// Rmdir removes the directory name.
func (f *FS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return f.remove(h, name, unix.AT_REMOVEDIR)
}

func (f *FS) remove(h *fuse.InHeader, name string, flags int) fuse.Status {
	p, errno := f.pinParent(h.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	return status(f.asCaller(&h.Caller, func() syscall.Errno { return errnoOf(unix.Unlinkat(p.fd, name, flags)) }))
}

// Rename moves oldName in NodeId to newName in Newdir (renameat2 flags:
// RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT as the caller may).
func (f *FS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName string, newName string) fuse.Status {
	p, errno := f.pinParent(in.NodeId, oldName)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	q, errno := f.pinParent(in.Newdir, newName)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(q)
	return status(f.asCaller(&in.Caller, func() syscall.Errno {
		return errnoOf(unix.Renameat2(p.fd, oldName, q.fd, newName, uint(in.Flags)))
	}))
}

// openFlags are the open flags passed on to a backing file: not O_APPEND
// (the kernel gives every WRITE its offset, which O_APPEND would
// override), not FUSE's FMODE_EXEC or anything else openat refuses.
const openFlags = unix.O_ACCMODE | unix.O_TRUNC | unix.O_DIRECT | unix.O_SYNC | unix.O_DSYNC |
	unix.O_NOATIME | unix.O_NONBLOCK | unix.O_LARGEFILE

// Create makes and opens a regular file with exactly the mode asked. It
// never opens a file that exists already (O_EXCL, whatever the caller
// asked): the kernel sends CREATE only for a name it found missing, and a
// file made meanwhile directly on the backing file system is not the
// caller's to have. That race answers EEXIST.
func (f *FS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	p, errno := f.pinParent(in.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	return f.makeFile(in, p, out, func(mode uint32) (int, error) {
		return unix.Openat2(p.fd, name, &unix.OpenHow{Flags: uint64(int(in.Flags&openFlags) | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC),
			Mode: uint64(mode), Resolve: f.resolve})
	}, func() { unix.Unlinkat(p.fd, name, 0) })
}

// Tmpfile makes an unnamed file (O_TMPFILE) in NodeId with exactly the
// mode asked, the caller's.
func (f *FS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	return f.makeFile(in, p, out, func(mode uint32) (int, error) {
		// O_EXCL kept: such a file can never be linked in.
		return unix.Openat(p.fd, ".", int(in.Flags&(openFlags|unix.O_EXCL))|unix.O_TMPFILE|unix.O_CLOEXEC, mode)
	}, func() {})
}

// makeFile makes a regular file in the directory p for CREATE or TMPFILE:
// the caller's open file is taken first (EMFILE at its limit, before
// anything is made), open (with the mode asked, under the caller's umask)
// and newFile run as the caller, undo removes what open made when newFile
// fails, and the handle is opened as the server.
func (f *FS) makeFile(in *fuse.CreateIn, p pinned, out *fuse.CreateOut, open func(mode uint32) (int, error), undo func()) fuse.Status {
	if errno := f.open.take(in.Uid); errno != 0 {
		return status(errno) // nothing made: the caller is at its limit
	}
	defer f.withUmask(&in.Mode, in.Umask)()
	mode := in.Mode & 07777
	var made *inode
	var fd int
	errno := f.asCaller(&in.Caller, func() syscall.Errno {
		var err error
		if fd, err = open(mode); err != nil {
			return errnoOf(err)
		}
		var errno syscall.Errno
		if made, errno = f.newFile(fd, &out.EntryOut); errno != 0 {
			undo()
		}
		return errno
	})
	if errno != 0 {
		f.open.give(in.Uid)
		return status(errno)
	}
	f.openHandle(made, fd, in.Flags, in.Uid, &out.OpenOut)
	return fuse.OK
}

// newFile finishes a CREATE or TMPFILE, as the caller: the entry, through
// an O_PATH fd of the new inode (its /proc name: no name is resolved). The
// open handle on fd is made afterwards, as the server (openHandle). On
// failure fd is closed.
func (f *FS) newFile(fd int, entry *fuse.EntryOut) (*inode, syscall.Errno) {
	fail := func(errno syscall.Errno) (*inode, syscall.Errno) {
		unix.Close(fd)
		return nil, errno
	}
	pfd, err := unix.Openat(f.procFd, itoa(fd), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(errnoOf(err))
	}
	if errno := f.enter(pfd, unix.S_IFREG, entry); errno != 0 {
		return fail(errno)
	}
	in := f.nodes.get(entry.NodeId)
	if in == nil { // forgotten already: cannot happen before the reply
		return fail(syscall.EIO)
	}
	return in, 0
}
