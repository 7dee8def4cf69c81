package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"
	"golang.org/x/sys/unix"
)

const (
	enableUringParam = "/sys/module/fuse/parameters/enable_uring"
	readyPrefix      = "zcfuse: ready"
	readyTimeout     = 20 * time.Second
	stopTimeout      = 10 * time.Second
	scratchParent    = "/dev/shm" // tmpfs; /tmp is disk here
)

// zcfuseBin is the binary under test, built once by TestMain.
var zcfuseBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if mnt := os.Getenv(clientEnv); mnt != "" {
		return inflightClient(mnt) // this binary re-executed as a client
	}
	if spec := os.Getenv(attackEnv); spec != "" {
		return attackMain(spec) // re-executed as a hardening test's attacker
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tests: these tests mount file systems and need root (mount(2) on /dev/fuse)")
		if os.Getenv("CI") != "" {
			return 1
		}
		return 0
	}
	if bin := os.Getenv("ZCFUSE_BIN"); bin != "" {
		zcfuseBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "zcfuse-tests-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	zcfuseBin = filepath.Join(dir, "zcfuse")
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	start := time.Now()
	build := exec.Command(goTool(), "build", "-o", zcfuseBin, "./gosrc/cmd/zcfuse")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: go build ./gosrc/cmd/zcfuse: %v\n%s", err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "tests: built %s in %.1fs\n", zcfuseBin, time.Since(start).Seconds())
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ---- environment checks ----

func uringEnabled() bool {
	b, err := os.ReadFile(enableUringParam)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// requireUring skips (or, with ZCFUSE_REQUIRE_URING=1, fails) a test that
// needs FUSE-over-io_uring when the kernel does not offer it.
func requireUring(t *testing.T) {
	t.Helper()
	if uringEnabled() {
		return
	}
	b, err := os.ReadFile(enableUringParam)
	why := fmt.Sprintf("%s is %q", enableUringParam, strings.TrimSpace(string(b)))
	if err != nil {
		why = fmt.Sprintf("cannot read %s: %v", enableUringParam, err)
	}
	if os.Getenv("ZCFUSE_REQUIRE_URING") == "1" {
		t.Fatalf("FUSE-over-io_uring required (ZCFUSE_REQUIRE_URING=1) but %s; run `echo Y > %s`", why, enableUringParam)
	}
	t.Skipf("FUSE-over-io_uring not available: %s (echo Y > %s to enable)", why, enableUringParam)
}

// requireTool skips when a program is missing, unless CI is set, then fails.
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (CI is set, so this is a failure): %s", name, hint)
	}
	t.Skipf("%s not found: %s", name, hint)
	return ""
}

// forTransports runs fn as a subtest per transport, skipping uring where the
// kernel does not offer it.
func forTransports(t *testing.T, fn func(t *testing.T, transport string)) {
	for _, tr := range []string{"uring", "classic"} {
		t.Run(tr, func(t *testing.T) {
			if tr == "uring" {
				requireUring(t)
			}
			fn(t, tr)
		})
	}
}

// ---- scratch directories ----

// scratchDir makes a fresh 0755 directory under /dev/shm and removes it at
// cleanup, after lazily unmounting anything still mounted beneath it.
func scratchDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(scratchParent, "zcfuse-clitest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, mp := range mountproc.Mounts(dir) {
			t.Errorf("cleanup: %s still mounted; lazy unmount", mp)
			mountproc.Detach(mp)
		}
		if left := mountproc.Mounts(dir); len(left) > 0 {
			t.Errorf("cleanup: not removing %s: still mounted: %v", dir, left)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

func mkdir(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// ---- the server process ----

type mountOpts struct {
	transport  string   // "uring", "classic", "auto"; "" leaves the flag out
	args       []string // extra flags before BACKING_DIR MOUNTPOINT
	env        []string // extra environment (ZCFUSE_REQUIRE_URING is dropped unless given here)
	backing    string   // reuse this backing dir; "" makes a fresh one
	mountpoint string   // reuse this mount point; "" makes a fresh one
	// stderrPipe gives the server a pipe for stdout/stderr that the test
	// can close (closeStderr) instead of a pipe owned by os/exec.
	stderrPipe bool
}

// server is one `zcfuse mount` process.
type server struct {
	t         *testing.T
	Backing   string
	Mnt       string
	Transport string // from the ready line
	ReadyLine string
	cmd       *exec.Cmd
	proc      *mountproc.Proc
	stderr    *mountproc.Log
	exited    <-chan struct{}
	// killed: the test killed the server on purpose; cleanup then expects
	// neither a zero exit nor a mount gone by itself.
	killed bool
	// stopped: the test already stopped it and checked the exit.
	stopped bool
	stderrR *os.File // read end when mountOpts.stderrPipe
}

func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ZCFUSE_REQUIRE_URING=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// launch starts `zcfuse mount` and registers its cleanup, without waiting.
func launch(t *testing.T, o mountOpts) *server {
	t.Helper()
	if o.backing == "" || o.mountpoint == "" {
		dir := scratchDir(t)
		if o.backing == "" {
			o.backing = mkdir(t, filepath.Join(dir, "backing"))
		}
		if o.mountpoint == "" {
			o.mountpoint = mkdir(t, filepath.Join(dir, "mnt"))
		}
	}
	args := []string{"mount"}
	if o.transport != "" {
		args = append(args, "--transport", o.transport)
	}
	args = append(args, o.args...)
	args = append(args, o.backing, o.mountpoint)
	s := &server{
		t:       t,
		Backing: o.backing,
		Mnt:     o.mountpoint,
		stderr:  mountproc.NewLog(func(line string) bool { return strings.HasPrefix(line, readyPrefix) }),
	}
	s.cmd = exec.Command(zcfuseBin, args...)
	s.cmd.Env = childEnv(o.env)
	var w *os.File
	if o.stderrPipe {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		s.stderrR, w = r, pw
		s.cmd.Stderr, s.cmd.Stdout = w, w
	} else {
		s.cmd.Stderr, s.cmd.Stdout = s.stderr, s.stderr
	}
	// If the test binary dies, the server gets SIGTERM and unmounts.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t.Logf("$ zcfuse %s", strings.Join(args, " "))
	p, err := mountproc.Start(s.cmd, s.stderr)
	if err != nil {
		t.Fatalf("start zcfuse: %v", err)
	}
	s.proc, s.exited = p, p.Exited()
	if w != nil {
		w.Close()
		go io.Copy(s.stderr, s.stderrR)
	}
	t.Cleanup(s.cleanup)
	return s
}

// waitReady waits for the ready line or for the process to exit.
// It returns true once ready.
func (s *server) waitReady(timeout time.Duration) (bool, error) {
	line, err := s.proc.WaitReady(context.Background(), timeout)
	switch {
	case errors.Is(err, mountproc.ErrExited):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("no %q line within %v", readyPrefix, timeout)
	}
	s.ReadyLine = line
	switch {
	case strings.Contains(line, "transport=uring"):
		s.Transport = "uring"
	case strings.Contains(line, "transport=classic"):
		s.Transport = "classic"
	}
	return true, nil
}

// startMount starts a server and waits until it is ready; the requested
// transport (if uring or classic) must be the one reported.
func startMount(t *testing.T, o mountOpts) *server {
	t.Helper()
	s := launch(t, o)
	ok, err := s.waitReady(readyTimeout)
	if err != nil {
		t.Fatalf("zcfuse mount: %v\nstderr:\n%s", err, s.stderr)
	}
	if !ok {
		t.Fatalf("zcfuse mount exited before ready (%v)\nstderr:\n%s", s.proc.Err(), s.stderr)
	}
	if (o.transport == "uring" || o.transport == "classic") && s.Transport != o.transport {
		t.Fatalf("asked for --transport %s, ready line says %q", o.transport, s.ReadyLine)
	}
	if !mountproc.IsMounted(s.Mnt) {
		t.Fatalf("ready, but %s is not in /proc/self/mountinfo", s.Mnt)
	}
	return s
}

// closeStderr closes the read end of the server's stderr pipe, so its
// next log line meets a broken pipe.
func (s *server) closeStderr() {
	if s.stderrR != nil {
		s.stderrR.Close()
	}
}

func (s *server) exitCode() int { return s.proc.ExitCode() }

func (s *server) signal(sig os.Signal) { _ = s.proc.Signal(sig) }

// pause sends SIGSTOP and waits until every thread of the server is
// stopped: the signal is delivered asynchronously, and a thread still
// running could answer one more request.
func (s *server) pause() {
	s.signal(syscall.SIGSTOP)
	dir := fmt.Sprintf("/proc/%d/task", s.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		stopped := 0
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			// The state follows the command name in parentheses.
			if i := strings.LastIndexByte(string(b), ')'); err == nil && i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return
		}
	}
	s.t.Fatalf("server %d: not every thread stopped within 5s of SIGSTOP", s.cmd.Process.Pid)
}

// waitExit waits at most d for the process to end.
func (s *server) waitExit(d time.Duration) bool { return s.proc.WaitExit(d) }

// stop sends sig and waits for a clean exit; it fails the test unless the
// server exits 0 within stopTimeout with its mount gone.
func (s *server) stop(sig os.Signal) {
	s.t.Helper()
	s.stopped = true
	start := time.Now()
	s.signal(sig)
	if !s.waitExit(stopTimeout) {
		s.t.Fatalf("server did not exit within %v of %v\nstderr:\n%s", stopTimeout, sig, s.stderr)
	}
	s.t.Logf("server exited %d %.2fs after %v", s.exitCode(), time.Since(start).Seconds(), sig)
	if c := s.exitCode(); c != 0 {
		s.t.Errorf("server exit code %d after %v, want 0\nstderr:\n%s", c, sig, s.stderr)
	}
	if mountproc.IsMounted(s.Mnt) {
		s.t.Errorf("%s still mounted after the server exited", s.Mnt)
	}
}

// kill SIGKILLs the server and waits for it.
func (s *server) kill() {
	s.killed = true
	s.signal(syscall.SIGKILL)
	<-s.exited
}

func (s *server) cleanup() {
	t := s.t
	select {
	case <-s.exited:
	default:
		if s.proc.Stop(syscall.SIGTERM, stopTimeout) {
			t.Errorf("cleanup: server did not exit within %v of SIGTERM; SIGKILL", stopTimeout)
			s.killed = true
		} else if !s.killed && !s.stopped && s.exitCode() != 0 {
			t.Errorf("cleanup: server exit code %d after SIGTERM, want 0", s.exitCode())
		}
	}
	if mountproc.IsMounted(s.Mnt) {
		if !s.killed && !s.stopped && s.ReadyLine != "" {
			t.Errorf("cleanup: %s still mounted after the server exited", s.Mnt)
		}
		mountproc.Unmount(s.Mnt)
	}
	if t.Failed() {
		t.Logf("server stderr (%s):\n%s", s.Mnt, s.stderr)
	}
}

// ---- running the CLI ----

type result struct {
	code   int // -1: killed by the timeout or a signal
	stdout string
	stderr string
}

// runZcfuse runs the CLI to completion (killed after timeout).
func runZcfuse(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, zcfuseBin, args...)
	cmd.Env = childEnv(env)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{code: 0, stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("zcfuse %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("zcfuse %s: still running after %v\nstderr:\n%s", strings.Join(args, " "), timeout, r.stderr)
	}
	return r
}

// zcfuseLine returns the first stderr line that starts with "zcfuse: ".
func zcfuseLine(stderr string) string {
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "zcfuse: ") {
			return sc.Text()
		}
	}
	return ""
}

// ---- stats ----

// Stats is the JSON of `zcfuse stats --json`.
type Stats struct {
	Transport      string `json:"transport"`
	FallbackReason string `json:"fallback_reason"`
	Queues         int    `json:"queues"`
	QueueDepth     int    `json:"queue_depth"`
	Passthrough    bool   `json:"passthrough"`
	ReadOnly       bool   `json:"read_only"`
	Requests       struct {
		Ring map[string]uint64 `json:"ring"`
		Dev  map[string]uint64 `json:"dev"`
	} `json:"requests"`
	BytesRead    uint64 `json:"bytes_read"`
	BytesWritten uint64 `json:"bytes_written"`
	Errors       uint64 `json:"errors"`
	PID          int    `json:"pid"`
	// The control plane and the ring path.
	Sessions       uint64 `json:"sessions"`
	Arenas         uint64 `json:"arenas"`
	AttachedFiles  uint64 `json:"attached_files"`
	FixedSlotsUsed uint64 `json:"fixed_slots_used"`
	ZCOps          uint64 `json:"zc_ops"`
	ZeroCopyBytes  uint64 `json:"zero_copy_bytes"`
	// The file-system layer.
	FS struct {
		Inodes      int  `json:"inodes"`
		InodeFds    int  `json:"inode_fds"`
		OpenFiles   int  `json:"open_files"`
		FileHandles bool `json:"file_handles"`
	} `json:"fs"`
}

func (s *server) stats() Stats {
	s.t.Helper()
	r := runZcfuse(s.t, 10*time.Second, nil, "stats", "--json", s.Mnt)
	if r.code != 0 {
		s.t.Fatalf("zcfuse stats --json %s: exit %d\nstderr:\n%s", s.Mnt, r.code, r.stderr)
	}
	var st Stats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		s.t.Fatalf("zcfuse stats --json: %v\noutput:\n%s", err, r.stdout)
	}
	return st
}

// delta is the growth of the counters between two snapshots.
type delta struct {
	ring, dev               map[string]int64
	bytesRead, bytesWritten int64
}

func diffStats(before, after Stats) delta {
	d := delta{ring: map[string]int64{}, dev: map[string]int64{}}
	for k, v := range after.Requests.Ring {
		d.ring[k] = int64(v) - int64(before.Requests.Ring[k])
	}
	for k, v := range after.Requests.Dev {
		d.dev[k] = int64(v) - int64(before.Requests.Dev[k])
	}
	d.bytesRead = int64(after.BytesRead) - int64(before.BytesRead)
	d.bytesWritten = int64(after.BytesWritten) - int64(before.BytesWritten)
	return d
}

func (d delta) String() string {
	return fmt.Sprintf("ring=%v dev=%v bytes_read=+%d bytes_written=+%d", d.ring, d.dev, d.bytesRead, d.bytesWritten)
}

// checkCarried asserts that transport carried the ops (e.g. READ, WRITE):
// each grew on its side and did not move on the other side.
func checkCarried(t *testing.T, transport string, d delta, ops ...string) {
	t.Helper()
	on, off := d.dev, d.ring
	onName, offName := "dev", "ring"
	if transport == "uring" {
		on, off = d.ring, d.dev
		onName, offName = "ring", "dev"
	}
	for _, op := range ops {
		if on[op] <= 0 {
			t.Errorf("requests.%s.%s did not grow over transport %s (%v)", onName, op, transport, d)
		}
		if off[op] != 0 {
			t.Errorf("requests.%s.%s moved by %d over transport %s (%v)", offName, op, off[op], transport, d)
		}
	}
}

// ---- running on one CPU ----

// onCPU runs fn on a goroutine locked to an OS thread pinned to cpu, so the
// kernel queues its FUSE requests on that CPU's queue.
func onCPU(cpu int, fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var old, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			done <- err
			return
		}
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		defer unix.SchedSetaffinity(0, &old)
		done <- fn()
	}()
	return done
}
