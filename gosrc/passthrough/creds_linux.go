package passthrough

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Creds are the identity a request runs with on the backing file system:
// the caller's fsuid and fsgid as the kernel reports them, and its
// supplementary groups.
type Creds struct {
	Uid, Gid uint32
	Groups   []uint32
}

// Become makes the calling OS thread act as c until Restore: its
// supplementary groups, its fsgid and fsuid (the ids the kernel checks
// file access and ownership with), and an empty effective capability set,
// so that the backing file system checks modes, ACLs, quotas and reserved
// blocks as for the caller itself. The thread must be locked
// (runtime.LockOSThread) and running as root; only it changes: raw
// setgroups/setfsgid/setfsuid/capset, not the syscall package's versions,
// which change every thread of the process.
//
// The real, effective and saved ids stay 0. A thread whose real or
// effective uid were the caller's could be signalled by the caller
// (kill(2) lets a process signal another whose real or saved uid is its
// own: SIGSTOP or SIGKILL to one request thread stops or ends the whole
// server) or have its affinity or priority changed by it. fsuid alone
// would keep CAP_SYS_ADMIN and the other capabilities outside the file
// set; clearing the effective set removes them too. On failure the thread
// is restored and the error returned.
func Become(c Creds) error {
	groups := c.Groups
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		Restore()
		return e
	}
	if !setFsid(unix.SYS_SETFSGID, c.Gid) || !setFsid(unix.SYS_SETFSUID, c.Uid) {
		Restore()
		return unix.EPERM
	}
	if err := setEffectiveCaps(false); err != nil {
		Restore()
		return err
	}
	return nil
}

// setFsid sets the thread's fsuid or fsgid (call SYS_SETFSUID or
// SYS_SETFSGID) to id and reports whether it now is id: the calls return
// the previous value, and an invalid id (-1) changes nothing.
func setFsid(call uintptr, id uint32) bool {
	unix.RawSyscall(call, uintptr(id), 0, 0)
	cur, _, _ := unix.RawSyscall(call, ^uintptr(0), 0, 0)
	return uint32(cur) == id
}

// setEffectiveCaps makes the thread's effective capability set empty, or
// (on) its permitted set again.
func setEffectiveCaps(on bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	for i := range data {
		if on {
			data[i].Effective = data[i].Permitted
		} else {
			data[i].Effective = 0
		}
	}
	return unix.Capset(&hdr, &data[0])
}

// serverGroups are the supplementary groups the server started with, put
// back by Restore.
var serverGroups = func() []uint32 {
	gs, _ := unix.Getgroups()
	out := make([]uint32, len(gs))
	for i, g := range gs {
		out[i] = uint32(g)
	}
	return out
}()

// Restore returns the calling thread to the server's identity: its
// effective capabilities, fsuid and fsgid 0, the server's groups. Failing
// to come back is fatal: a thread that might serve the next request with
// another user's identity must not go on.
func Restore() {
	if err := setEffectiveCaps(true); err != nil {
		panic("zcfuse: cannot restore a request thread's capabilities: " + err.Error())
	}
	if !setFsid(unix.SYS_SETFSUID, 0) || !setFsid(unix.SYS_SETFSGID, 0) {
		panic("zcfuse: cannot restore a request thread's fsuid/fsgid to 0")
	}
	var p unsafe.Pointer
	if len(serverGroups) > 0 {
		p = unsafe.Pointer(&serverGroups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(serverGroups)), uintptr(p), 0); e != 0 {
		panic("zcfuse: cannot restore a request thread's groups: " + e.Error())
	}
}

// GroupCache finds a caller's supplementary groups: the kernel passes a
// request's uid, gid and thread id, not its groups. It reads `Groups:`
// from /proc/TID/status and keeps the answer for TTL, for at most Max
// threads. An answer is used only when the thread's fsuid and fsgid there
// are the request's (a thread id reused by another process is not taken
// for the caller). A caller it cannot read — a thread id of 0 (the kernel
// reports the caller's id in the server's pid namespace, 0 when it has
// none there) or a thread that has exited — gets no supplementary groups:
// never more rights than it has, sometimes fewer.
type GroupCache struct {
	TTL time.Duration
	Max int

	mu sync.Mutex
	m  map[uint32]groupEntry
}

type groupEntry struct {
	uid, gid uint32
	groups   []uint32
	until    time.Time
}

// Groups returns the supplementary groups of thread tid running as
// uid/gid; the slice is shared, read only.
func (c *GroupCache) Groups(tid, uid, gid uint32) []uint32 {
	if tid == 0 {
		return nil
	}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[tid]
	c.mu.Unlock()
	if ok && e.uid == uid && e.gid == gid && now.Before(e.until) {
		return e.groups
	}
	groups, ok := readGroups(tid, uid, gid)
	if !ok {
		return nil
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[uint32]groupEntry{}
	}
	if len(c.m) >= max(c.Max, 1) {
		for k, v := range c.m {
			if now.After(v.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= max(c.Max, 1) {
			clear(c.m)
		}
	}
	c.m[tid] = groupEntry{uid: uid, gid: gid, groups: groups, until: now.Add(c.TTL)}
	c.mu.Unlock()
	return groups
}

// readGroups parses /proc/TID/status: ok only when its fsuid and fsgid
// (the fourth field of Uid: and Gid:) are uid and gid.
func readGroups(tid, uid, gid uint32) ([]uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return nil, false
	}
	var groups []uint32
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		key, val, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			want := uid
			if key == "Gid" {
				want = gid
			}
			if len(f) < 4 || f[3] != strconv.FormatUint(uint64(want), 10) {
				return nil, false
			}
			seen++
		case "Groups":
			for _, g := range f {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
			seen++
		}
	}
	return groups, seen == 3
}

// capSysResource is CAP_SYS_RESOURCE's number.
const capSysResource = 24

// DropResourceOverride removes CAP_SYS_RESOURCE from the calling thread
// for good (effective, permitted and inheritable sets; the thread must be
// locked and die with its goroutine). A root server's request thread
// without it no longer writes past a user's disk quota on that user's
// behalf.
func DropResourceOverride() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	word, bit := capSysResource/32, uint32(1)<<(capSysResource%32)
	data[word].Effective &^= bit
	data[word].Permitted &^= bit
	data[word].Inheritable &^= bit
	return unix.Capset(&hdr, &data[0])
}

// SetFsgid makes the calling thread (locked, running as root) create
// objects with group gid until RestoreFsgid: a root caller's objects then
// get its group from the start, as on a local file system, with no chown
// afterwards (which would act on whatever the name leads to by then).
func SetFsgid(gid uint32) {
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
}

// RestoreFsgid puts the thread's fsgid back to its gid, 0, or panics.
func RestoreFsgid() {
	unix.RawSyscall(unix.SYS_SETFSGID, 0, 0, 0)
	// An invalid id changes nothing and returns the current one.
	if cur, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0); cur != 0 {
		panic("zcfuse: cannot restore a request thread's fsgid to 0")
	}
}
