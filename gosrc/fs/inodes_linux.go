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
// the inode itself, never through a name. The table's key is dev/ino.
//
//   - With file handles (a root server on a backing file system that
//     makes them), an entry is evictable: it keeps an O_PATH fd only while
//     it is in use or among the most recently used (fdCache: at most max,
//     none idle for longer than IdleFdTTL). Before its fd is closed the
//     entry takes the inode's file handle (name_to_handle_at), and later
//     uses open the inode again with open_by_handle_at, which needs
//     CAP_DAC_READ_SEARCH, so pin runs before a request switches to its
//     caller. While an entry's fd is open its inode cannot be freed, so a
//     lookup that finds the same dev/ino has found the same inode; once
//     the fd is closed the inode number may be reused by a new file, so a
//     lookup compares file handles, which carry the inode's generation, and
//     a mismatch gets a new entry. Looking up costs no file handle: only
//     eviction takes one.
//   - Without them (a server that is not root, a file system without
//     handles, a mount crossed with CrossMounts), the entry keeps its
//     O_PATH fd for as long as the kernel remembers it. The tree a client
//     can walk at once is then bounded by RLIMIT_NOFILE; past it lookups
//     fail with EMFILE.

// inode is one entry.
type inode struct {
	id    uint64
	key   string
	ftype uint32 // S_IFMT bits
	ino   uint64
	// evictable: the fd may be closed and the inode opened again from
	// handle, which eviction takes (guarded by fdCache.mu).
	evictable bool
	handle    *unix.FileHandle

	nlookup uint64 // guarded by table.mu

	// Guarded by fdCache.mu.
	fd    int // an O_PATH fd, or -1
	users int32
	elem  *list.Element // in fdCache.idle while fd >= 0 && users == 0 && evictable
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

// fdCache bounds the O_PATH fds held for evictable inodes.
type fdCache struct {
	mu      sync.Mutex
	idle    list.List // least recently used first
	open    int       // evictable entries' fds open (in use or idle)
	held    int       // other entries' fds, held until forgotten
	max     int       // bound on open
	mountFd int       // open_by_handle_at's mount fd (not O_PATH)
	opened  atomic.Uint64
	stop    chan struct{}
	// closing are fds closeLocked let go of, closed by unlock after the
	// lock is released: a last close may free a deleted inode, which must
	// not hold up every other request.
	closing []int
}

// unlock releases mu, then closes what closeLocked let go of.
func (c *fdCache) unlock() {
	fds := c.closing
	c.closing = nil
	c.mu.Unlock()
	for _, fd := range fds {
		unix.Close(fd)
	}
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
	defer c.unlock()
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

// keyOf is an inode's table key: dev/ino.
func keyOf(st *unix.Stat_t) string {
	var b [16]byte
	binary.NativeEndian.PutUint64(b[0:], st.Dev)
	binary.NativeEndian.PutUint64(b[8:], st.Ino)
	return string(b[:])
}

// ref finds or makes the entry for the inode fd refers to (an O_PATH fd
// the table takes over), counting one kernel lookup.
func (t *table) ref(fd int, evictable bool, st *unix.Stat_t) *inode {
	key := keyOf(st)
	t.mu.Lock()
	if in := t.byKey[key]; in != nil && t.cache.same(in, fd) {
		in.nlookup++
		t.mu.Unlock()
		t.cache.offer(in, fd)
		return in
	}
	// New, or the old entry's inode is gone and its number reused: the
	// old entry stays under its node id until the kernel forgets it.
	in := &inode{id: t.next, key: key, ftype: st.Mode & unix.S_IFMT, ino: st.Ino, evictable: evictable, nlookup: 1, fd: fd}
	t.next++
	t.byID[in.id] = in
	t.byKey[key] = in
	t.mu.Unlock()
	t.cache.adopt(in)
	return in
}

// same reports whether in, found under fd's dev/ino, is fd's inode: yes
// while in's fd is open (the inode cannot have been freed), else when
// their file handles agree.
func (c *fdCache) same(in *inode, fd int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.fd >= 0 {
		return true
	}
	if in.handle == nil {
		return false
	}
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	return err == nil && h.Type() == in.handle.Type() && string(h.Bytes()) == string(in.handle.Bytes())
}

// setRoot enters the root directory, held for good.
func (t *table) setRoot(fd int, st *unix.Stat_t) *inode {
	in := &inode{id: rootID, key: keyOf(st), ftype: unix.S_IFDIR, ino: st.Ino, nlookup: 1, fd: fd}
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
	if !in.evictable {
		c.held++
		c.unlock()
		return
	}
	c.open++
	c.idleLocked(in)
	c.evictLocked()
	c.unlock()
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
	c.unlock()
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
		c.unlock()
		return fd, 0
	}
	c.unlock()
	if in.handle == nil { // evicted without one: cannot happen
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
	c.unlock()
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
	c.unlock()
}

// drop closes a forgotten entry's fd, now or when its last user is done.
func (c *fdCache) drop(in *inode) {
	c.mu.Lock()
	in.dead = true
	if in.users == 0 {
		c.closeLocked(in)
	}
	c.unlock()
}

func (c *fdCache) idleLocked(in *inode) {
	if in.evictable && in.fd >= 0 && in.users == 0 && in.elem == nil {
		in.idled = c.now()
		in.elem = c.idle.PushBack(in)
	}
}

func (c *fdCache) closeLocked(in *inode) {
	if in.elem != nil {
		c.idle.Remove(in.elem)
		in.elem = nil
	}
	if in.fd < 0 {
		return
	}
	if in.evictable && !in.dead && in.handle == nil {
		// Evicted, so the inode must be found again: by its handle.
		h, _, err := unix.NameToHandleAt(in.fd, "", unix.AT_EMPTY_PATH)
		if err != nil { // keep the fd for good instead
			in.evictable = false
			c.open--
			c.held++
			return
		}
		in.handle = &h
	}
	c.closing = append(c.closing, in.fd)
	in.fd = -1
	if in.evictable {
		c.open--
	} else {
		c.held--
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
