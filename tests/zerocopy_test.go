package tests

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	zc "github.com/zcfuse/zcfuse/gosrc/client"
	"golang.org/x/sys/unix"
)

// clientEnv makes the test binary a client (see testMain) that leaves 64
// ops in flight and waits to be killed.
const clientEnv = "ZCFUSE_TESTS_INFLIGHT_CLIENT"

// inflightClient connects to the mount named, shares a 64 MiB arena,
// attaches a file, submits 64 writes of 1 MiB without reaping them,
// prints "inflight" and waits.
func inflightClient(mnt string) int {
	fail := func(err error) int { fmt.Println("client:", err); return 1 }
	s, err := zc.Connect(mnt)
	if err != nil {
		return fail(err)
	}
	a, err := arena.Create(64<<20, arena.Options{})
	if err != nil {
		return fail(err)
	}
	if _, _, err := s.Share(a); err != nil {
		return fail(err)
	}
	fd, err := unix.Open(mnt+"/inflight", unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return fail(err)
	}
	id, err := s.Attach(fd)
	if err != nil {
		return fail(err)
	}
	ops := make([]zc.Op, 64)
	for i := range ops {
		ops[i] = zc.Op{Opcode: zc.OpWrite, File: id, Buf: a.Bytes()[i<<20 : (i+1)<<20], Off: int64(i) << 20, UserData: uint64(i)}
	}
	if n, err := s.Submit(ops); err != nil || n != 64 {
		return fail(fmt.Errorf("submit: %d, %v", n, err))
	}
	fmt.Println("inflight")
	select {}
}

// zcClient connects to the server behind mnt, shares an arena of size
// bytes and attaches file name (created) on the mount; cleanup closes all.
func zcClient(t *testing.T, mnt string, size int64, name string) (*zc.Session, *arena.Arena, uint32) {
	t.Helper()
	s, err := zc.Connect(mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a, err := arena.Create(size, arena.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, _, err := s.Share(a); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(mnt+"/"+name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	id, err := s.Attach(fd)
	if err != nil {
		t.Fatal(err)
	}
	return s, a, id
}

func countFds(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A client SIGKILLed with 64 ops in flight: the server finishes or drops
// them and frees the session, its arena, slot, attachment and fds (within
// 5 s; the time is logged).
func TestClientKilledInFlight(t *testing.T) {
	requireUring(t)
	srv := startMount(t, mountOpts{transport: "uring"})
	base := srv.stats()
	// The O_PATH fds the file-system layer caches for inodes the kernel
	// remembers are not the session's.
	fds := countFds(t, base.PID) - base.FS.InodeFds

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+srv.Mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "inflight" {
		t.Fatalf("client: %q", line)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	cmd.Wait()
	var st Stats
	for {
		st = srv.stats()
		if st.Sessions == 0 && st.Arenas == 0 && st.AttachedFiles == 0 && st.FixedSlotsUsed == base.FixedSlotsUsed && countFds(t, base.PID)-st.FS.InodeFds == fds {
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("5 s after the SIGKILL the server still holds: sessions %d arenas %d attached %d slots %d fds %d (was %d)",
				st.Sessions, st.Arenas, st.AttachedFiles, st.FixedSlotsUsed, countFds(t, base.PID)-st.FS.InodeFds, fds)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("server freed everything %v after the client's SIGKILL (%d of its 64 ops ran)", time.Since(killed).Round(time.Millisecond), st.ZCOps-base.ZCOps)
	// And it serves on.
	writeFile(t, srv.Mnt+"/after", []byte("still here"), 0o644)
}

// A server SIGKILLed in the middle of a batch: Wait returns ENOTCONN
// promptly (bounded at 5 s; the time is logged), never hangs.
func TestServerKilledMidBatch(t *testing.T) {
	requireUring(t)
	srv := startMount(t, mountOpts{transport: "uring"})
	s, a, id := zcClient(t, srv.Mnt, 512<<20, "batch")
	ops := make([]zc.Op, 64)
	for i := range ops {
		ops[i] = zc.Op{Opcode: zc.OpWrite, File: id, Buf: a.Bytes()[i<<23 : (i+1)<<23], Off: int64(i) << 23, UserData: uint64(i)}
	}
	if n, err := s.Submit(ops); err != nil || n != 64 {
		t.Fatalf("submit: %d, %v", n, err)
	}
	srv.kill()
	killed := time.Now()
	cqes := make([]zc.Completion, 64)
	got := 0
	for {
		n, err := s.Wait(cqes, 64-got, 10*time.Second)
		got += n
		if err != nil {
			if !errors.Is(err, unix.ENOTCONN) {
				t.Fatalf("wait: %v, want ENOTCONN", err)
			}
			break
		}
		if got == 64 {
			t.Fatalf("all 64 ops of 8 MiB completed before the server died: the kill came too late")
		}
	}
	took := time.Since(killed)
	t.Logf("Wait said ENOTCONN %v after the server's SIGKILL (%d of 64 ops had completed)", took.Round(time.Microsecond), got)
	if took > 5*time.Second {
		t.Fatalf("ENOTCONN took %v", took)
	}
	if _, err := s.Pwrite(id, a.Bytes()[:10], 0, 0); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("pwrite after: %v, want ENOTCONN", err)
	}
}

// cpuTicks is utime+stime of a process, in clock ticks.
func cpuTicks(t *testing.T, pid string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// An idle session costs no CPU: after ops in sleep and in poll mode, 10 s
// with the session open and the client blocked on its fd use under 1% of
// a CPU in the client and in the server (from /proc/PID/stat).
func TestIdleSessionCPU(t *testing.T) {
	requireUring(t)
	srv := startMount(t, mountOpts{transport: "uring"})
	s, a, id := zcClient(t, srv.Mnt, 1<<20, "idle")
	for _, mode := range []zc.Mode{zc.ModePoll, zc.ModeSleep} {
		s.SetMode(mode, 0)
		for i := range 100 {
			if _, err := s.Pwrite(id, a.Bytes()[:4096], int64(i)*4096, zc.RequireZC); err != nil {
				t.Fatal(err)
			}
		}
	}
	pid := strconv.Itoa(srv.stats().PID)
	hz := int64(100) // USER_HZ on Linux
	srv0, me0 := cpuTicks(t, pid), cpuTicks(t, "self")
	start := time.Now()
	pfd := []unix.PollFd{{Fd: int32(s.Fd()), Events: unix.POLLIN}}
	for time.Since(start) < 10*time.Second {
		n, err := unix.Poll(pfd, int(10*time.Second-time.Since(start))/int(time.Millisecond)+1)
		if err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if n > 0 {
			t.Fatalf("the session fd turned readable with nothing in flight")
		}
	}
	wall := time.Since(start).Seconds()
	srvPct := float64(cpuTicks(t, pid)-srv0) / float64(hz) / wall * 100
	mePct := float64(cpuTicks(t, "self")-me0) / float64(hz) / wall * 100
	t.Logf("idle for %.1f s: server %.2f%% CPU, client %.2f%%", wall, srvPct, mePct)
	if srvPct >= 1 || mePct >= 1 {
		t.Fatalf("an idle session costs CPU: server %.2f%%, client %.2f%%", srvPct, mePct)
	}
}
