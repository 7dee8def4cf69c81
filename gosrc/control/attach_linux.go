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

// FdLender is a Handle whose own fd the control plane may keep past the
// handle's RELEASE. LendFd returns the fd and the function that gives it
// back (called once, from any goroutine, never on a FUSE request
// thread's behalf): the file-system layer closes the fd only when the
// handle is released and every loan is back, so the number is never
// reused under an op. It fails (EBADF) once the handle is released. A
// Handle that is not an FdLender is duplicated instead: one fd more per
// attached handle.
type FdLender interface {
	LendFd() (fd int, giveBack func(), err error)
}

// file is an open file of the file-system layer while sessions attach it
// or ops use it: one per handle, however many sessions attach it. It
// holds one fd for them all (the handle's own when the handle lends it,
// else one duplicate of it) and one slot in the workers' file tables.
//
// References: each attachment, each op in flight, and the registration
// while it runs. The last one unregisters the file and closes (or gives
// back) the fd; a RELEASE only drops the attachments, so an op in flight
// never sees its fd closed or its number reused. A file whose count
// reached zero is dead: a later attach of the handle makes a new one.
type file struct {
	s    *Control
	h    Handle
	mode uint32 // wire.AttachRead|AttachWrite: what the open allows
	// df is the fd, the node and, once registered, the slot (Slot and
	// Fixed are set under Control.fmu: registration is asynchronous).
	df       dataplane.File
	giveBack func() // the lender's, or nil: df.Fd is our duplicate
	refs     atomic.Int32

	// attached holds the sessions this file is attached to and the id
	// each gave it; guarded by Control.fmu.
	attached map[*session]uint32
	// released: the kernel released the handle (its fd may be closed and
	// its number reused: hooks no longer ask the handle for its path).
	released atomic.Bool
}

// attachment is one file attached to one session; it holds a reference
// on the file and one attachment of the session peer's uid (resAttached).
type attachment struct {
	f *file
}

// attachMode is what a client may do with an attachment of h: the open's
// access mode.
func attachMode(h Handle) uint32 {
	switch h.AccessMode() {
	case syscall.O_RDONLY:
		return wire.AttachRead
	case syscall.O_WRONLY:
		return wire.AttachWrite
	}
	return wire.AttachRead | wire.AttachWrite
}

// tryGet takes a reference unless the file is dead.
func (f *file) tryGet() bool {
	for {
		n := f.refs.Load()
		if n <= 0 {
			return false
		}
		if f.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// put drops a reference; the last one frees the file. It may run on a
// worker thread, which must not wait for the workers, or with fmu held:
// the freeing then runs on a goroutine of its own.
func (f *file) put() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		go f.free()
	case n < 0:
		panic(fmt.Sprintf("control: file of inode %d put %d times too often", f.h.Ino(), -n))
	}
}

// free unregisters the file and closes or gives back its fd.
func (f *file) free() {
	s := f.s
	s.fmu.Lock()
	s.files.CompareAndDelete(f.h, f) // unless a new file took its place
	df := f.df
	s.fmu.Unlock()
	if df.Fixed {
		s.dp.UnregisterFile(df.Slot)
	}
	if f.giveBack != nil {
		f.giveBack()
	} else {
		unix.Close(df.Fd)
	}
}

// Attach answers the attach ioctl (wire.AttachIoctl) on handle h for a
// caller with uid and gid as the kernel reports them: input and output
// are the ioctl's argument.
func (s *Control) Attach(h Handle, uid, gid uint32, input, output []byte) (int32, syscall.Errno) {
	a, err := wire.DecodeAttachArg(input)
	if err != nil || len(output) != wire.AttachArgSize {
		return 0, syscall.EINVAL
	}
	id, mode, errno := s.attach(a, uid, gid, h)
	if errno != 0 {
		return 0, errno
	}
	a.FileID, a.Mode = id, mode
	a.Token = [16]byte{} // the token never travels back
	a.Encode(output)
	return 0, 0
}

// Released detaches a released handle from every session; call it before
// the handle's fd is closed. Ops in flight keep the file's fd open until
// they finish. It works after Close too.
func (s *Control) Released(h Handle) {
	if v, ok := s.files.LoadAndDelete(h); ok {
		s.forgetFile(v.(*file))
	}
}

// lookupFile returns attachment id of ss's file with a reference, and a
// copy of its dataplane.File (fmu guards it: registration completes
// asynchronously), or nil.
func (s *Control) lookupFile(ss *session, id uint32) (*file, dataplane.File) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	at := ss.files[id]
	if at == nil {
		return nil, dataplane.File{}
	}
	at.f.refs.Add(1) // never from zero: the attachment holds one
	return at.f, at.f.df
}

// attach binds h to the session a names, for a caller with uid and gid
// as the kernel reports them, and returns its id and mode. Errors: EPERM
// when no live session has that id and token (another session's token
// included) or when the caller is not the session's peer (the log says
// which); EMFILE over the session's limit or its peer's
// (AttachedFilesPerUser), or when the server has no fd left.
func (s *Control) attach(a wire.AttachArg, uid, gid uint32, h Handle) (uint32, uint32, syscall.Errno) {
	s.mu.Lock()
	ss := s.live[a.SessionID]
	s.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.token[:], a.Token[:]) != 1 {
		return 0, 0, syscall.EPERM
	}
	if uid != ss.cred.Uid || gid != ss.cred.Gid {
		s.logger.Printf("attach refused: caller uid %d gid %d is not session %d's peer (uid %d gid %d)", uid, gid, ss.id, ss.cred.Uid, ss.cred.Gid)
		return 0, 0, syscall.EPERM
	}
	id, f, fresh, errno := s.bind(ss, h)
	if errno != 0 || !fresh {
		return id, attachMode(h), errno
	}
	// The workers' file tables get the fd on a goroutine of its own: a
	// FUSE request thread never waits for a worker, which may itself be
	// waiting (a cache invalidation) on a page lock that only a FUSE
	// request can release. Ops are served by the fd until then.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f.put() // the registration's reference
		return id, f.mode, 0
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.registerFile(f)
	return id, f.mode, 0
}

// bind attaches h's file to ss: the id it has there already, or a new
// attachment, charged to the session's peer. fresh says a new file was
// made for h, with a reference for its registration, which the caller
// starts.
func (s *Control) bind(ss *session, h Handle) (id uint32, f *file, fresh bool, errno syscall.Errno) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if ss.ended {
		return 0, nil, false, syscall.EPERM
	}
	if v, ok := s.files.Load(h); ok {
		f = v.(*file)
		if id, ok := f.attached[ss]; ok {
			return id, f, false, 0 // attached already: same handle, same id
		}
	}
	if len(ss.files) >= s.limits.AttachedFiles {
		return 0, nil, false, syscall.EMFILE
	}
	if err := s.users.take(ss.cred.Uid, resAttached, 1); err != nil {
		return 0, nil, false, syscall.EMFILE
	}
	if f == nil || !f.tryGet() { // none, or dead: the fd goes with it
		if f, errno = s.newFile(h); errno != 0 {
			s.users.give(ss.cred.Uid, resAttached, 1)
			return 0, nil, false, errno
		}
		f.refs.Store(2) // this attachment's and the registration's
		s.files.Store(h, f)
		fresh = true
	}
	if f.attached == nil {
		f.attached = map[*session]uint32{}
	}
	ss.nextFile++
	id = ss.nextFile
	ss.files[id] = &attachment{f: f}
	f.attached[ss] = id
	s.attached.Add(1)
	return id, f, fresh, 0
}

// newFile gets the fd every session's attachment of h shares: the
// handle's own when it lends it, else one duplicate. EMFILE when the
// server has no fd left.
func (s *Control) newFile(h Handle) (*file, syscall.Errno) {
	f := &file{s: s, h: h, mode: attachMode(h)}
	fd := -1
	if l, ok := h.(FdLender); ok {
		var err error
		if fd, f.giveBack, err = l.LendFd(); err != nil {
			return nil, syscall.EBADF // released meanwhile
		}
	} else {
		var err error
		if fd, err = unix.FcntlInt(uintptr(h.Fd()), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return nil, syscall.EMFILE
		}
	}
	f.df = dataplane.File{Fd: fd, Node: h.NodeID()}
	return f, 0
}

// registerFile puts a file's fd in the workers' file tables and marks it
// fixed; it holds a reference meanwhile.
func (s *Control) registerFile(f *file) {
	defer s.wg.Done()
	defer f.put()
	slot, err := s.dp.RegisterFile(f.df.Fd)
	if err != nil {
		return // served by its fd
	}
	s.fmu.Lock()
	f.df.Slot, f.df.Fixed = slot, true
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

// unbindLocked ends an attachment: the session's peer gets its
// attachment back and the file loses a reference.
func (s *Control) unbindLocked(ss *session, id uint32, at *attachment) {
	delete(ss.files, id)
	delete(at.f.attached, ss)
	s.attached.Add(-1)
	s.users.give(ss.cred.Uid, resAttached, 1)
	at.f.put()
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

// forgetFile detaches a released handle from every session; ops in
// flight keep its fd.
func (s *Control) forgetFile(f *file) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	f.released.Store(true)
	for ss, id := range f.attached {
		if at := ss.files[id]; at != nil && at.f == f {
			s.unbindLocked(ss, id, at)
		}
	}
	f.attached = nil
}
