package server

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// POSIX ACLs and the umask. The server negotiates FUSE_DONT_MASK on
// every mount, so the kernel leaves the caller's umask out of a new
// object's mode and hands it over: the request thread takes it as its own
// umask for the one request, and the backing file system applies it, or,
// where the parent directory has a default ACL, the ACL instead, exactly
// as for a local caller.
//
// With --allow-other it also negotiates FUSE_POSIX_ACL (go-fuse's
// EnableAcl), so the kernel's own permission checks see ACLs, not just
// the mode bits. The kernel then turns default_permissions on, which an
// --allow-other mount has anyway. Not without it: default_permissions on
// a single-user mount costs a GETATTR of the directory before every
// create or unlink in it (measured: two more GETATTRs a file, unlinks at
// 0.57x), and there the backing file system enforces ACLs by itself, the
// request running as its caller. FUSE_SETXATTR_EXT brings SETXATTR's
// flags; its FUSE_SETXATTR_ACL_KILL_SGID needs nothing from the server: a
// non-root caller's ACL change runs as that caller, and the backing file
// system clears setgid for it just as the kernel would.

// aclCaps are the capabilities the server asks for on every mount.
const aclCaps = fuse.CAP_DONT_MASK | fuse.CAP_SETXATTR_EXT

// withUmask makes umask the calling request thread's umask (its own:
// fusering unshared CLONE_FS) until the returned function puts 0 back. Off
// a request thread it masks *mode itself instead: the process umask
// belongs to the program embedding the server.
func withUmask(mode *uint32, umask uint32) (undo func()) {
	if !fusering.OnRequestThread() {
		*mode &^= umask & 0o777
		return func() {}
	}
	unix.Umask(int(umask & 0o777))
	return func() { unix.Umask(0) }
}

func (r *rawFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	defer withUmask(&in.Mode, in.Umask)()
	return r.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (r *rawFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	defer withUmask(&in.Mode, in.Umask)()
	return r.RawFileSystem.Mknod(cancel, in, name, out)
}

// aclXattr reports whether attr is a POSIX ACL.
func aclXattr(attr string) bool {
	return attr == "system.posix_acl_access" || attr == "system.posix_acl_default"
}

// getACL reads an ACL as the server, without a credential switch (the
// kernel asks for them for its permission checks; reading one needs no
// right beyond the lookup), on n's own inode: through an O_PATH fd
// resolved below the root without following a symlink.
func (n *node) getACL(ctx context.Context, attr string, dest []byte) (size uint32, errno syscall.Errno) {
	errno = n.withProcPath(func(path string) error {
		got, err := unix.Getxattr(path, attr, dest)
		size = uint32(max(got, 0))
		return err
	})
	return size, errno
}
