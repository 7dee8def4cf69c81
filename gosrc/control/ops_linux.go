package control

import (
	"math"

	"github.com/zcfuse/zcfuse/gosrc/dataplane"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// A session is the Source of its op queue: it checks each descriptor
// against its attachments and arenas.
var _ dataplane.Source = (*session)(nil)

// opRefs are what an op in flight holds: its file (and so the fd the
// op uses) and its arena; the op itself lives in it too (one allocation
// per op).
type opRefs struct {
	op dataplane.Op
	f  *file
	sa *sharedArena
}

// Prepare checks a descriptor against the session's attachments and
// arenas and takes references on what it uses.
func (ss *session) Prepare(e opq.SQE) (*dataplane.Op, unix.Errno) {
	if e.Flags != 0 {
		return nil, unix.EINVAL
	}
	var need uint32
	switch e.Opcode {
	case opq.OpRead:
		need = wire.AttachRead
	case opq.OpWrite:
		need = wire.AttachWrite
	case opq.OpFsync:
		if e.OpFlags&^opq.FsyncDatasync != 0 {
			return nil, unix.EINVAL
		}
	default:
		return nil, unix.EINVAL
	}
	if e.Opcode != opq.OpFsync && e.OpFlags != 0 {
		return nil, unix.EINVAL
	}
	f, file := ss.s.lookupFile(ss, e.FileID)
	if f == nil {
		return nil, unix.EBADF
	}
	if f.mode&need != need {
		f.put()
		return nil, unix.EBADF
	}
	refs := &opRefs{f: f}
	o := &refs.op
	o.SQE, o.File, o.Ctx = e, file, refs
	if e.Opcode == opq.OpFsync || e.Len == 0 {
		return o, 0
	}
	sa := ss.lookupArena(e.ArenaID)
	if sa == nil {
		f.put()
		return nil, unix.EBADF
	}
	size := uint64(sa.a.Size())
	if e.ArenaOff > size || e.Len > size-e.ArenaOff || e.FileOff > math.MaxInt64-e.Len {
		sa.put()
		f.put()
		return nil, unix.EINVAL
	}
	refs.sa = sa
	o.Buf = dataplane.Buffer{Bytes: sa.a.Bytes()[e.ArenaOff : e.ArenaOff+e.Len], Slot: sa.slot, Fixed: sa.registered}
	return o, 0
}

// BeforeWrite clears setuid/setgid/capability as a write(2) by the peer
// would (the invalidation after the write drops the kernel's cached
// mode), then runs the write hook, on a private copy with CopyForHooks.
func (ss *session) BeforeWrite(o *dataplane.Op) []byte {
	f := o.Ctx.(*opRefs).f
	if ss.priv.Uid != 0 {
		f.h.KillPriv(o.File.Fd, ss.priv)
	}
	hooks := ss.s.hooks
	if hooks == nil || hooks.OnWrite == nil {
		return nil
	}
	var c []byte
	buf := o.Buf.Bytes
	if hooks.CopyForHooks {
		c = append([]byte(nil), buf...)
		buf = c
	}
	hooks.OnWrite(f.hookInfo(ss.id, int64(o.SQE.FileOff), true), buf)
	return c
}

// Finish runs the read hook and drops the op's references.
func (ss *session) Finish(o *dataplane.Op, res int64) {
	refs := o.Ctx.(*opRefs)
	if res > 0 && o.SQE.Opcode == opq.OpRead {
		if hooks := ss.s.hooks; hooks != nil && hooks.OnRead != nil {
			// The path walk of hookInfo only when a hook wants it.
			hooks.OnRead(refs.f.hookInfo(ss.id, int64(o.SQE.FileOff), true), o.Buf.Bytes[:res])
		}
	}
	if refs.sa != nil {
		refs.sa.put()
	}
	refs.f.put()
}

// Broken ends the session of a client that broke its queue's protocol:
// the session's goroutine sees EOF and cleans up; every other session
// goes on.
func (ss *session) Broken(why string) {
	ss.s.logger.Printf("session %d: op queue broken by the client, ending the session: %s", ss.id, why)
	unix.Shutdown(ss.fd, unix.SHUT_RDWR)
}
