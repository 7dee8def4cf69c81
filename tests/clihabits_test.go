package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCpRefusesBeforeTouching: zcfuse cp checks everything it can before
// it changes the destination, whose contents survive every refusal: the
// same file (by name, and by another hard link), a destination outside
// any zcfuse mount, a source on another mount, a directory as the
// source. A copy over an existing file writes it in place (same inode,
// its other hard link sees the copy).
func TestCpRefusesBeforeTouching(t *testing.T) {
	requireUring(t)
	s := startMount(t, mountOpts{transport: "uring"})
	other := startMount(t, mountOpts{transport: "uring"})
	const keep = "keep me\n"
	writeFile(t, s.Backing+"/f", []byte(keep), 0o644)
	if err := os.Link(s.Backing+"/f", s.Backing+"/f-link"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, other.Backing+"/elsewhere", []byte("other mount\n"), 0o644)
	outside := filepath.Join(scratchDir(t), "outside")
	writeFile(t, outside, []byte(keep), 0o644)
	mkdir(t, s.Backing+"/dir")
	for _, c := range []struct {
		what     string
		src, dst string
		check    string // a file that must still read keep
		errHas   string
	}{
		{"the same name", s.Mnt + "/f", s.Mnt + "/f", s.Backing + "/f", "same file"},
		{"another hard link", s.Mnt + "/f", s.Mnt + "/f-link", s.Backing + "/f", "same file"},
		{"a destination outside any mount", s.Mnt + "/f", outside, outside, "not inside a zcfuse mount"},
		{"a source on another mount", other.Mnt + "/elsewhere", s.Mnt + "/f", s.Backing + "/f", "within one mount"},
		{"a directory as the source", s.Mnt + "/dir", s.Mnt + "/f", s.Backing + "/f", "not a regular file"},
	} {
		r := runZcfuse(t, 30*time.Second, nil, "cp", c.src, c.dst)
		if r.code != 1 || !strings.Contains(r.stderr, c.errHas) {
			t.Errorf("cp with %s: exit %d, stderr %q; want exit 1 saying %q", c.what, r.code, r.stderr, c.errHas)
		}
		if b, err := os.ReadFile(c.check); err != nil || string(b) != keep {
			t.Errorf("cp with %s changed %s: %q, %v", c.what, c.check, b, err)
		}
	}
	if _, err := os.Stat(s.Backing + "/new-never"); !os.IsNotExist(err) {
		t.Errorf("a refused copy left a file behind: %v", err)
	}
	// A new destination on a refused copy is not left behind either.
	r := runZcfuse(t, 30*time.Second, nil, "cp", other.Mnt+"/elsewhere", s.Mnt+"/new-never")
	if r.code != 1 {
		t.Errorf("cp from another mount into a new file: exit %d", r.code)
	}
	if _, err := os.Stat(s.Backing + "/new-never"); !os.IsNotExist(err) {
		t.Errorf("a refused copy created its destination: %v", err)
	}
	// Over an existing file: in place, so its other name sees the copy.
	writeFile(t, s.Backing+"/src", []byte("the new contents\n"), 0o644)
	var before, after syscall.Stat_t
	syscall.Stat(s.Backing+"/f", &before)
	if r := runZcfuse(t, 30*time.Second, nil, "cp", s.Mnt+"/src", s.Mnt+"/f"); r.code != 0 {
		t.Fatalf("cp over an existing file: exit %d\n%s", r.code, r.stderr)
	}
	syscall.Stat(s.Backing+"/f", &after)
	b, _ := os.ReadFile(s.Backing + "/f-link")
	if before.Ino != after.Ino || string(b) != "the new contents\n" {
		t.Errorf("cp over an existing file: inode %d -> %d, its hard link reads %q", before.Ino, after.Ino, b)
	}
}

// TestCLIHabits: --help on every subcommand exits 0 and describes every
// flag; --version; flags after the arguments; stats from any path inside
// a mount; a non-root mount says what it needs.
func TestCLIHabits(t *testing.T) {
	for cmd, flags := range map[string][]string{
		"mount": {"-transport", "-queue-depth", "-allow-other", "-read-only", "-passthrough", "-cross-mounts", "-d"},
		"stats": {"-json"},
		"cp":    {"-chunk", "-depth"},
	} {
		r := runZcfuse(t, 10*time.Second, nil, cmd, "--help")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: zcfuse "+cmd) {
			t.Errorf("zcfuse %s --help: exit %d, stdout %q", cmd, r.code, r.stdout)
		}
		for _, f := range flags {
			if !strings.Contains(r.stdout, "  "+f) {
				t.Errorf("zcfuse %s --help does not describe %s", cmd, f)
			}
		}
	}
	if r := runZcfuse(t, 10*time.Second, nil, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "zcfuse 0.") {
		t.Errorf("zcfuse --version: exit %d, %q", r.code, r.stdout)
	}
	if r := runZcfuse(t, 10*time.Second, nil, "stats"); r.code != 2 || !strings.Contains(r.stderr, "stats needs [--json] PATH") {
		t.Errorf("zcfuse stats with no path: exit %d, %q", r.code, r.stderr)
	}
	s := startMount(t, mountOpts{transport: "classic"})
	mkdir(t, s.Backing+"/a/b")
	writeFile(t, s.Backing+"/a/b/f", []byte("x"), 0o644)
	for _, p := range []string{s.Mnt, s.Mnt + "/a", s.Mnt + "/a/b/f"} {
		r := runZcfuse(t, 10*time.Second, nil, "stats", p, "--json") // the flag after the path
		if r.code != 0 || !strings.Contains(r.stdout, `"mountpoint":"`+s.Mnt+`"`) {
			t.Errorf("zcfuse stats %s --json: exit %d, %q %q", p, r.code, r.stdout, r.stderr)
		}
	}
	if r := runZcfuse(t, 10*time.Second, nil, "stats", scratchDir(t)); r.code != 1 || !strings.Contains(r.stderr, "not inside a zcfuse mount") {
		t.Errorf("zcfuse stats outside a mount: exit %d, %q", r.code, r.stderr)
	}
	// mount with the flag last: it reaches the mount, which (as uid
	// 65534) fails saying it needs root.
	dir := scratchDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	b, m := mkdir(t, dir+"/b"), mkdir(t, dir+"/m")
	os.Chmod(b, 0o777)
	os.Chmod(m, 0o777)
	self, err := os.ReadFile(zcfuseBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/zcfuse" // where uid 65534 may run it
	writeFile(t, bin, self, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "mount", b, m, "--read-only")
	cmd.Env = childEnv(nil)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	var se bytes.Buffer
	cmd.Stderr = &se
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(se.String(), "needs root") {
		t.Errorf("zcfuse mount B M --read-only as uid %d: %v, stderr %q; want exit 1 saying it needs root", nobody, err, se.String())
	}
}

// zcfuse mount --limit sets a limit by name: with open_files_per_user=3
// the fourth file a user holds open through the mount fails EMFILE, and
// closing one makes room; a bad --limit is a usage error naming it.
func TestCLILimitFlag(t *testing.T) {
	s := startMount(t, mountOpts{transport: "uring", args: []string{"--limit", "open_files_per_user=3", "--limit", "hello_timeout_ms=500"}})
	var fds []int
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	for i := range 3 {
		fd, err := syscall.Open(filepath.Join(s.Mnt, fmt.Sprintf("f%d", i)), syscall.O_CREAT|syscall.O_RDWR, 0o644)
		if err != nil {
			t.Fatalf("open %d of 3: %v", i+1, err)
		}
		fds = append(fds, fd)
	}
	if _, err := syscall.Open(filepath.Join(s.Mnt, "f3"), syscall.O_CREAT|syscall.O_RDWR, 0o644); err != syscall.EMFILE {
		t.Fatalf("a fourth open file: %v, want EMFILE", err)
	}
	if _, err := os.Stat(filepath.Join(s.Backing, "f3")); !os.IsNotExist(err) {
		t.Errorf("the refused create left a file behind: %v", err)
	}
	syscall.Close(fds[2])
	fds = fds[:2]
	// The kernel sends RELEASE after close(2) returns, asynchronously.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		fd, err := syscall.Open(filepath.Join(s.Mnt, "f3"), syscall.O_CREAT|syscall.O_RDWR, 0o644)
		if err == nil {
			fds = append(fds, fd)
			break
		}
		if err != syscall.EMFILE || time.Now().After(deadline) {
			t.Fatalf("after a close: %v", err)
		}
	}

	r := runZcfuse(t, 10*time.Second, nil, "mount", "--limit", "no_such=1", s.Backing, s.Mnt)
	if r.code != 2 || !strings.Contains(r.stderr, `no limit named "no_such"`) {
		t.Errorf("--limit no_such=1: exit %d, %q", r.code, r.stderr)
	}
}
