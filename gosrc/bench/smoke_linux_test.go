package bench

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs `zcfuse bench --smoke` end to end, every target and row,
// so the harness cannot rot. It needs root, fio and FUSE-over-io_uring;
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
		t.Skip("-short: the smoke run takes about 45 s")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}

	var err error
	dir := t.TempDir()
	exe := filepath.Join(dir, "zcfuse")
	gocmd := os.Getenv("GO") // as the Makefile exports it
	if gocmd == "" {
		if gocmd, err = exec.LookPath("go"); err != nil {
			gocmd = "/usr/local/go/bin/go"
		}
	}
	build := exec.Command(gocmd, "build", "-o", exe, "github.com/zcfuse/zcfuse/gosrc/cmd/zcfuse")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build zcfuse: %v\n%s", err, out)
	}
	shm, err := os.MkdirTemp("/dev/shm", "zcfuse-bench-smoke.")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if m := mounted(shm); len(m) > 0 {
			t.Errorf("still mounted after the run: %v", m)
			unmountAll(shm)
		}
		if ents, _ := os.ReadDir(shm); len(ents) > 0 {
			t.Errorf("the harness left %d entries in %s", len(ents), shm)
		}
		os.RemoveAll(shm)
	}()

	jsonPath, plotPath := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.png")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	// 1 s per fio run instead of --smoke's 2 s: 30 runs fit in the minute.
	cmd := exec.CommandContext(ctx, exe, "bench", "--smoke", "--runtime", "1", "--size", "64",
		"--tmpdir", shm, "--json", jsonPath, "--plot", plotPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	t.Logf("zcfuse bench --smoke took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("zcfuse bench --smoke: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
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
	if r.Invalid() != 0 || len(r.Problems) != 0 {
		t.Errorf("problems: %q", r.Problems)
	}
	for _, want := range []string{"iops / dir", "zcfuse-passthrough", "read GB/s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "[30/30] ") {
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
