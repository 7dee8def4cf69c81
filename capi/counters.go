package main

/*
#include "capi.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/server"
)

// counterNames are server.CounterNames() as C strings, made once and
// never freed (zcfuse.h: valid for the life of the process), and where
// each name sits among them.
var counterNames = sync.OnceValues(func() ([]*C.char, map[string]int) {
	names := server.CounterNames()
	cs, at := make([]*C.char, len(names)), make(map[string]int, len(names))
	for i, n := range names {
		cs[i], at[n] = C.CString(n), i
	}
	return cs, at
})

//export zcfusego_server_counters
func zcfusego_server_counters(h C.uintptr_t, out *C.zcfuse_counter_t, n C.size_t) C.int {
	names, _ := counterNames()
	if n == 0 {
		return C.int(len(names)) // sizing: no snapshot needed
	}
	cs := serverOf(h).Stats().Counters()
	dst := unsafe.Slice(out, min(n, C.size_t(len(cs))))
	for i := range dst {
		dst[i].name, dst[i].value = names[i], C.uint64_t(cs[i].Value)
	}
	return C.int(len(cs))
}

//export zcfusego_server_counter
func zcfusego_server_counter(h C.uintptr_t, name *C.char, value *C.uint64_t) C.int {
	_, at := counterNames()
	i, ok := at[C.GoString(name)]
	if !ok {
		return errnoOf(fmt.Errorf("no counter named %q: %w", C.GoString(name), syscall.ENOENT))
	}
	*value = C.uint64_t(serverOf(h).Stats().Counters()[i].Value)
	return 0
}

var opNames struct {
	sync.Mutex
	c map[string]*C.char
}

//export zcfusego_opcode_name
func zcfusego_opcode_name(op C.uint32_t) *C.char {
	name := fusering.OpName(uint32(op))
	opNames.Lock()
	defer opNames.Unlock()
	c, ok := opNames.c[name]
	if !ok { // each distinct name once, never freed: zcfuse.h calls it static
		if opNames.c == nil {
			opNames.c = map[string]*C.char{}
		}
		c = C.CString(name)
		opNames.c[name] = c
	}
	return c
}

// limitNames are server.LimitNames() as C strings, made once and never
// freed (zcfuse.h: valid for the life of the process).
var limitNames = sync.OnceValue(func() []*C.char {
	names := server.LimitNames()
	cs := make([]*C.char, len(names))
	for i, n := range names {
		cs[i] = C.CString(n)
	}
	return cs
})

//export zcfusego_limit_name
func zcfusego_limit_name(i C.size_t) *C.char {
	names := limitNames()
	if i >= C.size_t(len(names)) {
		return nil
	}
	return names[i]
}

//export zcfusego_server_set_limit
func zcfusego_server_set_limit(h C.uintptr_t, name *C.char, value C.uint64_t) C.int {
	return errnoOf(serverOf(h).SetLimit(C.GoString(name), uint64(value)))
}

//export zcfusego_server_limit
func zcfusego_server_limit(h C.uintptr_t, name *C.char, value *C.uint64_t) C.int {
	v, ok := serverOf(h).Limit(C.GoString(name))
	if !ok {
		return errnoOf(fmt.Errorf("no limit named %q: %w", C.GoString(name), syscall.ENOENT))
	}
	*value = C.uint64_t(v)
	return 0
}
