package main

/*
#include "capi.h"
*/
import "C"

import (
	"errors"
	"syscall"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/client"
)

// bytesAt views C memory (an arena, or the caller's buffer) as a slice.
func bytesAt(p unsafe.Pointer, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

func result(n int, err error) C.int64_t {
	if err != nil {
		return C.int64_t(errnoOf(err))
	}
	return C.int64_t(n)
}

//export zcfusego_pwrite
func zcfusego_pwrite(h C.uintptr_t, file C.uint32_t, buf unsafe.Pointer, n C.size_t, off C.int64_t, flags C.uint32_t) C.int64_t {
	return result(sessionOf(h).Pwrite(uint32(file), bytesAt(buf, n), int64(off), uint32(flags)))
}

//export zcfusego_pread
func zcfusego_pread(h C.uintptr_t, file C.uint32_t, buf unsafe.Pointer, n C.size_t, off C.int64_t, flags C.uint32_t) C.int64_t {
	return result(sessionOf(h).Pread(uint32(file), bytesAt(buf, n), int64(off), uint32(flags)))
}

//export zcfusego_pwrite_arena
func zcfusego_pwrite_arena(h C.uintptr_t, file, arena C.uint32_t, arenaOff C.uint64_t, n C.size_t, off C.int64_t, flags C.uint32_t) C.int64_t {
	return result(sessionOf(h).PwriteArena(uint32(file), uint32(arena), uint64(arenaOff), uint64(n), int64(off), uint32(flags)))
}

//export zcfusego_pread_arena
func zcfusego_pread_arena(h C.uintptr_t, file, arena C.uint32_t, arenaOff C.uint64_t, n C.size_t, off C.int64_t, flags C.uint32_t) C.int64_t {
	return result(sessionOf(h).PreadArena(uint32(file), uint32(arena), uint64(arenaOff), uint64(n), int64(off), uint32(flags)))
}

//export zcfusego_fsync
func zcfusego_fsync(h C.uintptr_t, file C.uint32_t, flags C.uint32_t) C.int {
	return errnoOf(sessionOf(h).Fsync(uint32(file), uint32(flags)))
}

//export zcfusego_submit
func zcfusego_submit(h C.uintptr_t, ops *C.zcfuse_op_t, n C.uint) C.int {
	cops := unsafe.Slice(ops, int(n))
	gops := make([]client.Op, len(cops))
	for i := range cops {
		c := &cops[i]
		gops[i] = client.Op{Opcode: uint8(c.opcode), Flags: uint32(c.flags), File: uint32(c.file_id),
			Arena: uint32(c.arena_id), Len: uint64(c.len), Off: int64(c.off), UserData: uint64(c.user_data)}
		switch {
		case c.flags&C.ZCFUSE_F_ARENA != 0:
			gops[i].ArenaOff = *(*uint64)(unsafe.Pointer(&c.anon0)) // the union's arena_off
		case c.len > 1<<62:
			gops[i].Opcode = 0 // no buffer is that long: completes with -EINVAL
		default:
			gops[i].Buf = bytesAt(*(*unsafe.Pointer)(unsafe.Pointer(&c.anon0)), C.size_t(c.len)) // the union's buf
		}
	}
	taken, err := sessionOf(h).Submit(gops)
	if err != nil && taken == 0 {
		return errnoOf(err)
	}
	return C.int(taken)
}

//export zcfusego_wait
func zcfusego_wait(h C.uintptr_t, cqes *C.zcfuse_cqe_t, min, max C.uint, timeoutMs C.int) C.int {
	out := make([]client.Completion, int(max))
	timeout := time.Duration(timeoutMs) * time.Millisecond
	if timeoutMs < 0 {
		timeout = -1
	}
	n, err := sessionOf(h).Wait(out, int(min), timeout)
	dst := unsafe.Slice(cqes, int(max))
	for i := range n {
		dst[i] = C.zcfuse_cqe_t{user_data: C.uint64_t(out[i].UserData), res: C.int64_t(out[i].Res)}
	}
	if err != nil && n == 0 {
		if errors.Is(err, syscall.ETIME) {
			return -C.int(syscall.ETIME)
		}
		return errnoOf(err)
	}
	return C.int(n)
}

//export zcfusego_session_fd
func zcfusego_session_fd(h C.uintptr_t) C.int {
	if fd := sessionOf(h).Fd(); fd > 0 {
		return C.int(fd)
	}
	return -C.int(syscall.EBADF)
}

//export zcfusego_session_set_mode
func zcfusego_session_set_mode(h C.uintptr_t, mode C.int, spinUs C.uint) C.int {
	if mode != C.ZCFUSE_MODE_SLEEP && mode != C.ZCFUSE_MODE_POLL {
		return -C.int(syscall.EINVAL)
	}
	sessionOf(h).SetMode(client.Mode(mode), time.Duration(spinUs)*time.Microsecond)
	return 0
}
