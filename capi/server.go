package main

/*
#include "capi.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/cgo"
	"syscall"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/server"
)

var transports = map[C.uint32_t]fusering.Transport{
	C.ZCFUSE_TRANSPORT_AUTO:    fusering.TransportAuto,
	C.ZCFUSE_TRANSPORT_URING:   fusering.TransportURing,
	C.ZCFUSE_TRANSPORT_CLASSIC: fusering.TransportClassic,
}

const knownFlags = C.ZCFUSE_SERVER_ALLOW_OTHER | C.ZCFUSE_SERVER_READ_ONLY | C.ZCFUSE_SERVER_PASSTHROUGH |
	C.ZCFUSE_SERVER_DEBUG | C.ZCFUSE_SERVER_HOOK_COPY

func millis(ms C.uint32_t) time.Duration {
	if ms == C.UINT32_MAX {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

//export zcfusego_server_create
func zcfusego_server_create(o *C.zcfuse_server_opts_t, out *C.uintptr_t) C.int {
	tr, ok := transports[o.transport]
	switch {
	case !ok:
		return errnoOf(fmt.Errorf("unknown transport %d: %w", o.transport, syscall.EINVAL))
	case o.flags&^knownFlags != 0:
		return errnoOf(fmt.Errorf("unknown flags %#x: %w", o.flags&^knownFlags, syscall.EINVAL))
	case o.backing_dir == nil || o.mountpoint == nil:
		return errnoOf(fmt.Errorf("backing_dir and mountpoint are required: %w", syscall.EINVAL))
	}
	srv, err := server.New(C.GoString(o.backing_dir), C.GoString(o.mountpoint), server.Options{
		Transport: tr,
		// The C ABI's documented switch (zcfuse.h, zcfuse_server_start).
		RequireURing: os.Getenv(fusering.RequireURingEnv) == "1",
		QueueDepth:   int(o.queue_depth),
		AllowOther:   o.flags&C.ZCFUSE_SERVER_ALLOW_OTHER != 0,
		ReadOnly:     o.flags&C.ZCFUSE_SERVER_READ_ONLY != 0,
		Passthrough:  o.flags&C.ZCFUSE_SERVER_PASSTHROUGH != 0,
		Debug:        o.flags&C.ZCFUSE_SERVER_DEBUG != 0,
		EntryTimeout: millis(o.entry_timeout_ms),
		AttrTimeout:  millis(o.attr_timeout_ms),
		Hooks:        hooksOf(o),
	})
	if err != nil {
		return errnoOf(err)
	}
	*out = C.uintptr_t(cgo.NewHandle(srv))
	return 0
}

func serverOf(h C.uintptr_t) *server.Server { return cgo.Handle(h).Value().(*server.Server) }

//export zcfusego_server_start
func zcfusego_server_start(h C.uintptr_t) C.int { return errnoOf(serverOf(h).Start()) }

//export zcfusego_server_run
func zcfusego_server_run(h C.uintptr_t) C.int { return errnoOf(serverOf(h).Run()) }

//export zcfusego_server_stop
func zcfusego_server_stop(h C.uintptr_t) C.int { return errnoOf(serverOf(h).Stop()) }

//export zcfusego_server_destroy
func zcfusego_server_destroy(h C.uintptr_t) {
	serverOf(h).Stop()
	cgo.Handle(h).Delete()
}

var transportCodes = map[string]C.uint32_t{
	string(fusering.TransportURing):   C.ZCFUSE_TRANSPORT_URING,
	string(fusering.TransportClassic): C.ZCFUSE_TRANSPORT_CLASSIC,
}

//export zcfusego_server_stats
func zcfusego_server_stats(h C.uintptr_t, out *C.zcfuse_server_stats_t) C.int {
	srv := serverOf(h)
	st := srv.Stats()
	out.version = C.ZCFUSE_SERVER_STATS_VERSION
	out.transport = transportCodes[st.Transport]
	out.queues = C.uint32_t(st.Queues)
	out.queue_depth = C.uint32_t(st.QueueDepth)
	out.running = 0
	if srv.Running() {
		out.running = 1
	}
	out.bytes_read = C.uint64_t(st.BytesRead)
	out.bytes_written = C.uint64_t(st.BytesWritten)
	out.errors = C.uint64_t(st.Errors)
	for i := range fusering.NumOps {
		out.ring_requests[i] = C.uint64_t(st.RingOps[i])
		out.dev_requests[i] = C.uint64_t(st.DevOps[i])
	}
	out.sessions = C.uint64_t(st.Sessions)
	out.arenas = C.uint64_t(st.Arenas)
	out.registered_bytes = C.uint64_t(st.RegisteredBytes)
	out.fixed_slots_used = C.uint64_t(st.FixedSlotsUsed)
	out.attached_files = C.uint64_t(st.AttachedFiles)
	out.zc_ops = C.uint64_t(st.ZCOps)
	out.zc_errors = C.uint64_t(st.ZCErrors)
	out.zc_read_bytes = C.uint64_t(st.ZCReadBytes)
	out.zc_write_bytes = C.uint64_t(st.ZCWriteBytes)
	out.zero_copy_bytes = C.uint64_t(st.ZeroCopyBytes)
	out.copied_bytes = C.uint64_t(st.CopiedBytes)
	out.queue_high_water = C.uint64_t(st.QueueHighWater)
	out.workers = C.uint64_t(st.Workers)
	reason := unsafe.Slice((*byte)(unsafe.Pointer(&out.fallback_reason[0])), len(out.fallback_reason))
	n := copy(reason[:len(reason)-1], st.FallbackReason)
	reason[n] = 0
	return 0
}

// hooksOf wraps the C hooks of o, if any, for the Go server.
func hooksOf(o *C.zcfuse_server_opts_t) *server.Hooks {
	if o.on_write == nil && o.on_read == nil {
		return nil
	}
	h := &server.Hooks{CopyForHooks: o.flags&C.ZCFUSE_SERVER_HOOK_COPY != 0}
	ctx := o.hook_ctx
	wrap := func(fn C.zcfuse_hook_fn) func(server.HookInfo, []byte) {
		if fn == nil {
			return nil
		}
		return func(info server.HookInfo, data []byte) {
			path := C.CString(info.Path)
			defer C.free(unsafe.Pointer(path))
			ci := C.zcfuse_hook_info_t{struct_size: C.uint32_t(unsafe.Sizeof(C.zcfuse_hook_info_t{})),
				session_id: C.uint64_t(info.Session), ino: C.uint64_t(info.Ino), off: C.int64_t(info.Off), path: path}
			if info.Ring {
				ci.flags = C.ZCFUSE_HOOK_RING
			}
			var p unsafe.Pointer
			if len(data) > 0 {
				p = unsafe.Pointer(&data[0])
			}
			C.zcfusei_call_hook(fn, ctx, &ci, p, C.size_t(len(data)))
		}
	}
	h.OnWrite, h.OnRead = wrap(o.on_write), wrap(o.on_read)
	return h
}
