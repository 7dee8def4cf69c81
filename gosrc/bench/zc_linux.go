package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/server"
)

// zcPath measures every zero-copy row on one path: on a fresh zcfuse
// uring mount when the path goes through one, else on the backing file.
// It returns an error only when the run must end (cancelled).
func (b *bencher) zcPath(ctx context.Context, p ZCPath, rows []ZCRow, rep int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := filepath.Join(b.backing, testFile)
	var srv *serverProc
	var mnt string
	if p.needsMount() {
		mnt = filepath.Join(b.tmp, fmt.Sprintf("mnt.%s.%d", p.Name, rep))
		t := Target{Name: p.Name, kind: kindZcfuse, mountArgs: []string{"--transport", "uring"},
			Channel: ChannelRing, Transport: "uring"}
		var err error
		if srv, err = startServer(ctx, b.cfg.Zcfuse, b.cfg.Self, t, b.backing, mnt); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, row := range rows {
				b.recordZC(ZCResult{Path: p.Name, Row: row.ID, Rep: rep, Problem: err.Error()}, row, true)
			}
			return nil
		}
		if b.r.Servers == nil {
			b.r.Servers = map[string]string{}
		}
		if b.r.Servers[p.Name] == "" {
			b.r.Servers[p.Name] = srv.info
		}
		defer func() {
			if err := srv.stop(); err != nil {
				b.r.Problems = append(b.r.Problems, err.Error())
			}
		}()
		file = filepath.Join(mnt, testFile)
	}
	for i, row := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := ZCResult{Path: p.Name, Row: row.ID, Rep: rep}
		var before server.Stats
		var err error
		if srv != nil {
			if before, _, err = server.ReadStats(mnt); err != nil {
				res.Problem = fmt.Sprintf("server stats: %v", err)
				b.recordZC(res, row, true)
				continue
			}
		}
		sp := zcSpec{Path: p.Name, Row: row, File: file, Mount: mnt, FileSize: int64(b.cfg.SizeMiB) << 20,
			Runtime: b.cfg.ZCRuntime, Ramp: b.cfg.ZCRamp, Spin: b.cfg.Spin,
			Seed: uint64(rep)<<32 | uint64(i+1)*0x9e3779b97f4a7c15}
		if srv != nil {
			sp.ServerPID = srv.Pid()
		}
		if row.Pinned && b.cfg.ZCPin == PinThread {
			cpu := b.cfg.CPU
			sp.PinThread = &cpu
		}
		res.ZCMeasurement, err = b.zcChild(ctx, sp)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.Problem = err.Error()
			b.recordZC(res, row, true)
			continue
		}
		res.Valid = true
		if row.Pinned && res.ClientCPUs != fmt.Sprint(b.cfg.CPU) {
			res.Valid = false
			res.Problem = fmt.Sprintf("the client's measuring thread ran with CPU affinity %q, want %d", res.ClientCPUs, b.cfg.CPU)
		}
		if srv != nil {
			if res.Ops > 0 && res.ServerCPUsMs > 0 {
				v := res.ServerCPUsMs * 1e3 / float64(res.Ops)
				res.ServerCPUUsPerOp = &v
			}
			after, _, err := server.ReadStats(mnt)
			if err != nil {
				res.Valid = false
				res.Problem = fmt.Sprintf("server stats: %v", err)
			} else {
				res.Check = zcDelta(p, before, after)
				if msg := zcCheck(p, row, res.Check, res.ZCMeasurement); msg != "" {
					res.Valid = false
					res.Problem = msg
				}
			}
		}
		b.recordZC(res, row, false)
	}
	return nil
}

// zcDelta is what the server counted between two snapshots.
func zcDelta(p ZCPath, before, after server.Stats) *ZCCheck {
	ops := toCounts(after.Requests).sub(toCounts(before.Requests))
	return &ZCCheck{
		Want:          p.Check,
		Transport:     after.Transport,
		ZeroCopyBytes: after.ZeroCopyBytes - before.ZeroCopyBytes,
		CopiedBytes:   after.CopiedBytes - before.CopiedBytes,
		ZCOps:         after.ZCOps - before.ZCOps,
		ZCErrors:      after.ZCErrors - before.ZCErrors,
		RingRead:      ops[ChannelRing]["READ"],
		RingWrite:     ops[ChannelRing]["WRITE"],
		DevRead:       ops[ChannelDev]["READ"],
		DevWrite:      ops[ChannelDev]["WRITE"],
		Ops:           ops,
	}
}

func toCounts(m map[string]map[string]uint64) Counts {
	c := Counts{}
	for ch, ops := range m {
		c[ch] = map[string]uint64{}
		for op, v := range ops {
			c[ch][op] = v
		}
	}
	return c
}

// zcChild runs the client child for sp and returns what it measured.
func (b *bencher) zcChild(ctx context.Context, sp zcSpec) (ZCMeasurement, error) {
	var m ZCMeasurement
	spec, err := json.Marshal(sp)
	if err != nil {
		return m, err
	}
	ctx, cancel := context.WithTimeout(ctx, sp.Runtime+sp.Ramp+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.cfg.Self, CmdZCClient, string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if sp.Row.Pinned && sp.PinThread == nil {
		err = startPinned(cmd, b.cfg.CPU)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return m, fmt.Errorf("start the client: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return m, fmt.Errorf("the client did not finish within %v (hung?): %s", sp.Runtime+sp.Ramp+60*time.Second,
				strings.TrimSpace(lastLines(stderr.String(), 4)))
		}
		return m, fmt.Errorf("client: %v: %s", err, strings.TrimSpace(lastLines(stderr.String(), 4)))
	}
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		return m, fmt.Errorf("client output %q: %w", lastLines(stdout.String(), 2), err)
	}
	if m.Ops == 0 {
		return m, fmt.Errorf("the client did no I/O")
	}
	return m, nil
}

// recordZC keeps res and prints its progress line.
func (b *bencher) recordZC(res ZCResult, row ZCRow, failed bool) {
	b.r.ZCResults = append(b.r.ZCResults, res)
	val := fmt.Sprintf("%.2f GB/s, mean %s µs", res.GBps, fmtUs(res.MeanUs))
	if row.Latency {
		val = fmt.Sprintf("%s IOPS, mean %s µs, p99 %s µs", fmtIOPS(res.IOPS), fmtUs(res.MeanUs), fmtUs(res.P99Us))
	}
	if res.Check != nil && res.Valid {
		val += ", " + res.Check.Want + " ✓"
	}
	b.progress(fmt.Sprintf("%s %s %s rep %d", res.Path, row.Name, row.PinWord(), res.Rep), val, failed, res.Valid, res.Problem)
}
