package mountproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Log collects a process's output and picks out its lines as they
// complete. Its zero value is not usable: make one with NewLog.
type Log struct {
	// OnLine, if set, sees every complete line. It runs under the log's
	// lock, so it must not block or call the log.
	OnLine func(line string)
	// Max caps the bytes of output kept for String and Tail; 0 keeps all.
	Max int

	isReady func(string) bool
	ready   chan string
	mu      sync.Mutex
	buf     bytes.Buffer
	part    []byte // the unfinished last line
	sent    bool
}

// NewLog returns a log whose first line that isReady accepts is sent on
// Ready; isReady may be nil (no ready line).
func NewLog(isReady func(line string) bool) *Log {
	return &Log{isReady: isReady, ready: make(chan string, 1)}
}

// Ready delivers the ready line, once.
func (l *Log) Ready() <-chan string { return l.ready }

// Write keeps p and hands over the lines it completes.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max == 0 || l.buf.Len() < l.Max {
		l.buf.Write(p)
	}
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		line := string(l.part[:i])
		l.part = l.part[i+1:]
		if !l.sent && l.isReady != nil && l.isReady(line) {
			l.sent = true
			l.ready <- line
		}
		if l.OnLine != nil {
			l.OnLine(line)
		}
	}
	return len(p), nil
}

// String is everything kept so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Tail is the last n lines kept, joined with " | ", for error messages.
func (l *Log) Tail(n int) string {
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Proc is a started process and the goroutine that waits for it.
type Proc struct {
	Cmd    *exec.Cmd
	Log    *Log
	exited chan struct{}
	err    error
}

// Start starts cmd and waits for it in the background. Its stdout and
// stderr go to log unless the caller set either.
func Start(cmd *exec.Cmd, log *Log) (*Proc, error) {
	if cmd.Stdout == nil && cmd.Stderr == nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, Log: log, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed once the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned; valid once Exited is
// closed.
func (p *Proc) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// ExitCode is the process's exit status; -1 while it runs or when a
// signal ended it.
func (p *Proc) ExitCode() int {
	select {
	case <-p.exited:
		return p.Cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// WaitExit waits at most d for the process to end and says whether it
// did.
func (p *Proc) WaitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	default:
	}
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// ErrExited: the process ended before it printed its ready line.
var ErrExited = errors.New("exited before it was ready")

// WaitReady waits for the log's ready line and returns it. It returns
// ErrExited when the process ends first, ctx's error when ctx ends, and
// an error naming timeout when neither comes within it.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) (string, error) {
	select {
	case line := <-p.Log.Ready():
		return line, nil
	case <-p.exited:
		select {
		case line := <-p.Log.Ready(): // printed before the exit: ready
			return line, nil
		default:
		}
		return "", ErrExited
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(timeout):
		return "", fmt.Errorf("not ready within %v", timeout)
	}
}

// Stop sends sig unless the process has already ended, waits at most
// grace for it to end, else kills it (SIGKILL) and waits. It says
// whether it had to kill.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) (killed bool) {
	select {
	case <-p.exited:
		return false
	default:
	}
	_ = p.Signal(sig)
	if p.WaitExit(grace) {
		return false
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.exited
	return true
}
