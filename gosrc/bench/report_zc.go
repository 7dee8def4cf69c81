package bench

import (
	"fmt"
	"io"
)

// zcCheckCell says how a path's runs of a row fared in the server check.
func (r *Report) zcCheckCell(p ZCPathInfo, s ZCSummary) string {
	switch {
	case s.Runs == 0:
		return "–"
	case s.Valid < s.Runs:
		return fmt.Sprintf("INVALID %d/%d", s.Runs-s.Valid, s.Runs)
	case p.Check == "":
		return "–"
	}
	return p.Check + " ✓"
}

// zcRowsOf are the report's zero-copy rows of group (and op, if given).
func (r *Report) zcRowsOf(group, op string) []ZCRow {
	var out []ZCRow
	for _, row := range r.ZCRows {
		if row.Group == group && (op == "" || row.Op == op) {
			out = append(out, row)
		}
	}
	return out
}

// writeZCTables writes the zero-copy medians: QD1 latency, QD32
// batches, the size sweep, per-op costs and the targets.
func (r *Report) writeZCTables(w io.Writer) {
	if len(r.ZCPaths) == 0 || len(r.ZCRows) == 0 {
		return
	}
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
		rows := r.zcRowsOf(GroupQD1, g.op)
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n\n", g.title)
		tb := table{head: []string{"path", "client", "IOPS", "iops / native", "mean µs", "p50 µs", "p99 µs", "check"},
			right: []bool{false, false, true, true, true, true, true, false}}
		for _, pi := range r.ZCPaths {
			for _, row := range rows {
				s, _ := r.FindZC(pi.Name, row.ID)
				if s.Valid == 0 {
					tb.add(pi.Name, row.PinWord(), "–", "–", "–", "–", "–", r.zcCheckCell(pi, s))
					continue
				}
				tb.add(pi.Name, row.PinWord(), fmtIOPS(s.IOPS), fmtRatio(s.VsNative), fmtUs(s.MeanUs), fmtUs(s.P50Us), fmtUs(s.P99Us), r.zcCheckCell(pi, s))
			}
		}
		tb.write(w)
	}
	if rows := r.zcRowsOf(GroupQD32, ""); len(rows) > 0 {
		fmt.Fprintf(w, "\n4 KiB random, QD32: batches of 32 (ring: Submit 32, Wait for 32; the sync paths: 32 calls in a row), client pinned; latency is per batch\n\n")
		tb := table{head: []string{"path"}, right: []bool{false}}
		for _, row := range rows {
			n := map[string]string{"READ": "read", "WRITE": "write"}[row.Op]
			tb.head = append(tb.head, n+" IOPS", n+" / native", n+" batch µs")
			tb.right = append(tb.right, true, true, true)
		}
		tb.head = append(tb.head, "check")
		tb.right = append(tb.right, false)
		for _, pi := range r.ZCPaths {
			cells := []string{pi.Name}
			var all ZCSummary
			for _, row := range rows {
				s, _ := r.FindZC(pi.Name, row.ID)
				all.Runs += s.Runs
				all.Valid += s.Valid
				if s.Valid == 0 {
					cells = append(cells, "–", "–", "–")
					continue
				}
				cells = append(cells, fmtIOPS(s.IOPS), fmtRatio(s.VsNative), fmtUs(s.MeanUs))
			}
			tb.add(append(cells, r.zcCheckCell(pi, all))...)
		}
		tb.write(w)
	}
	for _, g := range []struct{ op, title string }{
		{"READ", "sequential read by block size, QD1, client pinned: GB/s (1e9 bytes/s)"},
		{"WRITE", "sequential overwrite by block size, QD1, client pinned: GB/s"},
	} {
		rows := r.zcRowsOf(GroupSweep, g.op)
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n\n", g.title)
		tb := table{head: []string{"size"}, right: []bool{false}}
		for _, pi := range r.ZCPaths {
			tb.head = append(tb.head, pi.Name)
			tb.right = append(tb.right, true)
		}
		var ratioPaths []string
		for _, pi := range r.ZCPaths {
			if pi.Name != "native" {
				ratioPaths = append(ratioPaths, pi.Name)
			}
		}
		if _, ok := r.findPath("native"); ok {
			for _, n := range ratioPaths {
				tb.head = append(tb.head, n+" / native")
				tb.right = append(tb.right, true)
			}
		} else {
			ratioPaths = nil
		}
		bad := false
		for _, row := range rows {
			cells := []string{sizeLabel(row.BS)}
			for _, pi := range r.ZCPaths {
				s, _ := r.FindZC(pi.Name, row.ID)
				if s.Valid == 0 {
					cells = append(cells, "–")
				} else {
					cells = append(cells, fmt.Sprintf("%.2f", s.GBps))
				}
				bad = bad || s.Valid < s.Runs
			}
			for _, n := range ratioPaths {
				s, _ := r.FindZC(n, row.ID)
				cells = append(cells, fmtRatio(s.VsNative))
			}
			tb.add(cells...)
		}
		tb.write(w)
		if bad {
			fmt.Fprintf(w, "(some runs INVALID: see the warnings)\n")
		}
	}
	if rows := r.zcRowsOf(GroupQD1, ""); len(rows) > 0 {
		fmt.Fprintf(w, "\nwhere the time goes, 4 KiB QD1: CPU per op of the client (getrusage) and of the server process (/proc, 10 ms ticks), client context switches and heap allocations per op\n\n")
		tb := table{head: []string{"path", "row", "mean µs", "client usr µs", "client sys µs", "server CPU µs", "client ctxsw", "allocs"},
			right: []bool{false, false, true, true, true, true, true, true}}
		for _, pi := range r.ZCPaths {
			for _, row := range rows {
				s, _ := r.FindZC(pi.Name, row.ID)
				if s.Valid == 0 {
					continue
				}
				srv := "–"
				if s.ServerCPUUs != nil {
					srv = fmtUs(*s.ServerCPUUs)
				}
				tb.add(pi.Name, fmt.Sprintf("%s %s", map[string]string{"READ": "read", "WRITE": "write"}[row.Op], row.PinWord()),
					fmtUs(s.MeanUs), fmtUs(s.ClientUsrUs), fmtUs(s.ClientSysUs), srv, fmt.Sprintf("%.2f", s.ClientVCSW), fmt.Sprintf("%.1f", s.AllocsPerOp))
			}
		}
		tb.write(w)
	}
	if len(r.ZCTargets) > 0 {
		fmt.Fprintf(w, "\nissue 5 targets (medians)\n\n")
		tb := table{head: []string{"target", "measured", "verdict"}, right: []bool{false, false, false}}
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

func (r *Report) findPath(name string) (ZCPathInfo, bool) {
	for _, p := range r.ZCPaths {
		if p.Name == name {
			return p, true
		}
	}
	return ZCPathInfo{}, false
}
