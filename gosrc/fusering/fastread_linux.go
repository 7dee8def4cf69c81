package fusering

import (
	"syscall"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// The READ fast path. go-fuse's ProtocolServer costs a parse and ~1 KB of
// garbage per request; for a 4 KiB read that is most of the server's
// share of the round trip. A ring worker serves a READ itself, one pread
// into the ring payload, when the file system says which backing fd the
// handle reads from (ReadFder); anything else goes the ordinary way. The
// file system keeps the fd open until the handle's RELEASE, which the
// kernel sends only once no READ on the handle is in flight.

// ReadFder is a file system that tells the transport the backing fd of an
// open handle a READ may pread from; ok is false for any handle that must
// be read through the file system.
type ReadFder interface {
	ReadFd(fh uint64) (fd int, ok bool)
}

// fastRead serves a READ whose handle has a known fd; false means it is
// not one (the caller takes the ordinary path).
func (w *ringWorker) fastRead() bool {
	rd := structAt[uapi.FuseReadIn](w.req.OpIn[:])
	if rd == nil {
		return false
	}
	fd, ok := w.c.readFd.ReadFd(rd.Fh)
	if !ok {
		return false
	}
	off := int64(rd.Offset)
	size := min(int(rd.Size), len(w.payload))
	w.c.cnt.ops[chanRing][uapi.FuseOpRead].Add(1)
	w.c.cnt.fastReads.Add(1)
	n, err := unix.Pread(fd, w.payload[:size], off)
	if err != nil {
		errno, _ := err.(syscall.Errno)
		if errno == 0 {
			errno = syscall.EIO
		}
		putError(w.out, w.in.Unique, errno)
		w.c.cnt.errors.Add(1)
		n = 0
	} else {
		w.out.Len = uint32(uapi.FuseOutHeaderSize + n)
		w.out.Error = 0 // Unique is the request's already
		w.c.cnt.bytesRead.Add(uint64(n))
	}
	w.req.Ent.PayloadSz = uint32(n)
	return true
}
