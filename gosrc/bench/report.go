package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"
)

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

// Check is what the server counted during one run.
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

// Summary is the medians of one target and row over its valid runs.
type Summary struct {
	Target string  `json:"target"`
	Row    string  `json:"row"`
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

// opGetxattr is GETXATTR's name in Check.Ops (fusering.OpName(22)).
const opGetxattr = "GETXATTR"

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
	Targets []TargetInfo      `json:"targets"`
	Rows    []Row             `json:"rows"`
	Results []Result          `json:"results"`
	Summary []Summary         `json:"summary"`
	// The zero-copy rows: paths, rows, every run, the medians, and the
	// issue's targets against them.
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

// Find returns the summary of target and row.
func (r *Report) Find(target, row string) (Summary, bool) {
	for _, s := range r.Summary {
		if s.Target == target && s.Row == row {
			return s, true
		}
	}
	return Summary{}, false
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

// summarize fills r.Summary from r.Results.
func (r *Report) summarize() {
	r.Summary = nil
	for _, t := range r.Targets {
		for _, row := range r.Rows {
			s := Summary{Target: t.Name, Row: row.ID}
			var iops, gbps, mean, p50, p99 []float64
			// zcfuse's counters (ring and dev) count GETXATTR; go-fuse's
			// have READ and WRITE only, the directory has none
			xattrs := t.Channel == ChannelRing || t.Channel == ChannelDev || t.Channel == ChannelNone
			var nx, nop uint64
			for _, res := range r.Results {
				if res.Target != t.Name || res.Row != row.ID {
					continue
				}
				s.Runs++
				if !res.Valid {
					continue
				}
				s.Valid++
				if xattrs && res.Check != nil {
					for _, ch := range []string{ChannelRing, ChannelDev} {
						nx += res.Check.Ops[ch][opGetxattr]
						nop += res.Check.Ops[ch][row.Op]
					}
				}
				iops = append(iops, res.IOPS)
				gbps = append(gbps, res.GBps)
				mean = append(mean, res.MeanUs)
				p50 = append(p50, res.P50Us)
				p99 = append(p99, res.P99Us)
			}
			if nop > 0 {
				v := float64(nx) / float64(nop)
				s.GetxattrPerOp = &v
			}
			s.IOPS, s.GBps = median(iops), median(gbps)
			s.MeanUs, s.P50Us, s.P99Us = median(mean), median(p50), median(p99)
			main := gbps
			if row.Latency {
				main = iops
			}
			for i, v := range main {
				if i == 0 || v < s.Min {
					s.Min = v
				}
				if i == 0 || v > s.Max {
					s.Max = v
				}
			}
			r.Summary = append(r.Summary, s)
		}
	}
	for i := range r.Summary {
		s := &r.Summary[i]
		row, _ := r.row(s.Row)
		dir, ok := r.Find("dir", s.Row)
		if !ok || dir.Valid == 0 || s.Valid == 0 {
			continue
		}
		if row.Latency {
			s.VsDir = s.IOPS / dir.IOPS
		} else {
			s.VsDir = s.GBps / dir.GBps
		}
	}
	r.summarizeZC()
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

// checkCell says how a target's runs of a row fared in the channel check.
func (r *Report) checkCell(t TargetInfo, s Summary) string {
	switch {
	case s.Runs == 0:
		return "–"
	case s.Valid < s.Runs:
		return fmt.Sprintf("INVALID %d/%d", s.Runs-s.Valid, s.Runs)
	case t.Channel == "":
		return "–"
	case t.Channel == ChannelNone:
		return "none (kernel) ✓"
	}
	return t.Channel + " ✓"
}

// WriteTables writes the medians as markdown tables, one per metric
// group, then any problems.
func (r *Report) WriteTables(w io.Writer) {
	p := r.Params
	if len(r.Targets) > 0 && len(r.Rows) > 0 {
		fmt.Fprintf(w, "zcfuse bench: medians of %d repetition(s) × %gs (+%gs ramp) per fio run; fio psync, QD1, O_DIRECT, on a %d MiB file of random data in a %s directory; \"pinned\": fio's CPU affinity is CPU %d.\n",
			p.Reps, p.RuntimeS, p.RampS, p.SizeMiB, r.Machine.ShmFS, p.CPU)
	} else {
		fmt.Fprintf(w, "zcfuse bench: a %d MiB file of random data in a %s directory.\n", p.SizeMiB, r.Machine.ShmFS)
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
	groups := []struct{ name, title string }{
		{"randread-4k", "4 KiB random read, QD1, O_DIRECT"},
		{"randwrite-4k", "4 KiB random write, QD1, O_DIRECT"},
	}
	for _, g := range groups {
		var rows []Row
		for _, row := range r.Rows {
			if row.Name == g.name {
				rows = append(rows, row)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s)\n\n", g.title, g.name)
		tb := table{head: []string{"target", "fio", "IOPS", "iops / dir", "mean µs", "p50 µs", "p99 µs", "getxattr/op", "check"},
			right: []bool{false, false, true, true, true, true, true, true, false}}
		for _, t := range r.Targets {
			for _, row := range rows {
				s, _ := r.Find(t.Name, row.ID)
				if s.Valid == 0 {
					tb.add(t.Name, row.PinWord(), "–", "–", "–", "–", "–", "–", r.checkCell(t, s))
					continue
				}
				gx := "–"
				if s.GetxattrPerOp != nil {
					gx = fmt.Sprintf("%.2f", *s.GetxattrPerOp)
				}
				tb.add(t.Name, row.PinWord(), fmtIOPS(s.IOPS), fmtRatio(s.VsDir),
					fmtUs(s.MeanUs), fmtUs(s.P50Us), fmtUs(s.P99Us), gx, r.checkCell(t, s))
			}
		}
		tb.write(w)
	}
	var seq []Row
	for _, id := range []string{"seqread-1m", "seqwrite-1m"} {
		if row, ok := r.row(id); ok {
			seq = append(seq, row)
		}
	}
	if len(seq) > 0 {
		fmt.Fprintf(w, "\n1 MiB sequential read and overwrite, QD1, O_DIRECT, fio pinned (GB/s = 1e9 bytes/s)\n\n")
		name := map[string]string{"seqread-1m": "read", "seqwrite-1m": "overwrite"}
		r.sideBySide(w, seq, func(row Row) string { return name[row.ID] + " GB/s" }, func(row Row) string { return name[row.ID] + " / dir" },
			func(s Summary) string { return fmt.Sprintf("%.2f", s.GBps) }, func(t TargetInfo) TargetInfo { return t })
	}
	r.writeMetaTable(w)
	r.writeZCTables(w)
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "WARNING: %s\n", p)
		}
	}
}

// writeMetaTable writes the meta rows (create, unlink) side by side:
// files per second and the ratio to the directory itself.
func (r *Report) writeMetaTable(w io.Writer) {
	var meta []Row
	for _, row := range r.Rows {
		if row.Meta {
			meta = append(meta, row)
		}
	}
	if len(meta) == 0 {
		return
	}
	files := ""
	if r.Params.MetaFiles > 0 {
		files = fmt.Sprintf(", up to %d files per run", r.Params.MetaFiles)
	}
	fmt.Fprintf(w, "\nFile create and unlink, QD1, fio filecreate/filedelete, fio pinned, a fresh directory per run%s (files/s)\n\n", files)
	r.sideBySide(w, meta, func(row Row) string { return row.ID + " files/s" }, func(row Row) string { return row.ID + " / dir" },
		func(s Summary) string { return fmtIOPS(s.IOPS) },
		func(t TargetInfo) TargetInfo {
			if t.Channel == ChannelNone {
				t.Channel = ChannelRing // CREATE and UNLINK go over the ring with passthrough too
			}
			return t
		})
}

// sideBySide writes a table of rows side by side: for each target, each
// row's value (cell) and ratio to the directory, then one check over all
// of them (checkAs may change the target's channel for the check).
func (r *Report) sideBySide(w io.Writer, rows []Row, valueHead, ratioHead func(Row) string, cell func(Summary) string, checkAs func(TargetInfo) TargetInfo) {
	tb := table{head: []string{"target"}, right: []bool{false}}
	for _, row := range rows {
		tb.head = append(tb.head, valueHead(row), ratioHead(row))
		tb.right = append(tb.right, true, true)
	}
	tb.head = append(tb.head, "check")
	tb.right = append(tb.right, false)
	for _, t := range r.Targets {
		cells := []string{t.Name}
		var all Summary
		for _, row := range rows {
			s, _ := r.Find(t.Name, row.ID)
			all.Runs += s.Runs
			all.Valid += s.Valid
			if s.Valid == 0 {
				cells = append(cells, "–", "–")
				continue
			}
			cells = append(cells, cell(s), fmtRatio(s.VsDir))
		}
		tb.add(append(cells, r.checkCell(checkAs(t), all))...)
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
