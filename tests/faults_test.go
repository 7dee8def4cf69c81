package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"
	"golang.org/x/sys/unix"
)

// statWithin stats path from a goroutine and gives up after d.
func statWithin(path string, d time.Duration) (error, bool) {
	done := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		done <- unix.Stat(path, &st)
	}()
	select {
	case err := <-done:
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// TestKilledServer: a SIGKILLed server leaves a mount that answers
// ENOTCONN; after unmounting it, a new server mounts the same mountpoint.
func TestKilledServer(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		s := startMount(t, mountOpts{transport: tr})
		if err := os.WriteFile(filepath.Join(s.Mnt, "f"), []byte("survives\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.kill()
		// Right after the kill the kernel may still be tearing the
		// connection down (io_uring's exit work runs asynchronously): a
		// request queued to a ring entry being cancelled fails ECANCELED,
		// one in flight when the connection is aborted ECONNABORTED. After
		// that every request fails ENOTCONN. Poll until then; a success,
		// a hang or any other errno fails.
		var seen []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			err, ok := statWithin(s.Mnt, 5*time.Second)
			if !ok {
				t.Fatalf("stat %s hangs after the server was killed", s.Mnt)
			}
			if len(seen) == 0 || seen[len(seen)-1] != fmt.Sprint(err) {
				seen = append(seen, fmt.Sprint(err))
			}
			if errors.Is(err, unix.ENOTCONN) {
				break
			}
			transient := errors.Is(err, unix.ECANCELED) || errors.Is(err, unix.ECONNABORTED)
			if !transient || time.Now().After(deadline) {
				t.Fatalf("stat %s after SIGKILL: %v, want ENOTCONN (transport endpoint is not connected); seen %q", s.Mnt, err, seen)
			}
			time.Sleep(time.Millisecond)
		}
		if len(seen) > 1 {
			t.Logf("stat after SIGKILL returned, in order: %q", seen)
		}
		if out, err := exec.Command("umount", s.Mnt).CombinedOutput(); err != nil {
			t.Errorf("umount of the dead mount: %v: %s (lazy unmount instead)", err, out)
			mountproc.Detach(s.Mnt)
		}
		if mountproc.IsMounted(s.Mnt) {
			t.Fatalf("%s still mounted", s.Mnt)
		}

		s2 := startMount(t, mountOpts{transport: tr, backing: s.Backing, mountpoint: s.Mnt})
		if b, err := os.ReadFile(filepath.Join(s2.Mnt, "f")); err != nil || string(b) != "survives\n" {
			t.Errorf("read through the new server: %q, %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(s2.Mnt, "g"), []byte("new\n"), 0o644); err != nil {
			t.Errorf("write through the new server: %v", err)
		}
		s2.stop(syscall.SIGTERM)
	})
}

// client is a shell loop running through the mount until an operation fails.
type client struct {
	name string
	cmd  *exec.Cmd
	out  *mountproc.Log
	done chan struct{}
}

func startClient(t *testing.T, name, script string) *client {
	t.Helper()
	c := &client{name: name, out: mountproc.NewLog(nil), done: make(chan struct{})}
	c.cmd = exec.Command("sh", "-c", script)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	// Own process group, so a hung loop and its child can be killed together.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				t.Errorf("client %s (pgid %d) did not die of SIGKILL", c.name, c.cmd.Process.Pid)
			}
		}
	})
	return c
}

func (c *client) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// TestStopInFlight: SIGTERM while writers, readers and a metadata loop run
// through the mount. The server must exit within 15 s and every client must
// end (each loop stops at its first failed operation) rather than hang.
func TestStopInFlight(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		s := startMount(t, mountOpts{transport: tr})
		writeFile(t, filepath.Join(s.Backing, "r"), make([]byte, 1<<20), 0o644)
		m := s.Mnt
		// Each loop ends at its first failed operation. The test -e of r,
		// which exists only in the backing dir, ends a loop once the mount
		// is gone (it would otherwise go on in the bare mountpoint dir).
		on := fmt.Sprintf("[ -e %s/r ]", m)
		clients := []*client{
			startClient(t, "writer", fmt.Sprintf(`while %s && dd if=/dev/zero of=%s/w bs=64k count=32 conv=fsync status=none; do :; done`, on, m)),
			startClient(t, "direct-writer", fmt.Sprintf(`while %s && dd if=/dev/zero of=%s/wd bs=1M count=4 oflag=direct status=none; do :; done`, on, m)),
			startClient(t, "reader", fmt.Sprintf(`while dd if=%s/r of=/dev/null bs=128k iflag=direct status=none; do :; done`, m)),
			startClient(t, "meta", fmt.Sprintf(`i=0; while %s && ls %s >/dev/null && touch %s/t$i && rm %s/t$i; do i=$((i+1)); done`, on, m, m, m)),
		}
		time.Sleep(1500 * time.Millisecond)
		for _, c := range clients {
			if !c.running() {
				t.Fatalf("client %s ended before the stop:\n%s", c.name, c.out)
			}
		}
		st := s.stats()
		t.Logf("before stop: ring=%v dev=%v", st.Requests.Ring, st.Requests.Dev)

		s.stopped = true
		start := time.Now()
		s.signal(syscall.SIGTERM)
		if !s.waitExit(15 * time.Second) {
			t.Fatalf("server did not exit within 15s of SIGTERM with requests in flight")
		}
		t.Logf("server exited %d after %.2fs", s.exitCode(), time.Since(start).Seconds())
		if ps := s.cmd.ProcessState; ps != nil {
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Errorf("server died of signal %v instead of handling SIGTERM", ws.Signal())
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for _, c := range clients {
			select {
			case <-c.done:
				t.Logf("client %s ended (exit %d): %s", c.name, c.cmd.ProcessState.ExitCode(), strings.TrimSpace(c.out.String()))
			case <-time.After(time.Until(deadline)):
				t.Errorf("client %s still running 15s after the server exited: hung", c.name)
			}
		}
		if err, ok := statWithin(m, 5*time.Second); !ok {
			t.Errorf("stat %s hangs after the stop", m)
		} else {
			t.Logf("stat %s after the stop: %v; mounted: %v", m, err, mountproc.IsMounted(m))
		}
		if mountproc.IsMounted(m) {
			t.Errorf("%s still mounted after the server exited", m)
		}
	})
}

// expectMountFailure runs `zcfuse mount` expecting it to fail before ready.
func expectMountFailure(t *testing.T, o mountOpts) (code int, stderr string) {
	t.Helper()
	s := launch(t, o)
	ok, err := s.waitReady(readyTimeout)
	if err != nil {
		t.Fatalf("zcfuse mount neither failed nor became ready: %v\nstderr:\n%s", err, s.stderr)
	}
	if ok {
		t.Errorf("zcfuse mount became ready (%q) but should have failed", s.ReadyLine)
		s.stop(syscall.SIGTERM)
		return 0, s.stderr.String()
	}
	s.stopped = true
	return s.exitCode(), s.stderr.String()
}

func containsAny(s string, subs ...string) bool {
	ls := strings.ToLower(s)
	for _, sub := range subs {
		if strings.Contains(ls, strings.ToLower(sub)) {
			return true
		}
	}
	return false
}

// TestBadOptions: bad options exit non-zero (2 for usage errors, 1
// otherwise) with a `zcfuse: ` line naming the problem.
func TestBadOptions(t *testing.T) {
	dir := scratchDir(t)
	backing := mkdir(t, filepath.Join(dir, "backing"))
	mnt := mkdir(t, filepath.Join(dir, "mnt"))
	file := filepath.Join(dir, "file")
	writeFile(t, file, []byte("x"), 0o644)
	missing := filepath.Join(dir, "no-such-dir")
	nested := mkdir(t, filepath.Join(backing, "a", "mnt"))
	// The same, reached through a symlink outside the backing directory.
	viaLink := filepath.Join(dir, "link-to-nested")
	if err := os.Symlink(nested, viaLink); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		o        mountOpts
		wantCode int
		mentions []string // the zcfuse: line must contain one of these
	}{
		{"missing backing dir", mountOpts{transport: "classic", backing: missing, mountpoint: mnt}, 1, []string{"no-such-dir", "no such file"}},
		{"backing not a directory", mountOpts{transport: "classic", backing: file, mountpoint: mnt}, 1, []string{"not a directory"}},
		{"missing mountpoint", mountOpts{transport: "classic", backing: backing, mountpoint: missing}, 1, []string{"no-such-dir", "no such file"}},
		{"unknown flag", mountOpts{transport: "classic", args: []string{"--bogus-flag"}, backing: backing, mountpoint: mnt}, 2, []string{"bogus-flag"}},
		{"queue depth 0", mountOpts{transport: "classic", args: []string{"--queue-depth", "0"}, backing: backing, mountpoint: mnt}, 2, []string{"queue-depth", "queue depth"}},
		{"unknown transport", mountOpts{transport: "carrier-pigeon", backing: backing, mountpoint: mnt}, 2, []string{"carrier-pigeon", "transport"}},
		// It would serve lookups of its own mount until no thread is left.
		{"mountpoint inside the backing dir", mountOpts{transport: "classic", backing: backing, mountpoint: nested}, 1, []string{"inside the backing directory"}},
		{"mountpoint inside the backing dir, through a symlink", mountOpts{transport: "classic", backing: backing, mountpoint: viaLink}, 1, []string{"inside the backing directory"}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			code, stderr := expectMountFailure(t, c.o)
			line := zcfuseLine(stderr)
			t.Logf("exit %d: %s", code, line)
			if code != c.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, c.wantCode, stderr)
			}
			if line == "" || !containsAny(line, c.mentions...) {
				t.Errorf("want a `zcfuse: ` line mentioning one of %q\nstderr:\n%s", c.mentions, stderr)
			}
		})
	}

	t.Run("missing_arguments", func(t *testing.T) {
		r := runZcfuse(t, 10*time.Second, nil, "mount", backing)
		if r.code != 2 || zcfuseLine(r.stderr) == "" {
			t.Errorf("zcfuse mount BACKING (no mountpoint): exit %d, stderr %q; want 2 and a zcfuse: line", r.code, r.stderr)
		}
		r = runZcfuse(t, 10*time.Second, nil, "frobnicate")
		if r.code != 2 || zcfuseLine(r.stderr) == "" {
			t.Errorf("zcfuse frobnicate: exit %d, stderr %q; want 2 and a zcfuse: line", r.code, r.stderr)
		}
	})

	t.Run("busy_mountpoint", func(t *testing.T) {
		first := startMount(t, mountOpts{transport: "classic"})
		writeFile(t, filepath.Join(first.Backing, "f"), []byte("first\n"), 0o644)
		other := mkdir(t, filepath.Join(dir, "other"))
		code, stderr := expectMountFailure(t, mountOpts{transport: "classic", backing: other, mountpoint: first.Mnt})
		line := zcfuseLine(stderr)
		t.Logf("exit %d: %s", code, line)
		if code != 1 {
			t.Errorf("second mount on a busy mountpoint: exit %d, want 1\nstderr:\n%s", code, stderr)
		}
		if !containsAny(line, "busy", "already", "mounted") {
			t.Errorf("want a `zcfuse: ` line saying the mountpoint is busy\nstderr:\n%s", stderr)
		}
		if b, err := os.ReadFile(filepath.Join(first.Mnt, "f")); err != nil || string(b) != "first\n" {
			t.Errorf("first mount after the failed second one: %q, %v", b, err)
		}
		first.stop(syscall.SIGTERM)
	})
}

// TestUringDisabled is the only test that flips the global enable_uring
// parameter; it restores the original value. With it off, `--transport
// uring` and `--transport auto` under ZCFUSE_REQUIRE_URING=1 fail naming
// the parameter, and plain auto falls back to classic saying why.
func TestUringDisabled(t *testing.T) {
	orig, err := os.ReadFile(enableUringParam)
	if err != nil {
		t.Skipf("kernel without FUSE-over-io_uring support: %v", err)
	}
	if err := os.WriteFile(enableUringParam, []byte("N"), 0); err != nil {
		t.Fatalf("switch %s off: %v", enableUringParam, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(enableUringParam, []byte(strings.TrimSpace(string(orig))), 0); err != nil {
			t.Errorf("restore %s to %q: %v", enableUringParam, orig, err)
		}
	})

	for _, c := range []struct {
		name string
		o    mountOpts
	}{
		{"uring", mountOpts{transport: "uring"}},
		{"auto_required", mountOpts{transport: "auto", env: []string{"ZCFUSE_REQUIRE_URING=1"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := expectMountFailure(t, c.o)
			line := zcfuseLine(stderr)
			t.Logf("exit %d: %s", code, line)
			if code == 0 {
				t.Errorf("exit 0, want failure")
			}
			if !strings.Contains(stderr, "enable_uring") {
				t.Errorf("error does not mention %s\nstderr:\n%s", enableUringParam, stderr)
			}
		})
	}

	t.Run("auto_fallback", func(t *testing.T) {
		s := startMount(t, mountOpts{transport: "auto"})
		if s.Transport != "classic" {
			t.Fatalf("ready line %q, want transport=classic", s.ReadyLine)
		}
		st := s.stats()
		t.Logf("fallback_reason: %q", st.FallbackReason)
		if st.Transport != "classic" || st.FallbackReason == "" {
			t.Errorf("stats transport %q fallback_reason %q; want classic and a reason", st.Transport, st.FallbackReason)
		}
		if !strings.Contains(s.stderr.String(), "enable_uring") {
			t.Errorf("fallback reason not logged on stderr (no mention of enable_uring):\n%s", s.stderr)
		}
		if err := os.WriteFile(filepath.Join(s.Mnt, "f"), []byte("classic\n"), 0o644); err != nil {
			t.Error(err)
		}
		s.stop(syscall.SIGTERM)
	})
}
