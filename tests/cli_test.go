package tests

import (
	"bytes"
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
)

// possibleCPUs counts /sys/devices/system/cpu/possible (the kernel makes one
// FUSE queue per possible CPU).
func possibleCPUs(t *testing.T) int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		var lo, hi int
		if c, _ := fmt.Sscanf(r, "%d-%d", &lo, &hi); c == 2 {
			n += hi - lo + 1
		} else {
			n++
		}
	}
	return n
}

// TestRoundTrip: files written through the mount land in the backing dir
// and read back; stats name the transport and count the requests.
func TestRoundTrip(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		s := startMount(t, mountOpts{transport: tr, args: []string{"--queue-depth", "2"}})
		writeFile(t, filepath.Join(s.Backing, "pre"), []byte("from the backing dir\n"), 0o644)
		before := s.stats()

		want := bytes.Repeat([]byte("zcfuse\n"), 10000) // 70 KB
		if err := os.WriteFile(filepath.Join(s.Mnt, "a"), want, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(s.Mnt, "d", "e"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Mnt, "d", "e", "b"), []byte("b"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(s.Mnt, "d", "e", "b"), filepath.Join(s.Mnt, "d", "c")); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(s.Backing, "a"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("backing copy of a: %d bytes, err %v; want %d bytes", len(got), err, len(want))
		}
		if _, err := os.Stat(filepath.Join(s.Backing, "d", "c")); err != nil {
			t.Fatalf("renamed file not in the backing dir: %v", err)
		}
		got, err = os.ReadFile(filepath.Join(s.Mnt, "pre"))
		if err != nil || string(got) != "from the backing dir\n" {
			t.Fatalf("read pre through the mount: %q, %v", got, err)
		}
		ents, err := os.ReadDir(s.Mnt)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != "a d pre" {
			t.Errorf("readdir of the mount: %v, want [a d pre]", names)
		}
		if err := os.Remove(filepath.Join(s.Mnt, "a")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(s.Backing, "a")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unlink through the mount: backing file still there (%v)", err)
		}

		after := s.stats()
		d := diffStats(before, after)
		t.Logf("stats delta: %v", d)
		if after.Transport != tr {
			t.Errorf("stats transport %q, want %q", after.Transport, tr)
		}
		// Queues and depth describe the io_uring transport (0 on classic).
		if tr == "uring" && after.QueueDepth != 2 {
			t.Errorf("stats queue_depth %d, want 2", after.QueueDepth)
		}
		if tr == "uring" && after.Queues != possibleCPUs(t) {
			t.Errorf("stats queues %d, want %d (possible CPUs)", after.Queues, possibleCPUs(t))
		}
		if after.Passthrough || after.ReadOnly {
			t.Errorf("stats passthrough=%v read_only=%v, want both false", after.Passthrough, after.ReadOnly)
		}
		if after.Requests.Dev["INIT"] != 1 {
			t.Errorf("requests.dev.INIT = %d, want 1", after.Requests.Dev["INIT"])
		}
		checkCarried(t, tr, d, "WRITE", "MKDIR", "RENAME", "UNLINK")
		if d.bytesWritten < int64(len(want)+1) {
			t.Errorf("bytes_written grew by %d, want ≥ %d", d.bytesWritten, len(want)+1)
		}
		s.stop(syscall.SIGTERM)
	})
}

// TestStatsHuman: the human form names the transport; stats on a directory
// that is no zcfuse mount fails with a zcfuse: line.
func TestStatsHuman(t *testing.T) {
	s := startMount(t, mountOpts{transport: "classic"})
	r := runZcfuse(t, 10*time.Second, nil, "stats", s.Mnt)
	if r.code != 0 {
		t.Fatalf("zcfuse stats: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("zcfuse stats:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "classic") {
		t.Errorf("human stats do not name the transport:\n%s", r.stdout)
	}
	for _, field := range []string{"sessions", "arenas", "registered bytes", "attached files", "zero-copy bytes", "copied bytes"} {
		if !strings.Contains(r.stdout, field) {
			t.Errorf("human stats lack %q:\n%s", field, r.stdout)
		}
	}

	plain := scratchDir(t)
	r = runZcfuse(t, 10*time.Second, nil, "stats", "--json", plain)
	if r.code == 0 || zcfuseLine(r.stderr) == "" {
		t.Errorf("zcfuse stats on a plain dir: exit %d, stderr %q; want non-zero and a zcfuse: line", r.code, r.stderr)
	}
}

// TestReadOnly: --read-only refuses writes with EROFS and still reads.
func TestReadOnly(t *testing.T) {
	dir := scratchDir(t)
	backing := mkdir(t, filepath.Join(dir, "backing"))
	writeFile(t, filepath.Join(backing, "f"), []byte("ro\n"), 0o644)
	s := startMount(t, mountOpts{transport: "classic", backing: backing, mountpoint: mkdir(t, filepath.Join(dir, "mnt")),
		args: []string{"--read-only"}})
	if b, err := os.ReadFile(filepath.Join(s.Mnt, "f")); err != nil || string(b) != "ro\n" {
		t.Errorf("read through a read-only mount: %q, %v", b, err)
	}
	err := os.WriteFile(filepath.Join(s.Mnt, "g"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("create on a read-only mount: %v, want EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(backing, "g")); err == nil {
		t.Errorf("read-only mount created a backing file")
	}
	if st := s.stats(); !st.ReadOnly {
		t.Errorf("stats read_only = false")
	}
}

// TestPassthroughFlag: --passthrough mounts, moves data correctly, says so,
// and the kernel routes READ/WRITE around the server (it sees none).
func TestPassthroughFlag(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		s := startMount(t, mountOpts{transport: tr, args: []string{"--passthrough"}})
		before := s.stats()
		want := bytes.Repeat([]byte{0xa5}, 1<<20)
		if err := os.WriteFile(filepath.Join(s.Mnt, "p"), want, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(s.Backing, "p")); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("backing copy: %d bytes, %v", len(got), err)
		}
		after := s.stats()
		if !after.Passthrough {
			t.Errorf("stats passthrough = false with --passthrough")
		}
		if b, err := os.ReadFile(filepath.Join(s.Mnt, "p")); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("read back through the mount: %d bytes, %v", len(b), err)
		}
		after = s.stats()
		d := diffStats(before, after)
		t.Logf("with --passthrough: %v", d)
		if n := d.ring["WRITE"] + d.dev["WRITE"] + d.ring["READ"] + d.dev["READ"]; n != 0 || d.bytesWritten != 0 {
			t.Errorf("with --passthrough the server still saw %d READ/WRITE requests, %d bytes written", n, d.bytesWritten)
		}
	})
}

// TestSignalsAndExternalUnmount: SIGINT and SIGTERM unmount and exit 0; so
// does an external `umount MOUNTPOINT`.
func TestSignalsAndExternalUnmount(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			s := startMount(t, mountOpts{transport: tr})
			s.stop(sig)
		}

		s := startMount(t, mountOpts{transport: tr})
		s.stopped = true
		start := time.Now()
		if out, err := exec.Command("umount", s.Mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount %s: %v\n%s", s.Mnt, err, out)
		}
		if !s.waitExit(stopTimeout) {
			t.Fatalf("server still running %v after an external umount", stopTimeout)
		}
		t.Logf("server exited %d %.2fs after umount", s.exitCode(), time.Since(start).Seconds())
		if s.exitCode() != 0 {
			t.Errorf("exit code %d after external umount, want 0\nstderr:\n%s", s.exitCode(), s.stderr)
		}
	})
}

// TestAutoTransport: auto picks uring when the kernel offers it.
func TestAutoTransport(t *testing.T) {
	requireUring(t)
	s := startMount(t, mountOpts{transport: "auto"})
	if s.Transport != "uring" {
		t.Errorf("--transport auto with enable_uring=Y: ready line %q, want transport=uring", s.ReadyLine)
	}
	if st := s.stats(); st.Transport != "uring" || st.FallbackReason != "" {
		t.Errorf("stats transport %q fallback_reason %q, want uring and none", st.Transport, st.FallbackReason)
	}
}

// TestStderrClosed: a server whose stderr reader went away (the terminal or
// the log pipe closed, the parent died) must still unmount cleanly on
// SIGTERM: a log line hitting the broken pipe must not kill it with
// SIGPIPE before the unmount, which leaves a dead ENOTCONN mount behind.
func TestStderrClosed(t *testing.T) {
	s := startMount(t, mountOpts{transport: "classic", stderrPipe: true})
	s.closeStderr()
	s.stopped = true
	s.signal(syscall.SIGTERM)
	if !s.waitExit(stopTimeout) {
		t.Fatalf("server did not exit within %v of SIGTERM", stopTimeout)
	}
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Errorf("server died of %v after SIGTERM with its stderr closed", ws.Signal())
	} else if s.exitCode() != 0 {
		t.Errorf("server exit code %d after SIGTERM with its stderr closed, want 0", s.exitCode())
	}
	if mountproc.IsMounted(s.Mnt) {
		err, _ := statWithin(s.Mnt, 2*time.Second)
		t.Errorf("%s still mounted after the server exited (stat: %v)", s.Mnt, err)
	}
}

// TestCp: zcfuse cp copies within a mount over the ring path: the copy is
// exact, the server counts twice its size as zero-copied (read and
// write), and no FUSE READ or WRITE request carries the data.
func TestCp(t *testing.T) {
	requireUring(t)
	s := startMount(t, mountOpts{transport: "uring"})
	data := make([]byte, 37<<20+123)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	writeFile(t, s.Backing+"/src", data, 0o644)
	before := s.stats()
	r := runZcfuse(t, 60*time.Second, nil, "cp", "--chunk", "4", s.Mnt+"/src", s.Mnt+"/sub-dst")
	if r.code != 0 {
		t.Fatalf("zcfuse cp: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("%s", r.stdout)
	got, err := os.ReadFile(s.Backing + "/sub-dst")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("the copy differs from the source (%d bytes, want %d)", len(got), len(data))
	}
	after := s.stats()
	if d := after.ZeroCopyBytes - before.ZeroCopyBytes; d != 2*uint64(len(data)) {
		t.Errorf("zero-copy bytes grew by %d, want %d", d, 2*len(data))
	}
	d := diffStats(before, after)
	if n := d.ring["READ"] + d.ring["WRITE"] + d.dev["READ"] + d.dev["WRITE"]; n != 0 {
		t.Errorf("%d FUSE READ/WRITE requests during a zero-copy copy", n)
	}
}
