package fusering

import (
	"encoding/binary"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// Notification codes (enum fuse_notify_code), sent in the error field of
// an out header with unique 0.
const (
	notifyInvalInode = 2
	notifyInvalEntry = 3
	notifyStore      = 4
	notifyDelete     = 6
)

// Notifier implements go-fuse's fs.ServerCallbacks for a Conn: it
// encodes cache notifications and queues them for one dedicated
// goroutine that writes them to /dev/fuse. A notification never blocks
// the caller: invalidation can wait on page locks that a request being
// served on a ring thread holds, so writing it from that thread could
// deadlock. The methods return OK once the message is queued.
type Notifier struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   [][]byte
	closed  bool
	devFd   int
	started bool
	done    chan struct{}
	// now is held (shared) by InvalidateNow while it writes devFd, so
	// stop can wait for those writes before the fd is closed.
	now sync.RWMutex
}

var _ fs.ServerCallbacks = (*Notifier)(nil)

func newNotifier(devFd int) *Notifier {
	n := &Notifier{devFd: devFd, done: make(chan struct{})}
	n.cond = sync.NewCond(&n.mu)
	return n
}

// start begins writing queued notifications to /dev/fuse.
func (n *Notifier) start() {
	n.mu.Lock()
	n.started = true
	n.mu.Unlock()
	go n.run()
}

func (n *Notifier) run() {
	defer close(n.done)
	for {
		n.mu.Lock()
		for len(n.queue) == 0 && !n.closed {
			n.cond.Wait()
		}
		if n.closed {
			n.mu.Unlock()
			return
		}
		msgs := n.queue
		n.queue = nil
		fd := n.devFd
		n.mu.Unlock()
		for _, m := range msgs {
			// A notification is advice to the kernel's caches: ENOENT (the
			// kernel no longer knows the inode) and ENODEV (unmounted) need
			// nothing, and no caller waits for the outcome.
			unix.Write(fd, m)
		}
	}
}

// stop drops what is still queued and ends the writer.
func (n *Notifier) stop() {
	n.mu.Lock()
	started := n.started
	n.closed = true
	n.queue = nil
	n.cond.Broadcast()
	n.mu.Unlock()
	n.now.Lock() // no InvalidateNow writes devFd any more
	n.now.Unlock()
	if started {
		<-n.done
	}
}

func (n *Notifier) enqueue(code int32, body ...[]byte) fuse.Status {
	size := uapi.FuseOutHeaderSize
	for _, b := range body {
		size += len(b)
	}
	msg := make([]byte, uapi.FuseOutHeaderSize, size)
	binary.NativeEndian.PutUint32(msg[0:], uint32(size))
	binary.NativeEndian.PutUint32(msg[4:], uint32(code))
	for _, b := range body {
		msg = append(msg, b...)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fuse.Status(syscall.ENOTCONN)
	}
	n.queue = append(n.queue, msg)
	n.cond.Signal()
	return fuse.OK
}

func le64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func nameBody(name string) []byte { return append([]byte(name), 0) }

// InodeNotify invalidates the cached data [off, off+length) and the
// attributes of node (length < 0: to the end; off < 0: attributes only).
func (n *Notifier) InodeNotify(node uint64, off int64, length int64) fuse.Status {
	return n.enqueue(notifyInvalInode, le64(node), le64(uint64(off)), le64(uint64(length)))
}

// InvalidateNow invalidates node's attributes and its cached data
// [off, off+length) at once, from the calling thread, and returns when
// the kernel has done it (so a reader through the mount sees what was
// written around the kernel). It can wait on page locks held by requests
// in flight: never call it from a thread that serves FUSE requests (a
// ring thread or a /dev/fuse reader). ENOENT (the kernel no longer knows
// the inode: nothing cached) is success.
func (n *Notifier) InvalidateNow(node uint64, off, length int64) error {
	n.now.RLock()
	defer n.now.RUnlock()
	n.mu.Lock()
	fd, closed := n.devFd, n.closed
	n.mu.Unlock()
	if closed {
		return syscall.ENOTCONN
	}
	var msg [uapi.FuseOutHeaderSize + 24]byte
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint32(msg[4:], uint32(notifyInvalInode))
	binary.NativeEndian.PutUint64(msg[uapi.FuseOutHeaderSize:], node)
	binary.NativeEndian.PutUint64(msg[uapi.FuseOutHeaderSize+8:], uint64(off))
	binary.NativeEndian.PutUint64(msg[uapi.FuseOutHeaderSize+16:], uint64(length))
	for {
		_, err := unix.Write(fd, msg[:])
		switch err {
		case unix.EINTR:
			continue
		case nil, unix.ENOENT:
			return nil
		}
		return err
	}
}

// EntryNotify invalidates the cached lookup of name in parent.
func (n *Notifier) EntryNotify(parent uint64, name string) fuse.Status {
	hdr := le64(parent)
	hdr = binary.NativeEndian.AppendUint32(hdr, uint32(len(name)))
	hdr = binary.NativeEndian.AppendUint32(hdr, 0)
	return n.enqueue(notifyInvalEntry, hdr, nameBody(name))
}

// DeleteNotify tells the kernel that child was removed as name from parent.
func (n *Notifier) DeleteNotify(parent uint64, child uint64, name string) fuse.Status {
	hdr := le64(parent)
	hdr = append(hdr, le64(child)...)
	hdr = binary.NativeEndian.AppendUint32(hdr, uint32(len(name)))
	hdr = binary.NativeEndian.AppendUint32(hdr, 0)
	return n.enqueue(notifyDelete, hdr, nameBody(name))
}

// InodeNotifyStoreCache puts data into the kernel's page cache of node.
func (n *Notifier) InodeNotifyStoreCache(node uint64, offset int64, data []byte) fuse.Status {
	hdr := le64(node)
	hdr = append(hdr, le64(uint64(offset))...)
	hdr = binary.NativeEndian.AppendUint32(hdr, uint32(len(data)))
	hdr = binary.NativeEndian.AppendUint32(hdr, 0)
	return n.enqueue(notifyStore, hdr, data)
}

// InodeRetrieveCache is not supported: it needs a reply routed back to
// the caller, which would block the caller on the notification writer.
func (n *Notifier) InodeRetrieveCache(node uint64, offset int64, dest []byte) (int, fuse.Status) {
	return 0, fuse.ENOSYS
}

// passthroughNotifier adds the backing-file calls a file system looks
// for to enable kernel FUSE passthrough. Only a Conn opened with
// Passthrough hands it out, so the default mount keeps READ and WRITE in
// the server.
type passthroughNotifier struct {
	*Notifier
}

// RegisterBackingFd registers m.Fd as a backing file (CAP_SYS_ADMIN).
func (p passthroughNotifier) RegisterBackingFd(m *fuse.BackingMap) (int32, syscall.Errno) {
	bm := uapi.FuseBackingMap{Fd: m.Fd, Flags: m.Flags}
	id, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(p.fd()), uapi.FuseDevIocBackingOpen, uintptr(unsafePointer(&bm)))
	if errno != 0 {
		return 0, errno
	}
	return int32(id), 0
}

// UnregisterBackingFd drops a backing file id.
func (p passthroughNotifier) UnregisterBackingFd(id int32) syscall.Errno {
	v := uint32(id)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(p.fd()), uapi.FuseDevIocBackingClose, uintptr(unsafePointer(&v)))
	return errno
}

func (n *Notifier) fd() int { return n.devFd }
