package server

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"

	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// transports lists the transports a suite runs over. io_uring is skipped
// (with the reason) only when the kernel parameter is off and
// ZCFUSE_REQUIRE_URING is not set; CI sets it so a skip becomes a failure.
func transports(t *testing.T) []fusering.Transport {
	return []fusering.Transport{fusering.TransportURing, fusering.TransportClassic}
}

func requireTransport(t *testing.T, tr fusering.Transport) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root (mount(2) on /dev/fuse)")
	}
	if tr == fusering.TransportURing && !fusering.URingEnabled() {
		if os.Getenv("ZCFUSE_REQUIRE_URING") == "1" {
			t.Fatalf("FUSE-over-io_uring is off (%s) but ZCFUSE_REQUIRE_URING=1", fusering.URingEnabledPath)
		}
		t.Skipf("FUSE-over-io_uring is off: echo Y > %s", fusering.URingEnabledPath)
	}
}

// shmDir makes a directory on tmpfs (/dev/shm), removed at cleanup.
func shmDir(t *testing.T, name string) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "zcfuse-test-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// mount serves a fresh backing directory over tr and returns the server,
// the backing dir and the mountpoint. Cleanup stops the server and, as a
// last resort, lazily unmounts.
func mount(t *testing.T, tr fusering.Transport, opts Options) (*Server, string, string) {
	t.Helper()
	requireTransport(t, tr)
	backing := shmDir(t, "backing")
	mnt := shmDir(t, "mnt")
	opts.Transport = tr
	opts.RequireURing = os.Getenv(fusering.RequireURingEnv) == "1"
	if opts.Logger == nil {
		opts.Logger = log.New(testWriter{t}, "zcfuse: ", 0)
	}
	srv, err := New(backing, mnt, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start over %s: %v", tr, err)
	}
	t.Cleanup(func() {
		if n := srv.Stats().AccountingErrors; n != 0 {
			t.Errorf("%d accounting errors: a user gave back more than it held (the log says what)", n)
		}
		if err := srv.Stop(); err != nil {
			t.Errorf("stop: %v", err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	if got := srv.Stats().Transport; got != string(tr) {
		t.Fatalf("transport: got %s, want %s (fallback: %s)", got, tr, srv.Stats().FallbackReason)
	}
	return srv, backing, mnt
}

// testWriter sends server logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

var _ io.Writer = testWriter{}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func join(a ...string) string { return filepath.Join(a...) }

func countFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
