package ring

import (
	"runtime"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
)

func runtimeKeepAlive(x any) { runtime.KeepAlive(x) }

func addrOf(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

// PrepNop makes sqe a NOP.
func PrepNop(sqe *uapi.SQE, userData uint64) {
	sqe.Opcode = uapi.OpNop
	sqe.UserData = userData
}

func prepRW(op uint8, sqe *uapi.SQE, fd int, buf []byte, off uint64, userData uint64) {
	sqe.Opcode = op
	sqe.Fd = int32(fd)
	sqe.Addr = addrOf(buf)
	sqe.Len = uint32(len(buf))
	sqe.Off = off
	sqe.UserData = userData
}

// PrepRead makes sqe a READ of len(buf) bytes at off (^uint64(0): the
// file position). buf must stay valid until the completion.
func PrepRead(sqe *uapi.SQE, fd int, buf []byte, off uint64, userData uint64) {
	prepRW(uapi.OpRead, sqe, fd, buf, off, userData)
}

// PrepWrite makes sqe a WRITE of buf at off.
func PrepWrite(sqe *uapi.SQE, fd int, buf []byte, off uint64, userData uint64) {
	prepRW(uapi.OpWrite, sqe, fd, buf, off, userData)
}

// PrepReadFixed makes sqe a READ_FIXED into buf, which must lie inside
// registered buffer slot index.
func PrepReadFixed(sqe *uapi.SQE, fd int, buf []byte, off uint64, index uint16, userData uint64) {
	prepRW(uapi.OpReadFixed, sqe, fd, buf, off, userData)
	sqe.BufIndex = index
}

// PrepWriteFixed makes sqe a WRITE_FIXED from buf, inside slot index.
func PrepWriteFixed(sqe *uapi.SQE, fd int, buf []byte, off uint64, index uint16, userData uint64) {
	prepRW(uapi.OpWriteFixed, sqe, fd, buf, off, userData)
	sqe.BufIndex = index
}

// PrepFsync makes sqe an FSYNC (flags 1: fdatasync).
func PrepFsync(sqe *uapi.SQE, fd int, flags uint32, userData uint64) {
	sqe.Opcode = uapi.OpFsync
	sqe.Fd = int32(fd)
	sqe.OpFlags = flags
	sqe.UserData = userData
}

// PrepUringCmd makes sqe a URING_CMD with command cmdOp on fd; fill the
// command area through Ring.Cmd.
func PrepUringCmd(sqe *uapi.SQE, fd int, cmdOp uint32, userData uint64) {
	sqe.Opcode = uapi.OpUringCmd
	sqe.Fd = int32(fd)
	sqe.Off = uint64(cmdOp)
	sqe.UserData = userData
}

// UseFixedFile makes sqe's Fd an index into the registered-file table.
func UseFixedFile(sqe *uapi.SQE) { sqe.Flags |= uapi.SQEFixedFile }
