package bench

import (
	"fmt"
	"strings"
	"time"
)

// The zero-copy rows: a client program of the harness's own (ZCClient,
// a child process like fio) moves data between a buffer and
// the test file along one of several paths, side by side in the same run
// as the fio rows:
//
//	native        pread/pwrite on the backing file from a Go buffer: the floor
//	native-arena  the same from an arena mapping (a sealed memfd): what
//	              fixed buffers must beat or match
//	posix-uring   pread/pwrite (O_DIRECT) from the arena through a zcfuse
//	              uring mount: the posix path, measured by the same client
//	ring-sleep    zcfuse's ring path (client.Session ops with RequireZC)
//	              through a uring mount, client.ModeSleep
//	ring-poll     the same in client.ModePoll (client and server spin)
//
// Each ring run is checked against the server's counters (proof of path):
// zero_copy_bytes grew by exactly the bytes the client moved, copied_bytes
// and zc_errors did not move, zc_ops grew by the client's ops, and no FUSE
// READ or WRITE reached the server.

type zcKind int

const (
	zcNative zcKind = iota
	zcNativeArena
	zcPosix
	zcRing
)

// ZC path checks.
const (
	// CheckProof: the ring path's proof of path.
	CheckProof = "proof"
	// CheckFuseRing: READ/WRITE arrived over the FUSE ring, nothing
	// moved zero-copy.
	CheckFuseRing = "fuse-ring"
)

// ZCPath is one way the zero-copy rows reach the test file.
type ZCPath struct {
	Name  string // as in --targets
	Label string
	kind  zcKind
	// Mode is the ring path's wait mode: "sleep" or "poll".
	Mode string
	// Check is what the server's counters must show: CheckProof,
	// CheckFuseRing, or "" (no server).
	Check string
}

// ZCPaths are all zero-copy paths, in table order.
var ZCPaths = []ZCPath{
	{Name: "native", Label: "pread/pwrite on the backing file, Go buffer", kind: zcNative},
	{Name: "native-arena", Label: "pread/pwrite on the backing file, arena buffer", kind: zcNativeArena},
	{Name: "posix-uring", Label: "pread/pwrite (O_DIRECT) through zcfuse uring, arena buffer", kind: zcPosix, Check: CheckFuseRing},
	{Name: "ring-sleep", Label: "zcfuse ring ops, sleep mode", kind: zcRing, Mode: "sleep", Check: CheckProof},
	{Name: "ring-poll", Label: "zcfuse ring ops, poll mode", kind: zcRing, Mode: "poll", Check: CheckProof},
}

func (p ZCPath) needsMount() bool { return p.kind == zcPosix || p.kind == zcRing }

// ZCRow is one zero-copy workload.
type ZCRow struct {
	ID     string `json:"id"`   // as in --rows
	Name   string `json:"name"` // without the pinning
	Group  string `json:"group"`
	Op     string `json:"op"` // READ or WRITE
	Random bool   `json:"random"`
	BS     int64  `json:"bs"`
	// QD is the batch: 1, or QD ops submitted together and waited for
	// together (Submit, Wait); the sync paths issue QD calls in a row.
	QD     int  `json:"qd"`
	Pinned bool `json:"pinned"`
	// Latency rows report IOPS and latencies, the others GB/s.
	Latency bool `json:"latency"`
}

// ZC row groups.
const (
	GroupQD1   = "qd1"
	GroupQD32  = "qd32"
	GroupSweep = "sweep"
)

// PinWord is "pinned" or "unpinned".
func (r ZCRow) PinWord() string {
	if r.Pinned {
		return "pinned"
	}
	return "unpinned"
}

// SweepSizes are the block sizes of the sequential sweep; 1 MiB is the
// "1 MiB sequential read and overwrite" row.
var SweepSizes = []int64{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}

// ZCRows are all zero-copy rows, in table order.
var ZCRows = func() []ZCRow {
	var rows []ZCRow
	for _, op := range []string{"READ", "WRITE"} {
		n := map[string]string{"READ": "zc-randread-4k-qd1", "WRITE": "zc-randwrite-4k-qd1"}[op]
		rows = append(rows,
			ZCRow{ID: n + "-pinned", Name: n, Group: GroupQD1, Op: op, Random: true, BS: 4096, QD: 1, Pinned: true, Latency: true},
			ZCRow{ID: n + "-unpinned", Name: n, Group: GroupQD1, Op: op, Random: true, BS: 4096, QD: 1, Latency: true})
	}
	for _, op := range []string{"READ", "WRITE"} {
		n := map[string]string{"READ": "zc-randread-4k-qd32", "WRITE": "zc-randwrite-4k-qd32"}[op]
		rows = append(rows, ZCRow{ID: n, Name: n, Group: GroupQD32, Op: op, Random: true, BS: 4096, QD: 32, Pinned: true, Latency: true})
	}
	for _, op := range []string{"READ", "WRITE"} {
		for _, bs := range SweepSizes {
			n := fmt.Sprintf("zc-seq%s-%s", map[string]string{"READ": "read", "WRITE": "write"}[op], sizeName(bs))
			rows = append(rows, ZCRow{ID: n, Name: n, Group: GroupSweep, Op: op, BS: bs, QD: 1, Pinned: true})
		}
	}
	return rows
}()

// smokeZCRows are the zero-copy rows --smoke runs unless --rows names
// others: one latency row, one batch row, one large row.
var smokeZCRows = []string{"zc-randread-4k-qd1-pinned", "zc-randwrite-4k-qd32", "zc-seqwrite-1m"}

// sizeName writes 4096 as 4k, 1<<20 as 1m.
func sizeName(bs int64) string {
	switch {
	case bs >= 1<<20 && bs%(1<<20) == 0:
		return fmt.Sprintf("%dm", bs>>20)
	case bs >= 1<<10 && bs%(1<<10) == 0:
		return fmt.Sprintf("%dk", bs>>10)
	}
	return fmt.Sprint(bs)
}

// sizeLabel writes 4096 as "4 KiB".
func sizeLabel(bs int64) string {
	switch {
	case bs >= 1<<20 && bs%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", bs>>20)
	case bs >= 1<<10 && bs%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", bs>>10)
	}
	return fmt.Sprintf("%d B", bs)
}

// selection is what --targets and --rows chose: fio targets and rows,
// zero-copy paths and rows. Names are unique across both families.
type selection struct {
	targets []Target
	rows    []Row
	paths   []ZCPath
	zcRows  []ZCRow
}

// selectAll resolves --targets and --rows over both families. "all" (or
// nothing) selects both families; names select within their family, and
// a list that names only one family leaves the other out, so that
// `--targets zcfuse-uring --rows randread-4k` runs what it did before
// the zero-copy rows existed. Under smoke, "all" zero-copy rows are
// smokeZCRows. baseline is Config.Baseline (see SelectTargets).
func selectAll(targetNames, rowNames []string, smoke bool, baseline string) (selection, error) {
	var sel selection
	fioT, zcT, allT := splitFamilies(targetNames, isZCPath)
	fioR, zcR, allR := splitFamilies(rowNames, isZCRow)
	if allR && smoke {
		zcR = smokeZCRows
	}
	var err error
	if allT || len(fioT) > 0 {
		if allR || len(fioR) > 0 {
			if sel.targets, err = SelectTargets(fioT, baseline); err != nil {
				return sel, err
			}
			if sel.rows, err = SelectRows(fioR); err != nil {
				return sel, err
			}
		}
	}
	if allT || len(zcT) > 0 {
		if allR || len(zcR) > 0 {
			if sel.paths, err = selectZCPaths(zcT); err != nil {
				return sel, err
			}
			if sel.zcRows, err = selectZCRows(zcR); err != nil {
				return sel, err
			}
		}
	}
	if len(sel.targets)*len(sel.rows)+len(sel.paths)*len(sel.zcRows) == 0 {
		return sel, fmt.Errorf("%w: --targets and --rows select nothing to run (fio targets go with fio rows, zero-copy paths with zc- rows)", ErrUsage)
	}
	return sel, nil
}

// splitFamilies sorts names into the fio family and the zero-copy one
// (isZC); all is true for an empty list or one holding "all". Unknown
// names go to the fio family, whose selection reports them.
func splitFamilies(names []string, isZC func(string) bool) (fio, zc []string, all bool) {
	for _, n := range names {
		switch n = strings.TrimSpace(n); {
		case n == "":
		case n == "all":
			all = true
		case isZC(n):
			zc = append(zc, n)
		default:
			fio = append(fio, n)
		}
	}
	if all || len(fio)+len(zc) == 0 {
		return nil, nil, true
	}
	return fio, zc, false
}

func isZCPath(n string) bool {
	for _, p := range ZCPaths {
		if p.Name == n {
			return true
		}
	}
	return false
}

func isZCRow(n string) bool {
	for _, r := range ZCRows {
		if r.ID == n || r.Name == n || n == "zc-"+r.Group {
			return true
		}
	}
	return false
}

func selectZCPaths(names []string) ([]ZCPath, error) {
	want, err := wanted(names, isZCPath, "target", zcPathNames())
	if err != nil {
		return nil, err
	}
	var out []ZCPath
	for _, p := range ZCPaths {
		if want == nil || want[p.Name] {
			out = append(out, p)
		}
	}
	return out, nil
}

// selectZCRows selects by ID, by name (both pinnings) or by group
// (zc-qd1, zc-qd32, zc-sweep).
func selectZCRows(names []string) ([]ZCRow, error) {
	want, err := wanted(names, isZCRow, "row", zcRowNames())
	if err != nil {
		return nil, err
	}
	var out []ZCRow
	for _, r := range ZCRows {
		if want == nil || want[r.ID] || want[r.Name] || want["zc-"+r.Group] {
			out = append(out, r)
		}
	}
	return out, nil
}

func zcPathNames() string {
	var s []string
	for _, p := range ZCPaths {
		s = append(s, p.Name)
	}
	return strings.Join(s, ", ")
}

func zcRowNames() string {
	return "zc-qd1, zc-qd32, zc-sweep, or an id such as zc-randread-4k-qd1-pinned, zc-randwrite-4k-qd32, zc-seqread-1m (sizes " +
		func() string {
			var s []string
			for _, bs := range SweepSizes {
				s = append(s, sizeName(bs))
			}
			return strings.Join(s, " ")
		}() + ")"
}

// ZCResult is one run of a zero-copy row on one path.
type ZCResult struct {
	Path string `json:"path"`
	Row  string `json:"row"`
	Rep  int    `json:"rep"`
	ZCMeasurement
	// ServerCPUUsPerOp is the server process's CPU time (all threads)
	// per op during the measured window; nil without a server.
	ServerCPUUsPerOp *float64 `json:"server_cpu_us_per_op,omitempty"`
	Check            *ZCCheck `json:"check,omitempty"`
	Valid            bool     `json:"valid"`
	Problem          string   `json:"problem,omitempty"`
}

// ZCMeasurement is what the client child reports about one run.
type ZCMeasurement struct {
	IOPS float64 `json:"iops"`     // ops (not batches) per second
	GBps float64 `json:"gb_per_s"` // 1e9 bytes per second
	Ops  uint64  `json:"ops"`      // in the measured window
	// MeanUs..P999Us: latency of one call (QD1) or of one batch (Submit
	// QD ops + Wait for them; the sync paths: QD calls in a row).
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P99Us  float64 `json:"p99_us"`
	P999Us float64 `json:"p999_us"`
	MaxUs  float64 `json:"max_us"`
	WallMs float64 `json:"wall_ms"` // the measured window
	// TotalOps and TotalBytes include the ramp: what the server counters
	// must show for the whole child.
	TotalOps   uint64 `json:"total_ops"`
	TotalBytes uint64 `json:"total_bytes"`
	// The client's own CPU time and context switches per op in the
	// measured window (getrusage), and heap allocations per op.
	ClientUsrUs  float64 `json:"client_usr_us_per_op"`
	ClientSysUs  float64 `json:"client_sys_us_per_op"`
	ClientVCSW   float64 `json:"client_vol_ctxsw_per_op"`
	ClientIVCSW  float64 `json:"client_invol_ctxsw_per_op"`
	AllocsPerOp  float64 `json:"client_allocs_per_op"`
	ClientGCs    uint32  `json:"client_gcs"`
	ClientCPUs   string  `json:"client_cpus_allowed"`
	Registered   *bool   `json:"arena_registered,omitempty"` // ring: the server registered the arena as a fixed buffer
	ServerCPUsMs float64 `json:"server_cpu_ms,omitempty"`    // the server's CPU time in the measured window
}

// ZCCheck is what the server counted during one run.
type ZCCheck struct {
	Want          string `json:"want"` // CheckProof or CheckFuseRing
	Transport     string `json:"transport"`
	ZeroCopyBytes uint64 `json:"zero_copy_bytes"` // growth during the run
	CopiedBytes   uint64 `json:"copied_bytes"`
	ZCOps         uint64 `json:"zc_ops"`
	ZCErrors      uint64 `json:"zc_errors"`
	// FUSE READ and WRITE requests, by channel.
	RingRead  uint64 `json:"ring_read"`
	RingWrite uint64 `json:"ring_write"`
	DevRead   uint64 `json:"dev_read"`
	DevWrite  uint64 `json:"dev_write"`
	// Ops are all requests the server counted, by channel.
	Ops Counts `json:"ops,omitempty"`
}

// zcCheck says what is wrong with the counters of a run of row on p that
// reported m, or "" when the bytes went where they should.
func zcCheck(p ZCPath, row ZCRow, c *ZCCheck, m ZCMeasurement) string {
	if c.Transport != "uring" {
		return fmt.Sprintf("server transport is %q, want uring", c.Transport)
	}
	switch p.Check {
	case CheckProof:
		var bad []string
		if c.ZeroCopyBytes != m.TotalBytes {
			bad = append(bad, fmt.Sprintf("zero_copy_bytes grew by %d, the client moved %d", c.ZeroCopyBytes, m.TotalBytes))
		}
		if c.CopiedBytes != 0 {
			bad = append(bad, fmt.Sprintf("copied_bytes grew by %d", c.CopiedBytes))
		}
		if c.ZCOps != m.TotalOps {
			bad = append(bad, fmt.Sprintf("zc_ops grew by %d, the client issued %d", c.ZCOps, m.TotalOps))
		}
		if c.ZCErrors != 0 {
			bad = append(bad, fmt.Sprintf("zc_errors grew by %d", c.ZCErrors))
		}
		if n := c.RingRead + c.RingWrite + c.DevRead + c.DevWrite; n != 0 {
			bad = append(bad, fmt.Sprintf("FUSE READ/WRITE moved (ring %d/%d, dev %d/%d)", c.RingRead, c.RingWrite, c.DevRead, c.DevWrite))
		}
		if len(bad) > 0 {
			return "proof of path failed: " + strings.Join(bad, "; ")
		}
	case CheckFuseRing:
		got, dev := c.RingRead, c.DevRead
		if row.Op == "WRITE" {
			got, dev = c.RingWrite, c.DevWrite
		}
		if got < m.TotalOps || dev != 0 {
			return fmt.Sprintf("%s counted on ring=%d dev=%d for %d calls: want all on ring", row.Op, got, dev, m.TotalOps)
		}
		if c.ZeroCopyBytes != 0 || c.ZCOps != 0 {
			return fmt.Sprintf("the posix path moved %d bytes zero-copy in %d ops, want none", c.ZeroCopyBytes, c.ZCOps)
		}
	}
	return ""
}

// TargetResult is one zero-copy goal and how the run fared against it.
type TargetResult struct {
	Target   string  `json:"target"`   // the goal
	Measured string  `json:"measured"` // what the medians say
	Value    float64 `json:"value"`    // the compared figure
	Limit    float64 `json:"limit"`    // what it was compared with
	// Met is "met", "missed" or "n/a" (a row or path not measured).
	Met string `json:"met"`
}

// evalGoals compares the medians with the zero-copy path's goals (set
// when it was designed): ring 1 MiB read and overwrite ≥ 0.85× native;
// ring sleep 4 KiB QD1 mean ≤ 7 µs pinned; ring poll ≤ 3 µs; unpinned no
// worse than posix over uring unpinned (the same client through the
// mount).
func (r *Report) evalGoals() []TargetResult {
	var out []TargetResult
	get := func(path, row string) (ZCSummary, bool) {
		s, ok := r.FindZC(path, row)
		return s, ok && s.Valid > 0
	}
	for _, mode := range []string{"sleep", "poll"} {
		path := "ring-" + mode
		for _, rw := range []struct{ row, what string }{{"zc-seqread-1m", "read"}, {"zc-seqwrite-1m", "overwrite"}} {
			t := TargetResult{Target: fmt.Sprintf("%s 1 MiB sequential %s ≥ 0.85× native", path, rw.what), Limit: 0.85, Met: "n/a"}
			s, ok1 := get(path, rw.row)
			n, ok2 := get("native", rw.row)
			if ok1 && ok2 {
				t.Value = s.GBps / n.GBps
				t.Measured = fmt.Sprintf("%.2f GB/s vs %.2f: %.2f×", s.GBps, n.GBps, t.Value)
				t.Met = metWord(t.Value >= t.Limit)
			}
			out = append(out, t)
		}
	}
	for _, c := range []struct {
		path  string
		limit float64
	}{{"ring-sleep", 7}, {"ring-poll", 3}} {
		for _, rw := range []struct{ row, what string }{{"zc-randread-4k-qd1-pinned", "read"}, {"zc-randwrite-4k-qd1-pinned", "write"}} {
			t := TargetResult{Target: fmt.Sprintf("%s 4 KiB QD1 %s, pinned: mean ≤ %g µs", c.path, rw.what, c.limit), Limit: c.limit, Met: "n/a"}
			if s, ok := get(c.path, rw.row); ok {
				t.Value = s.MeanUs
				t.Measured = fmt.Sprintf("mean %s µs (p50 %s, p99 %s)", fmtUs(s.MeanUs), fmtUs(s.P50Us), fmtUs(s.P99Us))
				t.Met = metWord(s.MeanUs <= c.limit)
			}
			out = append(out, t)
		}
	}
	for _, path := range []string{"ring-sleep", "ring-poll"} {
		for _, rw := range []struct{ row, what string }{{"zc-randread-4k-qd1-unpinned", "read"}, {"zc-randwrite-4k-qd1-unpinned", "write"}} {
			t := TargetResult{Target: fmt.Sprintf("%s 4 KiB QD1 %s, unpinned: mean ≤ posix-uring unpinned", path, rw.what), Met: "n/a"}
			s, ok1 := get(path, rw.row)
			p, ok2 := get("posix-uring", rw.row)
			if ok1 && ok2 {
				t.Value, t.Limit = s.MeanUs, p.MeanUs
				t.Measured = fmt.Sprintf("mean %s µs vs %s µs", fmtUs(s.MeanUs), fmtUs(p.MeanUs))
				t.Met = metWord(s.MeanUs <= p.MeanUs)
			}
			out = append(out, t)
		}
	}
	return out
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// zcSpec is what the harness tells a zero-copy client child (as JSON in
// its only argument).
type zcSpec struct {
	Path      string        `json:"path"`
	Row       ZCRow         `json:"row"`
	File      string        `json:"file"`  // the test file: backing or through the mount
	Mount     string        `json:"mount"` // the mountpoint (ring paths)
	FileSize  int64         `json:"file_size"`
	Runtime   time.Duration `json:"runtime"`
	Ramp      time.Duration `json:"ramp"`
	Spin      time.Duration `json:"spin"` // poll mode
	ServerPID int           `json:"server_pid"`
	Seed      uint64        `json:"seed"`
	// PinThread, when set, pins the measuring thread (and only it) to
	// that CPU: Config.ZCPin "thread". With "process" the harness pins
	// the whole child instead, as it pins fio.
	PinThread *int `json:"pin_thread,omitempty"`
}
