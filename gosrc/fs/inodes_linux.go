package fs

import (
	"container/list"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The inode table. Every inode the kernel remembers (it counts lookups,
// FORGET gives them back) has an entry under a node id of our own, never
// reused (so FUSE generations stay 0), and is reached through an fd on
// the inode itself, never through a name:
//
//   - with file handles (a root server on a backing file system that has
//     them: name_to_handle_at), the entry keeps the handle, and an O_PATH
//     fd only while it is in use or among the most recently used (fdCache,
//     bounded); an evicted fd is opened again with open_by_handle_at,
//     which needs CAP_DAC_READ_SEARCH, so pin runs before a request
//     switches to its caller. The table's key is the handle, which carries
//     the inode's generation: an inode number reused by a new file is a new
//     entry.
//   - without them (a server that is not root, or a file system without
//     handles), the entry keeps its O_PATH fd for as long as the kernel
//     remembers it; the key is dev/ino, and the held fd keeps the inode
//     number from being reused. The tree a client can walk at once is then
//     bounded by RLIMIT_NOFILE; past it lookups fail with EMFILE.

// inode is one entry.
type inode struct {
	id     uint64
	key    string
	ftype  uint32 // S_IFMT bits
	ino    uint64
	handle *unix.FileHandle // nil: the fd is held for good

	nlookup uint64 // guarded by table.mu

	// Guarded by fdCache.mu.
	fd    int // an O_PATH fd, or -1
	users int32
	elem  *list.Element // in fdCache.idle while fd >= 0 && users == 0 && handle != nil
	dead  bool          // forgotten: the last user closes fd
	idled int64         // when it went idle (monotonic ns, fdCache.now)

	killPriv nosec

	// Kernel passthrough: the backing id registered for this inode and
	// how many open handles use it; guarded by bmu.
	bmu       sync.Mutex
	backingID int32
	backingN  int
}

// table maps node ids and keys to inodes.
type table struct {
	mu    sync.RWMutex
	byID  map[uint64]*inode
	byKey map[string]*inode
	next  uint64
	cache fdCache
}

// fdCache bounds the O_PATH fds held for inodes that have file handles.
type fdCache struct {
	mu      sync.Mutex
	idle    list.List // least recently used first
	open    int       // evictable fds open (in use or idle)
	held    int       // fds of entries without handles, held until forgotten
	max     int       // bound on open
	mountFd int       // open_by_handle_at's mount fd (not O_PATH)
	opened  atomic.Uint64
	stop    chan struct{}
}

// IdleFdTTL is how long an fd of a handle-backed inode stays open unused.
const IdleFdTTL = time.Second

// start sweeps fds idle for IdleFdTTL, every IdleFdTTL, until stopSweep.
func (c *fdCache) start() {
	c.stop = make(chan struct{})
	go func() {
		t := time.NewTicker(IdleFdTTL)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.sweep(c.now() - int64(IdleFdTTL))
			}
		}
	}()
}

func (c *fdCache) stopSweep() {
	if c.stop != nil {
		close(c.stop)
	}
}

var epoch = time.Now()

func (c *fdCache) now() int64 { return int64(time.Since(epoch)) }

// sweep closes the idle fds that went idle before t: the idle list is in
// the order they went idle.
func (c *fdCache) sweep(t int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.idle.Front(); e != nil; e = c.idle.Front() {
		in := e.Value.(*inode)
		if in.idled > t {
			return
		}
		c.closeLocked(in)
	}
}

func newTable(maxFds, mountFd int) *table {
	t := &table{byID: map[uint64]*inode{}, byKey: map[string]*inode{}, next: rootID + 1}
	t.cache.max, t.cache.mountFd = maxFds, mountFd
	return t
}

// rootID is FUSE's root node id.
const rootID = 1

// keyOf is an inode's table key: its file handle, or dev/ino.
func keyOf(h *unix.FileHandle, st *unix.Stat_t) string {
	if h != nil {
		b := make([]byte, 4, 4+len(h.Bytes()))
		binary.NativeEndian.PutUint32(b, uint32(h.Type()))
		return string(append(b, h.Bytes()...))
	}
	var b [17]byte
	b[0] = 'i'
	binary.NativeEndian.PutUint64(b[1:], st.Dev)
	binary.NativeEndian.PutUint64(b[9:], st.Ino)
	return string(b[:])
}

// ref finds or makes the entry for the inode fd refers to (an O_PATH fd
// the table takes over), counting one kernel lookup.
func (t *table) ref(fd int, h *unix.FileHandle, st *unix.Stat_t) *inode {
	key := keyOf(h, st)
	t.mu.Lock()
	if in := t.byKey[key]; in != nil {
		in.nlookup++
		t.mu.Unlock()
		t.cache.offer(in, fd)
		return in
	}
	in := &inode{id: t.next, key: key, ftype: st.Mode & unix.S_IFMT, ino: st.Ino, handle: h, nlookup: 1, fd: fd}
	t.next++
	t.byID[in.id] = in
	t.byKey[key] = in
	t.mu.Unlock()
	t.cache.adopt(in)
	return in
}

// setRoot enters the root directory, held for good.
func (t *table) setRoot(fd int, st *unix.Stat_t) *inode {
	in := &inode{id: rootID, key: keyOf(nil, st), ftype: unix.S_IFDIR, ino: st.Ino, nlookup: 1, fd: fd}
	t.byID[rootID] = in
	return in
}

// get returns the entry of node id, or nil.
func (t *table) get(id uint64) *inode {
	t.mu.RLock()
	in := t.byID[id]
	t.mu.RUnlock()
	return in
}

// forget gives back n kernel lookups of node id; the entry goes with the
// last.
func (t *table) forget(id, n uint64) {
	if id == rootID {
		return
	}
	t.mu.Lock()
	in := t.byID[id]
	if in == nil {
		t.mu.Unlock()
		return
	}
	in.nlookup -= min(n, in.nlookup)
	if in.nlookup > 0 {
		t.mu.Unlock()
		return
	}
	delete(t.byID, id)
	if t.byKey[in.key] == in {
		delete(t.byKey, in.key)
	}
	t.mu.Unlock()
	t.cache.drop(in)
}

// size is the number of entries (the root included).
func (t *table) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}

// adopt accounts for a new entry's fd.
func (c *fdCache) adopt(in *inode) {
	c.mu.Lock()
	if in.handle == nil {
		c.held++
		c.mu.Unlock()
		return
	}
	c.open++
	c.idleLocked(in)
	c.evictLocked()
	c.mu.Unlock()
}

// offer gives an existing entry a fresh fd of its inode when it has none;
// otherwise fd is closed.
func (c *fdCache) offer(in *inode, fd int) {
	c.mu.Lock()
	if in.fd < 0 && !in.dead {
		in.fd = fd
		c.open++
		c.idleLocked(in)
		c.evictLocked()
		fd = -1
	}
	c.mu.Unlock()
	if fd >= 0 {
		unix.Close(fd)
	}
}

// acquire returns an fd of in, kept open until release.
func (c *fdCache) acquire(in *inode) (int, syscall.Errno) {
	c.mu.Lock()
	if in.fd >= 0 {
		if in.elem != nil {
			c.idle.Remove(in.elem)
			in.elem = nil
		}
		in.users++
		fd := in.fd
		c.mu.Unlock()
		return fd, 0
	}
	c.mu.Unlock()
	if in.handle == nil {
		return -1, syscall.ESTALE
	}
	fd, err := unix.OpenByHandleAt(c.mountFd, *in.handle, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return -1, errnoOf(err)
	}
	c.opened.Add(1)
	c.mu.Lock()
	if in.fd >= 0 { // another request opened it meanwhile
		unix.Close(fd)
		if in.elem != nil {
			c.idle.Remove(in.elem)
			in.elem = nil
		}
	} else {
		in.fd = fd
		c.open++
	}
	in.users++
	fd = in.fd
	c.evictLocked()
	c.mu.Unlock()
	return fd, 0
}

// release ends a use that acquire began.
func (c *fdCache) release(in *inode) {
	c.mu.Lock()
	in.users--
	if in.users == 0 {
		if in.dead {
			c.closeLocked(in)
		} else {
			c.idleLocked(in)
			c.evictLocked()
		}
	}
	c.mu.Unlock()
}

// drop closes a forgotten entry's fd, now or when its last user is done.
func (c *fdCache) drop(in *inode) {
	c.mu.Lock()
	in.dead = true
	if in.users == 0 {
		c.closeLocked(in)
	}
	c.mu.Unlock()
}

func (c *fdCache) idleLocked(in *inode) {
	if in.handle != nil && in.fd >= 0 && in.users == 0 && in.elem == nil {
		in.idled = c.now()
		in.elem = c.idle.PushBack(in)
	}
}

func (c *fdCache) closeLocked(in *inode) {
	if in.elem != nil {
		c.idle.Remove(in.elem)
		in.elem = nil
	}
	if in.fd >= 0 {
		unix.Close(in.fd)
		in.fd = -1
		if in.handle != nil {
			c.open--
		} else {
			c.held--
		}
	}
}

// evictLocked closes the least recently used idle fds beyond max.
func (c *fdCache) evictLocked() {
	for c.open > c.max {
		e := c.idle.Front()
		if e == nil {
			return
		}
		c.closeLocked(e.Value.(*inode))
	}
}
