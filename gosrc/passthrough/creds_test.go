package passthrough

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const nobody = 65534

// onLockedThread runs fn on a fresh locked OS thread that dies with it, so
// a failed Restore cannot leak into other tests.
func onLockedThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fn()
	}()
	<-done
}

// threadStatus returns the value of key in /proc/thread-self/status.
func threadStatus(t *testing.T, key string) string {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestBecomeRestore: a switched thread has the caller's ids, no
// effective capabilities and the caller's rights on files; only that
// thread; Restore brings root back.
func TestBecomeRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // TempDir makes both 0700
	os.Chmod(dir, 0o755)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s"), 0o600)
	group := filepath.Join(dir, "group")
	os.WriteFile(group, []byte("g"), 0o640)
	os.Chown(group, 0, 4242)
	pub := filepath.Join(dir, "pub")
	os.Mkdir(pub, 0o777)
	os.Chmod(pub, 0o1777)

	onLockedThread(func() {
		if err := Become(Creds{Uid: nobody, Gid: nobody}); err != nil {
			t.Fatalf("Become: %v", err)
		}
		// Real, effective and saved uid stay 0: the caller may not signal
		// the thread (kill(2) matches a target's real or saved uid) nor
		// change its affinity or priority (its effective uid).
		if got := threadStatus(t, "Uid"); got != "0\t0\t0\t65534" {
			t.Errorf("Uid: %q; want real, effective, saved 0 and fsuid 65534", got)
		}
		if got := threadStatus(t, "Gid"); got != "0\t0\t0\t65534" {
			t.Errorf("Gid: %q; want real, effective, saved 0 and fsgid 65534", got)
		}
		if got := threadStatus(t, "CapEff"); got != "0000000000000000" {
			t.Errorf("CapEff: %s; want none while switched", got)
		}
		if _, err := os.ReadFile(secret); !os.IsPermission(err) {
			t.Errorf("a root 0600 file read as uid %d: %v; want EACCES", nobody, err)
		}
		if _, err := os.ReadFile(group); !os.IsPermission(err) {
			t.Errorf("a 0640 file of group 4242 read without that group: %v; want EACCES", err)
		}
		// Another thread of the process is still root.
		other := make(chan error)
		go func() { _, err := os.ReadFile(secret); other <- err }()
		if err := <-other; err != nil {
			t.Errorf("another thread lost root: %v", err)
		}
		f := filepath.Join(pub, "made")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatalf("create as uid %d: %v", nobody, err)
		}
		var st unix.Stat_t
		unix.Stat(f, &st)
		if st.Uid != nobody || st.Gid != nobody {
			t.Errorf("a file made while switched belongs to %d:%d; want %d:%d", st.Uid, st.Gid, nobody, nobody)
		}
		Restore()
		if _, err := os.ReadFile(secret); err != nil {
			t.Errorf("after Restore: %v", err)
		}
		if got := threadStatus(t, "Uid"); got != "0\t0\t0\t0" {
			t.Errorf("after Restore Uid: %q", got)
		}
		if err := Become(Creds{Uid: nobody, Gid: nobody, Groups: []uint32{4242}}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.ReadFile(group); err != nil {
			t.Errorf("a 0640 file of group 4242 read with that supplementary group: %v", err)
		}
		if got := threadStatus(t, "Groups"); got != "4242" {
			t.Errorf("Groups while switched: %q; want 4242", got)
		}
		Restore()
		var want []string
		for _, g := range serverGroups {
			want = append(want, strconv.FormatUint(uint64(g), 10))
		}
		if got := threadStatus(t, "Groups"); got != strings.Join(want, " ") {
			t.Errorf("Groups after Restore: %q; want the server's %v", got, serverGroups)
		}
	})
}

// TestGroupCache: a live thread's groups, only for its own ids; nothing
// for tid 0 or a thread that is gone; the cache stays bounded.
func TestGroupCache(t *testing.T) {
	c := &GroupCache{TTL: time.Minute, Max: 2}
	tid := uint32(unix.Gettid())
	uid, gid := uint32(unix.Getuid()), uint32(unix.Getgid())
	got := c.Groups(tid, uid, gid)
	if !slices.Equal(got, serverGroups) && !(len(got) == 0 && len(serverGroups) == 0) {
		t.Errorf("Groups(self) = %v; want %v", got, serverGroups)
	}
	if g := c.Groups(tid, uid+1, gid); g != nil {
		t.Errorf("Groups with another uid than the thread's = %v; want nil", g)
	}
	if g := c.Groups(0, uid, gid); g != nil {
		t.Errorf("Groups(tid 0) = %v; want nil", g)
	}
	if g := c.Groups(1<<30, uid, gid); g != nil {
		t.Errorf("Groups(a thread that does not exist) = %v; want nil", g)
	}
	for i := 0; i < 5; i++ {
		onLockedThread(func() { c.Groups(uint32(unix.Gettid()), uid, gid) })
	}
	if n := len(c.m); n > 2 {
		t.Errorf("cache holds %d threads; Max is 2", n)
	}
}

// TestDropResourceOverride: the thread loses CAP_SYS_RESOURCE from its
// effective and permitted sets, for good (Become/Restore do not bring it
// back); other threads keep it.
func TestDropResourceOverride(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	has := func(key string) bool {
		v, err := strconv.ParseUint(threadStatus(t, key), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v&(1<<capSysResource) != 0
	}
	if !has("CapEff") {
		t.Skip("this test runs without CAP_SYS_RESOURCE")
	}
	onLockedThread(func() {
		if err := DropResourceOverride(); err != nil {
			t.Fatal(err)
		}
		if has("CapEff") || has("CapPrm") {
			t.Errorf("CAP_SYS_RESOURCE still there after DropResourceOverride")
		}
		Become(Creds{Uid: nobody, Gid: nobody})
		Restore()
		if has("CapEff") {
			t.Errorf("Become/Restore brought CAP_SYS_RESOURCE back")
		}
		if !threadHasOtherCaps(t) {
			t.Errorf("DropResourceOverride took more than CAP_SYS_RESOURCE")
		}
		other := make(chan bool)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			other <- has("CapEff")
		}()
		if !<-other {
			t.Errorf("another thread lost CAP_SYS_RESOURCE too")
		}
	})
}

// threadHasOtherCaps reports whether the thread still has CAP_DAC_OVERRIDE.
func threadHasOtherCaps(t *testing.T) bool {
	v, _ := strconv.ParseUint(threadStatus(t, "CapEff"), 16, 64)
	return v&(1<<1) != 0
}

// TestCallerHasFsetid: only root keeps setuid/setgid on its writes: a
// non-root caller never counts as having CAP_FSETID, whatever its /proc
// entry says (it could show a setuid-root binary exec'd after the
// request was made).
func TestCallerHasFsetid(t *testing.T) {
	self := uint32(os.Getpid())
	if os.Geteuid() == 0 && !CallerHasFsetid(0, self) {
		t.Errorf("root (this test, pid %d) has CAP_FSETID, but CallerHasFsetid says no", self)
	}
	if CallerHasFsetid(65534, self) {
		t.Errorf("uid 65534 counted as having CAP_FSETID because pid %d (root) has it", self)
	}
	if CallerHasFsetid(0, 0) || CallerHasFsetid(0, 1<<30) {
		t.Errorf("a root caller that cannot be read (pid 0, or gone) counted as having CAP_FSETID")
	}
}
