package control

import (
	"crypto/subtle"
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/zcfuse/zcfuse/gosrc/dataplane"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// Handle is an open file of the file-system layer (fs.Handle), as the
// control plane needs it.
type Handle interface {
	// Fd is the open backing file; it stays open until Released.
	Fd() int
	// AccessMode is the open's O_ACCMODE.
	AccessMode() uint32
	// NodeID is the kernel's node id, whose cache a ring write drops.
	NodeID() uint64
	// Path (relative to the mount root) and Ino describe the file to hooks.
	Path() string
	Ino() uint64
	// KillPriv clears setuid/setgid/capability on fd as a write(2) by
	// the caller would.
	KillPriv(fd int, c passthrough.Caller)
}

// file is an open file of the file-system layer that has been attached to
// a client session (Attach); when the kernel releases the handle it is
// detached from every session (Released).
type file struct {
	h Handle

	// attached holds the sessions this handle is attached to and the id
	// each gave it; guarded by Control.fmu.
	attached map[*session]uint32
}

// attachMode is what a client may do with an attachment of f: the open's
// access mode.
func (f *file) attachMode() uint32 {
	switch f.h.AccessMode() {
	case syscall.O_RDONLY:
		return wire.AttachRead
	case syscall.O_WRONLY:
		return wire.AttachWrite
	}
	return wire.AttachRead | wire.AttachWrite
}

// Attach answers the attach ioctl (wire.AttachIoctl) on handle h for a
// caller with uid and gid as the kernel reports them: input and output
// are the ioctl's argument.
func (s *Control) Attach(h Handle, uid, gid uint32, input, output []byte) (int32, syscall.Errno) {
	a, err := wire.DecodeAttachArg(input)
	if err != nil || len(output) != wire.AttachArgSize {
		return 0, syscall.EINVAL
	}
	v, _ := s.files.LoadOrStore(h, &file{h: h})
	f := v.(*file)
	id, errno := s.attach(a, uid, gid, f)
	if errno != 0 {
		return 0, errno
	}
	a.FileID, a.Mode = id, f.attachMode()
	a.Token = [16]byte{} // the token never travels back
	a.Encode(output)
	return 0, 0
}

// Released detaches a released handle from every session; call it before
// the handle's fd is closed. It works after Close too.
func (s *Control) Released(h Handle) {
	if v, ok := s.files.LoadAndDelete(h); ok {
		s.forgetFile(v.(*file))
	}
}

// attachment is one file attached to one session. It holds its own
// duplicate of the backing fd, so ops in flight never see it closed (or
// reused) by a RELEASE; the last reference closes it.
type attachment struct {
	f    *file
	mode uint32
	file dataplane.File // the duplicate fd, its slot when registered, the node
	dp   DataPlane
	refs atomic.Int32
}

// put drops a reference; the last one unregisters and closes the file.
// It may run on a worker thread, which must not wait for the workers: the
// unregistration then runs on a goroutine of its own.
func (at *attachment) put() {
	if at.refs.Add(-1) != 0 {
		return
	}
	if !at.file.Fixed {
		unix.Close(at.file.Fd)
		return
	}
	go func() {
		at.dp.UnregisterFile(at.file.Slot)
		unix.Close(at.file.Fd)
	}()
}

// lookupFile returns attachment id of ss with a reference, and a copy of
// its file (fmu guards it: registration completes asynchronously), or
// nil.
func (s *Control) lookupFile(ss *session, id uint32) (*attachment, dataplane.File) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	at := ss.files[id]
	if at == nil {
		return nil, dataplane.File{}
	}
	at.refs.Add(1)
	return at, at.file
}

// attach binds f to the session a names, for a caller with uid and gid as
// the kernel reports them. Errors: EPERM when no live session has that id
// and token (another session's token included) or when the caller is not
// the session's peer (the log says which), EMFILE over the session's limit.
func (s *Control) attach(a wire.AttachArg, uid, gid uint32, f *file) (uint32, syscall.Errno) {
	s.mu.Lock()
	ss := s.live[a.SessionID]
	s.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.token[:], a.Token[:]) != 1 {
		return 0, syscall.EPERM
	}
	if uid != ss.cred.Uid || gid != ss.cred.Gid {
		s.logger.Printf("attach refused: caller uid %d gid %d is not session %d's peer (uid %d gid %d)", uid, gid, ss.id, ss.cred.Uid, ss.cred.Gid)
		return 0, syscall.EPERM
	}
	if id, ok := s.attachedID(ss, f); ok {
		return id, 0 // attached already: same handle, same id
	}
	dup, err := unix.FcntlInt(uintptr(f.h.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, syscall.EMFILE
	}
	at := &attachment{f: f, mode: f.attachMode(), file: dataplane.File{Fd: dup, Node: f.h.NodeID()}, dp: s.dp}
	at.refs.Store(1)
	id, fresh, errno := s.bind(ss, f, at)
	if errno != 0 || !fresh {
		at.put() // refused, or another thread attached it meanwhile
		return id, errno
	}
	// The workers' file tables get the fd on a goroutine of its own: a
	// FUSE request thread never waits for a worker, which may itself be
	// waiting (a cache invalidation) on a page lock that only a FUSE
	// request can release. Ops are served by the fd until then.
	at.refs.Add(1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		at.put()
		return id, 0
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.registerFile(at)
	return id, 0
}

// bind files at as a new attachment of f to ss (fresh), or returns the
// id f has in ss already.
func (s *Control) bind(ss *session, f *file, at *attachment) (id uint32, fresh bool, errno syscall.Errno) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if ss.ended {
		return 0, false, syscall.EPERM
	}
	if id, ok := f.attached[ss]; ok {
		return id, false, 0
	}
	if len(ss.files) >= s.limits.AttachedFiles {
		return 0, false, syscall.EMFILE
	}
	if f.attached == nil {
		f.attached = map[*session]uint32{}
	}
	ss.nextFile++
	id = ss.nextFile
	ss.files[id] = at
	f.attached[ss] = id
	s.attached.Add(1)
	return id, true, 0
}

// attachedID is f's attachment id in ss, if any.
func (s *Control) attachedID(ss *session, f *file) (uint32, bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	id, ok := f.attached[ss]
	return id, ok
}

// registerFile puts an attachment's fd in the workers' file tables and
// marks it fixed; it holds a reference meanwhile.
func (s *Control) registerFile(at *attachment) {
	defer s.wg.Done()
	defer at.put()
	slot, err := s.dp.RegisterFile(at.file.Fd)
	if err != nil {
		return // served by its fd
	}
	s.fmu.Lock()
	at.file.Slot, at.file.Fixed = slot, true
	s.fmu.Unlock()
}

// detach ends attachment id of ss; ENOENT when it has none.
func (s *Control) detach(ss *session, id uint32) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	at := ss.files[id]
	if at == nil {
		return fmt.Errorf("file %d is not attached to this session: %w", id, unix.ENOENT)
	}
	s.unbindLocked(ss, id, at)
	return nil
}

func (s *Control) unbindLocked(ss *session, id uint32, at *attachment) {
	delete(ss.files, id)
	delete(at.f.attached, ss)
	s.attached.Add(-1)
	at.put()
}

// detachAll ends every attachment of ss and refuses new ones.
func (s *Control) detachAll(ss *session) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	ss.ended = true
	for id, at := range ss.files {
		s.unbindLocked(ss, id, at)
	}
}

// forgetFile detaches a released handle from every session.
func (s *Control) forgetFile(f *file) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	for ss, id := range f.attached {
		if at := ss.files[id]; at != nil && at.f == f {
			s.unbindLocked(ss, id, at)
		}
	}
	f.attached = nil
}
