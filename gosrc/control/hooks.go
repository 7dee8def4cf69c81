package control

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

// hookInfo describes the file for a hook. Once the kernel released the
// handle, a handle that did not lend its fd may have closed it (and the
// number may name another file now): the path is then left empty rather
// than asked of it.
func (f *file) hookInfo(session uint64, off int64, isRing bool) HookInfo {
	if f.released.Load() && f.giveBack == nil {
		return HookInfo{Ino: f.h.Ino(), Off: off, Ring: isRing, Session: session}
	}
	return HandleInfo(f.h, session, off, isRing)
}

// HandleInfo describes an open file for a hook: its name now (the path
// walk only when a hook runs) and its inode.
func HandleInfo(h Handle, session uint64, off int64, isRing bool) HookInfo {
	return HookInfo{Path: h.Path(), Ino: h.Ino(), Off: off, Ring: isRing, Session: session}
}
