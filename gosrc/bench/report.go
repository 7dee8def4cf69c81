package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/zcfuse/zcfuse/gosrc/uapi"
)

// The report: every run of both kinds of rows (fio's on targets, the
// zero-copy client's on paths), their medians, and the tables, chart and
// JSON made of them. The two kinds keep their own result types and JSON
// arrays (what each measures differs), but from the medians on they go
// through the same code: a kind is seen as a family of columns and rows
// (see family) by the summary, the tables and the chart alike.

// Result is one fio run: one target, row and repetition.
type Result struct {
	Target string `json:"target"`
	Row    string `json:"row"`
	Rep    int    `json:"rep"`
	Measurement
	// FioCPUs is fio's CPU affinity as seen in /proc right after it started.
	FioCPUs string `json:"fio_cpus_allowed,omitempty"`
	// ServerCPU is the CPU time the server process used during the run
	// (all threads, 10 ms resolution), in seconds; nil for the directory
	// or when /proc did not say.
	ServerCPU *float64 `json:"server_cpu_s,omitempty"`
	Check     *Check   `json:"check,omitempty"`
	// Valid is false when the run failed or its check did.
	Valid   bool   `json:"valid"`
	Problem string `json:"problem,omitempty"`
}

// Check is what the server counted during one fio run.
type Check struct {
	Transport string `json:"transport"`
	Want      string `json:"want"` // the channel READ/WRITE must use
	Op        string `json:"op"`
	// Ops are all requests the server counted during the run, by channel.
	Ops Counts `json:"ops"`
	// FastReads are the READs among them that zcfuse's ring threads
	// answered on their fast path.
	FastReads uint64 `json:"fast_reads,omitempty"`
}

// Medians are one column's figures in one row over its valid runs, the
// same for both kinds of rows.
type Medians struct {
	Runs   int     `json:"runs"`
	Valid  int     `json:"valid"`
	IOPS   float64 `json:"iops"`
	GBps   float64 `json:"gb_per_s"`
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P99Us  float64 `json:"p99_us"`
	// Min and max of the valid runs: IOPS for latency rows, else GB/s.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// MeanMin and MeanMax are the range of the runs' mean latencies.
	MeanMin float64 `json:"mean_min_us"`
	MeanMax float64 `json:"mean_max_us"`
}

// Summary is the medians of one fio target and row.
type Summary struct {
	Target string `json:"target"`
	Row    string `json:"row"`
	Medians
	// VsDir is the ratio to the directory itself: IOPS for latency rows,
	// else GB/s; 0 when the directory was not measured.
	VsDir float64 `json:"vs_dir"`
	// GetxattrPerOp is the GETXATTR requests a zcfuse server counted
	// during the valid runs (all channels) divided by the requests of the
	// row's opcode (READ or WRITE, fast-path READs included) it counted
	// in them: how often the kernel asks for an xattr (for WRITE: the
	// security.capability kill-priv check) per I/O. nil for the
	// directory, for go-fuse (whose counters have no GETXATTR) and where
	// the server counted no READ or WRITE (passthrough). The counts
	// include the one GETXATTR of the harness's own counter read after
	// each run (about 1e-5 per op on the 4 KiB rows).
	GetxattrPerOp *float64 `json:"getxattr_per_op,omitempty"`
}

// ZCSummary is the medians of one zero-copy path and row.
type ZCSummary struct {
	Path string `json:"path"`
	Row  string `json:"row"`
	Medians
	// VsNative is the ratio to the native path: IOPS for latency rows,
	// else GB/s; 0 when native was not measured.
	VsNative float64 `json:"vs_native"`
	// Medians of the per-op costs.
	ClientUsrUs float64  `json:"client_usr_us_per_op"`
	ClientSysUs float64  `json:"client_sys_us_per_op"`
	ClientVCSW  float64  `json:"client_vol_ctxsw_per_op"`
	ServerCPUUs *float64 `json:"server_cpu_us_per_op,omitempty"`
	AllocsPerOp float64  `json:"client_allocs_per_op"`
}

// opGetxattr is GETXATTR's name in Check.Ops.
var opGetxattr = uapi.FuseOpGetxattr.String()

// Params are the run's settings.
type Params struct {
	Reps     int     `json:"reps"`
	RuntimeS float64 `json:"runtime_s"`
	RampS    float64 `json:"ramp_s"`
	SizeMiB  int     `json:"size_mib"`
	CPU      int     `json:"fio_pinned_cpu"`
	Smoke    bool    `json:"smoke"`
	Fio      string  `json:"fio_common"`
	// The meta rows (create, unlink): files per run (fewer when the
	// runtime ends it first) and their fio arguments.
	MetaFiles int    `json:"meta_files,omitempty"`
	MetaFio   string `json:"meta_fio,omitempty"`
	// The zero-copy runs: measured time and warm-up per run, and the
	// ring-poll spin.
	ZCRuntimeS float64 `json:"zc_runtime_s,omitempty"`
	ZCRampS    float64 `json:"zc_ramp_s,omitempty"`
	SpinUs     float64 `json:"poll_spin_us,omitempty"`
	// ZCPin is how pinned zero-copy clients were pinned: "thread" or
	// "process" (see Config.ZCPin).
	ZCPin string `json:"zc_pin,omitempty"`
}

// ZCPathInfo names a zero-copy path in the report.
type ZCPathInfo struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Mode  string `json:"mode,omitempty"`
	Check string `json:"check,omitempty"`
}

// TargetInfo names a target in the report.
type TargetInfo struct {
	Name    string `json:"name"`
	Label   string `json:"label"`
	Channel string `json:"channel,omitempty"`
	// Baseline marks a base-* target: it ran Machine.Baseline.
	Baseline bool `json:"baseline,omitempty"`
}

// Report is everything a run produced; it is the JSON file.
type Report struct {
	What      string   `json:"what"`
	Command   string   `json:"command"`
	Start     string   `json:"start"`
	End       string   `json:"end"`
	Machine   Machine  `json:"machine"`
	LoadStart string   `json:"load_start"`
	LoadEnd   string   `json:"load_end"`
	OtherFio  []string `json:"other_fio_at_start,omitempty"`
	// Servers holds each server's ready line (from its first mount).
	Servers map[string]string `json:"servers,omitempty"`
	Params  Params            `json:"params"`
	// The fio rows: targets, rows, every run and the medians.
	Targets []TargetInfo `json:"targets"`
	Rows    []Row        `json:"rows"`
	Results []Result     `json:"results"`
	Summary []Summary    `json:"summary"`
	// The zero-copy rows: paths, rows, every run, the medians, and the
	// zero-copy goals (ZCGoals) against them.
	ZCPaths   []ZCPathInfo   `json:"zc_paths,omitempty"`
	ZCRows    []ZCRow        `json:"zc_rows,omitempty"`
	ZCResults []ZCResult     `json:"zc_results,omitempty"`
	ZCSummary []ZCSummary    `json:"zc_summary,omitempty"`
	ZCTargets []TargetResult `json:"zc_targets,omitempty"`
	// Problems lists every failed run and failed check.
	Problems []string `json:"problems,omitempty"`
	// Errors counts runs that produced no measurement.
	Errors int `json:"errors"`
}

// Invalid counts the runs that failed their check or produced nothing.
func (r *Report) Invalid() int {
	n := 0
	for _, res := range r.Results {
		if !res.Valid {
			n++
		}
	}
	for _, res := range r.ZCResults {
		if !res.Valid {
			n++
		}
	}
	return n
}

func (r *Report) row(id string) (Row, bool) {
	for _, row := range r.Rows {
		if row.ID == id {
			return row, true
		}
	}
	return Row{}, false
}

func (r *Report) zcRow(id string) (ZCRow, bool) {
	for _, row := range r.ZCRows {
		if row.ID == id {
			return row, true
		}
	}
	return ZCRow{}, false
}

// Find returns the summary of fio target and row.
func (r *Report) Find(target, row string) (Summary, bool) {
	for _, s := range r.Summary {
		if s.Target == target && s.Row == row {
			return s, true
		}
	}
	return Summary{}, false
}

// FindZC returns the summary of zero-copy path and row.
func (r *Report) FindZC(path, row string) (ZCSummary, bool) {
	for _, s := range r.ZCSummary {
		if s.Path == path && s.Row == row {
			return s, true
		}
	}
	return ZCSummary{}, false
}

// sample is one run's figures, whichever the kind of row.
type sample struct {
	valid                      bool
	iops, gbps, mean, p50, p99 float64
}

func (res Result) sample() sample {
	return sample{res.Valid, res.IOPS, res.GBps, res.MeanUs, res.P50Us, res.P99Us}
}

func (res ZCResult) sample() sample {
	return sample{res.Valid, res.IOPS, res.GBps, res.MeanUs, res.P50Us, res.P99Us}
}

// medians takes the medians of runs over the valid ones; Min and Max
// are of IOPS for a latency row, else of GB/s.
func medians(runs []sample, latency bool) Medians {
	var m Medians
	var iops, gbps, mean, p50, p99 []float64
	for _, s := range runs {
		m.Runs++
		if !s.valid {
			continue
		}
		m.Valid++
		iops = append(iops, s.iops)
		gbps = append(gbps, s.gbps)
		mean = append(mean, s.mean)
		p50 = append(p50, s.p50)
		p99 = append(p99, s.p99)
	}
	m.IOPS, m.GBps = median(iops), median(gbps)
	m.MeanUs, m.P50Us, m.P99Us = median(mean), median(p50), median(p99)
	main := gbps
	if latency {
		main = iops
	}
	m.Min, m.Max = minMax(main)
	m.MeanMin, m.MeanMax = minMax(mean)
	return m
}

// ratio is m over ref, the reference column's medians in the same row:
// IOPS for a latency row, else GB/s; 0 when either has no valid run.
func ratio(m, ref Medians, latency bool) float64 {
	if ref.Valid == 0 || m.Valid == 0 {
		return 0
	}
	if latency {
		return m.IOPS / ref.IOPS
	}
	return m.GBps / ref.GBps
}

// median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minMax(xs []float64) (lo, hi float64) {
	for i, v := range xs {
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

// summarize fills the medians of both kinds from the results, and the
// zero-copy goals from those.
func (r *Report) summarize() {
	r.Summary = nil
	for _, t := range r.Targets {
		// zcfuse's counters (ring and dev) count GETXATTR; go-fuse's
		// have READ and WRITE only, the directory has none
		xattrs := t.Channel == ChannelRing || t.Channel == ChannelDev || t.Channel == ChannelNone
		for _, row := range r.Rows {
			var runs []sample
			var nx, nop uint64
			for _, res := range r.Results {
				if res.Target != t.Name || res.Row != row.ID {
					continue
				}
				runs = append(runs, res.sample())
				if res.Valid && xattrs && res.Check != nil {
					for _, ch := range []string{ChannelRing, ChannelDev} {
						nx += res.Check.Ops[ch][opGetxattr]
						nop += res.Check.Ops[ch][row.Op]
					}
				}
			}
			s := Summary{Target: t.Name, Row: row.ID, Medians: medians(runs, row.Latency)}
			if nop > 0 {
				v := float64(nx) / float64(nop)
				s.GetxattrPerOp = &v
			}
			r.Summary = append(r.Summary, s)
		}
	}
	for i := range r.Summary {
		s := &r.Summary[i]
		row, _ := r.row(s.Row)
		dir, _ := r.Find("dir", s.Row)
		s.VsDir = ratio(s.Medians, dir.Medians, row.Latency)
	}

	r.ZCSummary = nil
	for _, p := range r.ZCPaths {
		for _, row := range r.ZCRows {
			var runs []sample
			var usr, sys, vcsw, srv, allocs []float64
			for _, res := range r.ZCResults {
				if res.Path != p.Name || res.Row != row.ID {
					continue
				}
				runs = append(runs, res.sample())
				if !res.Valid {
					continue
				}
				usr = append(usr, res.ClientUsrUs)
				sys = append(sys, res.ClientSysUs)
				vcsw = append(vcsw, res.ClientVCSW)
				allocs = append(allocs, res.AllocsPerOp)
				if res.ServerCPUUsPerOp != nil {
					srv = append(srv, *res.ServerCPUUsPerOp)
				}
			}
			s := ZCSummary{Path: p.Name, Row: row.ID, Medians: medians(runs, row.Latency)}
			s.ClientUsrUs, s.ClientSysUs, s.ClientVCSW, s.AllocsPerOp = median(usr), median(sys), median(vcsw), median(allocs)
			if len(srv) > 0 {
				v := median(srv)
				s.ServerCPUUs = &v
			}
			r.ZCSummary = append(r.ZCSummary, s)
		}
	}
	for i := range r.ZCSummary {
		s := &r.ZCSummary[i]
		row, _ := r.zcRow(s.Row)
		nat, _ := r.FindZC("native", s.Row)
		s.VsNative = ratio(s.Medians, nat.Medians, row.Latency)
	}
	r.ZCTargets = r.evalGoals()
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads a report WriteJSON wrote.
func ReadJSON(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// family is one kind of rows as the tables and the chart see it: its
// columns (fio targets or zero-copy paths), its rows, and the medians of
// each column in each row with the ratio to the reference column.
type family struct {
	colHead string // what a column is: "target", "path"
	pinHead string // who is pinned: "fio", "client"
	ref     string // the column ratios are to: "dir", "native"
	cols    []column
	rows    []line
	cells   map[[2]string]cell // by column name and row ID
}

// column is a fio target or a zero-copy path.
type column struct {
	name string
	// check is what the check cell says when every run passed its
	// check ("ring", "proof"); "" when there is no check.
	check string
}

// line is a row of either kind.
type line struct {
	id, name, op string
	group        string // zero-copy rows: GroupQD1, GroupQD32, GroupSweep
	bs           int64  // zero-copy rows: the block size
	pinned       bool
	latency      bool
	meta         bool // fio's create and unlink rows
}

// pinWord is "pinned" or "unpinned".
func (l line) pinWord() string {
	if l.pinned {
		return "pinned"
	}
	return "unpinned"
}

// cell is one column's medians in one row.
type cell struct {
	Medians
	ratio    float64  // to the family's reference column
	getxattr *float64 // fio rows: GETXATTR per op
}

// find returns the cell of col in row; its Runs are 0 when there is none.
func (f family) find(col, row string) cell { return f.cells[[2]string{col, row}] }

// rowsWhere are the family's rows that keep accepts, in table order.
func (f family) rowsWhere(keep func(line) bool) []line {
	var out []line
	for _, l := range f.rows {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

func (f family) hasCol(name string) bool {
	for _, c := range f.cols {
		if c.name == name {
			return true
		}
	}
	return false
}

// fio is the fio rows as a family.
func (r *Report) fio() family {
	f := family{colHead: "target", pinHead: "fio", ref: "dir", cells: map[[2]string]cell{}}
	for _, t := range r.Targets {
		c := column{name: t.Name, check: t.Channel}
		if t.Channel == ChannelNone {
			c.check = "none (kernel)"
		}
		f.cols = append(f.cols, c)
	}
	for _, row := range r.Rows {
		f.rows = append(f.rows, line{id: row.ID, name: row.Name, op: row.Op,
			pinned: row.Pinned, latency: row.Latency, meta: row.Meta})
	}
	for _, s := range r.Summary {
		f.cells[[2]string{s.Target, s.Row}] = cell{Medians: s.Medians, ratio: s.VsDir, getxattr: s.GetxattrPerOp}
	}
	return f
}

// zc is the zero-copy rows as a family.
func (r *Report) zc() family {
	f := family{colHead: "path", pinHead: "client", ref: "native", cells: map[[2]string]cell{}}
	for _, p := range r.ZCPaths {
		f.cols = append(f.cols, column{name: p.Name, check: p.Check})
	}
	for _, row := range r.ZCRows {
		f.rows = append(f.rows, line{id: row.ID, name: row.Name, op: row.Op, group: row.Group, bs: row.BS,
			pinned: row.Pinned, latency: row.Latency})
	}
	for _, s := range r.ZCSummary {
		f.cells[[2]string{s.Path, s.Row}] = cell{Medians: s.Medians, ratio: s.VsNative}
	}
	return f
}

// fmtIOPS writes 78123 as 78.1k.
func fmtIOPS(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtUs(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", v)
}

// checkCell says how a column's runs of a row (or of several rows,
// added up) fared in their check.
func checkCell(c column, m Medians) string {
	switch {
	case m.Runs == 0:
		return "–"
	case m.Valid < m.Runs:
		return fmt.Sprintf("INVALID %d/%d", m.Runs-m.Valid, m.Runs)
	case c.check == "":
		return "–"
	}
	return c.check + " ✓"
}

// opWord is "read" or "write".
func opWord(op string) string { return map[string]string{"READ": "read", "WRITE": "write"}[op] }

// WriteTables writes the medians as markdown tables, one per metric
// group, then any problems.
func (r *Report) WriteTables(w io.Writer) {
	p := r.Params
	if len(r.Targets) > 0 && len(r.Rows) > 0 {
		fmt.Fprintf(w, "zcfuse-bench: medians of %d repetition(s) × %gs (+%gs ramp) per fio run; fio psync, QD1, O_DIRECT, on a %d MiB file of random data in a %s directory; \"pinned\": fio's CPU affinity is CPU %d.\n",
			p.Reps, p.RuntimeS, p.RampS, p.SizeMiB, r.Machine.ShmFS, p.CPU)
	} else {
		fmt.Fprintf(w, "zcfuse-bench: a %d MiB file of random data in a %s directory.\n", p.SizeMiB, r.Machine.ShmFS)
	}
	fio := ""
	if r.Machine.Fio != "" {
		fio = ", fio " + strings.TrimPrefix(r.Machine.Fio, "fio-")
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), kernel %s, %s%s; load %s -> %s\n",
		r.Machine.NProc, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.Go, fio,
		firstField(r.LoadStart), firstField(r.LoadEnd))
	if r.Machine.Baseline != nil {
		fmt.Fprintf(w, "baseline (base-* targets): %s\n", r.Machine.Baseline)
	}
	r.writeFioTables(w)
	r.writeZCTables(w)
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "WARNING: %s\n", p)
		}
	}
}

// writeFioTables writes the fio rows: 4 KiB latency, 1 MiB throughput,
// create and unlink.
func (r *Report) writeFioTables(w io.Writer) {
	f := r.fio()
	gx := extra{head: "getxattr/op", value: func(c cell) string {
		if c.getxattr == nil {
			return "–"
		}
		return fmt.Sprintf("%.2f", *c.getxattr)
	}}
	for _, g := range []struct{ name, title string }{
		{"randread-4k", "4 KiB random read, QD1, O_DIRECT"},
		{"randwrite-4k", "4 KiB random write, QD1, O_DIRECT"},
	} {
		rows := f.rowsWhere(func(l line) bool { return l.name == g.name })
		f.latencyTable(w, fmt.Sprintf("%s (%s)", g.title, g.name), rows, gx)
	}
	name := map[string]string{"seqread-1m": "read", "seqwrite-1m": "overwrite"}
	seq := f.rowsWhere(func(l line) bool { return name[l.id] != "" })
	gbps := func(c cell) string { return fmt.Sprintf("%.2f", c.GBps) }
	f.sideBySide(w, "1 MiB sequential read and overwrite, QD1, O_DIRECT, fio pinned (GB/s = 1e9 bytes/s)", seq,
		[]metric{{func(l line) string { return name[l.id] + " GB/s" }, gbps}, f.ratioMetric(func(l line) string { return name[l.id] })}, nil)
	meta := f.rowsWhere(func(l line) bool { return l.meta })
	files := ""
	if r.Params.MetaFiles > 0 {
		files = fmt.Sprintf(", up to %d files per run", r.Params.MetaFiles)
	}
	// CREATE and UNLINK go over the ring with passthrough too.
	asRing := func(c column) column {
		if c.check == "none (kernel)" {
			c.check = ChannelRing
		}
		return c
	}
	f.sideBySide(w, "File create and unlink, QD1, fio filecreate/filedelete, fio pinned, a fresh directory per run"+files+" (files/s)", meta,
		[]metric{{func(l line) string { return l.id + " files/s" }, func(c cell) string { return fmtIOPS(c.IOPS) }},
			f.ratioMetric(func(l line) string { return l.id })}, asRing)
}

// writeZCTables writes the zero-copy rows: QD1 latency, QD32 batches,
// the size sweep, per-op costs and the zero-copy goals.
func (r *Report) writeZCTables(w io.Writer) {
	if len(r.ZCPaths) == 0 || len(r.ZCRows) == 0 {
		return
	}
	f := r.zc()
	p := r.Params
	pin := "the client's thread doing the I/O"
	if p.ZCPin == PinProcess {
		pin = "the whole client process (Go runtime threads included)"
	}
	fmt.Fprintf(w, "\nzero-copy paths: medians of %d repetition(s) × %gs (+%gs warm-up) per client run (zcfuse's own Go client, a child process like fio); "+
		"ring-poll spin %g µs; \"pinned\": %s on CPU %d; ratios to native pread/pwrite\n",
		p.Reps, p.ZCRuntimeS, p.ZCRampS, p.SpinUs, pin, p.CPU)
	for _, g := range []struct{ op, title string }{
		{"READ", "4 KiB random read, QD1 (one call at a time)"},
		{"WRITE", "4 KiB random write, QD1"},
	} {
		f.latencyTable(w, g.title, f.rowsWhere(func(l line) bool { return l.group == GroupQD1 && l.op == g.op }))
	}
	f.sideBySide(w, "4 KiB random, QD32: batches of 32 (ring: 32 ops submitted at once, then waited for together; the sync paths: 32 calls in a row), client pinned; latency is per batch",
		f.rowsWhere(func(l line) bool { return l.group == GroupQD32 }),
		[]metric{
			{func(l line) string { return opWord(l.op) + " IOPS" }, func(c cell) string { return fmtIOPS(c.IOPS) }},
			f.ratioMetric(func(l line) string { return opWord(l.op) }),
			{func(l line) string { return opWord(l.op) + " batch µs" }, func(c cell) string { return fmtUs(c.MeanUs) }},
		}, nil)
	for _, g := range []struct{ op, title string }{
		{"READ", "sequential read by block size, QD1, client pinned: GB/s (1e9 bytes/s)"},
		{"WRITE", "sequential overwrite by block size, QD1, client pinned: GB/s"},
	} {
		f.sweepTable(w, g.title, f.rowsWhere(func(l line) bool { return l.group == GroupSweep && l.op == g.op }))
	}
	r.writeCostTable(w, f)
	if len(r.ZCTargets) > 0 {
		fmt.Fprintf(w, "\nzero-copy goals (medians)\n\n")
		tb := table{head: []string{"goal", "measured", "verdict"}, right: []bool{false, false, false}}
		for _, t := range r.ZCTargets {
			m := t.Measured
			if m == "" {
				m = "not measured"
			}
			tb.add(t.Target, m, t.Met)
		}
		tb.write(w)
	}
}

// extra is a column a latency table adds before its check.
type extra struct {
	head  string
	value func(cell) string
}

// latencyTable writes one line per column and row: IOPS, the ratio to
// the reference column, the latencies, the extras and the check.
func (f family) latencyTable(w io.Writer, title string, rows []line, extras ...extra) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n\n", title)
	tb := table{head: []string{f.colHead, f.pinHead, "IOPS", "iops / " + f.ref, "mean µs", "p50 µs", "p99 µs"},
		right: []bool{false, false, true, true, true, true, true}}
	for _, e := range extras {
		tb.head = append(tb.head, e.head)
		tb.right = append(tb.right, true)
	}
	tb.head = append(tb.head, "check")
	tb.right = append(tb.right, false)
	for _, c := range f.cols {
		for _, row := range rows {
			s := f.find(c.name, row.id)
			cells := []string{c.name, row.pinWord()}
			if s.Valid == 0 {
				for range len(tb.head) - 3 {
					cells = append(cells, "–")
				}
			} else {
				cells = append(cells, fmtIOPS(s.IOPS), fmtRatio(s.ratio), fmtUs(s.MeanUs), fmtUs(s.P50Us), fmtUs(s.P99Us))
				for _, e := range extras {
					cells = append(cells, e.value(s))
				}
			}
			tb.add(append(cells, checkCell(c, s.Medians))...)
		}
	}
	tb.write(w)
}

// metric is a figure sideBySide shows for each row.
type metric struct {
	head  func(line) string
	value func(cell) string
}

// ratioMetric is the ratio to the reference column, headed "WHAT / ref".
func (f family) ratioMetric(what func(line) string) metric {
	return metric{func(l line) string { return what(l) + " / " + f.ref }, func(c cell) string { return fmtRatio(c.ratio) }}
}

// sideBySide writes one line per column with rows side by side: each
// row's metrics, then one check over all of them (checkAs, if set, may
// change the column's check word).
func (f family) sideBySide(w io.Writer, title string, rows []line, metrics []metric, checkAs func(column) column) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n\n", title)
	tb := table{head: []string{f.colHead}, right: []bool{false}}
	for _, row := range rows {
		for _, m := range metrics {
			tb.head = append(tb.head, m.head(row))
			tb.right = append(tb.right, true)
		}
	}
	tb.head = append(tb.head, "check")
	tb.right = append(tb.right, false)
	for _, c := range f.cols {
		cells := []string{c.name}
		var all Medians
		for _, row := range rows {
			s := f.find(c.name, row.id)
			all.Runs += s.Runs
			all.Valid += s.Valid
			for _, m := range metrics {
				if s.Valid == 0 {
					cells = append(cells, "–")
				} else {
					cells = append(cells, m.value(s))
				}
			}
		}
		if checkAs != nil {
			c = checkAs(c)
		}
		tb.add(append(cells, checkCell(c, all))...)
	}
	tb.write(w)
}

// sweepTable writes one line per row (block size): each column's GB/s,
// then each other column's ratio to the reference column.
func (f family) sweepTable(w io.Writer, title string, rows []line) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n\n", title)
	tb := table{head: []string{"size"}, right: []bool{false}}
	for _, c := range f.cols {
		tb.head = append(tb.head, c.name)
		tb.right = append(tb.right, true)
	}
	var ratioCols []string
	if f.hasCol(f.ref) {
		for _, c := range f.cols {
			if c.name != f.ref {
				ratioCols = append(ratioCols, c.name)
				tb.head = append(tb.head, c.name+" / "+f.ref)
				tb.right = append(tb.right, true)
			}
		}
	}
	bad := false
	for _, row := range rows {
		cells := []string{sizeLabel(row.bs)}
		for _, c := range f.cols {
			s := f.find(c.name, row.id)
			if s.Valid == 0 {
				cells = append(cells, "–")
			} else {
				cells = append(cells, fmt.Sprintf("%.2f", s.GBps))
			}
			bad = bad || s.Valid < s.Runs
		}
		for _, n := range ratioCols {
			cells = append(cells, fmtRatio(f.find(n, row.id).ratio))
		}
		tb.add(cells...)
	}
	tb.write(w)
	if bad {
		fmt.Fprintf(w, "(some runs INVALID: see the warnings)\n")
	}
}

// writeCostTable writes where the time goes on the zero-copy QD1 rows:
// the client's and the server's CPU per op, context switches and
// allocations.
func (r *Report) writeCostTable(w io.Writer, f family) {
	rows := f.rowsWhere(func(l line) bool { return l.group == GroupQD1 })
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwhere the time goes, 4 KiB QD1: CPU per op of the client (getrusage) and of the server process (/proc, 10 ms ticks), client context switches and heap allocations per op\n\n")
	tb := table{head: []string{"path", "row", "mean µs", "client usr µs", "client sys µs", "server CPU µs", "client ctxsw", "allocs"},
		right: []bool{false, false, true, true, true, true, true, true}}
	for _, c := range f.cols {
		for _, row := range rows {
			s, _ := r.FindZC(c.name, row.id)
			if s.Valid == 0 {
				continue
			}
			srv := "–"
			if s.ServerCPUUs != nil {
				srv = fmtUs(*s.ServerCPUUs)
			}
			tb.add(c.name, opWord(row.op)+" "+row.pinWord(),
				fmtUs(s.MeanUs), fmtUs(s.ClientUsrUs), fmtUs(s.ClientSysUs), srv, fmt.Sprintf("%.2f", s.ClientVCSW), fmt.Sprintf("%.1f", s.AllocsPerOp))
		}
	}
	tb.write(w)
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// table is a markdown table with padded columns.
type table struct {
	head  []string
	right []bool // right-aligned columns
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.head))
	for _, row := range append([][]string{t.head}, t.rows...) {
		for i, c := range row {
			if n := utf8.RuneCountInString(c); n > width[i] {
				width[i] = n
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.head)
	var b strings.Builder
	b.WriteString("|")
	for i := range t.head {
		if t.right[i] {
			b.WriteString(strings.Repeat("-", width[i]+1) + ":|")
		} else {
			b.WriteString(strings.Repeat("-", width[i]+2) + "|")
		}
	}
	fmt.Fprintln(w, b.String())
	for _, row := range t.rows {
		line(row)
	}
}
