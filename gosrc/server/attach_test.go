package server

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

func openFd(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	require.NoError(t, err, "open %s", path)
	return fd
}

func attachedFiles(srv *Server) uint64 { return srv.Stats().AttachedFiles }

// Files opened through the mount attach to a session with the access
// their open allows; detach, the kernel's RELEASE and the session's end
// each undo it, on both transports.
func TestAttach(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, _, mnt := mount(t, tr, Options{})
			writeFile(t, join(mnt, "f"), []byte("hello"))
			s, err := client.Connect(mnt)
			require.NoError(t, err)
			defer s.Close()

			rw := openFd(t, join(mnt, "f"), unix.O_RDWR)
			defer unix.Close(rw)
			ro := openFd(t, join(mnt, "f"), unix.O_RDONLY)
			rwID, err := s.Attach(rw)
			require.NoError(t, err)
			roID, err := s.Attach(ro)
			require.NoError(t, err)
			require.NotEqual(t, rwID, roID)
			again, err := s.Attach(rw)
			require.NoError(t, err)
			require.Equal(t, rwID, again, "one handle, one id")

			// The server tells what each open allows; the token stays home.
			arg := wire.AttachArg{SessionID: s.ID(), Token: s.Token()}
			out, err := client.AttachIoctl(ro, arg)
			require.NoError(t, err)
			require.Equal(t, wire.AttachRead, out.Mode, "O_RDONLY attaches read-only")
			require.Zero(t, out.Token)
			out, err = client.AttachIoctl(rw, arg)
			require.NoError(t, err)
			require.Equal(t, wire.AttachRead|wire.AttachWrite, out.Mode)

			cs, err := s.Stats()
			require.NoError(t, err)
			require.EqualValues(t, 2, cs.AttachedFiles)
			require.EqualValues(t, 2, attachedFiles(srv))
			require.Eventually(t, func() bool { return srv.Stats().RegisteredFiles == 2 }, 5*time.Second, time.Millisecond,
				"both in the workers' file tables (registered off the request thread)")

			require.NoError(t, s.Detach(rwID))
			require.ErrorIs(t, s.Detach(rwID), unix.ENOENT, "detached twice")
			require.EqualValues(t, 1, attachedFiles(srv))

			// The last close of the read-only fd releases its handle.
			require.NoError(t, unix.Close(ro))
			require.Eventually(t, func() bool { return attachedFiles(srv) == 0 }, 5*time.Second, 5*time.Millisecond,
				"RELEASE detaches")
			require.ErrorIs(t, s.Detach(roID), unix.ENOENT)

			// The session's end detaches what is left.
			_, err = s.Attach(rw)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			require.Eventually(t, func() bool { return attachedFiles(srv) == 0 }, 5*time.Second, 5*time.Millisecond)
			_, err = s.Attach(rw)
			require.ErrorIs(t, err, unix.EBADF, "closed session")
			require.Eventually(t, func() bool { return srv.Stats().RegisteredFiles == 0 }, 5*time.Second, 5*time.Millisecond,
				"file slots back")
		})
	}
}

// Attach refuses what is not its own: files elsewhere, directories,
// forged or foreign tokens, and callers who are not the session's peer,
// even when the kernel lets them in (--allow-other).
func TestAttachRefusals(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportURing, Options{AllowOther: true, Limits: Limits{AttachedFiles: 2}})
	writeFile(t, join(mnt, "f"), []byte("x"))
	a, err := client.Connect(mnt)
	require.NoError(t, err)
	defer a.Close()
	b, err := client.Connect(mnt)
	require.NoError(t, err)
	defer b.Close()
	fd := openFd(t, join(mnt, "f"), unix.O_RDWR)
	defer unix.Close(fd)

	other := openFd(t, join(shmDir(t, "elsewhere"), "g"), unix.O_RDWR|unix.O_CREAT)
	defer unix.Close(other)
	_, err = a.Attach(other)
	require.ErrorIs(t, err, unix.EXDEV, "a file of another file system")

	dir := openFd(t, mnt, unix.O_RDONLY|unix.O_DIRECTORY)
	defer unix.Close(dir)
	_, err = a.Attach(dir)
	require.ErrorIs(t, err, unix.EINVAL, "a directory")

	_, err = client.AttachIoctl(fd, wire.AttachArg{SessionID: b.ID(), Token: a.Token()})
	require.ErrorIs(t, err, unix.EPERM, "b's id with a's token")
	_, err = client.AttachIoctl(fd, wire.AttachArg{SessionID: a.ID()})
	require.ErrorIs(t, err, unix.EPERM, "no token")
	_, err = client.AttachIoctl(fd, wire.AttachArg{SessionID: 1 << 60, Token: a.Token()})
	require.ErrorIs(t, err, unix.EPERM, "no such session")

	// Another uid on one thread of this process: the kernel admits it
	// (allow_other) and reports its fsuid; the server must refuse.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its credentials
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, 65534, 65534, 65534); e != 0 {
			errc <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
			errc <- e
			return
		}
		_, err := client.AttachIoctl(fd, wire.AttachArg{SessionID: a.ID(), Token: a.Token()})
		errc <- err
	}()
	require.ErrorIs(t, <-errc, unix.EPERM, "uid 65534 with root's session token")

	g1 := openFd(t, join(mnt, "f"), unix.O_RDONLY)
	defer unix.Close(g1)
	g2 := openFd(t, join(mnt, "f"), unix.O_RDONLY)
	defer unix.Close(g2)
	_, err = a.Attach(fd)
	require.NoError(t, err)
	_, err = a.Attach(g1)
	require.NoError(t, err)
	_, err = a.Attach(g2)
	require.ErrorIs(t, err, unix.EMFILE, "over the session's limit of 2")
	_, err = b.Attach(g2)
	require.NoError(t, err, "the other session is not affected")
	require.EqualValues(t, 3, attachedFiles(srv))
}

// resources is what a session could leak on the server side of this
// process: fds, arena and ring mappings, goroutines, fixed-buffer and
// registered-file slots.
type resources struct {
	fds, maps, goroutines, slots, fileSlots int
}

func measure(t *testing.T, srv *Server) resources {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	// Arenas are memfd mappings and rings io_uring ones; the Go heap's
	// own mappings come and go with its size, so they are not counted.
	shared := 0
	for _, l := range strings.Split(string(maps), "\n") {
		if strings.Contains(l, "/memfd:") || strings.Contains(l, "io_uring") {
			shared++
		}
	}
	return resources{
		// The O_PATH fds the file-system layer keeps for inodes the kernel
		// remembers are a bounded cache, not a session's to leak.
		fds:        countFds(t) - srv.Stats().FS.InodeFds,
		maps:       shared,
		goroutines: serverGoroutines(),
		slots:      int(srv.Stats().FixedSlotsUsed),
		fileSlots:  int(srv.Stats().RegisteredFiles),
	}
}

// serverGoroutines counts the goroutines running the server's code (its
// sessions in package control, the executor in package dataplane): the transport's readers come and go on their
// own and are not a session's to leak.
func serverGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		ours := strings.Contains(g, "zcfuse/gosrc/server.") || strings.Contains(g, "zcfuse/gosrc/control.") ||
			strings.Contains(g, "zcfuse/gosrc/dataplane.")
		if ours && !strings.Contains(g, "zcfuse/gosrc/server.serverGoroutines") &&
			!strings.Contains(g, "testing.tRunner") {
			count++
		}
	}
	return count
}

// settle polls until the resources are back to base (5 s bound).
func settle(t *testing.T, srv *Server, base resources, what string) {
	t.Helper()
	var now resources
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		now = measure(t, srv)
		st := srv.Stats()
		if now == base && st.Sessions == 0 && st.Arenas == 0 && st.AttachedFiles == 0 && st.RegisteredBytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: leaked: before %+v, after %+v, stats %+v", what, base, now, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One session's whole life: connect, share an arena, attach a file, close.
func sessionLife(mnt string, fd int) error {
	s, err := client.Connect(mnt)
	if err != nil {
		return err
	}
	a, err := arena.Create(64<<10, arena.Options{})
	if err != nil {
		s.Close()
		return err
	}
	defer a.Close()
	if _, _, err := s.Share(a); err != nil {
		s.Close()
		return err
	}
	if _, err := s.Attach(fd); err != nil {
		s.Close()
		return err
	}
	return s.Close()
}

// 1000 sessions one after another and 64 at once leave no fds, mappings,
// goroutines or fixed-buffer slots behind.
func TestSessionsNoLeak(t *testing.T) {
	// 64 sessions at once of one uid: past the default per-user limit.
	srv, _, mnt := mount(t, fusering.TransportURing, Options{Limits: Limits{SessionsPerUser: 64}})
	writeFile(t, join(mnt, "f"), []byte("x"))
	fd := openFd(t, join(mnt, "f"), unix.O_RDWR)
	defer unix.Close(fd)
	// Warm up with one round of each: the first sessions start threads
	// (whose stacks are mappings) and pools that stay for good.
	require.NoError(t, sessionLife(mnt, fd))
	concurrent(t, mnt, fd)
	time.Sleep(100 * time.Millisecond)
	base := measure(t, srv)

	start := time.Now()
	for i := range 1000 {
		require.NoError(t, sessionLife(mnt, fd), "session %d", i)
	}
	t.Logf("1000 sequential sessions in %v", time.Since(start))
	settle(t, srv, base, "1000 sequential sessions")

	start = time.Now()
	concurrent(t, mnt, fd)
	t.Logf("64 concurrent sessions in %v", time.Since(start))
	settle(t, srv, base, "64 concurrent sessions")
}

func concurrent(t *testing.T, mnt string, fd int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sessionLife(mnt, fd)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// serverFds counts this process's fds less the file-system layer's cache
// of inode fds (a bounded cache that LOOKUPs fill).
func serverFds(t *testing.T, srv *Server) int {
	t.Helper()
	return countFds(t) - srv.Stats().FS.InodeFds
}

// One open file attached by many sessions costs the server no fd more
// (the sessions share the handle's own, lent by the file-system layer)
// and one registered-file slot, however many sessions attach it (it used
// to cost a duplicate per session: one user fd, up to 256 server fds);
// its RELEASE gives both back.
func TestAttachOneFdPerHandle(t *testing.T) {
	srv, backing, mnt := mount(t, fusering.TransportURing, Options{})
	writeFile(t, join(mnt, "f"), []byte("x"))
	var sessions []*client.Session
	for range 32 {
		s, err := client.Connect(mnt)
		require.NoError(t, err)
		defer s.Close()
		sessions = append(sessions, s)
	}
	fd := openFd(t, join(mnt, "f"), unix.O_RDWR)
	// The server's fds on the backing file (the test's own fd is on the
	// mount): counted by what they point at, so other fds coming and going
	// (the inode cache, earlier tests' sessions) cannot blur it.
	require.Equal(t, 1, fdsOn(t, join(backing, "f")), "the open file's handle")
	for _, s := range sessions {
		_, err := s.Attach(fd)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return srv.Stats().RegisteredFiles == 1 }, 5*time.Second, time.Millisecond,
		"registered once")
	require.EqualValues(t, 32, attachedFiles(srv))
	require.Equal(t, 1, fdsOn(t, join(backing, "f")), "32 sessions attach one open file: no server fd more")

	// The last close: the handle's fd, which the attachments shared, goes.
	require.NoError(t, unix.Close(fd))
	require.Eventually(t, func() bool {
		st := srv.Stats()
		return st.AttachedFiles == 0 && st.RegisteredFiles == 0 && fdsOn(t, join(backing, "f")) == 0
	}, 5*time.Second, 5*time.Millisecond, "RELEASE gives the fd and the slot back")
}

// fdsOn counts this process's fds open on the file at path (by device
// and inode: the server's fds name it by its path in a detached clone),
// less the O_PATH ones (the inode table's cache of lookups).
func fdsOn(t *testing.T, path string) int {
	t.Helper()
	var want unix.Stat_t
	require.NoError(t, unix.Stat(path, &want))
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		var st unix.Stat_t
		if err != nil || unix.Fstat(fd, &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil && fl&unix.O_PATH == 0 {
			n++
		}
	}
	return n
}

// uidThread runs functions on a thread of its own that has taken uid
// (mountproc.UIDThread); the thread ends with the test.
func uidThread(t *testing.T, uid uint32) func(fn func()) {
	t.Helper()
	run, stop, err := mountproc.UIDThread(uid)
	require.NoError(t, err, "taking uid %d", uid)
	t.Cleanup(stop)
	return run
}

// Attachments count against the session's peer uid: at
// AttachedFilesPerUser its attach fails EMFILE in every one of its
// sessions, while another uid and root attach the same files; detach,
// the session's end and RELEASE give attachments back.
func TestAttachedFilesPerUser(t *testing.T) {
	const attacker, victim = 65534, 65533
	srv, _, mnt := mount(t, fusering.TransportURing, Options{AllowOther: true, Limits: Limits{AttachedFilesPerUser: 2}})
	names := []string{"a", "b", "c"}
	for _, n := range names {
		writeFile(t, join(mnt, n), []byte(n))
		require.NoError(t, os.Chmod(join(mnt, n), 0o666))
	}
	open := func(n string) (int, error) { return unix.Open(join(mnt, n), unix.O_RDWR|unix.O_CLOEXEC, 0) }
	type user struct {
		do       func(fn func())
		s1, s2   *client.Session
		fds      map[string]int
		ids      map[string]uint32
		attachTo func(s *client.Session, n string) error
	}
	as := func(uid uint32) *user {
		u := &user{do: uidThread(t, uid), fds: map[string]int{}, ids: map[string]uint32{}}
		var err error
		u.do(func() {
			if u.s1, err = client.Connect(mnt); err != nil {
				return
			}
			if u.s2, err = client.Connect(mnt); err != nil {
				return
			}
			for _, n := range names {
				if u.fds[n], err = open(n); err != nil {
					return
				}
			}
		})
		require.NoError(t, err, "uid %d", uid)
		t.Cleanup(func() {
			u.s1.Close()
			u.s2.Close()
			for _, fd := range u.fds {
				unix.Close(fd)
			}
		})
		u.attachTo = func(s *client.Session, n string) error {
			var err error
			u.do(func() {
				var id uint32
				if id, err = s.Attach(u.fds[n]); err == nil {
					u.ids[n] = id
				}
			})
			return err
		}
		return u
	}
	a, v := as(attacker), as(victim)

	require.NoError(t, a.attachTo(a.s1, "a"))
	require.NoError(t, a.attachTo(a.s1, "b"))
	require.ErrorIs(t, a.attachTo(a.s2, "c"), unix.EMFILE, "over uid %d's limit, in its other session", attacker)
	require.ErrorIs(t, a.attachTo(a.s2, "a"), unix.EMFILE, "a file attached in its other session counts again")
	require.NoError(t, a.attachTo(a.s1, "a"), "attached already: no new charge")

	// Nobody else notices: another uid and root attach the same files.
	for _, n := range []string{"a", "b"} {
		require.NoError(t, v.attachTo(v.s1, n), "uid %d", victim)
	}
	r, err := client.Connect(mnt)
	require.NoError(t, err)
	defer r.Close()
	for _, n := range []string{"b", "c"} {
		fd := openFd(t, join(mnt, n), unix.O_RDWR)
		defer unix.Close(fd)
		_, err := r.Attach(fd)
		require.NoError(t, err, "root")
	}

	// Detach, the session's end and RELEASE each give one back.
	require.NoError(t, a.s1.Detach(a.ids["a"]))
	require.NoError(t, a.attachTo(a.s2, "c"), "after a detach")
	require.ErrorIs(t, a.attachTo(a.s2, "a"), unix.EMFILE)
	require.NoError(t, a.s2.Close())
	require.NoError(t, a.attachTo(a.s1, "c"), "after the session's end")
	require.ErrorIs(t, a.attachTo(a.s1, "a"), unix.EMFILE)
	a.do(func() { err = unix.Close(a.fds["b"]) })
	require.NoError(t, err)
	delete(a.fds, "b")
	require.Eventually(t, func() bool { return a.attachTo(a.s1, "a") == nil }, 5*time.Second, 5*time.Millisecond,
		"after the RELEASE of an attached file")
	require.EqualValues(t, 2+2+2, attachedFiles(srv), "2 each: uid %d, uid %d and root", attacker, victim)
}
