package wire

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// Attaching a file is not a socket message: the client issues the
// AttachIoctl ioctl on the file's own fd, opened through the mount. The
// kernel turns it into a FUSE_IOCTL request for exactly that open file
// handle and reports the calling thread's fsuid and fsgid, so the server
// learns, from the kernel rather than from the client, which file and
// which user it is dealing with. The argument carries the session's id and
// secret token, which tie the file to the session.
//
// The argument is AttachArgSize bytes, little-endian (the only byte order
// FUSE servers speak to their own kernel):
//
//	offset  size  field
//	 0       8    session id       in
//	 8      16    token            in
//	24       4    file id          out (from 1)
//	28       4    AttachRead|AttachWrite  out: what the open allows
const (
	AttachArgSize = 32
	// AttachIoctl is _IOWR('Z', 0xF0, 32 bytes): the kernel copies the
	// argument to the server and the server's reply back.
	AttachIoctl uint32 = 3<<30 | AttachArgSize<<16 | 'Z'<<8 | 0xF0

	AttachRead  uint32 = 1 << 0 // the file was opened for reading
	AttachWrite uint32 = 1 << 1 // the file was opened for writing
)

// AttachArg is the attach ioctl's argument.
type AttachArg struct {
	SessionID uint64
	Token     [16]byte
	FileID    uint32 // set by the server
	Mode      uint32 // set by the server: AttachRead|AttachWrite
}

// Encode writes a into b, which must hold AttachArgSize bytes.
func (a *AttachArg) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], a.SessionID)
	copy(b[8:24], a.Token[:])
	le.PutUint32(b[24:], a.FileID)
	le.PutUint32(b[28:], a.Mode)
}

// DecodeAttachArg reads an argument; anything but AttachArgSize bytes is
// EINVAL.
func DecodeAttachArg(b []byte) (AttachArg, error) {
	var a AttachArg
	if len(b) != AttachArgSize {
		return a, fmt.Errorf("wire: attach argument of %d bytes, want %d: %w", len(b), AttachArgSize, syscall.EINVAL)
	}
	le := binary.LittleEndian
	a.SessionID = le.Uint64(b[0:])
	copy(a.Token[:], b[8:24])
	a.FileID = le.Uint32(b[24:])
	a.Mode = le.Uint32(b[28:])
	return a, nil
}
