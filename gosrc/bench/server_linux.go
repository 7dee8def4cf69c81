package bench

import (
	"github.com/zcfuse/zcfuse/gosrc/fusering"

	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/server"
	"golang.org/x/sys/unix"
)

// Counts are request counts by channel and opcode name.
type Counts map[string]map[string]uint64

// sub returns c - old, keeping only counters that moved.
func (c Counts) sub(old Counts) Counts {
	out := Counts{}
	for ch, ops := range c {
		for op, v := range ops {
			if d := v - old[ch][op]; d != 0 {
				if out[ch] == nil {
					out[ch] = map[string]uint64{}
				}
				out[ch][op] = d
			}
		}
	}
	return out
}

// serverProc is a server child process and its mount.
type serverProc struct {
	target Target
	mnt    string
	cmd    *exec.Cmd
	out    *lineLog
	exited chan struct{}
	waited error
	// info is the server's own account after it became ready.
	info string
}

const readyTimeout = 30 * time.Second

// startServer runs target's server on backing at mnt as a child of exe
// and waits until it says the mount is ready.
func startServer(ctx context.Context, exe string, t Target, backing, mnt string) (*serverProc, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch t.kind {
	case kindZcfuse:
		args := append([]string{"mount"}, t.mountArgs...)
		cmd = exec.Command(exe, append(args, backing, mnt)...)
		cmd.Env = withoutEnv(os.Environ(), ChildEnv)
	case kindGofuse:
		cmd = exec.Command(exe, "bench", backing, mnt)
		cmd.Env = append(withoutEnv(os.Environ(), ChildEnv), ChildEnv+"="+childGofuse)
	default:
		return nil, fmt.Errorf("target %s has no server", t.Name)
	}
	s := &serverProc{target: t, mnt: mnt, cmd: cmd, out: newLineLog(), exited: make(chan struct{})}
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	// Its own process group keeps a terminal's ^C away from it (the
	// harness stops it, so that it unmounts); SIGTERM if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", t.Name, exe, err)
	}
	go func() {
		s.waited = cmd.Wait()
		close(s.exited)
	}()
	select {
	case line := <-s.out.ready:
		s.info = line
		return s, nil
	case <-s.exited:
		err := fmt.Errorf("%s: server exited before the mount was ready (%v): %s", t.Name, s.waited, s.out.tail())
		s.stop()
		return nil, err
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	case <-time.After(readyTimeout):
		err := fmt.Errorf("%s: server not ready within %v: %s", t.Name, readyTimeout, s.out.tail())
		s.stop()
		return nil, err
	}
}

// stop ends the server with SIGTERM (SIGKILL after 10 s), then makes sure
// nothing stays mounted at its mountpoint.
func (s *serverProc) stop() error {
	var errs []error
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("%s: server did not stop within 10 s of SIGTERM; killed", s.target.Name))
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	if err := unmountAll(s.mnt); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cpuTicks is the server's user and system CPU time in clock ticks
// (1/100 s), all threads together; -1 when unknown.
func (s *serverProc) cpuTicks() int64 { return pidTicks(s.cmd.Process.Pid) }

// pidTicks is process pid's user and system CPU time in clock ticks
// (1/100 s), all threads together; -1 when unknown.
func pidTicks(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// fields after the ")" that ends the command name: state is the 3rd
	// field of the line, utime the 14th, stime the 15th
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + st
}

// snapshot is what a server says about itself at one moment.
type snapshot struct {
	ops       Counts
	transport string
	fastReads uint64 // zcfuse: READs the ring threads answered themselves
}

// counts returns the server's request counters.
func (s *serverProc) counts() (snapshot, error) {
	switch s.target.kind {
	case kindZcfuse:
		st, _, err := server.ReadStats(s.mnt)
		if err != nil {
			return snapshot{}, err
		}
		c := Counts{}
		for ch, ops := range st.Requests {
			c[ch] = map[string]uint64{}
			for op, v := range ops {
				c[ch][op] = v
			}
		}
		return snapshot{ops: c, transport: st.Transport, fastReads: st.FastReads}, nil
	case kindGofuse:
		ops, err := s.gofuseCounts()
		if err != nil {
			return snapshot{}, err
		}
		return snapshot{ops: Counts{ChannelServer: ops}, transport: "classic"}, nil
	}
	return snapshot{}, nil
}

// gofuseCounts asks the go-fuse child for its counters (SIGUSR1; it
// answers with a counts line).
func (s *serverProc) gofuseCounts() (map[string]uint64, error) {
	for len(s.out.counts) > 0 {
		<-s.out.counts // stale answers
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	select {
	case line := <-s.out.counts:
		return parseCountsLine(line)
	case <-s.exited:
		return nil, fmt.Errorf("go-fuse server exited: %s", s.out.tail())
	case <-time.After(5 * time.Second):
		return nil, errors.New("go-fuse server did not report its counters within 5 s")
	}
}

// countsKeys maps the go-fuse child's counts line keys to opcodes.
var countsKeys = map[string]string{"reads": "READ", "writes": "WRITE", "creates": "CREATE", "unlinks": "UNLINK"}

// parseCountsLine reads "... counts reads=N writes=M [creates=C
// unlinks=U]" into counts by opcode; reads and writes must be there.
func parseCountsLine(line string) (map[string]uint64, error) {
	ops := map[string]uint64{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || countsKeys[k] == "" {
			continue
		}
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			continue
		}
		ops[countsKeys[k]] = n
	}
	_, gotR := ops["READ"]
	_, gotW := ops["WRITE"]
	if !gotR || !gotW {
		return nil, fmt.Errorf("bad counts line %q", line)
	}
	return ops, nil
}

// lineLog keeps a child's output and picks out its ready and counts lines.
type lineLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer // everything
	part   []byte       // the unfinished last line
	ready  chan string
	counts chan string
	isUp   bool
}

func newLineLog() *lineLog {
	return &lineLog{ready: make(chan string, 1), counts: make(chan string, 4)}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
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
		switch {
		case !l.isUp && strings.Contains(line, ": ready"):
			l.isUp = true
			l.ready <- line
		case strings.Contains(line, " counts reads="):
			select {
			case l.counts <- line:
			default:
			}
		}
	}
	return len(p), nil
}

// tail is the last few lines, for error messages.
func (l *lineLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(l.buf.String()), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}

// mounted lists the mountpoints at or under dir, deepest first.
func mounted(dir string) []string {
	mounts, _ := fusering.Mounts()
	var out []string
	for i := len(mounts) - 1; i >= 0; i-- {
		if mp := mounts[i].Mountpoint; mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unmountAll takes down every mount at or under dir: a plain unmount,
// else a lazy one.
func unmountAll(dir string) error {
	var errs []error
	for _, mp := range mounted(dir) {
		if err := unix.Unmount(mp, 0); err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			continue
		}
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("umount -l %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
