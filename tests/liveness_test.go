package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	hammerRounds = 300
	hammerBound  = 10 * time.Second // liveness, not performance
)

func makeSmallFiles(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 8; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("small-%d", i)), []byte(fmt.Sprintf("small-%d\n", i)), 0o644)
	}
}

// hammer performs n rounds of requests that must reach the server: a
// LOOKUP of a name never used before (ENOENT; no negative entry can answer
// it) and an OPEN, READ, RELEASE of a small file. It uses raw syscalls so
// they run on the calling (pinned) thread.
func hammer(mnt, tag string, n int) error {
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		var st unix.Stat_t
		p := filepath.Join(mnt, fmt.Sprintf("missing-%s-%d", tag, i))
		if err := unix.Stat(p, &st); err != unix.ENOENT {
			return fmt.Errorf("stat %s: %v, want ENOENT", p, err)
		}
		p = filepath.Join(mnt, fmt.Sprintf("small-%d", i%8))
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %v", p, err)
		}
		nr, err := unix.Read(fd, buf)
		unix.Close(fd)
		if want := fmt.Sprintf("small-%d\n", i%8); err != nil || string(buf[:max(nr, 0)]) != want {
			return fmt.Errorf("read %s: %q, %v; want %q", p, buf[:max(nr, 0)], err, want)
		}
	}
	return nil
}

// hammerOnCPU0 runs hammer pinned to CPU 0 and fails the test if it does
// not finish within hammerBound. It checks from the counters that the
// requests went through the transport under test.
func hammerOnCPU0(t *testing.T, s *server, transport, tag string) {
	t.Helper()
	before := s.stats()
	start := time.Now()
	select {
	case err := <-onCPU(0, func() error { return hammer(s.Mnt, tag, hammerRounds) }):
		if err != nil {
			t.Fatalf("requests on CPU 0: %v", err)
		}
	case <-time.After(hammerBound):
		t.Fatalf("%d rounds of stat+open+read on CPU 0 did not finish within %v: the queue is stalled", hammerRounds, hammerBound)
	}
	el := time.Since(start)
	d := diffStats(before, s.stats())
	t.Logf("%d rounds (LOOKUP, OPEN, READ, RELEASE) on CPU 0 in %v (%.0f µs/round)", hammerRounds, el.Round(time.Millisecond),
		float64(el.Microseconds())/hammerRounds)
	checkCarried(t, transport, d, "LOOKUP", "OPEN")
	side := d.dev
	if transport == "uring" {
		side = d.ring
	}
	if side["LOOKUP"] < hammerRounds {
		t.Errorf("LOOKUP grew by %d, want ≥ %d (%v)", side["LOOKUP"], hammerRounds, d)
	}
}

// TestFifoBlockedReader: a reader blocks on a FIFO of the backing dir,
// opened through the mount from CPU 0; requests from CPU 0 (the same FUSE
// queue) keep completing; a write through the mount then releases the
// reader.
//
// The kernel serves FIFO opens and I/O of a FUSE inode itself (special
// inodes never reach the server), so the blocked reader here waits in the
// client's kernel. TestBlockedHandler below blocks a server handler for real.
func TestFifoBlockedReader(t *testing.T) {
	requireTool(t, "taskset", "install util-linux")
	forTransports(t, func(t *testing.T, tr string) {
		s := startMount(t, mountOpts{transport: tr})
		makeSmallFiles(t, s.Backing)
		if err := unix.Mkfifo(filepath.Join(s.Backing, "fifo"), 0o666); err != nil {
			t.Fatal(err)
		}
		fifo := filepath.Join(s.Mnt, "fifo")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out bytes.Buffer
		reader := exec.CommandContext(ctx, "taskset", "-c", "0", "cat", fifo)
		reader.Stdout, reader.Stderr = &out, &out
		if err := reader.Start(); err != nil {
			t.Fatal(err)
		}
		readerDone := make(chan struct{})
		var readerErr error
		go func() { readerErr = reader.Wait(); close(readerDone) }()
		t.Cleanup(func() {
			select {
			case <-readerDone:
			default:
				_ = reader.Process.Kill()
				<-readerDone
			}
		})
		time.Sleep(300 * time.Millisecond)
		select {
		case <-readerDone:
			t.Fatalf("reader of %s did not block: %v\n%s", fifo, readerErr, out.String())
		default:
		}

		hammerOnCPU0(t, s, tr, "fifo")

		// Release the reader: open for writing through the mount (would
		// block if the reader were gone, hence the goroutine).
		wrote := make(chan error, 1)
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteString("through the fifo\n")
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			wrote <- err
		}()
		select {
		case err := <-wrote:
			if err != nil {
				t.Fatalf("write to %s: %v", fifo, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("open of %s for writing blocked for 5s", fifo)
		}
		select {
		case <-readerDone:
			if readerErr != nil || out.String() != "through the fifo\n" {
				t.Errorf("reader: %v, got %q", readerErr, out.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("reader still blocked 5s after the write")
		}
	})
}

// TestBlockedHandler blocks a server handler for real: a second zcfuse
// server is mounted on a subdirectory of the first one's backing dir (the
// first serves it with --cross-mounts) and stopped (SIGSTOP), so the first
// server's LOOKUP handler for a name in it waits inside openat2(2). The request comes from CPU 0, so it holds an
// entry of queue 0; requests from CPU 0 must keep completing on the other
// entries of that queue, and the blocked one completes once the inner
// server continues.
func TestBlockedHandler(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		dir := scratchDir(t)
		backing := mkdir(t, filepath.Join(dir, "backing"))
		sub := mkdir(t, filepath.Join(backing, "sub"))
		makeSmallFiles(t, backing)
		s := startMount(t, mountOpts{transport: tr, backing: backing, mountpoint: mkdir(t, filepath.Join(dir, "mnt")),
			args: []string{"--queue-depth", "4", "--cross-mounts"}})
		inner := startMount(t, mountOpts{transport: "classic", backing: mkdir(t, filepath.Join(dir, "inner")), mountpoint: sub})
		// Runs before inner's own cleanup (cleanups run last-in first-out).
		t.Cleanup(func() { inner.signal(syscall.SIGCONT) })

		if _, err := os.Stat(filepath.Join(s.Mnt, "sub")); err != nil {
			t.Fatalf("stat of the nested mount through the outer mount: %v", err)
		}
		inner.pause()

		blockedPath := filepath.Join(s.Mnt, "sub", "blocked")
		blocked := onCPU(0, func() error {
			var st unix.Stat_t
			return unix.Stat(blockedPath, &st)
		})
		select {
		case err := <-blocked:
			t.Fatalf("stat %s returned while the inner server was stopped (%v): nothing blocked", blockedPath, err)
		case <-time.After(500 * time.Millisecond):
		}

		hammerOnCPU0(t, s, tr, "blocked")

		inner.signal(syscall.SIGCONT)
		select {
		case err := <-blocked:
			if !errors.Is(err, unix.ENOENT) {
				t.Errorf("blocked stat of %s: %v, want ENOENT", blockedPath, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("blocked stat still pending 5s after SIGCONT of the inner server")
		}
	})
}
