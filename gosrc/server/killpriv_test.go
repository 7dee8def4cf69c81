package server

import (
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCallerHasFsetid: only root keeps setuid/setgid on its writes: a
// non-root caller never counts as having CAP_FSETID, whatever its /proc
// entry says (it could show a setuid-root binary exec'd after the
// request was made).
func TestCallerHasFsetid(t *testing.T) {
	self := uint32(os.Getpid())
	if os.Geteuid() == 0 && !callerHasFsetid(0, self) {
		t.Errorf("root (this test, pid %d) has CAP_FSETID, but callerHasFsetid says no", self)
	}
	if callerHasFsetid(65534, self) {
		t.Errorf("uid 65534 counted as having CAP_FSETID because pid %d (root) has it", self)
	}
	if callerHasFsetid(0, 0) || callerHasFsetid(0, 1<<30) {
		t.Errorf("a root caller that cannot be read (pid 0, or gone) counted as having CAP_FSETID")
	}
}

// TestPeerGroups: a session's groups come from the socket (what the
// kernel took at connect), not from /proc.
func TestPeerGroups(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	want, _ := unix.Getgroups()
	got := peerGroups(fds[0])
	var w []uint32
	for _, g := range want {
		w = append(w, uint32(g))
	}
	slices.Sort(w)
	slices.Sort(got)
	if !slices.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
		t.Errorf("peerGroups = %v; want this process's groups %v", got, w)
	}
	if g := peerGroups(-1); g == nil || len(g) != 0 {
		t.Errorf("peerGroups of a bad fd = %v; want an empty, non-nil list (the primary group only)", g)
	}
}

// TestKillPrivGeneration: a kill-priv check that raced with an attribute
// change is not remembered as clean.
func TestKillPrivGeneration(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := &node{srv: &Server{nosecTTL: 1 << 40}}
	fd := int(f.Fd())
	n.killPriv(fd, false, privCaller{})
	if n.nosecUntil.Load() == 0 {
		t.Fatalf("a clean file's check was not remembered")
	}
	n.attrsChanged()
	if n.nosecUntil.Load() != 0 {
		t.Fatalf("attrsChanged kept the remembered check")
	}
	// A check that began before a change and ends after it.
	gen := n.attrGen.Load()
	n.attrsChanged()
	if n.attrGen.Load() == gen {
		t.Fatalf("attrsChanged did not advance the generation")
	}
}
