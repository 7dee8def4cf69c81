package fs

import (
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
)

// Kill-priv. The server negotiates FUSE_HANDLE_KILLPRIV_V2, so the kernel
// neither clears setuid/setgid itself nor asks GETXATTR security.capability
// before every WRITE; it flags the requests whose caller lacks CAP_FSETID,
// and the layer clears what a local file system would
// (passthrough.KillPriv):
//
//	WRITE    FUSE_WRITE_KILL_SUIDGID   Writev, on the handle's fd
//	SETATTR  FATTR_KILL_SUIDGID        SetAttr (truncate; chown of a
//	                                   non-directory)
//	OPEN     FUSE_OPEN_KILL_SUIDGID    Open, with O_TRUNC
//
// FALLOCATE and COPY_FILE_RANGE carry no such flag, and the kernel does
// not clear the bits for them under KILLPRIV_V2 (measured: a non-owner's
// fallocate through the mount kept 06777), while a local file system
// clears them for a caller without CAP_FSETID: for those two the layer
// reads the caller's effective capabilities (passthrough.CallerHasFsetid:
// root only), only when the inode may carry bits to clear. The embedder's
// writes (a zero-copy ring write) go through Handle.KillPriv.
//
// A check that found nothing to clear holds for the attribute timeout, as
// the kernel's own S_NOSEC holds until the next attribute change: a
// SETATTR or an xattr change through the mount ends it at once; a change
// made directly on the backing file system is seen within the attribute
// timeout, as the kernel's attribute cache sees it.

// nosec is an inode's kill-priv state: until when (unix nanoseconds) a
// check that found nothing to clear holds, and a generation that every
// attribute change through the mount advances.
type nosec struct {
	until atomic.Int64
	gen   atomic.Uint64
}

// changed ends a check's validity. Changes call it before and after they
// reach the backing file system, so a check that raced with one (a ring
// write is not serialised with SETATTR by the kernel's inode lock) is not
// kept.
func (n *nosec) changed() {
	n.gen.Add(1)
	n.until.Store(0)
}

// callerOf is the kill-priv caller of a FUSE request.
func (f *FS) callerOf(c *fuse.Caller) passthrough.Caller {
	return passthrough.Caller{Uid: c.Uid, Gid: c.Gid, Pid: c.Pid, Cache: &f.groups}
}

// killPriv clears in's setuid/setgid/capability through fd for caller,
// unless a check within the attribute timeout found the file clean and
// force is false. It reports whether it changed anything.
func (f *FS) killPriv(in *inode, fd int, force bool, c passthrough.Caller) bool {
	ns := &in.killPriv
	now := time.Now().UnixNano()
	if !force && now < ns.until.Load() {
		return false
	}
	gen := ns.gen.Load()
	changed, clean, errno := passthrough.KillPriv(fd, c.InGroup)
	switch {
	case errno != 0:
		f.logger.Printf("clearing setuid/setgid of inode %d: %v", in.ino, errno)
		ns.until.Store(0)
	case clean:
		// Unless an attribute change began meanwhile: its chmod may have
		// landed after the check.
		if ns.gen.Load() == gen {
			ns.until.Store(now + int64(f.attrTTL))
		}
	default: // a setgid file kept for a group member: check every time
		ns.until.Store(0)
	}
	return changed
}

// unflagged clears h's setuid/setgid/capability before an operation that
// modifies it without a kill flag, when the caller lacks CAP_FSETID.
func (f *FS) unflagged(h *Handle, c *fuse.Caller) {
	if time.Now().UnixNano() < h.in.killPriv.until.Load() || passthrough.CallerHasFsetid(c.Uid, c.Pid) {
		return
	}
	f.killPriv(h.in, h.fd, false, f.callerOf(c))
}

// passthroughWriteOpen clears setuid/setgid/capability when a caller
// without CAP_FSETID opens a file for writing in kernel passthrough: the
// kernel then writes to the backing file itself, with the server's
// credentials, and the layer never sees the WRITE that would clear them.
// It clears them at every such open rather than at the first write (one
// way a passthrough mount differs from a local file system).
func (f *FS) passthroughWriteOpen(h *Handle, c *fuse.Caller) {
	if !passthrough.HasPriv(h.fd) || passthrough.CallerHasFsetid(c.Uid, c.Pid) {
		return
	}
	f.killPriv(h.in, h.fd, true, f.callerOf(c))
}
