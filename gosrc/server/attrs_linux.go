package server

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// GETATTR, STATX, READLINK and STATFS run as the server (they are asked
// for often and need no rights beyond the lookup that found the inode),
// so they must not resolve a path the way go-fuse's loopback does: a
// directory swapped for a symlink would let them read the attributes, or
// a symlink's target, of what lies in a directory the caller may not
// search. Without an open handle they go through an O_PATH fd resolved
// below the backing root without following a symlink (openAt); a trailing
// symlink is the node itself and is opened, not followed.

var (
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeStatxer    = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

// withPathFd runs fn on an O_PATH fd of n.
func (n *node) withPathFd(fn func(fd int) error) syscall.Errno {
	fd, err := n.openAt(unix.O_PATH | unix.O_NOFOLLOW)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer unix.Close(fd)
	return fs.ToErrno(fn(fd))
}

// Getattr answers from the handle's fd, or from an O_PATH fd of n.
func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if g, ok := fh.(fs.FileGetattrer); ok {
		return g.Getattr(ctx, out)
	}
	return n.withPathFd(func(fd int) error {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return err
		}
		out.FromStat(&st)
		return nil
	})
}

// Statx answers from the handle's fd, or from an O_PATH fd of n.
func (n *node) Statx(ctx context.Context, fh fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if g, ok := fh.(fs.FileStatxer); ok {
		return g.Statx(ctx, flags, mask, out)
	}
	return n.withPathFd(func(fd int) error {
		var st unix.Statx_t
		if err := unix.Statx(fd, "", int(flags)|unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, int(mask), &st); err != nil {
			return err
		}
		out.FromStatx(&st)
		return nil
	})
}

// Readlink reads the symlink n itself.
func (n *node) Readlink(ctx context.Context) (target []byte, errno syscall.Errno) {
	errno = n.withPathFd(func(fd int) error {
		for size := 256; ; size *= 2 {
			buf := make([]byte, size)
			got, err := unix.Readlinkat(fd, "", buf)
			if err != nil {
				return err
			}
			if got < size {
				target = buf[:got]
				return nil
			}
		}
	})
	return target, errno
}

// Statfs reports the file system n lives on.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.withPathFd(func(fd int) error {
		var st syscall.Statfs_t
		if err := syscall.Fstatfs(fd, &st); err != nil {
			return err
		}
		out.FromStatfsT(&st)
		return nil
	})
}
