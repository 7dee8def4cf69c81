package bench

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/fusering"
)

// fioSample is fio 3.33's JSON for one psync job, trimmed to what the
// harness reads, behind a line of text as fio sometimes writes.
const fioSample = `fio: note: some warning
{
  "fio version" : "fio-3.33",
  "jobs" : [
    {
      "jobname" : "randread-4k-pinned",
      "error" : 0,
      "read" : {
        "io_bytes" : 1536151552, "bw_bytes" : 320000000, "iops" : 78125.5,
        "runtime" : 5001, "total_ios" : 390700,
        "clat_ns" : {"min" : 691, "max" : 122221, "mean" : 12802.47, "stddev" : 844.6,
          "N" : 390700, "percentile" : {"50.000000" : 11968, "99.000000" : 23680, "99.900000" : 105984}}
      },
      "write" : {
        "io_bytes" : 0, "bw_bytes" : 0, "iops" : 0.0, "runtime" : 0, "total_ios" : 0,
        "clat_ns" : {"min" : 0, "max" : 0, "mean" : 0.0, "stddev" : 0.0, "N" : 0}
      },
      "usr_cpu" : 20.23, "sys_cpu" : 76.29, "ctx" : 1415
    }
  ]
}
`

func TestParseFio(t *testing.T) {
	m, err := parseFio([]byte(fioSample), "READ")
	if err != nil {
		t.Fatal(err)
	}
	want := Measurement{IOPS: 78125.5, GBps: 0.32, IOs: 390700, RuntimeMs: 5001,
		MeanUs: 12.80247, P50Us: 11.968, P99Us: 23.68, P999Us: 105.984, UsrCPU: 20.23, SysCPU: 76.29, Ctx: 1415}
	if math.Abs(m.MeanUs-want.MeanUs) > 1e-6 {
		t.Errorf("mean %v, want %v", m.MeanUs, want.MeanUs)
	}
	m.MeanUs = want.MeanUs
	if m != want {
		t.Errorf("got %+v\nwant %+v", m, want)
	}
	if _, err := parseFio([]byte(fioSample), "WRITE"); err == nil || !strings.Contains(err.Error(), "no WRITE") {
		t.Errorf("WRITE side of a read job: %v, want a no-I/O error", err)
	}
	for _, bad := range []string{``, `{"jobs": []}`, `{"jobs": [{"error": 5}]}`, `not json`} {
		if _, err := parseFio([]byte(bad), "READ"); err == nil {
			t.Errorf("parseFio(%q) succeeded", bad)
		}
	}
}

func TestFioArgs(t *testing.T) {
	a := strings.Join(fioArgs(Rows[0], "/m/f", "/o.json", 5*time.Second, time.Second), " ")
	for _, want := range []string{"--rw=randread", "--bs=4k", "--direct=1", "--ioengine=psync", "--iodepth=1",
		"--runtime=5s", "--ramp_time=1s", "--time_based", "--output=/o.json", "--filename=/m/f", "--output-format=json"} {
		if !strings.Contains(a, want) {
			t.Errorf("fio args %q lack %s", a, want)
		}
	}
	if a := strings.Join(fioArgs(Rows[0], "f", "o", 1500*time.Millisecond, 0), " "); !strings.Contains(a, "--runtime=1500ms") || strings.Contains(a, "ramp") {
		t.Errorf("fio args %q: want --runtime=1500ms and no ramp", a)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("median reordered its input")
			}
		}
	}
}

func names(ts []Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return strings.Join(out, ",")
}

func TestSelect(t *testing.T) {
	all, err := SelectTargets(nil, "")
	if err != nil || len(all) != len(Targets) {
		t.Fatalf("SelectTargets(nil) = %d targets, %v", len(all), err)
	}
	ts, err := SelectTargets([]string{"zcfuse-uring", "dir"}, "")
	if err != nil || len(ts) != 2 || ts[0].Name != "dir" || ts[1].Name != "zcfuse-uring" {
		t.Errorf("SelectTargets(uring, dir) = %v, %v; want dir, zcfuse-uring in table order", ts, err)
	}
	if _, err := SelectTargets([]string{"nfs"}, ""); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown target: %v, want ErrUsage", err)
	}
	rows, err := SelectRows([]string{"randread-4k", "seqwrite-1m"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, ","); got != "randread-4k-pinned,randread-4k-unpinned,seqwrite-1m" {
		t.Errorf("SelectRows(randread-4k, seqwrite-1m) = %s", got)
	}
	if rows, _ := SelectRows([]string{"all"}); len(rows) != len(Rows) {
		t.Errorf("all rows: %d", len(rows))
	}
	if _, err := SelectRows([]string{"randread"}); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown row: %v, want ErrUsage", err)
	}
	// the meta rows: by name, in table order, and in all
	rows, err = SelectRows([]string{"unlink", "create"})
	if err != nil || len(rows) != 2 || rows[0].ID != "create" || rows[1].ID != "unlink" ||
		!rows[0].Meta || rows[0].Op != "CREATE" || rows[1].Op != "UNLINK" {
		t.Errorf("SelectRows(unlink, create) = %v, %v", rows, err)
	}
	all4, _ := SelectRows(nil)
	var metas []string
	for _, r := range all4 {
		if r.Meta {
			metas = append(metas, r.ID)
		}
	}
	if strings.Join(metas, ",") != "create,unlink" {
		t.Errorf("all rows hold meta rows %v, want create,unlink", metas)
	}
	sel, err := selectAll([]string{"dir", "zcfuse-uring"}, []string{"create", "unlink"}, false, "")
	if err != nil || len(sel.rows) != 2 || len(sel.targets) != 2 || len(sel.zcRows) != 0 {
		t.Errorf("selectAll(--rows create,unlink) = %d rows, %d targets, %d zc rows, %v", len(sel.rows), len(sel.targets), len(sel.zcRows), err)
	}
}

func TestMetaFioArgs(t *testing.T) {
	create, _ := SelectRows([]string{"create"})
	a := strings.Join(metaFioArgs(create[0], "/m/d", "/o.json", 1234, 3*time.Second), " ")
	for _, want := range []string{"--ioengine=filecreate", "--directory=/m/d", "--nrfiles=1234", "--iodepth=1",
		"--runtime=3s", "--filename_format=f.$jobnum.$filenum", "--output=/o.json"} {
		if !strings.Contains(a, want) {
			t.Errorf("metaFioArgs = %s: no %s", a, want)
		}
	}
	if strings.Contains(a, "--direct=") || strings.Contains(a, "--ramp_time") || strings.Contains(a, "time_based") {
		t.Errorf("metaFioArgs = %s: want no O_DIRECT, ramp or time_based", a)
	}
	unlink, _ := SelectRows([]string{"unlink"})
	if a := strings.Join(metaFioArgs(unlink[0], "/d", "/o", 10, time.Second), " "); !strings.Contains(a, "--ioengine=filedelete") {
		t.Errorf("unlink args %s", a)
	}
	c := Config{Runtime: 3 * time.Second}
	c.setDefaults()
	if c.MetaFiles != 1000 {
		t.Errorf("default MetaFiles = %d, want 1000", c.MetaFiles)
	}
}

func TestCheckMeta(t *testing.T) {
	rows, _ := SelectRows([]string{"create", "unlink"})
	create, unlink := rows[0], rows[1]
	for _, c := range []struct {
		target string
		row    Row
		ck     Check
		ios    uint64
		bad    string
	}{
		{"zcfuse-uring", create, Check{Transport: "uring", Ops: Counts{"ring": {"CREATE": 500, "LOOKUP": 500}}}, 500, ""},
		{"zcfuse-uring", create, Check{Transport: "uring", Ops: Counts{"ring": {"CREATE": 499}}}, 500, "want all on ring"},
		{"base-classic", unlink, Check{Transport: "classic", Ops: Counts{"dev": {"UNLINK": 500}}}, 500, ""},
		{"zcfuse-classic", unlink, Check{Transport: "classic", Ops: Counts{"dev": {"UNLINK": 400}, "ring": {"UNLINK": 100}}}, 500, "UNLINK counted"},
		// passthrough passes READ and WRITE only: CREATE must be on the ring
		{"zcfuse-passthrough", create, Check{Transport: "uring", Ops: Counts{"ring": {"CREATE": 500}}}, 500, ""},
		{"zcfuse-passthrough", unlink, Check{Transport: "uring", Ops: Counts{"ring": {"LOOKUP": 500}}}, 500, "want all on ring"},
		{"gofuse", unlink, Check{Transport: "classic", Ops: Counts{"server": {"UNLINK": 500}}}, 500, ""},
		{"gofuse", create, Check{Transport: "classic", Ops: Counts{"server": {"CREATE": 10}}}, 500, "counted 10 CREATE"},
	} {
		got := check(target(c.target), c.row, &c.ck, c.ios)
		if (c.bad == "") != (got == "") || !strings.Contains(got, c.bad) {
			t.Errorf("check(%s, %s, %v, %d) = %q, want %q", c.target, c.row.ID, c.ck.Ops, c.ios, got, c.bad)
		}
	}
}

func TestMetaTable(t *testing.T) {
	rows, _ := SelectRows([]string{"create", "unlink"})
	r := &Report{Machine: Machine{ShmFS: "tmpfs"}, Params: Params{Reps: 2, RuntimeS: 3, MetaFiles: 15000}, Rows: rows}
	for _, n := range []string{"dir", "zcfuse-uring", "base-uring", "zcfuse-passthrough"} {
		tg := target(n)
		r.Targets = append(r.Targets, TargetInfo{Name: tg.Name, Label: tg.Label, Channel: tg.Channel, Baseline: tg.Baseline})
	}
	add := func(tg, row string, files float64, valid bool) {
		r.Results = append(r.Results, Result{Target: tg, Row: row, Rep: 1, Valid: valid,
			Measurement: Measurement{IOPS: files, IOs: uint64(files)}})
	}
	add("dir", "create", 200000, true)
	add("dir", "unlink", 250000, true)
	add("zcfuse-uring", "create", 50000, true)
	add("zcfuse-uring", "create", 60000, true)
	add("zcfuse-uring", "unlink", 40000, true)
	add("base-uring", "create", 25000, true)
	add("base-uring", "unlink", 30000, false)
	add("zcfuse-passthrough", "create", 48000, true)
	add("zcfuse-passthrough", "unlink", 39000, true)
	r.summarize()
	var b bytes.Buffer
	r.WriteTables(&b)
	out := b.String()
	const title = "(files/s)"
	for _, c := range []struct{ target, col, want string }{
		{"dir", "create files/s", "200.0k"},
		{"dir", "unlink / dir", "1.000"},
		{"zcfuse-uring", "create files/s", "55.0k"},
		{"zcfuse-uring", "create / dir", "0.275"},
		{"zcfuse-uring", "unlink / dir", "0.160"},
		{"zcfuse-uring", "check", "ring ✓"},
		{"base-uring", "create / dir", "0.125"},
		{"base-uring", "unlink files/s", "–"},
		{"base-uring", "check", "INVALID 1/2"},
		{"zcfuse-passthrough", "check", "ring ✓"},
	} {
		if got := tableCell(out, title, c.target, c.col); got != c.want {
			t.Errorf("%s %s = %q, want %q\n%s", c.target, c.col, got, c.want, out)
		}
	}
	if !strings.Contains(out, "up to 15000 files per run") || strings.Contains(out, "4 KiB") {
		t.Errorf("meta table title or other tables wrong:\n%s", out)
	}
	if _, err := r.Plot(); err != nil {
		t.Errorf("plot with meta rows: %v", err)
	}
	if n := len(r.panels()); n != 2 {
		t.Errorf("%d panels, want 2 (create, unlink)", n)
	}
}

func TestSelectBaseline(t *testing.T) {
	const base = "/tmp/zcfuse-base"
	// without --baseline: all leaves the base-* targets out, naming one is a usage error
	for _, all := range [][]string{nil, {"all"}} {
		ts, err := SelectTargets(all, "")
		if err != nil || names(ts) != "dir,zcfuse-classic,zcfuse-uring,gofuse,zcfuse-passthrough" {
			t.Errorf("SelectTargets(%q, no baseline) = %s, %v", all, names(ts), err)
		}
	}
	for _, n := range [][]string{{"base-uring"}, {"zcfuse-uring", "base-classic"}} {
		_, err := SelectTargets(n, "")
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "needs --baseline") {
			t.Errorf("SelectTargets(%q) without a baseline: %v, want a usage error asking for --baseline", n, err)
		}
	}
	// with it: all includes them, each right after the target it mirrors
	ts, err := SelectTargets([]string{"all"}, base)
	if want := "dir,zcfuse-classic,base-classic,zcfuse-uring,base-uring,gofuse,zcfuse-passthrough"; err != nil || names(ts) != want {
		t.Errorf("SelectTargets(all, %s) = %s, %v; want %s", base, names(ts), err, want)
	}
	ts, err = SelectTargets([]string{"base-uring", "zcfuse-uring", "base-classic", "zcfuse-classic"}, base)
	if want := "zcfuse-classic,base-classic,zcfuse-uring,base-uring"; err != nil || names(ts) != want {
		t.Fatalf("SelectTargets(the four) = %s, %v; want %s", names(ts), err, want)
	}
	for i := 0; i < 4; i += 2 {
		cur, b := ts[i], ts[i+1]
		if cur.Baseline || !b.Baseline || b.Mirrors != cur.Name || b.kind != cur.kind || b.Channel != cur.Channel ||
			b.Transport != cur.Transport || strings.Join(b.mountArgs, " ") != strings.Join(cur.mountArgs, " ") {
			t.Errorf("%s does not mirror %s: %+v vs %+v", b.Name, cur.Name, b, cur)
		}
		if !strings.HasPrefix(b.Label, "baseline ") || !strings.HasSuffix(b.Label, "("+base+")") {
			t.Errorf("%s label %q: want baseline ... (%s)", b.Name, b.Label, base)
		}
	}
	// the labels in the shared list stay without a path
	for _, b := range BaselineTargets {
		if strings.Contains(b.Label, base) {
			t.Errorf("BaselineTargets changed: %q", b.Label)
		}
	}
	// interleaved like the others: the rotation moves the base-* targets too
	var got []string
	for rep := 1; rep <= 4; rep++ {
		got = append(got, names(order(ts, rep)))
	}
	want := []string{
		"zcfuse-classic,base-classic,zcfuse-uring,base-uring",
		"base-classic,zcfuse-uring,base-uring,zcfuse-classic",
		"zcfuse-uring,base-uring,zcfuse-classic,base-classic",
		"base-uring,zcfuse-classic,base-classic,zcfuse-uring",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("order with baseline: %q, want %q", got, want)
	}
}

func TestOrderRotates(t *testing.T) {
	ts := Targets[:3]
	var got []string
	for rep := 1; rep <= 3; rep++ {
		var names []string
		for _, t := range order(ts, rep) {
			names = append(names, t.Name)
		}
		got = append(got, strings.Join(names, " "))
	}
	want := []string{"dir zcfuse-classic zcfuse-uring", "zcfuse-classic zcfuse-uring dir", "zcfuse-uring dir zcfuse-classic"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("order: %q, want %q", got, want)
	}
}

func target(name string) Target {
	for _, t := range tableTargets("/base") {
		if t.Name == name {
			return t
		}
	}
	panic(name)
}

func TestCheck(t *testing.T) {
	read, write := Rows[0], Rows[2]
	for _, c := range []struct {
		target string
		row    Row
		ck     Check
		ios    uint64
		bad    string // a substring of the complaint; "" for none
	}{
		{"zcfuse-uring", read, Check{Transport: "uring", Ops: Counts{"ring": {"READ": 100, "GETATTR": 1}}}, 100, ""},
		{"zcfuse-uring", read, Check{Transport: "uring", Ops: Counts{"ring": {"READ": 100}, "dev": {"READ": 1}}}, 100, "none on dev"},
		{"zcfuse-uring", read, Check{Transport: "uring", Ops: Counts{"ring": {"READ": 99}}}, 100, "want all on ring"},
		{"zcfuse-uring", read, Check{Transport: "classic", Ops: Counts{"ring": {"READ": 100}}}, 100, "transport"},
		{"zcfuse-classic", write, Check{Transport: "classic", Ops: Counts{"dev": {"WRITE": 7, "GETXATTR": 7}}}, 7, ""},
		{"zcfuse-classic", write, Check{Transport: "classic", Ops: Counts{"ring": {"WRITE": 7}}}, 7, "want all on dev"},
		{"zcfuse-passthrough", read, Check{Transport: "uring", Ops: Counts{"ring": {"OPEN": 1, "GETXATTR": 9}}}, 100, ""},
		{"zcfuse-passthrough", write, Check{Transport: "uring", Ops: Counts{"ring": {"WRITE": 3}}}, 100, "saw ring WRITE=3"},
		{"gofuse", read, Check{Transport: "classic", Ops: Counts{"server": {"READ": 100}}}, 100, ""},
		{"gofuse", write, Check{Transport: "classic", Ops: Counts{"server": {"READ": 100}}}, 100, "counted 0 WRITE"},
	} {
		got := check(target(c.target), c.row, &c.ck, c.ios)
		if (c.bad == "") != (got == "") || !strings.Contains(got, c.bad) {
			t.Errorf("check(%s, %s, %v, %d) = %q, want %q", c.target, c.row.ID, c.ck.Ops, c.ios, got, c.bad)
		}
	}
}

func TestCountsSub(t *testing.T) {
	before := Counts{"ring": {"READ": 10, "OPEN": 1}}
	after := Counts{"ring": {"READ": 15, "OPEN": 1}, "dev": {"FORGET": 2}}
	d := after.sub(before)
	if len(d) != 2 || d["ring"]["READ"] != 5 || d["dev"]["FORGET"] != 2 || len(d["ring"]) != 1 {
		t.Errorf("sub = %v", d)
	}
}

func TestParseCountsLine(t *testing.T) {
	ops, err := parseCountsLine("zcfuse-bench-gofuse: counts reads=12 writes=3")
	if err != nil || ops["READ"] != 12 || ops["WRITE"] != 3 || len(ops) != 2 {
		t.Errorf("got %v %v", ops, err)
	}
	ops, err = parseCountsLine("zcfuse-bench-gofuse: counts reads=12 writes=3 creates=500 unlinks=499")
	if err != nil || ops["CREATE"] != 500 || ops["UNLINK"] != 499 || ops["READ"] != 12 {
		t.Errorf("got %v %v", ops, err)
	}
	if _, err := parseCountsLine("counts reads=12"); err == nil {
		t.Error("a line without writes parsed")
	}
}

// sampleReport is a two-repetition report over three targets and two rows.
func sampleReport() *Report {
	rows := []Row{Rows[0], Rows[4]}
	r := &Report{
		Command: "zcfuse-bench --reps 2", Start: "2026-01-02T03:04:05Z",
		Machine:   Machine{NProc: 2, CPUModel: "Test CPU", Kernel: "6.18.0", Go: "go1.26", Fio: "fio-3.33", ShmFS: "tmpfs"},
		LoadStart: "0.10 0.20 0.30 1/100 1", LoadEnd: "0.50 0.20 0.30 1/100 2",
		Params: Params{Reps: 2, RuntimeS: 5, RampS: 1, SizeMiB: 256, CPU: 0},
		Rows:   rows,
	}
	for _, n := range []string{"dir", "zcfuse-uring", "gofuse"} {
		t := target(n)
		r.Targets = append(r.Targets, TargetInfo{Name: t.Name, Label: t.Label, Channel: t.Channel})
	}
	add := func(tg, row string, rep int, iops, gbps, mean, p50, p99 float64, valid bool) {
		res := Result{Target: tg, Row: row, Rep: rep, Valid: valid,
			Measurement: Measurement{IOPS: iops, GBps: gbps, MeanUs: mean, P50Us: p50, P99Us: p99, IOs: 100}}
		switch tg {
		case "zcfuse-uring": // every READ on the fast path; the harness's own stats read is a GETXATTR
			res.Check = &Check{Transport: "uring", Want: "ring", Op: "READ", FastReads: 100,
				Ops: Counts{"ring": {"READ": 100, "GETXATTR": 1}}}
		case "gofuse":
			res.Check = &Check{Transport: "classic", Want: "server", Op: "READ", Ops: Counts{"server": {"READ": 100}}}
		}
		if !valid {
			res.Problem = "READ counted on ring=0 dev=100"
			r.Problems = append(r.Problems, tg+" "+row+": INVALID: "+res.Problem)
		}
		r.Results = append(r.Results, res)
	}
	add("dir", "randread-4k-pinned", 1, 700000, 2.8, 1.2, 1.1, 1.7, true)
	add("dir", "randread-4k-pinned", 2, 720000, 2.9, 1.1, 1.1, 1.6, true)
	add("zcfuse-uring", "randread-4k-pinned", 1, 80000, 0.33, 12.1, 11.9, 16.5, true)
	add("zcfuse-uring", "randread-4k-pinned", 2, 76000, 0.31, 12.9, 12.0, 23.7, true)
	add("gofuse", "randread-4k-pinned", 1, 28000, 0.11, 35.1, 26.0, 111, true)
	add("gofuse", "randread-4k-pinned", 2, 1e9, 9, 0.1, 0.1, 0.1, false)
	add("dir", "seqread-1m", 1, 8000, 8.0, 124, 103, 216, true)
	add("dir", "seqread-1m", 2, 7800, 7.8, 126, 104, 220, true)
	add("zcfuse-uring", "seqread-1m", 1, 4000, 4.0, 250, 240, 300, true)
	add("zcfuse-uring", "seqread-1m", 2, 3800, 3.8, 260, 245, 310, true)
	add("gofuse", "seqread-1m", 1, 2000, 2.0, 500, 480, 600, true)
	add("gofuse", "seqread-1m", 2, 2100, 2.1, 490, 470, 590, true)
	r.summarize()
	return r
}

func TestSummarize(t *testing.T) {
	r := sampleReport()
	s, ok := r.Find("zcfuse-uring", "randread-4k-pinned")
	if !ok || s.IOPS != 78000 || s.Min != 76000 || s.Max != 80000 || s.Runs != 2 || s.Valid != 2 {
		t.Errorf("uring randread summary %+v", s)
	}
	if want := 78000.0 / 710000; math.Abs(s.VsDir-want) > 1e-9 {
		t.Errorf("uring vs dir %v, want %v", s.VsDir, want)
	}
	g, _ := r.Find("gofuse", "randread-4k-pinned")
	if g.IOPS != 28000 || g.Valid != 1 || g.Runs != 2 {
		t.Errorf("the invalid run must stay out of the median: %+v", g)
	}
	q, _ := r.Find("gofuse", "seqread-1m")
	if q.GBps != 2.05 || math.Abs(q.VsDir-2.05/7.9) > 1e-9 {
		t.Errorf("gofuse seqread summary %+v", q)
	}
	if r.Invalid() != 1 {
		t.Errorf("Invalid() = %d, want 1", r.Invalid())
	}
}

// TestGetxattrPerOp: GETXATTR over all channels per READ/WRITE the server
// counted, over the valid runs only; "–" where the server has no such
// counter or saw no READ/WRITE.
func TestGetxattrPerOp(t *testing.T) {
	if got := fusering.OpName(22); got != opGetxattr {
		t.Fatalf("fusering.OpName(22) = %q, the summary looks for %q", got, opGetxattr)
	}
	write, read := Rows[2], Rows[0] // randwrite-4k-pinned, randread-4k-pinned
	r := &Report{Params: Params{Reps: 3}, Rows: []Row{read, write},
		Machine: Machine{Baseline: &BinaryInfo{Path: "/tmp/zcfuse-base", Size: 1234, ModTime: "2026-01-02T03:04:05Z",
			SHA256: "ab12", Revision: "eca9ed7"}}}
	for _, ts := range tableTargets("/tmp/zcfuse-base") {
		r.Targets = append(r.Targets, TargetInfo{Name: ts.Name, Label: ts.Label, Channel: ts.Channel, Baseline: ts.Baseline})
	}
	add := func(tg string, row Row, valid bool, ck *Check) {
		r.Results = append(r.Results, Result{Target: tg, Row: row.ID, Rep: len(r.Results) + 1, Valid: valid,
			Measurement: Measurement{IOPS: 1000, IOs: 100}, Check: ck})
	}
	ops := func(tr string, c Counts) *Check { return &Check{Transport: tr, Ops: c} }
	// the old build: one GETXATTR security.capability per WRITE (plus the stats read)
	add("base-uring", write, true, ops("uring", Counts{"ring": {"WRITE": 100, "GETXATTR": 101}}))
	add("base-uring", write, true, ops("uring", Counts{"ring": {"WRITE": 300, "GETXATTR": 300}, "dev": {"GETXATTR": 1}}))
	add("base-uring", write, false, ops("uring", Counts{"ring": {"WRITE": 5, "GETXATTR": 999}})) // invalid: left out
	// the new one: none but the stats read
	add("zcfuse-uring", write, true, ops("uring", Counts{"ring": {"WRITE": 200, "GETXATTR": 1}}))
	add("zcfuse-uring", write, true, ops("uring", Counts{"ring": {"WRITE": 200, "GETXATTR": 1}}))
	// classic: on /dev/fuse, and a counter on the other channel counts too
	add("zcfuse-classic", write, true, ops("classic", Counts{"dev": {"WRITE": 400, "GETXATTR": 200}, "ring": {"GETXATTR": 100}}))
	add("base-classic", write, true, ops("classic", Counts{"dev": {"WRITE": 100, "GETXATTR": 100}}))
	// reads: fast-path READs are in the READ count already
	add("zcfuse-uring", read, true, &Check{Transport: "uring", FastReads: 100, Ops: Counts{"ring": {"READ": 100}}})
	add("base-uring", read, true, &Check{Transport: "uring", FastReads: 50, Ops: Counts{"ring": {"READ": 100, "GETXATTR": 2}}})
	// no figure: the directory, go-fuse, passthrough (no WRITE reached the server), only invalid runs
	add("dir", write, true, nil)
	add("gofuse", write, true, ops("classic", Counts{"server": {"WRITE": 100}}))
	add("zcfuse-passthrough", write, true, ops("uring", Counts{"ring": {"GETXATTR": 100}}))
	add("base-classic", read, false, ops("classic", Counts{"dev": {"READ": 100, "GETXATTR": 100}}))
	r.summarize()

	for _, c := range []struct {
		target string
		row    Row
		want   float64 // < 0: no figure
	}{
		{"base-uring", write, 402.0 / 400},
		{"zcfuse-uring", write, 2.0 / 400},
		{"zcfuse-classic", write, 300.0 / 400},
		{"base-classic", write, 1},
		{"zcfuse-uring", read, 0},
		{"base-uring", read, 0.02},
		{"dir", write, -1},
		{"gofuse", write, -1},
		{"zcfuse-passthrough", write, -1},
		{"base-classic", read, -1},
		{"zcfuse-classic", read, -1}, // no runs
	} {
		s, ok := r.Find(c.target, c.row.ID)
		switch {
		case !ok:
			t.Errorf("%s %s: no summary", c.target, c.row.ID)
		case c.want < 0 && s.GetxattrPerOp != nil:
			t.Errorf("%s %s: getxattr/op %v, want none", c.target, c.row.ID, *s.GetxattrPerOp)
		case c.want >= 0 && (s.GetxattrPerOp == nil || math.Abs(*s.GetxattrPerOp-c.want) > 1e-12):
			t.Errorf("%s %s: getxattr/op %v, want %v", c.target, c.row.ID, s.GetxattrPerOp, c.want)
		}
	}

	var out bytes.Buffer
	r.WriteTables(&out)
	text := out.String()
	if want := "baseline (base-* targets): /tmp/zcfuse-base, 1234 bytes, mtime 2026-01-02T03:04:05Z, sha256 ab12, built from eca9ed7\n"; !strings.Contains(text, want) {
		t.Errorf("tables lack %q:\n%s", want, text)
	}
	for _, c := range []struct{ group, target, want string }{
		{"randwrite-4k", "base-uring", "1.00"},
		{"randwrite-4k", "zcfuse-uring", "0.01"},
		{"randwrite-4k", "zcfuse-classic", "0.75"},
		{"randwrite-4k", "base-classic", "1.00"},
		{"randwrite-4k", "dir", "–"},
		{"randwrite-4k", "gofuse", "–"},
		{"randwrite-4k", "zcfuse-passthrough", "–"},
		{"randread-4k", "zcfuse-uring", "0.00"},
		{"randread-4k", "base-uring", "0.02"},
		{"randread-4k", "base-classic", "–"},
	} {
		if got := tableCell(text, "("+c.group+")", c.target, "getxattr/op"); got != c.want {
			t.Errorf("%s table, %s: getxattr/op %q, want %q\n%s", c.group, c.target, got, c.want, text)
		}
	}
	// the JSON says it (and leaves it out where there is none), and it survives --from
	path := filepath.Join(t.TempDir(), "b.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), `"getxattr_per_op"`); n != 6 {
		t.Errorf("getxattr_per_op %d times in the JSON, want 6", n)
	}
	if !strings.Contains(string(raw), `"sha256": "ab12"`) || !strings.Contains(string(raw), `"baseline": true`) {
		t.Errorf("the JSON does not say what was compared")
	}
	back, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	back.summarize()
	if s, _ := back.Find("base-uring", write.ID); s.GetxattrPerOp == nil || math.Abs(*s.GetxattrPerOp-402.0/400) > 1e-12 {
		t.Errorf("after a round trip: %+v", s)
	}
}

// tableCell is the cell in column col of the row starting with target in
// the first table after the line ending in title; "?" when not found.
func tableCell(text, title, target, col string) string {
	lines := strings.Split(text, "\n")
	var head []string
	in := false
	for _, l := range lines {
		if strings.HasSuffix(l, title) {
			in, head = true, nil
			continue
		}
		if !in || !strings.HasPrefix(l, "|") {
			if in && head != nil && l == "" {
				return "?"
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if head == nil {
			head = cells
			continue
		}
		if cells[0] != target {
			continue
		}
		for i, h := range head {
			if h == col && i < len(cells) {
				return cells[i]
			}
		}
		return "?"
	}
	return "?"
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), "b.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != len(r.Results) || len(back.Summary) != len(r.Summary) || back.Rows[1].ID != "seqread-1m" {
		t.Errorf("round trip lost data: %d results, %d summaries", len(back.Results), len(back.Summary))
	}
	var a, b bytes.Buffer
	r.WriteTables(&a)
	back.WriteTables(&b)
	if a.String() != b.String() {
		t.Errorf("tables differ after a round trip:\n%s\n%s", a.String(), b.String())
	}
}

func Example_tables() {
	sampleReport().WriteTables(os.Stdout)
	// Output:
	// zcfuse-bench: medians of 2 repetition(s) × 5s (+1s ramp) per fio run; fio psync, QD1, O_DIRECT, on a 256 MiB file of random data in a tmpfs directory; "pinned": fio's CPU affinity is CPU 0.
	// machine: 2 CPUs (Test CPU), kernel 6.18.0, go1.26, fio 3.33; load 0.10 -> 0.50
	//
	// 4 KiB random read, QD1, O_DIRECT (randread-4k)
	//
	// | target       | fio    |   IOPS | iops / dir | mean µs | p50 µs | p99 µs | getxattr/op | check       |
	// |--------------|--------|-------:|-----------:|--------:|-------:|-------:|------------:|-------------|
	// | dir          | pinned | 710.0k |      1.000 |    1.15 |   1.10 |   1.65 |           – | –           |
	// | zcfuse-uring | pinned |  78.0k |      0.110 |    12.5 |   11.9 |   20.1 |        0.01 | ring ✓      |
	// | gofuse       | pinned |  28.0k |      0.039 |    35.1 |   26.0 |  111.0 |           – | INVALID 1/2 |
	//
	// 1 MiB sequential read and overwrite, QD1, O_DIRECT, fio pinned (GB/s = 1e9 bytes/s)
	//
	// | target       | read GB/s | read / dir | check    |
	// |--------------|----------:|-----------:|----------|
	// | dir          |      7.90 |      1.000 | –        |
	// | zcfuse-uring |      3.90 |      0.494 | ring ✓   |
	// | gofuse       |      2.05 |      0.259 | server ✓ |
	//
	// WARNING: gofuse randread-4k-pinned: INVALID: READ counted on ring=0 dev=100
}

func TestPlot(t *testing.T) {
	r := sampleReport()
	b, err := r.Plot()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// two panels (4 KiB read, 1 MiB read) side by side
	if sz := img.Bounds().Size(); sz.X != 1520 || sz.Y != 540 {
		t.Errorf("chart is %v", sz)
	}
	// The uring bar's colour must be there: some pixels are colPinned.
	found := 0
	for y := 0; y < img.Bounds().Dy(); y += 2 {
		for x := 0; x < img.Bounds().Dx(); x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == colPinned.R && uint8(g>>8) == colPinned.G && uint8(b>>8) == colPinned.B {
				found++
			}
		}
	}
	if found < 1000 {
		t.Errorf("only %d bar pixels", found)
	}
	if _, err := (&Report{}).Plot(); err == nil {
		t.Error("an empty report plotted")
	}
}

func TestAxisMax(t *testing.T) {
	bars := func(vs ...float64) []bar {
		var out []bar
		for _, v := range vs {
			out = append(out, bar{value: v, min: v, max: v, ok: true})
		}
		return out
	}
	// the kernel's own paths (700k, 650k) are broken off; the FUSE bars set the axis
	if got := axisMax(bars(700, 80, 35, 650, 29)); math.Abs(got-80*1.15) > 1e-9 {
		t.Errorf("axisMax with a gap = %v", got)
	}
	if got := axisMax(bars(8, 4, 2.7, 7.3)); math.Abs(got-8*1.15) > 1e-9 {
		t.Errorf("axisMax without a gap = %v", got)
	}
	if got := axisMax(nil); got != 1 {
		t.Errorf("axisMax(nil) = %v", got)
	}
	for raw, want := range map[float64]float64{17: 20, 0.3: 0.5, 100: 100, 2.2: 2.5} {
		if got := niceStep(raw); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{
		{"--reps", "0"}, {"--runtime", "soon"}, {"--plot", "x.svg"}, {"--targets", "nfs"}, {"extra"}, {"--nope"},
		{"--zc-pin", "core"}, {"--spin", "5ms"}, {"--zc-runtime", "0"}, {"--rows", "zc-nope"},
		{"--targets", "ring-sleep", "--rows", "randread-4k"},
		{"--targets", "base-uring"}, {"--targets", "zcfuse-uring,base-classic", "--rows", "randwrite-4k"},
	} {
		if err := Main(args, &out, &errb); !errors.Is(err, ErrUsage) {
			t.Errorf("Main(%q) = %v, want ErrUsage", args, err)
		}
	}
	if err := Main([]string{"--targets", "base-uring"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "--baseline") {
		t.Errorf("base-uring without --baseline: %v, want it to ask for --baseline", err)
	}
	for _, help := range []string{"--help", "-h", "help"} {
		out.Reset()
		if err := Main([]string{help}, &out, &errb); err != nil {
			t.Errorf("%s: %v", help, err)
		}
		for _, want := range []string{"--smoke", "--baseline", "base-uring", "--zcfuse", CmdServeGofuse + " BACKING MOUNTPOINT", CmdZCClient + " SPEC"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s lacks %q:\n%s", help, want, out.String())
			}
		}
	}
	// the helpers are subcommands, checked like any command line
	for _, args := range [][]string{{CmdServeGofuse}, {CmdServeGofuse, "/a"}, {CmdZCClient}, {CmdZCClient, "{}", "extra"}, {"serve"}} {
		if err := Main(args, &out, &errb); !errors.Is(err, ErrUsage) {
			t.Errorf("Main(%q) = %v, want ErrUsage", args, err)
		}
	}
	if err := Main([]string{CmdZCClient, "not json"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "spec") {
		t.Errorf("zc-client with a bad spec: %v", err)
	}
}

// TestNoZcfuse: without a zcfuse binary to mount with, the run stops
// before measuring and says how to give one.
func TestNoZcfuse(t *testing.T) {
	dir := t.TempDir()
	_, err := Run(context.Background(), Config{Targets: []string{"zcfuse-uring"}, Rows: []string{"seqread-1m"},
		Self: filepath.Join(dir, "zcfuse-bench"), ShmDir: dir})
	if err == nil || !strings.Contains(err.Error(), "--zcfuse PATH") || !strings.Contains(err.Error(), filepath.Join(dir, "zcfuse")) {
		t.Errorf("Run without zcfuse: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the failed run left %d entries in %s", len(ents), dir)
	}
}

func TestSmallHelpers(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "0.5": 500 * time.Millisecond, "1500ms": 1500 * time.Millisecond} {
		if got, err := parseSeconds(in); err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseSeconds("soon"); err == nil {
		t.Error("parseSeconds(soon) succeeded")
	}
	if got := shellQuote([]string{"zcfuse-bench", "--rows", "a b", "it's"}); got != `zcfuse-bench --rows 'a b' 'it'\''s'` {
		t.Errorf("shellQuote: %s", got)
	}
	if fmtIOPS(78149) != "78.1k" || fmtIOPS(703933) != "703.9k" || fmtIOPS(999) != "999" || fmtIOPS(1.5e6) != "1.50M" {
		t.Errorf("fmtIOPS: %s %s %s %s", fmtIOPS(78149), fmtIOPS(703933), fmtIOPS(999), fmtIOPS(1.5e6))
	}
}
