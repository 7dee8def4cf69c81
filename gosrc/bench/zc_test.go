package bench

import (
	"bytes"
	"image/png"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestSelectAll(t *testing.T) {
	for _, c := range []struct {
		targets, rows []string
		smoke         bool
		nT, nR, nP    int
		nZ            int
		bad           string
	}{
		{nil, nil, false, len(Targets), len(Rows), len(ZCPaths), len(ZCRows), ""},
		{[]string{"all"}, []string{"all"}, false, len(Targets), len(Rows), len(ZCPaths), len(ZCRows), ""},
		{nil, nil, true, len(Targets), len(Rows), len(ZCPaths), len(smokeZCRows), ""},
		// naming one family leaves the other out: the old command lines
		{[]string{"zcfuse-uring"}, []string{"randread-4k"}, false, 1, 2, 0, 0, ""},
		{[]string{"zcfuse-uring"}, nil, false, 1, len(Rows), 0, 0, ""},
		{nil, []string{"randread-4k"}, false, len(Targets), 2, 0, 0, ""},
		{[]string{"ring-sleep", "native"}, nil, false, 0, 0, 2, len(ZCRows), ""},
		{[]string{"ring-sleep"}, []string{"zc-qd1"}, false, 0, 0, 1, 4, ""},
		{nil, []string{"zc-sweep"}, false, 0, 0, len(ZCPaths), 2 * len(SweepSizes), ""},
		{nil, []string{"zc-randread-4k-qd1"}, true, 0, 0, len(ZCPaths), 2, ""},
		{nil, []string{"zc-seqwrite-1m", "seqread-1m"}, false, len(Targets), 1, len(ZCPaths), 1, ""},
		{[]string{"ring-poll", "dir"}, []string{"zc-qd32", "seqread-1m"}, false, 1, 1, 1, 2, ""},
		{[]string{"ring-sleep"}, []string{"randread-4k"}, false, 0, 0, 0, 0, "select nothing"},
		{[]string{"nfs"}, nil, false, 0, 0, 0, 0, "unknown target"},
		{nil, []string{"zc-nope"}, false, 0, 0, 0, 0, "unknown row"},
		{[]string{"base-uring"}, []string{"randwrite-4k"}, false, 0, 0, 0, 0, "needs --baseline"},
		{[]string{"zcfuse-uring", "base-uring"}, []string{"randwrite-4k-pinned", "zc-qd1"}, false, 0, 0, 0, 0, "needs --baseline"},
		// with --baseline (the base string below): all holds the base-* targets too
		{[]string{"all"}, nil, false, len(Targets) + len(BaselineTargets), len(Rows), len(ZCPaths), len(ZCRows), "base"},
		{[]string{"base-uring", "zcfuse-uring"}, []string{"randwrite-4k-pinned"}, false, 2, 1, 0, 0, "base"},
		{[]string{"base-classic", "ring-sleep"}, []string{"seqread-1m", "zc-qd1"}, false, 1, 1, 1, 4, "base"},
	} {
		baseline := ""
		if c.bad == "base" {
			baseline, c.bad = "/tmp/zcfuse-base", ""
		}
		sel, err := selectAll(c.targets, c.rows, c.smoke, baseline)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("selectAll(%q, %q) = %v, want %q", c.targets, c.rows, err, c.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("selectAll(%q, %q): %v", c.targets, c.rows, err)
			continue
		}
		nT, nR := len(sel.targets), len(sel.rows)
		if nT*nR == 0 {
			nT, nR = 0, 0
		}
		if nT != c.nT || nR != c.nR || len(sel.paths) != c.nP || len(sel.zcRows) != c.nZ {
			t.Errorf("selectAll(%q, %q, smoke %v): %d targets × %d rows, %d paths × %d zc rows; want %d × %d, %d × %d",
				c.targets, c.rows, c.smoke, nT, nR, len(sel.paths), len(sel.zcRows), c.nT, c.nR, c.nP, c.nZ)
		}
	}
}

func TestZCRows(t *testing.T) {
	ids := map[string]bool{}
	for _, r := range ZCRows {
		if ids[r.ID] {
			t.Errorf("duplicate zc row %s", r.ID)
		}
		ids[r.ID] = true
		if r.BS <= 0 || r.QD <= 0 || (r.Op != "READ" && r.Op != "WRITE") {
			t.Errorf("row %+v", r)
		}
	}
	for _, id := range append([]string{"zc-seqread-1m", "zc-seqwrite-1m", "zc-randread-4k-qd1-pinned", "zc-randwrite-4k-qd1-unpinned",
		"zc-randread-4k-qd32", "zc-seqread-16m", "zc-seqwrite-4k"}, smokeZCRows...) {
		if !ids[id] {
			t.Errorf("no zc row %s", id)
		}
	}
	for _, r := range Rows {
		if ids[r.ID] || isZCRow(r.ID) || isZCRow(r.Name) {
			t.Errorf("fio row %s clashes with a zc row", r.ID)
		}
	}
	for _, tg := range tableTargets("/base") {
		if isZCPath(tg.Name) {
			t.Errorf("fio target %s clashes with a zc path", tg.Name)
		}
	}
	if sizeName(4096) != "4k" || sizeName(16<<20) != "16m" || sizeLabel(256<<10) != "256 KiB" || sizeLabel(1<<20) != "1 MiB" {
		t.Error("size names")
	}
}

func TestZCCheck(t *testing.T) {
	path := func(n string) ZCPath { p, _ := zcPathByName(n); return p }
	read, _ := func() (ZCRow, bool) {
		for _, r := range ZCRows {
			if r.ID == "zc-randread-4k-qd1-pinned" {
				return r, true
			}
		}
		return ZCRow{}, false
	}()
	m := ZCMeasurement{TotalOps: 100, TotalBytes: 409600}
	good := ZCCheck{Transport: "uring", ZeroCopyBytes: 409600, ZCOps: 100}
	for _, c := range []struct {
		path string
		ck   ZCCheck
		bad  string
	}{
		{"ring-sleep", good, ""},
		{"ring-sleep", ZCCheck{Transport: "classic", ZeroCopyBytes: 409600, ZCOps: 100}, "transport"},
		{"ring-sleep", ZCCheck{Transport: "uring", ZeroCopyBytes: 405504, ZCOps: 100}, "zero_copy_bytes grew by 405504"},
		{"ring-poll", ZCCheck{Transport: "uring", ZeroCopyBytes: 409600, ZCOps: 100, CopiedBytes: 4096}, "copied_bytes"},
		{"ring-poll", ZCCheck{Transport: "uring", ZeroCopyBytes: 409600, ZCOps: 100, RingRead: 1}, "FUSE READ/WRITE moved"},
		{"ring-poll", ZCCheck{Transport: "uring", ZeroCopyBytes: 409600, ZCOps: 99}, "zc_ops grew by 99"},
		{"ring-poll", ZCCheck{Transport: "uring", ZeroCopyBytes: 409600, ZCOps: 100, ZCErrors: 1}, "zc_errors"},
		{"posix-uring", ZCCheck{Transport: "uring", RingRead: 100}, ""},
		{"posix-uring", ZCCheck{Transport: "uring", RingRead: 99}, "want all on ring"},
		{"posix-uring", ZCCheck{Transport: "uring", RingRead: 100, DevRead: 1}, "want all on ring"},
		{"posix-uring", ZCCheck{Transport: "uring", RingRead: 100, ZeroCopyBytes: 4096, ZCOps: 1}, "zero-copy"},
	} {
		got := zcCheck(path(c.path), read, &c.ck, m)
		if (c.bad == "") != (got == "") || !strings.Contains(got, c.bad) {
			t.Errorf("zcCheck(%s, %+v) = %q, want %q", c.path, c.ck, got, c.bad)
		}
	}
}

// sampleZCReport is a two-repetition zero-copy report over native,
// posix-uring and ring-sleep, QD1 read pinned and unpinned and the
// 1 MiB sweep rows.
func sampleZCReport() *Report {
	r := &Report{
		Command: "zcfuse-bench --targets native,posix-uring,ring-sleep", Start: "2026-01-02T03:04:05Z",
		Machine:   Machine{NProc: 2, CPUModel: "Test CPU", Kernel: "6.18.0", Go: "go1.26", ShmFS: "tmpfs"},
		LoadStart: "0.10 0.20 0.30 1/100 1", LoadEnd: "0.50 0.20 0.30 1/100 2",
		Params: Params{Reps: 2, SizeMiB: 256, CPU: 0, ZCRuntimeS: 2, ZCRampS: 0.5, SpinUs: 100},
	}
	for _, n := range []string{"native", "posix-uring", "ring-sleep"} {
		p, _ := zcPathByName(n)
		r.ZCPaths = append(r.ZCPaths, ZCPathInfo{Name: p.Name, Label: p.Label, Mode: p.Mode, Check: p.Check})
	}
	for _, id := range []string{"zc-randread-4k-qd1-pinned", "zc-randread-4k-qd1-unpinned", "zc-seqread-64k", "zc-seqread-1m", "zc-seqwrite-1m"} {
		for _, row := range ZCRows {
			if row.ID == id {
				r.ZCRows = append(r.ZCRows, row)
			}
		}
	}
	add := func(path, row string, rep int, iops, gbps, mean, p50, p99 float64, valid bool) {
		res := ZCResult{Path: path, Row: row, Rep: rep, Valid: valid,
			ZCMeasurement: ZCMeasurement{IOPS: iops, GBps: gbps, MeanUs: mean, P50Us: p50, P99Us: p99, Ops: 1000, ClientSysUs: 1, AllocsPerOp: 3}}
		if !valid {
			res.Problem = "proof of path failed: zero_copy_bytes grew by 0, the client moved 4096"
			r.Problems = append(r.Problems, path+" "+row+": INVALID: "+res.Problem)
		}
		r.ZCResults = append(r.ZCResults, res)
	}
	for rep := 1; rep <= 2; rep++ {
		d := float64(rep-1) * 0.1
		add("native", "zc-randread-4k-qd1-pinned", rep, 650e3, 2.6, 1.5+d, 1.4, 2.0, true)
		add("native", "zc-randread-4k-qd1-unpinned", rep, 680e3, 2.7, 1.45, 1.4, 2.0, true)
		add("posix-uring", "zc-randread-4k-qd1-pinned", rep, 75e3, 0.3, 13.3, 11, 40, true)
		add("posix-uring", "zc-randread-4k-qd1-unpinned", rep, 46e3, 0.19, 21.6, 13, 100, true)
		add("ring-sleep", "zc-randread-4k-qd1-pinned", rep, 150e3, 0.6, 6.5+d, 6, 9, true)
		add("ring-sleep", "zc-randread-4k-qd1-unpinned", rep, 40e3, 0.16, 25, 20, 80, true)
		add("native", "zc-seqread-64k", rep, 0, 6+d, 10, 10, 12, true)
		add("posix-uring", "zc-seqread-64k", rep, 0, 1.5, 40, 40, 50, true)
		add("ring-sleep", "zc-seqread-64k", rep, 0, 4, 16, 16, 20, true)
		add("native", "zc-seqread-1m", rep, 0, 8+d, 120, 120, 130, true)
		add("posix-uring", "zc-seqread-1m", rep, 0, 4, 260, 250, 300, true)
		add("ring-sleep", "zc-seqread-1m", rep, 0, 7.2, 140, 140, 150, rep == 1)
		add("native", "zc-seqwrite-1m", rep, 0, 7, 140, 140, 150, true)
		add("ring-sleep", "zc-seqwrite-1m", rep, 0, 5.5, 180, 180, 190, true)
	}
	r.summarize()
	return r
}

func TestSummarizeZC(t *testing.T) {
	r := sampleZCReport()
	s, ok := r.FindZC("ring-sleep", "zc-randread-4k-qd1-pinned")
	if !ok || s.Valid != 2 || math.Abs(s.MeanUs-6.55) > 1e-9 || s.MeanMin != 6.5 || math.Abs(s.MeanMax-6.6) > 1e-9 || s.Min != 150e3 {
		t.Errorf("ring-sleep qd1 summary %+v", s)
	}
	if want := 150e3 / 650e3; math.Abs(s.VsNative-want) > 1e-9 {
		t.Errorf("vs native %v, want %v", s.VsNative, want)
	}
	q, _ := r.FindZC("ring-sleep", "zc-seqread-1m")
	if q.Valid != 1 || q.Runs != 2 || q.GBps != 7.2 || math.Abs(q.VsNative-7.2/8.05) > 1e-9 {
		t.Errorf("the invalid run must stay out of the median: %+v", q)
	}
	met := map[string]string{}
	for _, tr := range r.ZCTargets {
		met[tr.Target] = tr.Met
	}
	for target, want := range map[string]string{
		"ring-sleep 1 MiB sequential read ≥ 0.85× native":                  "met",    // 7.2 / 8.05 = 0.894
		"ring-sleep 1 MiB sequential overwrite ≥ 0.85× native":             "missed", // 5.5 / 7
		"ring-sleep 4 KiB QD1 read, pinned: mean ≤ 7 µs":                   "met",
		"ring-sleep 4 KiB QD1 write, pinned: mean ≤ 7 µs":                  "n/a",
		"ring-poll 4 KiB QD1 read, pinned: mean ≤ 3 µs":                    "n/a",
		"ring-sleep 4 KiB QD1 read, unpinned: mean ≤ posix-uring unpinned": "missed", // 25 vs 21.6
	} {
		if got, ok := met[target]; !ok || got != want {
			t.Errorf("target %q: %q (present %v), want %q", target, got, ok, want)
		}
	}
	if r.Invalid() != 1 {
		t.Errorf("Invalid() = %d, want 1", r.Invalid())
	}
}

func TestZCTables(t *testing.T) {
	r := sampleZCReport()
	var b bytes.Buffer
	r.WriteTables(&b)
	out := b.String()
	for _, want := range []string{
		"| ring-sleep  | pinned   | 150.0k |         0.231 |    6.55 |",
		"| 1 MiB  |   8.05 |        4.00 |       7.20 |                0.497 |               0.894 |",
		"| ring-sleep 4 KiB QD1 read, pinned: mean ≤ 7 µs ",
		"| ring-sleep  | read pinned   |    6.55 |",
		"proof ✓", "fuse-ring ✓", "some runs INVALID",
		"WARNING: ring-sleep zc-seqread-1m: INVALID",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fio psync") {
		t.Errorf("a report without fio rows speaks of fio:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "zc.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	back.summarize()
	var b2 bytes.Buffer
	back.WriteTables(&b2)
	if b2.String() != out {
		t.Errorf("tables differ after a JSON round trip")
	}
}

func TestZCPlot(t *testing.T) {
	r := sampleZCReport()
	ps := r.panels()
	var titles []string
	for _, p := range ps {
		titles = append(titles, p.title)
	}
	if len(ps) != 2 || !strings.Contains(titles[0], "mean latency") || !ps[1].lines || len(ps[1].series) != 3 {
		t.Fatalf("panels %q", titles)
	}
	b, err := r.Plot()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if sz := img.Bounds().Size(); sz.X != 1520 || sz.Y != 540 {
		t.Errorf("chart is %v", sz)
	}
	// the ring-sleep line is there
	found := 0
	c := pathColours["ring-sleep"]
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 760; x < img.Bounds().Dx(); x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B {
				found++
			}
		}
	}
	if found < 100 {
		t.Errorf("only %d ring-sleep pixels in the sweep panel", found)
	}
	// Together with fio rows: the fio panels first.
	f := sampleReport()
	f.ZCPaths, f.ZCRows, f.ZCResults = r.ZCPaths, r.ZCRows, r.ZCResults
	f.summarize()
	if n := len(f.panels()); n != 4 {
		t.Errorf("fio + zc report: %d panels, want 4", n)
	}
}
