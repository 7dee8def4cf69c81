package control

import (
	"errors"
	"io"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/dataplane"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

const nobody, other = 65534, 4242

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: connects as other uids, and io_uring registrations")
	}
}

// publicDir makes a directory every user can search, removed at cleanup.
func publicDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "zcfuse-control-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(d, 0o755))
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// listen starts a control plane over a real executor in a fresh
// directory; cleanup closes both.
func listen(t *testing.T, allowOther bool, l Limits) *Control {
	t.Helper()
	requireRoot(t)
	exec, err := dataplane.New(dataplane.Config{Slots: 64})
	require.NoError(t, err)
	ctl, err := Listen(Config{Dir: filepath.Join(publicDir(t), "run"), AllowOther: allowOther, Limits: l,
		Logger: testLogger(t)}, exec)
	if err != nil {
		exec.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close(); exec.Close() })
	return ctl
}

// dial connects to the control socket at path, as this thread's uid.
func dial(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// dialAs connects as uid (gid the same, no supplementary groups), from a
// thread that takes those credentials and dies with them
// (mountproc.UIDThread); the connection keeps them (SO_PEERCRED)
// whichever thread uses it later.
func dialAs(t *testing.T, uid uint32, path string) int {
	t.Helper()
	run, stop, err := mountproc.UIDThread(uid)
	require.NoError(t, err, "taking uid %d", uid)
	defer stop()
	var fd int
	run(func() { fd, err = dial(path) })
	require.NoError(t, err, "connect as uid %d", uid)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// hello says Hello on fd; on success it takes the op queue's messages
// and closes their fds, as a client would map them.
func hello(fd int) (*wire.HelloReply, error) {
	m, err := wire.Call(fd, &wire.Hello{Version: wire.ProtocolVersion, PID: uint32(os.Getpid())})
	if err != nil {
		return nil, err
	}
	q, fds, err := wire.Recv(fd, nil)
	if err != nil {
		return nil, err
	}
	for range q.(*wire.OpQueue).Doorbells {
		_, more, err := wire.Recv(fd, nil)
		if err != nil {
			return nil, err
		}
		fds = append(fds, more...)
	}
	for _, f := range fds {
		unix.Close(f)
	}
	return m.(*wire.HelloReply), nil
}

// openSession connects as uid and says Hello; the session lasts until the
// test ends or fd is closed.
func openSession(t *testing.T, ctl *Control, uid uint32) int {
	t.Helper()
	fd := dialAs(t, uid, ctl.Path())
	_, err := hello(fd)
	require.NoError(t, err, "session of uid %d", uid)
	return fd
}

// refusedWith checks that a connection as uid is refused: its Hello is
// answered by an Error with errno and a message holding want, then the
// close.
func refusedWith(t *testing.T, ctl *Control, uid uint32, errno syscall.Errno, want string) {
	t.Helper()
	refused(t, ctl, dialAs(t, uid, ctl.Path()), errno, want)
}

// refusedSilent is refusedWith for a connection whose Hello goes out
// only once the server has refused it (as half-open: it had no message
// waiting).
func refusedSilent(t *testing.T, ctl *Control, uid uint32, errno syscall.Errno, want string) {
	t.Helper()
	n := ctl.Stats().ConnectionsRefused
	fd := dialAs(t, uid, ctl.Path())
	eventually(t, func() bool { return ctl.Stats().ConnectionsRefused > n }, "refused")
	refused(t, ctl, fd, errno, want)
}

func refused(t *testing.T, ctl *Control, fd int, errno syscall.Errno, want string) {
	t.Helper()
	_, err := hello(fd)
	var e *wire.Error
	require.ErrorAs(t, err, &e, "an Error reply, not %v", err)
	require.Equal(t, errno, e.Errno, e.Message)
	require.Contains(t, e.Message, want)
	_, _, err = wire.Recv(fd, nil)
	if !errors.Is(err, unix.ECONNRESET) { // the server closed with our Hello unread
		require.ErrorIs(t, err, io.EOF, "then the close")
	}
}

// eventually waits for cond, checking often.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, append([]any{msg}, args...)...)
}

// idle: nobody holds anything.
func idle(ctl *Control) bool {
	st := ctl.Stats()
	return len(ctl.Usage()) == 0 && st.Sessions == 0 && st.HalfOpen == 0 && st.Arenas == 0
}

// The mount owner's check: without AllowOther another uid is refused
// with EACCES, and reads the Error every time, whether its Hello went out
// before the server closed or after (EPIPE then; wire.Call reads the
// Error waiting).
func TestRefusedNotAllowed(t *testing.T) {
	ctl := listen(t, false, Limits{})
	// Let the connection reach the server, which alone decides here.
	require.NoError(t, os.Chmod(filepath.Dir(ctl.Path()), 0o755))
	require.NoError(t, os.Chmod(ctl.Path(), 0o666))
	const n = 50
	for range n {
		refusedWith(t, ctl, nobody, unix.EACCES, "uid 65534 may not use this mount")
	}
	require.EqualValues(t, n, ctl.Stats().ConnectionsRefused)
	require.True(t, idle(ctl), "a refused connection holds nothing: %+v", ctl.Usage())
	fd := openSession(t, ctl, 0)
	unix.Close(fd)
	eventually(t, func() bool { return idle(ctl) }, "root's session gone")
}

// Sessions are limited per uid (EAGAIN) and, for unprivileged users
// together, server-wide (EAGAIN: the server is full); root has its own
// budget and is refused by neither. What a session held comes back when
// it ends.
func TestSessionLimits(t *testing.T) {
	ctl := listen(t, true, Limits{SessionsPerUser: 2, Sessions: 3})
	a := openSession(t, ctl, nobody)
	openSession(t, ctl, nobody)
	require.Equal(t, uint64(2), ctl.UsageOf(nobody).Sessions)
	for range 20 {
		refusedWith(t, ctl, nobody, unix.EAGAIN, "uid 65534 holds 2 sessions, its limit is 2")
	}
	openSession(t, ctl, other)
	refusedWith(t, ctl, other, unix.EAGAIN, "the server holds 3 sessions of its users, its limit is 3")
	openSession(t, ctl, 0)
	openSession(t, ctl, 0) // root: its own budget, and never the server-wide limit
	require.EqualValues(t, 5, ctl.Stats().Sessions)

	unix.Close(a)
	eventually(t, func() bool { return ctl.UsageOf(nobody).Sessions == 1 }, "uid 65534's session given back")
	openSession(t, ctl, other)
	require.Equal(t, uint64(2), ctl.UsageOf(other).Sessions)
}

// A connection that sends no Hello is answered ETIMEDOUT and closed
// after HelloTimeout, and gives back what it held.
func TestHelloTimeout(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	ctl := listen(t, true, Limits{HelloTimeout: timeout})
	start := time.Now()
	fd := dialAs(t, nobody, ctl.Path())
	eventually(t, func() bool { return ctl.UsageOf(nobody).HalfOpen == 1 }, "a connection before Hello")
	require.EqualValues(t, 1, ctl.Stats().HalfOpen)
	m, _, err := wire.Recv(fd, nil)
	require.NoError(t, err)
	e, ok := m.(*wire.Error)
	require.True(t, ok, "got %v", m)
	require.Equal(t, unix.ETIMEDOUT, e.Errno, e.Message)
	require.GreaterOrEqual(t, time.Since(start), timeout)
	_, _, err = wire.Recv(fd, nil)
	require.ErrorIs(t, err, io.EOF)
	eventually(t, func() bool { return idle(ctl) }, "given back: %+v", ctl.Usage())
	require.EqualValues(t, 1, ctl.Stats().HelloTimeouts)

	// One that says Hello in time is a session; the deadline is gone.
	fd = openSession(t, ctl, nobody)
	time.Sleep(timeout + 100*time.Millisecond)
	_, err = wire.Call(fd, &wire.Stats{})
	require.NoError(t, err, "a session outlives the Hello deadline")
	require.EqualValues(t, 1, ctl.Stats().HelloTimeouts)
}

// Connections before Hello are bounded per uid and, for unprivileged
// users together, server-wide; over either the connection gets EAGAIN.
// Root's are its own.
func TestHalfOpenLimits(t *testing.T) {
	ctl := listen(t, true, Limits{HalfOpenPerUser: 2, HalfOpen: 3, HelloTimeout: time.Minute})
	for range 2 {
		dialAs(t, nobody, ctl.Path())
	}
	eventually(t, func() bool { return ctl.UsageOf(nobody).HalfOpen == 2 }, "two silent connections")
	refusedSilent(t, ctl, nobody, unix.EAGAIN, "uid 65534 holds 2 connections before Hello, its limit is 2")
	dialAs(t, other, ctl.Path())
	eventually(t, func() bool { return ctl.Stats().HalfOpen == 3 }, "three silent connections")
	refusedSilent(t, ctl, other, unix.EAGAIN, "the server holds 3 connections before Hello of its users, its limit is 3")
	openSession(t, ctl, 0) // root is not refused
	fds := []int{dialAs(t, 0, ctl.Path()), dialAs(t, 0, ctl.Path())}
	eventually(t, func() bool { return ctl.UsageOf(0).HalfOpen == 2 }, "root's silent connections")
	for _, fd := range fds {
		unix.Close(fd)
	}
	eventually(t, func() bool { return ctl.UsageOf(0).HalfOpen == 0 }, "closed before Hello: given back")
}

// Only a connection with no message waiting at accept is half-open: a
// client whose Hello came with its connect keeps nobody waiting.
func TestPending(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	require.False(t, pending(fds[1]), "nothing sent yet")
	require.NoError(t, wire.Send(fds[0], &wire.Hello{Version: 1}))
	require.True(t, pending(fds[1]), "a Hello waits")
	require.True(t, pending(fds[1]), "and is only peeked at")
	m, _, err := wire.Recv(fds[1], nil)
	require.NoError(t, err)
	require.IsType(t, &wire.Hello{}, m)
	unix.Close(fds[0])
	require.True(t, pending(fds[1]), "a peer gone is no wait either")
	unix.Close(fds[1])
}

// threads is this process's OS thread count.
func threads(t *testing.T) int {
	t.Helper()
	n, err := mountproc.StatusField(0, "Threads")
	require.NoError(t, err)
	return int(n)
}

// 300 connections that never say Hello cost the server goroutines on
// the netpoller, not OS threads: the process's threads stay within a few
// of the baseline while they wait and after they time out.
func TestSilentConnectionsHoldNoThreads(t *testing.T) {
	const n = 300
	ctl := listen(t, false, Limits{HalfOpenPerUser: 2 * n, SessionsPerUser: 2 * n, HelloTimeout: 3 * time.Second})
	fd := openSession(t, ctl, 0) // the session path warmed up
	unix.Close(fd)
	eventually(t, func() bool { return idle(ctl) }, "warm-up session gone")
	base := threads(t)
	for range n {
		fd, err := dial(ctl.Path())
		require.NoError(t, err)
		defer unix.Close(fd)
	}
	eventually(t, func() bool { return ctl.Stats().HalfOpen == n }, "%d silent connections accepted", n)
	during := threads(t)
	eventually(t, func() bool { return idle(ctl) }, "timed out: %+v", ctl.Stats())
	after := threads(t)
	t.Logf("OS threads: %d before, %d with %d silent connections, %d after they timed out", base, during, n, after)
	require.EqualValues(t, n, ctl.Stats().HelloTimeouts)
	require.LessOrEqual(t, during, base+8, "threads with %d connections waiting", n)
	require.LessOrEqual(t, after, base+8)
}

// An accept that fails for want of fds (EMFILE) does not end the accept
// loop: it backs off, counts, and admits the waiting client once fds are
// back.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ctl := listen(t, false, Limits{})
	client, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(client)

	var old unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &old))
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	lim := old
	lim.Cur = uint64(len(ents) + 16)
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
	var fill []int
	restore := func() {
		for _, fd := range fill {
			unix.Close(fd)
		}
		fill = nil
		unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	}
	defer restore()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			require.ErrorIs(t, err, unix.EMFILE)
			break
		}
		fill = append(fill, fd)
	}
	require.NoError(t, unix.Connect(client, &unix.SockaddrUnix{Name: ctl.Path()}), "the backlog takes it")
	eventually(t, func() bool { return ctl.Stats().AcceptErrors >= 3 }, "accept failing with EMFILE, retried")
	restore()
	errc := make(chan error, 1)
	go func() { _, err := hello(client); errc <- err }()
	select {
	case err := <-errc:
		require.NoError(t, err, "admitted once fds are back")
	case <-time.After(5 * time.Second):
		t.Fatal("the accept loop ended: the client is never answered")
	}
	t.Logf("accept errors: %d", ctl.Stats().AcceptErrors)
}

// resident counts the pages of b in memory (mincore).
func resident(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	require.Zero(t, e)
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// shareArena hands a to the session on fd.
func shareArena(fd int, a *arena.Arena) (*wire.ShareArenaReply, error) {
	m, err := wire.Call(fd, &wire.ShareArena{Size: uint64(a.Size())}, a.Fd())
	if err != nil {
		return nil, err
	}
	return m.(*wire.ShareArenaReply), nil
}

func newArena(t *testing.T, size int64) *arena.Arena {
	t.Helper()
	a, err := arena.Create(size, arena.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	return a
}

// Arenas are charged to their uid: in number and mapped bytes (EDQUOT
// past the per-user limits, ENOSPC past the session's), and only within
// RegisteredBytesPerUser faulted in and registered; past it an arena is
// accepted unregistered and none of its pages is touched. Everything
// comes back when arenas are released and when the session ends.
func TestArenaCharges(t *testing.T) {
	const mib = 1 << 20
	ctl := listen(t, true, Limits{ArenasPerUser: 3, ArenaBytesPerUser: 8 * mib, RegisteredBytesPerUser: 2 * mib,
		ArenasPerSession: 8, ArenaBytes: 64 * mib})
	fd := openSession(t, ctl, nobody)

	small := newArena(t, 2*mib)
	r, err := shareArena(fd, small)
	require.NoError(t, err)
	require.True(t, r.Registered, "within the registered budget")
	require.Equal(t, 2*mib/os.Getpagesize(), resident(t, small.Bytes()), "registered: faulted in and pinned")

	big := newArena(t, 4*mib)
	r2, err := shareArena(fd, big)
	require.NoError(t, err, "past the registered budget the arena is still accepted")
	require.False(t, r2.Registered)
	require.Zero(t, resident(t, big.Bytes()), "an arena past the budget is not faulted in")
	require.EqualValues(t, 1, ctl.Stats().ArenasOverBudget)

	_, err = shareArena(fd, newArena(t, 4*mib))
	require.ErrorIs(t, err, unix.EDQUOT, "10 MiB mapped is past the uid's 8")
	_, err = shareArena(fd, newArena(t, mib))
	require.NoError(t, err)
	_, err = shareArena(fd, newArena(t, 4096))
	require.ErrorIs(t, err, unix.EDQUOT, "a fourth arena is past the uid's 3")
	require.Equal(t, UserUsage{UID: nobody, Sessions: 1, Arenas: 3, ArenaBytes: 7 * mib, RegisteredBytes: 2 * mib,
		SessionsLimit: uint64(DefaultLimits.SessionsPerUser), ArenasLimit: 3, ArenaBytesLimit: 8 * mib,
		RegisteredBytesLimit: 2 * mib, AttachedFilesLimit: uint64(DefaultLimits.AttachedFilesPerUser),
		QueueEntries: uint64(DefaultLimits.QueueDepth), QueueEntriesLimit: uint64(DefaultLimits.QueueDepthPerUser)}, ctl.UsageOf(nobody))
	require.Zero(t, ctl.UsageOf(0).Arenas, "root is charged nothing for it")

	// Another session of the same uid shares its budget.
	fd2 := openSession(t, ctl, nobody)
	_, err = shareArena(fd2, newArena(t, 4096))
	require.ErrorIs(t, err, unix.EDQUOT)

	_, err = wire.Call(fd, &wire.ReleaseArena{ArenaID: r.ArenaID})
	require.NoError(t, err)
	eventually(t, func() bool { return ctl.UsageOf(nobody).RegisteredBytes == 0 }, "registered bytes back")
	r, err = shareArena(fd2, newArena(t, 2*mib))
	require.NoError(t, err)
	require.True(t, r.Registered, "the budget is free again")

	_, err = wire.Call(fd, &wire.Bye{})
	require.NoError(t, err)
	unix.Close(fd2)
	eventually(t, func() bool { return idle(ctl) }, "everything back: %+v", ctl.Usage())
	require.Zero(t, ctl.Stats().RegisteredBytes)
}

// Close ends sessions and connections before Hello alike, and returns
// with nothing held.
func TestCloseEndsConnections(t *testing.T) {
	ctl := listen(t, true, Limits{HelloTimeout: time.Minute})
	fd := openSession(t, ctl, nobody)
	_, err := shareArena(fd, newArena(t, 1<<20))
	require.NoError(t, err)
	dialAs(t, nobody, ctl.Path())
	silent := dialAs(t, other, ctl.Path())
	eventually(t, func() bool { return ctl.Stats().HalfOpen == 2 }, "two connections before Hello")
	done := make(chan struct{})
	go func() { ctl.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	require.True(t, idle(ctl), "%+v %+v", ctl.Stats(), ctl.Usage())
	_, _, err = wire.Recv(silent, nil)
	require.ErrorIs(t, err, io.EOF)
	_, err = dial(ctl.Path())
	require.Error(t, err, "the socket is gone")
}

// The control directory: made with the mode the server needs, fixed when
// it is ours, refused when somebody else could replace the socket.
func TestControlDir(t *testing.T) {
	requireRoot(t)
	base := publicDir(t)
	mode := func(p string) os.FileMode {
		st, err := os.Lstat(p)
		require.NoError(t, err)
		return st.Mode().Perm() | st.Mode()&os.ModeSticky
	}
	old := syscall.Umask(0o077) // a strict umask must not leave --allow-other's directory closed
	defer syscall.Umask(old)

	d := filepath.Join(base, "fresh")
	require.NoError(t, prepareDir(d, false))
	require.Equal(t, os.FileMode(0o700), mode(d))
	d = filepath.Join(base, "fresh-other")
	require.NoError(t, prepareDir(d, true))
	require.Equal(t, os.FileMode(0o755), mode(d))

	d = filepath.Join(base, "was-private") // an earlier server's, without --allow-other
	require.NoError(t, os.Mkdir(d, 0o700))
	require.NoError(t, prepareDir(d, true))
	require.Equal(t, os.FileMode(0o755), mode(d), "--allow-other needs others to reach the socket")
	require.NoError(t, prepareDir(d, false))
	require.Equal(t, os.FileMode(0o755), mode(d), "not made private under a server that shares it")

	d = filepath.Join(base, "open")
	require.NoError(t, os.Mkdir(d, 0o777))
	require.NoError(t, os.Chmod(d, 0o777))
	require.NoError(t, prepareDir(d, false))
	require.Equal(t, os.FileMode(0o755), mode(d), "nobody else may write where the socket is")

	d = filepath.Join(base, "shared")
	require.NoError(t, os.Mkdir(d, 0o777))
	require.NoError(t, os.Chmod(d, 0o777|os.ModeSticky))
	require.NoError(t, prepareDir(d, true))
	require.Equal(t, 0o777|os.ModeSticky, mode(d), "a sticky shared directory (/tmp) is left as it is")

	d = filepath.Join(base, "foreign")
	require.NoError(t, os.Mkdir(d, 0o755))
	require.NoError(t, os.Chown(d, nobody, nobody))
	err := prepareDir(d, true)
	require.ErrorIs(t, err, unix.EPERM, "a root server refuses a directory another user owns")
	require.ErrorContains(t, err, "belongs to uid 65534, not root")
	_, err = Listen(Config{Dir: d, AllowOther: true}, nil)
	require.ErrorContains(t, err, "belongs to uid 65534")

	d = filepath.Join(base, "link")
	require.NoError(t, os.Symlink(filepath.Join(base, "fresh"), d))
	require.ErrorIs(t, prepareDir(d, false), unix.ENOTDIR)
	f := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(f, nil, 0o600))
	require.Error(t, prepareDir(f, false))

	// A server that is not root (uid 1000 here): root's directories only
	// as they are, and only if nobody else can write them.
	const dir, user = uint32(unix.S_IFDIR), 1000
	for _, c := range []struct {
		mode, owner uint32
		allowOther  bool
		want        uint32
		errno       syscall.Errno
	}{
		{0o1777, 0, true, 0o1777, 0}, // /tmp
		{0o755, 0, true, 0o755, 0},   // root's, searchable
		{0o700, 0, false, 0o700, 0},  // root's, private: the socket's mode decides
		{0o700, 0, true, 0, unix.EACCES},
		{0o777, 0, false, 0, unix.EPERM},
		{0o755, 1001, false, 0, unix.EPERM}, // somebody else's
		{0o700, user, true, 0o755, 0},       // its own
		{0o1777, user, false, 0o1777, 0},
	} {
		got, err := dirMode("d", dir|c.mode, c.owner, user, c.allowOther)
		if c.errno != 0 {
			require.ErrorIs(t, err, c.errno, "%+v", c)
			continue
		}
		require.NoError(t, err, "%+v", c)
		require.Equal(t, c.want, got, "%+v", c)
	}
}

// testLogger sends the control plane's log to the test's.
func testLogger(t *testing.T) *log.Logger { return log.New(testWriter{t}, "control: ", 0) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
