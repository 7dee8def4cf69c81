package main

/*
#include "capi.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"syscall"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/arena"
)

// fillArena hands a new arena to C: its handle plus the cached fields.
func fillArena(a *arena.Arena, out *C.struct_zcfuse_arena) {
	out.handle = C.uintptr_t(cgo.NewHandle(a))
	out.base = unsafe.Pointer(unsafe.SliceData(a.Bytes()))
	out.size = C.size_t(a.Size())
	out.fd = C.int(a.Fd())
}

//export zcfusego_arena_create
func zcfusego_arena_create(size C.size_t, flags C.uint32_t, out *C.struct_zcfuse_arena) C.int {
	if flags&^C.ZCFUSE_ARENA_HUGE != 0 {
		return errnoOf(fmt.Errorf("unknown arena flags %#x: %w", flags&^C.ZCFUSE_ARENA_HUGE, syscall.EINVAL))
	}
	a, err := arena.Create(int64(size), arena.Options{Huge: flags&C.ZCFUSE_ARENA_HUGE != 0})
	if err != nil {
		return errnoOf(err)
	}
	fillArena(a, out)
	return 0
}

//export zcfusego_arena_import
func zcfusego_arena_import(fd C.int, size C.size_t, out *C.struct_zcfuse_arena) C.int {
	a, err := arena.Import(int(fd), int64(size))
	if err != nil {
		return errnoOf(err)
	}
	fillArena(a, out)
	return 0
}

//export zcfusego_arena_close
func zcfusego_arena_close(h C.uintptr_t) {
	cgo.Handle(h).Value().(*arena.Arena).Close()
	cgo.Handle(h).Delete()
}
