package mountproc

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// UIDThread starts a thread of this process that takes uid (gid uid, no
// supplementary groups) and runs the functions given to run on it: what
// they open or connect reaches the kernel and the server as that uid (a
// socket keeps the credentials, SO_PEERCRED, whichever thread uses it
// later). The thread is never given back to the runtime: stop ends it,
// its credentials with it. Raw system calls change this one thread's
// credentials (glibc's and Go's wrappers would change every thread's).
func UIDThread(uid uint32) (run func(fn func()), stop func(), err error) {
	jobs := make(chan func())
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its credentials
		for _, c := range [][4]uintptr{{unix.SYS_SETGROUPS, 0, 0, 0},
			{unix.SYS_SETRESGID, uintptr(uid), uintptr(uid), uintptr(uid)},
			{unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)}} {
			if _, _, e := unix.RawSyscall(c[0], c[1], c[2], c[3]); e != 0 {
				ready <- e
				return
			}
		}
		ready <- nil
		for fn := range jobs {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		return nil, nil, err
	}
	run = func(fn func()) {
		done := make(chan struct{})
		jobs <- func() { defer close(done); fn() }
		<-done
	}
	return run, func() { close(jobs) }, nil
}
