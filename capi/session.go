package main

/*
#include "capi.h"
*/
import "C"

import (
	"runtime/cgo"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
)

func sessionOf(h C.uintptr_t) *client.Session { return cgo.Handle(h).Value().(*client.Session) }

//export zcfusego_connect
func zcfusego_connect(mnt *C.char, out *C.uintptr_t) C.int {
	s, err := client.Connect(C.GoString(mnt))
	if err != nil {
		return errnoOf(err)
	}
	*out = C.uintptr_t(cgo.NewHandle(s))
	return 0
}

//export zcfusego_share
func zcfusego_share(h, ah C.uintptr_t, id *C.uint32_t, flags *C.uint32_t) C.int {
	arenaID, registered, err := sessionOf(h).Share(cgo.Handle(ah).Value().(*arena.Arena))
	if err != nil {
		return errnoOf(err)
	}
	*id = C.uint32_t(arenaID)
	*flags = 0
	if registered {
		*flags = C.ZCFUSE_SHARED_REGISTERED
	}
	return 0
}

//export zcfusego_unshare
func zcfusego_unshare(h C.uintptr_t, id C.uint32_t) C.int {
	return errnoOf(sessionOf(h).Unshare(uint32(id)))
}

//export zcfusego_attach
func zcfusego_attach(h C.uintptr_t, fd C.int, id *C.uint32_t) C.int {
	fileID, err := sessionOf(h).Attach(int(fd))
	if err != nil {
		return errnoOf(err)
	}
	*id = C.uint32_t(fileID)
	return 0
}

//export zcfusego_detach
func zcfusego_detach(h C.uintptr_t, id C.uint32_t) C.int {
	return errnoOf(sessionOf(h).Detach(uint32(id)))
}

//export zcfusego_session_stats
func zcfusego_session_stats(h C.uintptr_t, out *C.zcfuse_session_stats_t) C.int {
	s := sessionOf(h)
	st, err := s.Stats()
	if err != nil {
		return errnoOf(err)
	}
	out.version = C.ZCFUSE_SESSION_STATS_VERSION
	out.session_id = C.uint64_t(s.ID())
	out.sessions = C.uint64_t(st.Sessions)
	out.arenas = C.uint64_t(st.Arenas)
	out.registered_bytes = C.uint64_t(st.RegisteredBytes)
	out.attached_files = C.uint64_t(st.AttachedFiles)
	return 0
}

//export zcfusego_close
func zcfusego_close(h C.uintptr_t) C.int {
	err := sessionOf(h).Close()
	cgo.Handle(h).Delete()
	return errnoOf(err)
}
