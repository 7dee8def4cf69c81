package control

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/dataplane"
	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// fakeHandle is an open file of a file-system layer: a real fd.
type fakeHandle struct {
	fd   int
	node uint64
	mode uint32
}

func (h *fakeHandle) Fd() int                               { return h.fd }
func (h *fakeHandle) AccessMode() uint32                    { return h.mode }
func (h *fakeHandle) NodeID() uint64                        { return h.node }
func (h *fakeHandle) Path() string                          { return "f" }
func (h *fakeHandle) Ino() uint64                           { return h.node }
func (h *fakeHandle) KillPriv(fd int, c passthrough.Caller) {}

// lendingHandle lends its own fd (FdLender) and counts the loans out.
type lendingHandle struct {
	fakeHandle
	mu       sync.Mutex
	out      int
	released bool
}

func (h *lendingHandle) LendFd() (int, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return -1, nil, syscall.EBADF
	}
	h.out++
	return h.fd, func() {
		h.mu.Lock()
		h.out--
		h.mu.Unlock()
	}, nil
}

func (h *lendingHandle) loans() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out
}

// fakeDataPlane records the files registered in its tables.
type fakeDataPlane struct {
	mu    sync.Mutex
	next  uint32
	files map[uint32]int // slot -> fd
	total int            // registrations ever
}

func (d *fakeDataPlane) RegisterBuffer(buf []byte) (uint32, error) { return 0, unix.ENOSPC }
func (d *fakeDataPlane) UnregisterBuffer(slot uint32) error        { return nil }
func (d *fakeDataPlane) OpenQueue(src dataplane.Source, entries uint32) (*dataplane.Queue, []int, error) {
	return nil, nil, unix.ENOSYS
}

func (d *fakeDataPlane) RegisterFile(fd int) (uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	d.files[d.next] = fd
	d.total++
	return d.next, nil
}

func (d *fakeDataPlane) UnregisterFile(slot uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.files[slot]; !ok {
		panic("unregistered twice")
	}
	delete(d.files, slot)
	return nil
}

func (d *fakeDataPlane) registered() (now, ever int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.files), d.total
}

// testControl is a control plane without a socket: sessions are made by
// hand (newSession) and attach through Attach as the ioctl would.
func testControl(t *testing.T, l Limits) (*Control, *fakeDataPlane) {
	dp := &fakeDataPlane{files: map[uint32]int{}}
	l = l.WithDefaults()
	c := &Control{limits: l, users: newUsers(l, 4242), dp: dp, logger: log.New(io.Discard, "", 0),
		live: map[uint64]*session{}}
	t.Cleanup(c.wg.Wait)
	return c, dp
}

func (c *Control) newSession(uid uint32) *session {
	ss := &session{s: c, id: c.nextID.Add(1), cred: unix.Ucred{Uid: uid, Gid: uid},
		arenas: map[uint32]*sharedArena{}, files: map[uint32]*attachment{}}
	ss.token[0] = byte(ss.id)
	c.mu.Lock()
	c.live[ss.id] = ss
	c.mu.Unlock()
	return ss
}

// attachAs issues the attach ioctl on h for ss, as its peer.
func attachAs(c *Control, ss *session, h Handle) (uint32, syscall.Errno) {
	in := make([]byte, wire.AttachArgSize)
	out := make([]byte, wire.AttachArgSize)
	a := wire.AttachArg{SessionID: ss.id, Token: ss.token}
	a.Encode(in)
	_, errno := c.Attach(h, ss.cred.Uid, ss.cred.Gid, in, out)
	got, _ := wire.DecodeAttachArg(out)
	return got.FileID, errno
}

// openHandle opens a fresh file as a handle.
func openHandle(t *testing.T, node uint64) *fakeHandle {
	t.Helper()
	fd, err := unix.Open(filepath.Join(t.TempDir(), "f"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	require.NoError(t, err)
	return &fakeHandle{fd: fd, node: node, mode: unix.O_RDWR}
}

func countFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// sameFile reports whether fd is open on the inode of st.
func sameFile(fd int, st unix.Stat_t) bool {
	var now unix.Stat_t
	return unix.Fstat(fd, &now) == nil && now.Dev == st.Dev && now.Ino == st.Ino
}

// One handle attached by many sessions costs the server one fd and one
// registered-file slot, not one per attachment; the last detach closes
// the fd and frees the slot.
func TestOneFdPerHandle(t *testing.T) {
	c, dp := testControl(t, Limits{})
	h := openHandle(t, 7)
	defer unix.Close(h.fd)
	base := countFds(t)
	var sessions []*session
	for range 50 {
		ss := c.newSession(1000)
		id, errno := attachAs(c, ss, h)
		require.Zero(t, errno)
		again, errno := attachAs(c, ss, h)
		require.Zero(t, errno)
		require.Equal(t, id, again, "one handle, one id per session")
		sessions = append(sessions, ss)
	}
	c.wg.Wait() // the registration
	require.Equal(t, base+1, countFds(t), "50 sessions attach one handle: one fd")
	now, ever := dp.registered()
	require.Equal(t, 1, now)
	require.Equal(t, 1, ever, "registered once")
	require.EqualValues(t, 50, c.Stats().AttachedFiles)
	require.EqualValues(t, 50, c.UsageOf(1000).AttachedFiles)

	for _, ss := range sessions[1:] {
		c.detachAll(ss)
	}
	require.Equal(t, base+1, countFds(t), "one attachment left: the fd stays")
	require.NoError(t, c.detach(sessions[0], 1))
	require.Eventually(t, func() bool { return countFds(t) == base }, 5*time.Second, time.Millisecond, "the last detach closes the fd")
	require.Eventually(t, func() bool { now, _ := dp.registered(); return now == 0 }, 5*time.Second, time.Millisecond)
	require.Zero(t, c.UsageOf(1000).AttachedFiles)

	// Attached again later: a new fd, registered anew.
	ss := c.newSession(1000)
	_, errno := attachAs(c, ss, h)
	require.Zero(t, errno)
	c.wg.Wait()
	require.Equal(t, base+1, countFds(t))
	c.detachAll(ss)
	require.Eventually(t, func() bool { return countFds(t) == base }, 5*time.Second, time.Millisecond)
}

// A RELEASE while ops are in flight detaches the file at once but never
// closes the fd they use: the file-system layer closes its own fd and
// the number is reused, yet the ops' fd still names the file until the
// last of them finishes.
func TestReleaseKeepsInFlightFd(t *testing.T) {
	c, dp := testControl(t, Limits{})
	h := openHandle(t, 7)
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(h.fd, &st))
	base := countFds(t)
	a, b := c.newSession(1000), c.newSession(1000)
	ida, errno := attachAs(c, a, h)
	require.Zero(t, errno)
	idb, errno := attachAs(c, b, h)
	require.Zero(t, errno)
	c.wg.Wait()
	oa, eno := a.Prepare(opq.SQE{Opcode: opq.OpFsync, FileID: ida})
	require.Zero(t, eno)
	ob, eno := b.Prepare(opq.SQE{Opcode: opq.OpFsync, FileID: idb})
	require.Zero(t, eno)
	require.Equal(t, oa.File.Fd, ob.File.Fd, "the sessions' ops share the file's one fd")

	c.Released(h)
	unix.Close(h.fd) // the file-system layer's close after Released
	other := openHandle(t, 8)
	defer unix.Close(other.fd)
	require.Zero(t, c.Stats().AttachedFiles, "RELEASE detaches at once")
	_, eno = a.Prepare(opq.SQE{Opcode: opq.OpFsync, FileID: ida})
	require.Equal(t, unix.EBADF, eno, "no new op on a released file")

	a.Finish(oa, 0)
	time.Sleep(10 * time.Millisecond)
	require.True(t, sameFile(ob.File.Fd, st), "an op in flight still has its file")
	now, _ := dp.registered()
	require.Equal(t, 1, now, "still registered while an op uses it")
	b.Finish(ob, 0)
	require.Eventually(t, func() bool { return countFds(t) == base }, 5*time.Second, time.Millisecond,
		"the last op closes the fd (the handle's fd and other's cancel out)")
	require.Eventually(t, func() bool { now, _ := dp.registered(); return now == 0 }, 5*time.Second, time.Millisecond)
	require.Zero(t, c.UsageOf(1000).AttachedFiles)
}

// A handle that lends its fd costs no fd at all: the attachments and ops
// share the handle's own, and give it back when the last one goes.
func TestLentFd(t *testing.T) {
	c, dp := testControl(t, Limits{})
	fh := openHandle(t, 7)
	defer unix.Close(fh.fd)
	h := &lendingHandle{fakeHandle: *fh}
	base := countFds(t)
	var ids []uint32
	var sessions []*session
	for range 20 {
		ss := c.newSession(1000)
		id, errno := attachAs(c, ss, h)
		require.Zero(t, errno)
		ids, sessions = append(ids, id), append(sessions, ss)
	}
	c.wg.Wait()
	require.Equal(t, base, countFds(t), "no fd of its own")
	require.Equal(t, 1, h.loans(), "one loan for every attachment")
	o, eno := sessions[0].Prepare(opq.SQE{Opcode: opq.OpFsync, FileID: ids[0]})
	require.Zero(t, eno)
	require.Equal(t, h.fd, o.File.Fd)
	h.mu.Lock()
	h.released = true
	h.mu.Unlock()
	c.Released(h)
	time.Sleep(10 * time.Millisecond)
	require.Equal(t, 1, h.loans(), "the op in flight keeps the loan")
	sessions[0].Finish(o, 0)
	require.Eventually(t, func() bool { return h.loans() == 0 }, 5*time.Second, time.Millisecond, "given back by the last op")
	require.Eventually(t, func() bool { now, _ := dp.registered(); return now == 0 }, 5*time.Second, time.Millisecond)
	_, errno := attachAs(c, c.newSession(1000), h)
	require.Equal(t, syscall.EBADF, errno, "a released handle lends nothing")
	require.Zero(t, c.UsageOf(1000).AttachedFiles, "the refused attach charged nothing")
}

// Attachments count against their session's peer: past
// AttachedFilesPerUser that uid's attach fails EMFILE, in any of its
// sessions, while another uid attaches the same handles; detach, the
// session's end and RELEASE give them back. The per-session limit still
// holds.
func TestAttachedFilesPerUser(t *testing.T) {
	c, _ := testControl(t, Limits{AttachedFiles: 2, AttachedFilesPerUser: 3})
	const attacker, victim = 1000, 65534
	var hs []*fakeHandle
	for i := range 4 {
		h := openHandle(t, uint64(i+1))
		defer unix.Close(h.fd)
		hs = append(hs, h)
	}
	a1, a2, v := c.newSession(attacker), c.newSession(attacker), c.newSession(victim)
	attach := func(ss *session, h Handle) syscall.Errno { _, errno := attachAs(c, ss, h); return errno }
	require.Zero(t, attach(a1, hs[0]))
	require.Zero(t, attach(a1, hs[1]))
	require.Equal(t, syscall.EMFILE, attach(a1, hs[2]), "the session's limit")
	require.Zero(t, attach(a2, hs[2]))
	require.Equal(t, syscall.EMFILE, attach(a2, hs[3]), "the uid's limit, in another session")
	require.Zero(t, attach(a1, hs[0]), "attached already: no new charge")
	require.EqualValues(t, 3, c.UsageOf(attacker).AttachedFiles)
	for _, h := range hs[:2] {
		require.Zero(t, attach(v, h), "another uid is not affected")
	}
	require.EqualValues(t, 2, c.UsageOf(victim).AttachedFiles)

	require.NoError(t, c.detach(a2, 1))
	require.Zero(t, attach(a2, hs[3]), "detach gave one back")
	c.Released(hs[0]) // RELEASE detaches from a1 and v
	require.EqualValues(t, 2, c.UsageOf(attacker).AttachedFiles)
	require.EqualValues(t, 1, c.UsageOf(victim).AttachedFiles)
	c.detachAll(a1)
	c.detachAll(a2)
	c.detachAll(v)
	require.Zero(t, c.UsageOf(attacker).AttachedFiles)
	require.Zero(t, c.UsageOf(victim).AttachedFiles)
	require.Zero(t, c.Stats().AttachedFiles)
	require.Equal(t, syscall.EPERM, attach(a1, hs[1]), "an ended session attaches nothing")
	require.Zero(t, c.UsageOf(attacker).AttachedFiles)
}
