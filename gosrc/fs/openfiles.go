package fs

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
)

// openFiles counts the open handles (OPEN, CREATE, TMPFILE, OPENDIR) each
// uid holds through the mount, by the request's uid. Every handle holds a
// server fd, and the server's fds are one budget (RLIMIT_NOFILE) shared by
// every user, the control plane and the data plane: a uid at its limit is
// refused EMFILE before anything is opened, and nobody else notices. A
// handle gives its count back once, when it leaves the open-file table
// (RELEASE, RELEASEDIR, or Close).
type openFiles struct {
	limit   int // per uid; 0 or less: none
	mu      sync.Mutex
	by      map[uint32]int // uids holding something only
	refused atomic.Uint64
}

// take charges one open handle to uid, or refuses EMFILE at its limit.
func (o *openFiles) take(uid uint32) syscall.Errno {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.by[uid]
	if o.limit > 0 && n >= o.limit {
		o.refused.Add(1)
		return syscall.EMFILE
	}
	if o.by == nil {
		o.by = map[uint32]int{}
	}
	o.by[uid] = n + 1
	return 0
}

// give returns one open handle uid held.
func (o *openFiles) give(uid uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch n := o.by[uid]; {
	case n > 1:
		o.by[uid] = n - 1
	case n == 1:
		delete(o.by, uid)
	default:
		panic(fmt.Sprintf("fs: uid %d gives back an open file it does not hold", uid))
	}
}

// of is what uid holds.
func (o *openFiles) of(uid uint32) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.by[uid]
}

// byUser is a copy of every uid's count.
func (o *openFiles) byUser() map[uint32]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[uint32]int, len(o.by))
	for uid, n := range o.by {
		out[uid] = n
	}
	return out
}

// most is the highest count of one uid.
func (o *openFiles) most() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := 0
	for _, n := range o.by {
		m = max(m, n)
	}
	return m
}

// OpenFilesOf is the open files and directories uid holds through the
// mount now.
func (f *FS) OpenFilesOf(uid uint32) int { return f.open.of(uid) }

// OpenFilesByUser is the open files and directories of every uid that
// holds any, by uid. The map is the caller's.
func (f *FS) OpenFilesByUser() map[uint32]int { return f.open.byUser() }

// OpenFilesLimit is each uid's limit on open files and directories
// (Options.OpenFilesPerUser; 0: none).
func (f *FS) OpenFilesLimit() int { return max(f.open.limit, 0) }
