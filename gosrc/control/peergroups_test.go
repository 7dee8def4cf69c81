package control

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

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
