package fusering

import (
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// This file is the package's only use of unsafe. Kernel structures
// (gosrc/uapi) are read and written in place, through a typed pointer
// laid over the bytes they live in: a ring entry's header, a request
// read from /dev/fuse, an SQE's command area. Nothing is copied and
// nothing allocated, so the request path may use it freely.
//
// The rules: a view is made only by structAt, which checks that the
// bytes are long enough and aligned for the struct and otherwise returns
// nil, so a short request never reads past its buffer (the caller
// answers it with an error instead). The memory must outlive the view:
// mmap'd ring memory, or a buffer the caller holds while it uses the
// view. Only the pointer-free kernel structs of kernelStruct can be
// viewed; a Go pointer must never be stored in memory the kernel owns.

// kernelStruct lists the uapi structures the transport views or
// encodes: plain data in the kernel's layout, no Go pointers.
type kernelStruct interface {
	uapi.FuseURingReqHeader | uapi.FuseURingCmdReq |
		uapi.FuseInHeader | uapi.FuseOutHeader |
		uapi.FuseInitIn | uapi.FuseReadIn | uapi.FuseWriteOut |
		uapi.FuseNotifyInvalInodeOut | uapi.FuseNotifyInvalEntryOut |
		uapi.FuseNotifyDeleteOut | uapi.FuseNotifyStoreOut |
		uapi.FuseBackingMap
}

// structAt returns the first sizeof(T) bytes of b as a *T sharing b's
// memory, or nil when b is shorter than T or not aligned for it.
func structAt[T kernelStruct](b []byte) *T {
	var zero T
	if uintptr(len(b)) < unsafe.Sizeof(zero) {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%unsafe.Alignof(zero) != 0 {
		return nil
	}
	return (*T)(p)
}

// bytesOf returns the bytes of *p (sizeof(T) of them), sharing its
// memory: to copy a struct into a message, or a prefix of a message
// into a zeroed struct, where the message need not be aligned.
func bytesOf[T kernelStruct](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// inHeaderUniqueEnd is how many bytes of a fuse_in_header a request
// needs before it can be answered at all: everything up to and
// including unique.
const inHeaderUniqueEnd = int(unsafe.Offsetof(uapi.FuseInHeader{}.Unique) + unsafe.Sizeof(uapi.FuseInHeader{}.Unique))

// initInMin is the least of a fuse_init_in that INIT must carry: major
// and minor.
const initInMin = int(unsafe.Offsetof(uapi.FuseInitIn{}.MaxReadahead))

// iovecsAt returns the first n iovecs' worth of b as []unix.Iovec, or nil
// when b is too short or misaligned. b must be mmap'd memory: the kernel
// keeps the address, and the iovecs point only at mmap'd memory too.
func iovecsAt(b []byte, n int) []unix.Iovec {
	var zero unix.Iovec
	if n <= 0 || uintptr(len(b)) < uintptr(n)*unsafe.Sizeof(zero) {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%unsafe.Alignof(zero) != 0 {
		return nil
	}
	return unsafe.Slice((*unix.Iovec)(p), n)
}

// addrOf is the address of *p for an SQE field. p must point into
// mmap'd memory, which the Go runtime neither moves nor frees.
func addrOf[T any](p *T) uint64 { return uint64(uintptr(unsafe.Pointer(p))) }

// unsafePointer is p as an unsafe.Pointer, for an ioctl argument: the
// caller converts it to uintptr inside the unix.Syscall argument list, so
// *p stays put for the call.
func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
