package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"
	"github.com/zcfuse/zcfuse/gosrc/server"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
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
	*mountproc.Proc
	target Target
	mnt    string
	// countLines gets the go-fuse server's counts lines.
	countLines chan string
	// info is the server's own account after it became ready.
	info string
}

const readyTimeout = 30 * time.Second

// startServer mounts backing at mnt with target's server and waits until
// it says the mount is ready: `zcfuse mount` run from the zcfuse binary,
// or the go-fuse server run from the harness's own binary (self) as
// `zcfuse-bench serve-gofuse`.
func startServer(ctx context.Context, zcfuse, self string, t Target, backing, mnt string) (*serverProc, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch t.kind {
	case kindZcfuse:
		args := append([]string{"mount"}, t.mountArgs...)
		cmd = exec.Command(zcfuse, append(args, backing, mnt)...)
	case kindGofuse:
		cmd = exec.Command(self, CmdServeGofuse, backing, mnt)
	default:
		return nil, fmt.Errorf("target %s has no server", t.Name)
	}
	s := &serverProc{target: t, mnt: mnt, countLines: make(chan string, 4)}
	log := mountproc.NewLog(func(line string) bool { return strings.Contains(line, ": ready") })
	log.Max = 1 << 20
	log.OnLine = func(line string) {
		if strings.Contains(line, " counts reads=") {
			select {
			case s.countLines <- line:
			default:
			}
		}
	}
	// Its own process group keeps a terminal's ^C away from it (the
	// harness stops it, so that it unmounts); SIGTERM if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	var err error
	if s.Proc, err = mountproc.Start(cmd, log); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", t.Name, cmd.Path, err)
	}
	line, err := s.WaitReady(ctx, readyTimeout)
	switch {
	case err == nil:
		s.info = line
		return s, nil
	case errors.Is(err, mountproc.ErrExited):
		err = fmt.Errorf("%s: server exited before the mount was ready (%v): %s", t.Name, s.Err(), log.Tail(8))
	case ctx.Err() == nil:
		err = fmt.Errorf("%s: server %v: %s", t.Name, err, log.Tail(8))
	}
	s.stop()
	return nil, err
}

// stop ends the server with SIGTERM (SIGKILL after 10 s), then makes sure
// nothing stays mounted at its mountpoint.
func (s *serverProc) stop() error {
	var errs []error
	if s.Stop(syscall.SIGTERM, 10*time.Second) {
		errs = append(errs, fmt.Errorf("%s: server did not stop within 10 s of SIGTERM; killed", s.target.Name))
	}
	if err := mountproc.UnmountAll(s.mnt); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cpuTicks is the server's user and system CPU time in clock ticks
// (1/100 s), all threads together; -1 when unknown.
func (s *serverProc) cpuTicks() int64 { return pidTicks(s.Pid()) }

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
	for len(s.countLines) > 0 {
		<-s.countLines // stale answers
	}
	if err := s.Signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	select {
	case line := <-s.countLines:
		return parseCountsLine(line)
	case <-s.Exited():
		return nil, fmt.Errorf("go-fuse server exited: %s", s.Log.Tail(8))
	case <-time.After(5 * time.Second):
		return nil, errors.New("go-fuse server did not report its counters within 5 s")
	}
}

// countsKeys maps the go-fuse child's counts line keys to opcodes.
var countsKeys = map[string]string{"reads": uapi.FuseOpRead.String(), "writes": uapi.FuseOpWrite.String(),
	"creates": uapi.FuseOpCreate.String(), "unlinks": uapi.FuseOpUnlink.String()}

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
