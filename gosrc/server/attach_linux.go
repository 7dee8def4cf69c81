package server

import (
	"crypto/subtle"
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	zfs "github.com/zcfuse/zcfuse/gosrc/fs"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// file is an open file of the passthrough that has been attached to a
// client session (the attach ioctl, fsHooks); when the kernel releases the
// handle it is detached from every session.
type file struct {
	h *zfs.Handle

	// attached holds the sessions this handle is attached to and the id
	// each gave it; guarded by sessions.fmu.
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

// attachIoctl answers wire.AttachIoctl on handle h.
func (s *Server) attachIoctl(h *zfs.Handle, caller *fuse.Caller, input, output []byte) (int32, syscall.Errno) {
	ctl := s.ctl.Load()
	if ctl == nil {
		return 0, syscall.ESHUTDOWN
	}
	a, err := wire.DecodeAttachArg(input)
	if err != nil || len(output) != wire.AttachArgSize {
		return 0, syscall.EINVAL
	}
	v, _ := s.files.LoadOrStore(h, &file{h: h})
	f := v.(*file)
	id, errno := ctl.attach(a, caller.Uid, caller.Gid, f)
	if errno != 0 {
		return 0, errno
	}
	a.FileID, a.Mode = id, f.attachMode()
	a.Token = [16]byte{} // the token never travels back
	a.Encode(output)
	return 0, 0
}

// released detaches a released handle from every session before its fd
// is closed.
func (s *Server) released(h *zfs.Handle) {
	v, ok := s.files.LoadAndDelete(h)
	if !ok {
		return
	}
	if ctl := s.lastCtl.Load(); ctl != nil {
		ctl.forgetFile(v.(*file))
	}
}

// attachment is one file attached to one session. It holds its own
// duplicate of the backing fd, so ops in flight never see it closed (or
// reused) by a RELEASE; the last reference closes it.
type attachment struct {
	f     *file
	mode  uint32
	fd    int
	slot  uint32 // in the workers' registered-file tables, when fixed
	fixed bool
	exec  *executor
	refs  atomic.Int32
}

// put drops a reference; the last one unregisters and closes the file.
// It may run on a worker thread, which must not wait for the workers: the
// unregistration then runs on a goroutine of its own.
func (at *attachment) put() {
	if at.refs.Add(-1) != 0 {
		return
	}
	if !at.fixed {
		unix.Close(at.fd)
		return
	}
	go func() {
		at.exec.unregisterFile(at.slot)
		unix.Close(at.fd)
	}()
}

// lookupFile returns attachment id of ss with a reference, or nil.
func (s *sessions) lookupFile(ss *session, id uint32) *attachment {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	at := ss.files[id]
	if at != nil {
		at.refs.Add(1)
	}
	return at
}

// attach binds f to the session a names, for a caller with uid and gid as
// the kernel reports them. Errors: EPERM when no live session has that id
// and token (another session's token included) or when the caller is not
// the session's peer (the log says which), EMFILE over the session's limit.
func (s *sessions) attach(a wire.AttachArg, uid, gid uint32, f *file) (uint32, syscall.Errno) {
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
	s.fmu.Lock()
	if id, ok := f.attached[ss]; ok {
		s.fmu.Unlock()
		return id, 0 // attached already: same handle, same id
	}
	s.fmu.Unlock()
	// The backing fd, duplicated and registered with the workers before
	// fmu is taken: the workers take fmu themselves, and registering waits
	// for them.
	dup, err := unix.FcntlInt(uintptr(f.h.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, syscall.EMFILE
	}
	at := &attachment{f: f, mode: f.attachMode(), fd: dup, exec: s.exec}
	at.refs.Store(1)
	if slot, err := s.exec.registerFile(dup); err == nil {
		at.slot, at.fixed = slot, true
	}
	s.fmu.Lock()
	defer s.fmu.Unlock()
	var refuse syscall.Errno
	switch {
	case ss.ended:
		refuse = syscall.EPERM
	case len(ss.files) >= s.limits.AttachedFiles:
		refuse = syscall.EMFILE
	}
	if id, ok := f.attached[ss]; ok && refuse == 0 {
		at.put() // another thread attached it meanwhile
		return id, 0
	}
	if refuse != 0 {
		at.put()
		return 0, refuse
	}
	if f.attached == nil {
		f.attached = map[*session]uint32{}
	}
	ss.nextFile++
	id := ss.nextFile
	ss.files[id] = at
	f.attached[ss] = id
	s.attached.Add(1)
	return id, 0
}

// detach ends attachment id of ss; ENOENT when it has none.
func (s *sessions) detach(ss *session, id uint32) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	at := ss.files[id]
	if at == nil {
		return fmt.Errorf("file %d is not attached to this session: %w", id, unix.ENOENT)
	}
	s.unbindLocked(ss, id, at)
	return nil
}

func (s *sessions) unbindLocked(ss *session, id uint32, at *attachment) {
	delete(ss.files, id)
	delete(at.f.attached, ss)
	s.attached.Add(-1)
	at.put()
}

// detachAll ends every attachment of ss and refuses new ones.
func (s *sessions) detachAll(ss *session) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	ss.ended = true
	for id, at := range ss.files {
		s.unbindLocked(ss, id, at)
	}
}

// forgetFile detaches a released handle from every session.
func (s *sessions) forgetFile(f *file) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	for ss, id := range f.attached {
		if at := ss.files[id]; at != nil && at.f == f {
			s.unbindLocked(ss, id, at)
		}
	}
	f.attached = nil
}
