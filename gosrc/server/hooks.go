package server

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
)

// HookInfo says where the bytes a hook sees belong.
type HookInfo struct {
	Path    string // the file, relative to the mount root
	Ino     uint64 // its inode number in the backing directory
	Off     int64  // the file offset of the first byte
	Ring    bool   // a zero-copy op from a session (else a FUSE request)
	Session uint64 // the session of a ring op
}

// Hooks let a server author see every byte written to and read from the
// file system, on every path: FUSE requests (posix) and zero-copy ring
// ops alike, in place. The slices are valid only during the call and
// must not be changed (for a ring op they are the client's arena).
type Hooks struct {
	// OnWrite runs before a write reaches the backing file.
	OnWrite func(info HookInfo, data []byte)
	// OnRead runs after a read, with the bytes read.
	OnRead func(info HookInfo, data []byte)
	// CopyForHooks makes the server copy a ring write's bytes out of the
	// client's arena before OnWrite and write that copy: the client can no
	// longer change what the hook saw. It costs a copy (counted in the
	// copied bytes) and is off by default.
	CopyForHooks bool
}

// hookInfo describes the file for a hook.
func (f *file) hookInfo(session uint64, off int64, isRing bool) HookInfo {
	info := HookInfo{Off: off, Ring: isRing, Session: session}
	if f.node != nil {
		in := f.node.EmbeddedInode()
		info.Path = in.Path(nil)
		info.Ino = in.StableAttr().Ino
	}
	return info
}

// Write runs the write hook on a FUSE WRITE's payload, then writes.
func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h := f.srv.opts.Hooks; h != nil && h.OnWrite != nil {
		h.OnWrite(f.hookInfo(0, off, false), data)
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

// Read reads into dest, so that the read hook sees the bytes, when there
// is a read hook; else it lets the loopback file splice.
func (f *file) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h := f.srv.opts.Hooks
	if h == nil || h.OnRead == nil {
		return f.LoopbackFile.Read(ctx, dest, off)
	}
	fd, ok := f.LoopbackFile.PassthroughFd()
	if !ok {
		return nil, syscall.EBADF
	}
	n, err := syscall.Pread(fd, dest, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	h.OnRead(f.hookInfo(0, off, false), dest[:n])
	return fuse.ReadResultData(dest[:n]), 0
}

// callbacks are the notifier go-fuse's node tree uses, and how the server
// learns an inode's FUSE node id, which go-fuse keeps to itself: a
// NotifyContent at captureOff is answered here with the node id instead
// of reaching the kernel.
type callbacks struct {
	fs.ServerCallbacks
	now     *fusering.Notifier // for InvalidateNow
	next    atomic.Int64
	tickets sync.Map // ticket → node id
}

// InvalidateNow is the connection's synchronous invalidation.
func (c *callbacks) InvalidateNow(node uint64, off, n int64) error {
	return c.now.InvalidateNow(node, off, n)
}

// backingCallbacks are the calls that let go-fuse turn on kernel
// passthrough; the connection offers them only when asked for it.
type backingCallbacks interface {
	RegisterBackingFd(*fuse.BackingMap) (int32, syscall.Errno)
	UnregisterBackingFd(id int32) syscall.Errno
}

// passthroughCallbacks keeps the backing-file calls visible.
type passthroughCallbacks struct {
	*callbacks
	backingCallbacks
}

// serverCallbacks wraps what the connection offers the node tree.
func serverCallbacks(conn *fusering.Conn) (*callbacks, fs.ServerCallbacks) {
	cb := &callbacks{ServerCallbacks: conn.Notifier(), now: conn.Invalidator()}
	if bc, ok := conn.Notifier().(backingCallbacks); ok {
		return cb, passthroughCallbacks{cb, bc}
	}
	return cb, cb
}

const captureOff = math.MinInt64 + 0x7a63 // never a real offset

func (c *callbacks) InodeNotify(node uint64, off, length int64) fuse.Status {
	if off == captureOff {
		c.tickets.Store(length, node)
		return fuse.OK
	}
	return c.ServerCallbacks.InodeNotify(node, off, length)
}

// nodeID returns in's FUSE node id, or 0.
func (c *callbacks) nodeID(in *fs.Inode) uint64 {
	t := c.next.Add(1)
	in.NotifyContent(captureOff, t)
	if v, ok := c.tickets.LoadAndDelete(t); ok {
		return v.(uint64)
	}
	return 0
}
