package passthrough

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The allowed commands (see the package doc for why these and no others).
const (
	// FSIocGetFlags is FS_IOC_GETFLAGS, _IOR('f', 1, long).
	FSIocGetFlags = 0x80086601
	// FSIocFSGetXattr is FS_IOC_FSGETXATTR, _IOR('X', 31, struct fsxattr).
	FSIocFSGetXattr = 0x801c581f
)

// scratchSize bounds what an allowed command may write: more than
// struct fsxattr (28 bytes) and an unsigned long (8).
const scratchSize = 64

// allowed maps each allowed command to the most bytes it writes.
var allowed = map[uint32]int{
	FSIocGetFlags:   8,
	FSIocFSGetXattr: 28,
}

// Allowed reports whether cmd is on the allow-list.
func Allowed(cmd uint32) bool {
	_, ok := allowed[cmd]
	return ok
}

// IoctlFunc runs cmd on a backing file with buf as the argument's memory.
type IoctlFunc func(cmd uint32, buf []byte) syscall.Errno

// FdIoctl is an IoctlFunc on fd.
func FdIoctl(fd int) IoctlFunc {
	return func(cmd uint32, buf []byte) syscall.Errno {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(unsafe.Pointer(&buf[0])))
		return e
	}
}

// Ioctl answers a FUSE ioctl by the allow-list: ENOTTY for a command not
// on it; otherwise call runs cmd into a zeroed scratch buffer, and output
// gets its prefix, the rest zeroed. The result is 0 on success.
func Ioctl(cmd uint32, output []byte, call IoctlFunc) (int32, syscall.Errno) {
	if _, ok := allowed[cmd]; !ok {
		clear(output)
		return 0, syscall.ENOTTY
	}
	var scratch [scratchSize]byte
	errno := call(cmd, scratch[:])
	clear(output)
	if errno != 0 {
		return 0, errno
	}
	copy(output, scratch[:])
	return 0, 0
}
