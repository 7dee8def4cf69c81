package bench

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"
)

// TestSmoke runs `zcfuse-bench --smoke` end to end, every fio target and
// row and every zero-copy path with the smoke rows (the ring paths with
// their proof of path), so the harness cannot rot. It builds zcfuse and
// zcfuse-bench side by side, as make does in bin/, so that zcfuse-bench
// finds the zcfuse it mounts with next to itself. It needs root, fio and FUSE-over-io_uring;
// it skips without them, but fails when CI is set and fio is missing, or
// ZCFUSE_REQUIRE_URING=1 and io_uring is off.
func TestSmoke(t *testing.T) {
	if _, err := exec.LookPath("fio"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fio not found and CI is set: apt-get install fio (make deps)")
		}
		t.Skip("fio not found (apt-get install fio, or make deps)")
	}
	if v := readTrim(URingParam); v != "Y" {
		if os.Getenv("ZCFUSE_REQUIRE_URING") == "1" {
			t.Fatalf("FUSE-over-io_uring is off (%s is %q) but ZCFUSE_REQUIRE_URING=1; run make uring-on", URingParam, v)
		}
		t.Skipf("FUSE-over-io_uring is off (%s is %q; make uring-on)", URingParam, v)
	}
	if testing.Short() {
		t.Skip("-short: the smoke run takes about 50 s")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}

	var err error
	dir := t.TempDir()
	exe := filepath.Join(dir, "zcfuse-bench")
	gocmd := os.Getenv("GO") // as the Makefile exports it
	if gocmd == "" {
		if gocmd, err = exec.LookPath("go"); err != nil {
			gocmd = "/usr/local/go/bin/go"
		}
	}
	for _, name := range []string{"zcfuse", "zcfuse-bench"} {
		build := exec.Command(gocmd, "build", "-o", filepath.Join(dir, name), "github.com/zcfuse/zcfuse/gosrc/cmd/"+name)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	shm, err := os.MkdirTemp("/dev/shm", "zcfuse-bench-smoke.")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if m := mountproc.Mounts(shm); len(m) > 0 {
			t.Errorf("still mounted after the run: %v", m)
			mountproc.UnmountAll(shm)
		}
		if ents, _ := os.ReadDir(shm); len(ents) > 0 {
			t.Errorf("the harness left %d entries in %s", len(ents), shm)
		}
		os.RemoveAll(shm)
	}()

	jsonPath, plotPath := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.png")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	// 1 s per fio run instead of --smoke's 2 s: 30 runs fit in the
	// minute; the 15 zero-copy runs add a few seconds.
	cmd := exec.CommandContext(ctx, exe, "--smoke", "--runtime", "1", "--size", "64",
		"--tmpdir", shm, "--json", jsonPath, "--plot", plotPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("zcfuse-bench --smoke took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("zcfuse-bench --smoke: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	if testing.Verbose() {
		t.Logf("stdout:\n%s", stdout.String())
	}

	r, err := ReadJSON(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Params.Smoke || r.Params.Reps != 1 || r.Machine.ShmFS != "tmpfs" || r.LoadStart == "" || r.LoadEnd == "" ||
		r.Machine.Fio == "" || r.Machine.Kernel == "" || !strings.Contains(r.Command, "--smoke") {
		t.Errorf("report header incomplete: params %+v machine %+v load %q %q command %q", r.Params, r.Machine, r.LoadStart, r.LoadEnd, r.Command)
	}
	for _, tg := range Targets {
		for _, row := range Rows {
			var got []Result
			for _, res := range r.Results {
				if res.Target == tg.Name && res.Row == row.ID {
					got = append(got, res)
				}
			}
			if len(got) != 1 {
				t.Errorf("%s %s: %d results, want 1", tg.Name, row.ID, len(got))
				continue
			}
			res := got[0]
			if !res.Valid || res.IOPS <= 0 || res.GBps <= 0 || res.IOs == 0 || res.MeanUs <= 0 || res.P50Us <= 0 || res.P99Us <= 0 {
				t.Errorf("%s %s: %+v", tg.Name, row.ID, res)
			}
			if row.Pinned && res.FioCPUs != "0" {
				t.Errorf("%s %s: fio ran on CPUs %q, want 0", tg.Name, row.ID, res.FioCPUs)
			}
			if tg.Channel == "" {
				continue
			}
			if res.Check == nil {
				t.Errorf("%s %s: no server check", tg.Name, row.ID)
				continue
			}
			if p := check(tg, row, res.Check, res.IOs); p != "" {
				t.Errorf("%s %s: %s", tg.Name, row.ID, p)
			}
			if tg.Channel == ChannelRing || tg.Channel == ChannelDev {
				if n := res.Check.Ops[tg.Channel][row.Op]; n < res.IOs {
					t.Errorf("%s %s: %d %s on %s for %d I/Os", tg.Name, row.ID, n, row.Op, tg.Channel, res.IOs)
				}
			}
			if s, _ := r.Find(tg.Name, row.ID); s.Valid != 1 || (tg.Name != "dir" && s.VsDir <= 0) {
				t.Errorf("%s %s: summary %+v", tg.Name, row.ID, s)
			}
		}
	}
	// The zero-copy rows: --smoke runs smokeZCRows on every path; the
	// ring paths must pass the proof of path (the server's zero-copy
	// bytes grew by exactly what the client moved, no FUSE READ/WRITE).
	if len(r.ZCRows) != len(smokeZCRows) || len(r.ZCPaths) != len(ZCPaths) || r.Params.ZCRuntimeS != 0.25 {
		t.Errorf("zero-copy rows %d, paths %d, runtime %v", len(r.ZCRows), len(r.ZCPaths), r.Params.ZCRuntimeS)
	}
	rings := 0
	for _, p := range ZCPaths {
		for _, row := range r.ZCRows {
			var got []ZCResult
			for _, res := range r.ZCResults {
				if res.Path == p.Name && res.Row == row.ID {
					got = append(got, res)
				}
			}
			if len(got) != 1 {
				t.Errorf("%s %s: %d results, want 1", p.Name, row.ID, len(got))
				continue
			}
			res := got[0]
			if !res.Valid || res.IOPS <= 0 || res.GBps <= 0 || res.Ops == 0 || res.MeanUs <= 0 || res.P99Us <= 0 ||
				res.TotalBytes != res.TotalOps*uint64(row.BS) {
				t.Errorf("%s %s: %+v", p.Name, row.ID, res)
			}
			if row.Pinned && res.ClientCPUs != "0" {
				t.Errorf("%s %s: the client ran on CPUs %q, want 0", p.Name, row.ID, res.ClientCPUs)
			}
			if p.Check == "" {
				if res.Check != nil {
					t.Errorf("%s %s: a server check without a server", p.Name, row.ID)
				}
				continue
			}
			if res.Check == nil {
				t.Errorf("%s %s: no server check", p.Name, row.ID)
				continue
			}
			if msg := zcCheck(p, row, res.Check, res.ZCMeasurement); msg != "" {
				t.Errorf("%s %s: %s", p.Name, row.ID, msg)
			}
			c := res.Check
			if p.Check == CheckProof {
				rings++
				if c.ZeroCopyBytes == 0 || c.ZeroCopyBytes != res.TotalBytes || c.CopiedBytes != 0 ||
					c.RingRead+c.RingWrite+c.DevRead+c.DevWrite != 0 || res.Registered == nil || !*res.Registered {
					t.Errorf("%s %s: proof of path: %+v, client moved %d bytes, arena registered %v", p.Name, row.ID, c, res.TotalBytes, res.Registered)
				}
			}
		}
	}
	if rings == 0 {
		t.Error("no ring row was checked")
	}
	if len(r.ZCTargets) == 0 {
		t.Error("no targets evaluated")
	}
	if r.Invalid() != 0 || len(r.Problems) != 0 {
		t.Errorf("problems: %q", r.Problems)
	}
	for _, want := range []string{"iops / dir", "zcfuse-passthrough", "read GB/s", "iops / native", "proof ✓", "zero-copy goals"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	// Nothing a user cannot act on: no issue numbers, no environment
	// variables, no Go identifiers, no subcommand of another binary.
	for _, bad := range []string{"issue 5", "issue target", "ZCFUSE_", "client.", "zcfuse bench", "make "} {
		if strings.Contains(stdout.String()+stderr.String(), bad) {
			t.Errorf("the output mentions %q", bad)
		}
	}
	if r.Machine.Binary == "" || !strings.Contains(r.Machine.Binary, filepath.Join(dir, "zcfuse")+" ") {
		t.Errorf("the report names the zcfuse binary %q, want %s", r.Machine.Binary, filepath.Join(dir, "zcfuse"))
	}
	n := len(Targets)*len(Rows) + len(ZCPaths)*len(smokeZCRows)
	if !strings.Contains(stderr.String(), fmt.Sprintf("[%d/%d] ", n, n)) {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("the chart: %v", err)
	}
}
