package fs

import (
	"bytes"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"golang.org/x/sys/unix"
)

// Attributes. GETATTR, STATX, READLINK, STATFS and the reading of ACLs run
// as the server on the inode's own fd (asked for often, they need no right
// beyond the lookup that found the inode); SETATTR, ACCESS and the other
// xattr calls run as the caller. Calls that take no O_PATH fd (utimensat,
// truncate, faccessat, the xattr calls) name the inode by its /proc name,
// which leads to the inode itself, a symlink included, and resolves no
// name of the backing tree.

// statFd fills out from fd.
func (f *FS) statFd(fd int, out *fuse.AttrOut) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errnoOf(err)
	}
	fillAttr(&st, &out.Attr)
	out.SetTimeout(f.attrTTL)
	return 0
}

// GetAttr answers from the handle's fd when the kernel names one, else
// from the inode's.
func (f *FS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if in.Flags()&fuse.FUSE_GETATTR_FH != 0 {
		if h := f.handle(in.Fh()); h != nil {
			return status(f.statFd(h.fd, out))
		}
	}
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	return status(f.statFd(p.fd, out))
}

// Statx answers statx from the handle's or the inode's fd.
func (f *FS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	fd := -1
	if in.GetattrFlags&fuse.FUSE_GETATTR_FH != 0 {
		if h := f.handle(in.Fh); h != nil {
			fd = h.fd
		}
	}
	if fd < 0 {
		p, errno := f.pin(in.NodeId)
		if errno != 0 {
			return status(errno)
		}
		defer f.unpin(p)
		fd = p.fd
	}
	var st unix.Statx_t
	flags := int(in.SxFlags&(unix.AT_STATX_FORCE_SYNC|unix.AT_STATX_DONT_SYNC)) | unix.AT_EMPTY_PATH | unix.AT_SYMLINK_NOFOLLOW
	if err := unix.Statx(fd, "", flags, int(in.SxMask), &st); err != nil {
		return status(errnoOf(err))
	}
	out.FromStatx(&st)
	out.SetTimeout(f.attrTTL)
	return fuse.OK
}

// Readlink reads the symlink itself.
func (f *FS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	p, errno := f.pin(h.NodeId)
	if errno != 0 {
		return nil, status(errno)
	}
	defer f.unpin(p)
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(p.fd, "", buf)
		if err != nil {
			return nil, status(errnoOf(err))
		}
		if n < size {
			return buf[:n], fuse.OK
		}
	}
}

// Access checks the caller's access to the inode (asked only on mounts
// without default_permissions).
func (f *FS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	return status(f.asCaller(&in.Caller, func() syscall.Errno {
		return errnoOf(unix.Faccessat2(unix.AT_FDCWD, procPath(p.fd), in.Mask, unix.AT_EACCESS))
	}))
}

// setattrBits are the SETATTR fields that change something.
const setattrBits = fuse.FATTR_MODE | fuse.FATTR_UID | fuse.FATTR_GID | fuse.FATTR_SIZE | fuse.FATTR_ATIME |
	fuse.FATTR_MTIME | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_CTIME

// SetAttr changes attributes as the caller, then clears setuid/setgid/
// capability when the kernel says so. FATTR_KILL_SUIDGID comes with a
// truncate only when the caller lacks CAP_FSETID, but with every chown of
// a non-directory: the backing chown has already cleared what it clears
// for the caller it ran as, so after a chown the rest is cleared only when
// the caller lacks CAP_FSETID, judging its group membership on the file's
// group before the chown, as the kernel does. A SETATTR that changes
// nothing (the kernel's file_remove_privs sends one) only kills.
func (f *FS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	p, errno := f.pin(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	p.in.killPriv.changed()
	defer p.in.killPriv.changed()
	hfd := -1
	if fh, ok := in.GetFh(); ok {
		if h := f.handle(fh); h != nil {
			hfd = h.fd
		}
	}
	kill := in.Valid&fuse.FATTR_KILL_SUIDGID != 0
	if in.Valid&setattrBits == 0 {
		if kill {
			f.killPriv(p.in, p.fd, true, f.callerOf(&in.Caller))
		}
		return status(f.statFd(p.fd, out))
	}
	var before unix.Stat_t
	if err := unix.Fstat(p.fd, &before); err != nil {
		return status(errnoOf(err))
	}
	if errno := f.asCaller(&in.Caller, func() syscall.Errno { return setattr(p.fd, hfd, in) }); errno != 0 {
		return status(errno)
	}
	if kill {
		pc := f.callerOf(&in.Caller)
		chown := in.Valid&fuse.FATTR_SIZE == 0
		if chown {
			pc.FileGid, pc.FixedGid = before.Gid, true
		}
		if !chown || !passthrough.CallerHasFsetid(in.Caller.Uid, in.Caller.Pid) {
			f.killPriv(p.in, p.fd, true, pc)
		}
	}
	return status(f.statFd(p.fd, out))
}

// setattr makes the changes on the inode fd (an O_PATH fd) or, for a
// truncate through an open file, its handle's fd hfd: mode, owner, size,
// then times (a truncate would otherwise move an mtime just set). Times
// set to "now" go as UTIME_NOW, which anyone who may write the file may
// set, where explicit times need the owner.
func setattr(fd, hfd int, in *fuse.SetAttrIn) syscall.Errno {
	if mode, ok := in.GetMode(); ok {
		if e := passthrough.Fchmod(fd, mode); e != 0 {
			return e
		}
	}
	uid, okU := in.GetUID()
	gid, okG := in.GetGID()
	if okU || okG {
		u, g := -1, -1
		if okU {
			u = int(uid)
		}
		if okG {
			g = int(gid)
		}
		if err := unix.Fchownat(fd, "", u, g, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return errnoOf(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		var err error
		if hfd >= 0 {
			err = unix.Ftruncate(hfd, int64(size))
		} else {
			err = unix.Truncate(procPath(fd), int64(size))
		}
		if err != nil {
			return errnoOf(err)
		}
	}
	const timeBits = fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW
	if in.Valid&timeBits == 0 {
		return 0
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
	ts := []unix.Timespec{
		when(fuse.FATTR_ATIME, fuse.FATTR_ATIME_NOW, in.Atime, in.Atimensec),
		when(fuse.FATTR_MTIME, fuse.FATTR_MTIME_NOW, in.Mtime, in.Mtimensec),
	}
	return errnoOf(unix.UtimesNanoAt(unix.AT_FDCWD, procPath(fd), ts, 0))
}

// aclXattr reports whether attr is a POSIX ACL.
func aclXattr(attr string) bool {
	return attr == "system.posix_acl_access" || attr == "system.posix_acl_default"
}

// reserved reports whether the embedder keeps attr for itself.
func (f *FS) reserved(attr string) bool {
	return f.opts.Hooks.Reserved != nil && f.opts.Hooks.Reserved(attr)
}

// GetXAttr reads an attribute: the root's own ones from the embedder, for
// the caller (the answer may depend on who asks); ACLs as the server (the
// kernel asks for them for its permission checks, and reading one needs
// no right beyond the lookup); the rest as the caller (user.* needs read
// permission, trusted.* CAP_SYS_ADMIN).
func (f *FS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if f.reserved(attr) {
		if h.NodeId == rootID && f.opts.Hooks.RootXattr != nil {
			if v, ok, errno := f.opts.Hooks.RootXattr(attr, &h.Caller); ok || errno != 0 {
				return XattrReply(v, dest, errno)
			}
		}
		return 0, status(syscall.ENODATA)
	}
	p, errno := f.pin(h.NodeId)
	if errno != 0 {
		return 0, status(errno)
	}
	defer f.unpin(p)
	var size int
	get := func() syscall.Errno {
		var err error
		size, err = unix.Getxattr(procPath(p.fd), attr, dest)
		return errnoOf(err)
	}
	if aclXattr(attr) {
		errno = get()
	} else {
		errno = f.asCaller(&h.Caller, get)
	}
	return uint32(max(size, 0)), status(errno)
}

// XattrReply answers a getxattr with value v into dest.
func XattrReply(v, dest []byte, errno syscall.Errno) (uint32, fuse.Status) {
	if errno != 0 {
		return 0, status(errno)
	}
	if len(dest) == 0 {
		return uint32(len(v)), fuse.OK
	}
	if len(dest) < len(v) {
		return uint32(len(v)), status(syscall.ERANGE)
	}
	return uint32(copy(dest, v)), fuse.OK
}

// ListXAttr lists attribute names as the caller (the backing file system
// shows trusted.* only to a caller with CAP_SYS_ADMIN; a root caller runs
// as the server, so for it they are taken out unless it has the
// capability itself), without the names the embedder reserves. The full
// list is read first, so the sizes the kernel asks for and gets agree.
func (f *FS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	p, errno := f.pin(h.NodeId)
	if errno != 0 {
		return 0, status(errno)
	}
	defer f.unpin(p)
	var list []byte
	errno = f.asCaller(&h.Caller, func() syscall.Errno {
		for size := 256; size <= 1<<20; size *= 4 {
			buf := make([]byte, size)
			n, err := unix.Listxattr(procPath(p.fd), buf)
			if err == unix.ERANGE {
				continue
			}
			list = buf[:max(n, 0)]
			return errnoOf(err)
		}
		return syscall.E2BIG
	})
	if errno != 0 {
		return 0, status(errno)
	}
	list = f.filterXattrs(list, &h.Caller)
	if len(dest) == 0 {
		return uint32(len(list)), fuse.OK
	}
	if len(dest) < len(list) {
		return uint32(len(list)), status(syscall.ERANGE)
	}
	return uint32(copy(dest, list)), fuse.OK
}

// filterXattrs drops from a NUL-separated name list the reserved names
// and, for a root caller without CAP_SYS_ADMIN, trusted.* (its /proc
// status is read only when there is such a name).
func (f *FS) filterXattrs(list []byte, c *fuse.Caller) []byte {
	trusted := c.Uid == 0 && bytes.Contains(list, []byte("trusted.")) &&
		!passthrough.CallerHasCap(c.Uid, c.Pid, passthrough.CapSysAdmin)
	out := list[:0]
	for len(list) > 0 {
		i := bytes.IndexByte(list, 0)
		if i < 0 {
			break
		}
		name := string(list[:i])
		entry := list[:i+1]
		list = list[i+1:]
		if f.reserved(name) || trusted && strings.HasPrefix(name, "trusted.") {
			continue
		}
		out = append(out, entry...)
	}
	return out
}

// SetXAttr sets an attribute as the caller; security.capability as the
// server (the kernel let the caller ask: CAP_SETFCAP in its own user
// namespace over its own file, which a switched thread no longer has).
// FUSE_SETXATTR_ACL_KILL_SGID (the kernel's verdict that the caller,
// outside the file's group and without CAP_FSETID, loses setgid with an
// ACL change) is carried out by the layer: a switched caller's backing
// file system would clear it anyway, a root caller's would not.
func (f *FS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	killSgid := in.SetXAttrFlags&fuse.SETXATTR_ACL_KILL_SGID != 0 && attr == "system.posix_acl_access"
	return f.changeXattr(&in.InHeader, attr, func(p string) error { return unix.Setxattr(p, attr, data, int(in.Flags)) },
		func(fd int) {
			var st unix.Stat_t
			if killSgid && unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISGID != 0 {
				passthrough.Fchmod(fd, st.Mode&^unix.S_ISGID)
			}
		})
}

// RemoveXAttr removes an attribute, like SetXAttr.
func (f *FS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	return f.changeXattr(h, attr, func(p string) error { return unix.Removexattr(p, attr) }, nil)
}

// changeXattr runs change on the inode's /proc name (see SetXAttr for as
// whom), then, when it succeeded, after (if any) on the inode's fd, as
// the server.
func (f *FS) changeXattr(h *fuse.InHeader, attr string, change func(path string) error, after func(fd int)) fuse.Status {
	if f.reserved(attr) {
		return status(syscall.EPERM)
	}
	p, errno := f.pin(h.NodeId)
	if errno != 0 {
		return status(errno)
	}
	defer f.unpin(p)
	p.in.killPriv.changed()
	defer p.in.killPriv.changed()
	run := func() syscall.Errno { return errnoOf(change(procPath(p.fd))) }
	if attr == passthrough.CapabilityXattr {
		errno = run()
	} else {
		errno = f.asCaller(&h.Caller, run)
	}
	if errno == 0 && after != nil {
		after(p.fd)
	}
	return status(errno)
}
