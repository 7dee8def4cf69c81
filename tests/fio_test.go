package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fioHint = "install it with `apt-get install -y fio` (make deps does)"

type fioCase struct {
	rw     string // write or randwrite; the verify pass reads back
	bs     string
	size   int64 // per job
	direct bool
	jobs   int
}

func (c fioCase) name() string {
	mode := "buffered"
	if c.direct {
		mode = "direct"
	}
	n := fmt.Sprintf("%s-%s-%s", c.rw, c.bs, mode)
	if c.jobs > 1 {
		n = fmt.Sprintf("%dx%s", c.jobs, n)
	}
	return n
}

// runFio runs fio with a hard timeout so a hung mount fails the test
// instead of the whole run.
func runFio(t *testing.T, timeout time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fio", args...)
	cmd.Dir = t.TempDir() // fio leaves *-verify.state files in its working directory
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("fio %s: still running after %v\n%s", strings.Join(args, " "), timeout, out)
	}
	if err != nil {
		t.Fatalf("fio %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestFio writes with fio through the mount, then reads everything back in
// a second fio pass that verifies crc32c checksums (--verify_only), over
// both transports, 4 KiB and 1 MiB blocks, buffered and O_DIRECT, plus two
// concurrent jobs on different files. The server's counters must show that
// the transport under test carried the WRITEs and READs, and that at least
// the bytes fio moved went through the server. fio invalidates the file's
// page cache before the verify pass (--invalidate=1, its default) and we
// also drop caches, so buffered reads reach the server; bytes_read ≥ size
// checks that they did.
func TestFio(t *testing.T) {
	requireTool(t, "fio", fioHint)
	var cases []fioCase
	for _, rw := range []string{"write", "randwrite"} {
		for _, bs := range []string{"4k", "1m"} {
			for _, direct := range []bool{false, true} {
				size := int64(16 << 20)
				if bs == "1m" {
					size = 32 << 20
				}
				cases = append(cases, fioCase{rw: rw, bs: bs, size: size, direct: direct, jobs: 1})
			}
		}
	}
	cases = append(cases, fioCase{rw: "randwrite", bs: "64k", size: 16 << 20, direct: false, jobs: 2})

	forTransports(t, func(t *testing.T, tr string) {
		s := startMount(t, mountOpts{transport: tr})
		for _, c := range cases {
			t.Run(c.name(), func(t *testing.T) {
				name := strings.ReplaceAll(c.name(), "-", "_")
				args := []string{
					"--name=" + name,
					"--directory=" + s.Mnt,
					"--ioengine=psync",
					"--rw=" + c.rw,
					"--bs=" + c.bs,
					fmt.Sprintf("--size=%d", c.size),
					fmt.Sprintf("--numjobs=%d", c.jobs),
					fmt.Sprintf("--direct=%d", b2i(c.direct)),
					"--verify=crc32c",
					"--verify_fatal=1",
					"--invalidate=1",
				}
				start := time.Now()
				before := s.stats()
				runFio(t, 60*time.Second, append(args, "--do_verify=0", "--end_fsync=1")...)
				mid := s.stats()
				dropCaches(t)
				runFio(t, 60*time.Second, append(args, "--verify_only")...)
				after := s.stats()

				total := c.size * int64(c.jobs)
				w, r := diffStats(before, mid), diffStats(mid, after)
				t.Logf("%.2fs; write pass: %v; verify pass: %v", time.Since(start).Seconds(), w, r)
				checkCarried(t, tr, w, "WRITE")
				checkCarried(t, tr, r, "READ")
				if w.bytesWritten < total {
					t.Errorf("bytes_written grew by %d, fio wrote %d", w.bytesWritten, total)
				}
				if r.bytesRead < total {
					t.Errorf("bytes_read grew by %d in the verify pass, fio read %d (served from the page cache?)", r.bytesRead, total)
				}
				for j := 0; j < c.jobs; j++ {
					f := filepath.Join(s.Backing, fmt.Sprintf("%s.%d.0", name, j))
					if fi, err := os.Stat(f); err != nil || fi.Size() != c.size {
						t.Errorf("backing file %s: %v (size %v), want %d bytes", f, err, sizeOf(fi), c.size)
					}
					_ = os.Remove(f)
				}
			})
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}

// dropCaches drops clean page cache pages (root only; best effort). The
// write pass ended with an fsync, and without a writeback cache FUSE pages
// are never dirty, so no global sync is needed (one could hang on someone
// else's dead mount).
func dropCaches(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		t.Logf("drop caches: %v (relying on fio --invalidate)", err)
	}
}
