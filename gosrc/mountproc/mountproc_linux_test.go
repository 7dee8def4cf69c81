package mountproc

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLog(t *testing.T) {
	var seen []string
	l := NewLog(func(line string) bool { return strings.Contains(line, ": ready") })
	l.OnLine = func(line string) { seen = append(seen, line) }
	l.Write([]byte("zcfuse: falling back\nzcfuse: rea"))
	select {
	case <-l.Ready():
		t.Fatal("ready before the line was complete")
	default:
	}
	l.Write([]byte("dy: /a on /b transport=uring\nx counts reads=1 writes=2\nzcfuse: ready again\n"))
	if line := <-l.Ready(); !strings.HasSuffix(line, "transport=uring") {
		t.Errorf("ready line %q", line)
	}
	select {
	case line := <-l.Ready():
		t.Errorf("a second ready line %q", line)
	default:
	}
	if len(seen) != 4 || seen[2] != "x counts reads=1 writes=2" {
		t.Errorf("OnLine saw %q", seen)
	}
	if tail := l.Tail(2); tail != "x counts reads=1 writes=2 | zcfuse: ready again" {
		t.Errorf("tail %q", tail)
	}
	capped := NewLog(nil)
	capped.Max = 4
	capped.Write([]byte("abc"))
	capped.Write([]byte("defgh"))
	capped.Write([]byte("ijk"))
	if got := capped.String(); got != "abcdefgh" {
		t.Errorf("capped log kept %q", got)
	}
}

func TestProc(t *testing.T) {
	// ready, then ignores SIGTERM: Stop must kill it
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo "x: ready now"; while :; do sleep 0.05; done`)
	p, err := Start(cmd, NewLog(func(line string) bool { return strings.HasPrefix(line, "x: ready") }))
	if err != nil {
		t.Fatal(err)
	}
	line, err := p.WaitReady(context.Background(), 10*time.Second)
	if err != nil || line != "x: ready now" {
		t.Fatalf("WaitReady = %q, %v", line, err)
	}
	if p.ExitCode() != -1 || p.Err() != nil {
		t.Errorf("running: exit code %d, err %v", p.ExitCode(), p.Err())
	}
	if !p.Stop(syscall.SIGTERM, 200*time.Millisecond) {
		t.Error("Stop did not have to kill a process that ignores SIGTERM")
	}
	if p.Err() == nil {
		t.Error("a killed process has no wait error")
	}

	// exits before ready
	p, err = Start(exec.Command("sh", "-c", "echo oops; exit 3"), NewLog(func(string) bool { return false }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitReady(context.Background(), 10*time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("WaitReady = %v, want ErrExited", err)
	}
	if p.ExitCode() != 3 || p.Log.Tail(4) != "oops" || p.Stop(syscall.SIGTERM, time.Second) {
		t.Errorf("exit code %d, tail %q", p.ExitCode(), p.Log.Tail(4))
	}

	// neither
	p, err = Start(exec.Command("sleep", "10"), NewLog(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitReady(context.Background(), 50*time.Millisecond); err == nil || errors.Is(err, ErrExited) {
		t.Errorf("WaitReady = %v, want a timeout", err)
	}
	if p.Stop(syscall.SIGTERM, 5*time.Second) || !p.WaitExit(0) || p.ExitCode() != -1 {
		t.Errorf("after SIGTERM: exit code %d", p.ExitCode())
	}
}

func TestMounts(t *testing.T) {
	if IsMounted("/no/such/mount/point") || len(Mounts("/no/such")) != 0 {
		t.Error("a mount where there is none")
	}
	if ms := Mounts("/"); len(ms) == 0 || ms[len(ms)-1] != "/" {
		t.Errorf("Mounts(/) = %q, want / last", ms)
	}
}
