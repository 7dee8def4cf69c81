package fusering

import (
	"encoding/binary"
	"sync"
	"syscall"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// The READ fast path. go-fuse's ProtocolServer costs a parse and ~1 KB of
// garbage per request; for a 4 KiB read that is most of the server's
// share of the round trip. A ring worker that knows the backing fd of a
// file handle serves READ itself: one pread into the ring payload.
//
// The worker learns the fd while it serves the OPEN or CREATE that made
// the handle: the node tree calls NoteOpenFd from its Open, which runs on
// the worker's own locked thread, and the worker files the fd under the
// handle in the reply. RELEASE removes the entry on whichever channel it
// arrives, before go-fuse closes the fd. A handle opened anywhere else
// (the /dev/fuse loop, a node tree that never calls NoteOpenFd) simply
// goes the ordinary way.

// workersByTid finds the ring worker running on a locked OS thread.
var workersByTid sync.Map // int (tid) -> *ringWorker

// NoteOpenFd tells the ring worker serving the current OPEN or CREATE
// that the handle it returns reads from fd with plain pread. It does
// nothing off a ring worker's thread. The fd must stay open until the
// handle's RELEASE has been served.
func NoteOpenFd(fd int) {
	if w, ok := workersByTid.Load(unix.Gettid()); ok {
		w.(*ringWorker).openFd = fd
	}
}

// fastFds maps FUSE file handles to backing fds.
type fastFds struct{ m sync.Map } // uint64 -> int

const (
	opOpen    = 14
	opRelease = 18
	opCreate  = 35
	// entryOutSize is sizeof(struct fuse_entry_out): CREATE's reply
	// carries it before the fuse_open_out.
	entryOutSize = 128
)

// forget drops a handle being released (fuse_release_in.fh).
func (f *fastFds) forget(op uint32, arg []byte) {
	if op == opRelease && len(arg) >= 8 {
		f.m.Delete(binary.NativeEndian.Uint64(arg))
	}
}

// noteReply files the fd the node tree noted under the handle of a
// successful OPEN or CREATE reply in payload.
func (f *fastFds) noteReply(op uint32, hdr, payload []byte, fd int) {
	if fd < 0 || binary.NativeEndian.Uint32(hdr[4:]) != 0 {
		return
	}
	switch op {
	case opOpen:
		f.m.Store(binary.NativeEndian.Uint64(payload), fd)
	case opCreate:
		f.m.Store(binary.NativeEndian.Uint64(payload[entryOutSize:]), fd)
	}
}

// fastRead serves a READ whose handle has a known fd; false means it is
// not one (the caller takes the ordinary path).
func (w *ringWorker) fastRead() bool {
	hdr := w.hdr
	in := hdr[uapi.FuseURingOpInOff:] // struct fuse_read_in
	v, ok := w.c.fast.m.Load(binary.NativeEndian.Uint64(in[0:]))
	if !ok {
		return false
	}
	off := int64(binary.NativeEndian.Uint64(in[8:]))
	size := min(int(binary.NativeEndian.Uint32(in[16:])), len(w.payload))
	w.c.cnt.ops[chanRing][opRead].Add(1)
	w.c.cnt.fastReads.Add(1)
	n, err := unix.Pread(v.(int), w.payload[:size], off)
	if err != nil {
		errno, _ := err.(syscall.Errno)
		if errno == 0 {
			errno = syscall.EIO
		}
		putErrorHeader(hdr, hdr, errno)
		w.c.cnt.errors.Add(1)
		n = 0
	} else {
		binary.NativeEndian.PutUint32(hdr[0:], uint32(uapi.FuseOutHeaderSize+n))
		binary.NativeEndian.PutUint32(hdr[4:], 0) // unique stays in hdr[8:16]
		w.c.cnt.bytesRead.Add(uint64(n))
	}
	binary.NativeEndian.PutUint32(hdr[uapi.FuseURingPayloadSzOff:], uint32(n))
	return true
}
