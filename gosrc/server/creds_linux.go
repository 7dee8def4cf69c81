package server

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// The caller's rights. A root server runs every request that looks up,
// creates, opens, changes or removes something with the caller's uid,
// gid and supplementary groups on the request thread that serves it
// (passthrough.Become, undone before the thread serves anything else), so
// the backing file system decides as it would for the caller itself:
// modes, ACLs, quotas, reserved blocks, sticky directories, protected
// hard links, and the ownership of what is made. A path component swapped
// for a symlink mid-request then leads, at worst, where the caller could
// go anyway, never where only root can.
//
// Paths are relative to each request thread's working directory, the
// backing root (fusering.Config.ThreadInit): the caller needs no rights
// on the directories above the backing directory, only on what it sees
// through the mount, as on a local file system.
//
// Requests from uid 0 keep the server's identity; so does a server that
// is not root (it cannot switch). Reads, writes, fsync and other
// operations on an open file use the descriptor the open made, whose
// rights were checked when it was opened, and are not switched; neither
// is GETATTR, READLINK or STATFS, which need no more than the lookup that
// found the inode. Kill-priv (killpriv_linux.go) runs as the server.

// TestRootRequestsEnv, set to 1 in a server's environment, makes it run
// every request as root, as before requests ran as their callers: the
// control half of tests that show an attack biting. Never for real use.
const TestRootRequestsEnv = "ZCFUSE_TEST_ROOT_REQUESTS"

// asCaller runs fn as the caller of ctx (see above) and returns its
// errno. A request thread that cannot switch answers EIO and runs
// nothing: it never falls back to root.
func (s *Server) asCaller(ctx context.Context, fn func() syscall.Errno) syscall.Errno {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Uid == 0 || !s.switchCreds {
		return fn()
	}
	if !fusering.OnRequestThread() {
		s.logf("request outside a request thread: refused rather than run as root")
		return syscall.EIO
	}
	creds := passthrough.Creds{Uid: c.Uid, Gid: c.Gid, Groups: s.groups.Groups(c.Pid, c.Uid, c.Gid)}
	if err := passthrough.Become(creds); err != nil {
		s.logf("switching to uid %d gid %d: %v", c.Uid, c.Gid, err)
		return syscall.EIO
	}
	defer passthrough.Restore()
	return fn()
}

// threadInit prepares a request thread (fusering.Config.ThreadInit): its
// working directory is the backing root, and a root server's thread
// gives up CAP_SYS_RESOURCE for good, so no request, a WRITE on an open
// descriptor included, overrides a disk quota with the server's
// privilege (root callers lose that override through the mount too).
// WRITEs still run with fsuid 0, so ext4's blocks reserved for root can
// be spent through the mount: switching the fsuid and back costs four
// credential changes, about 8 µs a write on this machine class.
func (s *Server) threadInit() error {
	if err := unix.Fchdir(s.rootFd); err != nil {
		return err
	}
	if s.switchCreds {
		return passthrough.DropResourceOverride()
	}
	return nil
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
)

// Lookup finds name in n as the caller.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, errno = n.LoopbackNode.Lookup(ctx, name, out)
		return errno
	})
	return ch, errno
}

// Unlink removes name from n as the caller.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.srv.asCaller(ctx, func() syscall.Errno { return n.LoopbackNode.Unlink(ctx, name) })
}

// Rmdir removes directory name from n as the caller.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.srv.asCaller(ctx, func() syscall.Errno { return n.LoopbackNode.Rmdir(ctx, name) })
}

// Rename moves name in n to newName in newParent as the caller.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return n.srv.asCaller(ctx, func() syscall.Errno { return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags) })
}

// Symlink makes a symlink as the caller (who then owns it).
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, errno = n.LoopbackNode.Symlink(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

// Link makes a hard link as the caller (protected_hardlinks applies).
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		ch, errno = n.LoopbackNode.Link(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

// OpendirHandle opens the directory as the caller.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fh fs.FileHandle, fuseFlags uint32, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		fh, fuseFlags, errno = n.LoopbackNode.OpendirHandle(ctx, flags)
		return errno
	})
	return fh, fuseFlags, errno
}

// Listxattr lists attributes as the caller.
func (n *node) Listxattr(ctx context.Context, dest []byte) (size uint32, errno syscall.Errno) {
	errno = n.srv.asCaller(ctx, func() syscall.Errno {
		size, errno = n.LoopbackNode.Listxattr(ctx, dest)
		return errno
	})
	return size, errno
}
