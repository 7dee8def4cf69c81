package fusering

import (
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
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

// notification encodes a notification into dst's memory (a new buffer
// when dst is too small): a fuse_out_header with code and unique 0, the
// code's body (a uapi.FuseNotify*Out), then the tail pieces (a name and
// its NUL, or data).
func notification(dst []byte, code uapi.FuseNotifyCode, body []byte, tail ...[]byte) []byte {
	size := uapi.FuseOutHeaderSize + len(body)
	for _, t := range tail {
		size += len(t)
	}
	if cap(dst) < size {
		dst = make([]byte, 0, size)
	}
	hdr := uapi.FuseOutHeader{Len: uint32(size), Error: int32(code)}
	msg := append(dst[:0], bytesOf(&hdr)...)
	msg = append(msg, body...)
	for _, t := range tail {
		msg = append(msg, t...)
	}
	return msg
}

// nul ends the name in an entry notification.
var nul = []byte{0}

// enqueue queues a notification for the writer.
func (n *Notifier) enqueue(code uapi.FuseNotifyCode, body []byte, tail ...[]byte) fuse.Status {
	msg := notification(nil, code, body, tail...)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fuse.Status(syscall.ENOTCONN)
	}
	n.queue = append(n.queue, msg)
	n.cond.Signal()
	return fuse.OK
}

// InodeNotify invalidates the cached data [off, off+length) and the
// attributes of node (length < 0: to the end; off < 0: attributes only).
func (n *Notifier) InodeNotify(node uint64, off int64, length int64) fuse.Status {
	body := uapi.FuseNotifyInvalInodeOut{Ino: node, Off: off, Len: length}
	return n.enqueue(uapi.FuseNotifyInvalInode, bytesOf(&body))
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
	body := uapi.FuseNotifyInvalInodeOut{Ino: node, Off: off, Len: length}
	var buf [64]byte
	msg := notification(buf[:0], uapi.FuseNotifyInvalInode, bytesOf(&body))
	for {
		_, err := unix.Write(fd, msg)
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
	body := uapi.FuseNotifyInvalEntryOut{Parent: parent, Namelen: uint32(len(name))}
	return n.enqueue(uapi.FuseNotifyInvalEntry, bytesOf(&body), []byte(name), nul)
}

// DeleteNotify tells the kernel that child was removed as name from parent.
func (n *Notifier) DeleteNotify(parent uint64, child uint64, name string) fuse.Status {
	body := uapi.FuseNotifyDeleteOut{Parent: parent, Child: child, Namelen: uint32(len(name))}
	return n.enqueue(uapi.FuseNotifyDelete, bytesOf(&body), []byte(name), nul)
}

// InodeNotifyStoreCache puts data into the kernel's page cache of node.
func (n *Notifier) InodeNotifyStoreCache(node uint64, offset int64, data []byte) fuse.Status {
	body := uapi.FuseNotifyStoreOut{NodeID: node, Offset: uint64(offset), Size: uint32(len(data))}
	return n.enqueue(uapi.FuseNotifyStore, bytesOf(&body), data)
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
