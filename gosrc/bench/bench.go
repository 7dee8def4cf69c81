package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Channel names in counts: zcfuse's own (ring, dev) and "server" for the
// go-fuse child, which has only one.
const (
	ChannelRing   = "ring"
	ChannelDev    = "dev"
	ChannelServer = "server"
	// ChannelNone is the expected channel with kernel passthrough: READ
	// and WRITE must not reach the server at all.
	ChannelNone = "none"
)

type targetKind int

const (
	kindDir targetKind = iota
	kindZcfuse
	kindGofuse
)

// Target is one way to reach the test file.
type Target struct {
	Name  string // as in --targets
	Label string // for people
	kind  targetKind
	// mountArgs are the `zcfuse mount` flags of a zcfuse target.
	mountArgs []string
	// Channel is where READ and WRITE must arrive: ChannelRing,
	// ChannelDev, ChannelServer or ChannelNone; "" for the directory.
	Channel string
	// Transport is the transport a zcfuse target must report.
	Transport string
	// Baseline marks a base-* target: its server runs Config.Baseline
	// (another zcfuse build) instead of Config.Zcfuse; it exists only when
	// Config.Baseline is set.
	Baseline bool
	// Mirrors is the zcfuse target whose mount a base-* target repeats.
	Mirrors string
}

// Targets are the targets of the running build, in table order.
var Targets = []Target{
	{Name: "dir", Label: "directory itself (tmpfs)", kind: kindDir},
	{Name: "zcfuse-classic", Label: "zcfuse classic (/dev/fuse)", kind: kindZcfuse,
		mountArgs: []string{"--transport", "classic"}, Channel: ChannelDev, Transport: "classic"},
	{Name: "zcfuse-uring", Label: "zcfuse uring", kind: kindZcfuse,
		mountArgs: []string{"--transport", "uring"}, Channel: ChannelRing, Transport: "uring"},
	{Name: "gofuse", Label: "go-fuse loopback (passthrough off)", kind: kindGofuse, Channel: ChannelServer},
	{Name: "zcfuse-passthrough", Label: "zcfuse uring --passthrough", kind: kindZcfuse,
		mountArgs: []string{"--transport", "uring", "--passthrough"}, Channel: ChannelNone, Transport: "uring"},
}

// BaselineTargets are the targets of --baseline: another zcfuse binary
// mounted exactly as the target each mirrors, for a side-by-side
// comparison of two builds in one run. In table order each comes right
// after the target it mirrors.
var BaselineTargets = []Target{
	mirror("base-classic", "baseline classic", "zcfuse-classic"),
	mirror("base-uring", "baseline uring", "zcfuse-uring"),
}

// mirror is a base-* target with the mount of target of.
func mirror(name, label, of string) Target {
	for _, t := range Targets {
		if t.Name == of {
			t.Name, t.Label, t.Baseline, t.Mirrors = name, label, true, of
			t.mountArgs = append([]string(nil), t.mountArgs...)
			return t
		}
	}
	panic("bench: no target " + of)
}

// tableTargets are the targets in table order: Targets, with the
// BaselineTargets each after the target it mirrors when baseline (the
// path of the baseline binary, which their labels name) is set.
func tableTargets(baseline string) []Target {
	if baseline == "" {
		return Targets
	}
	var out []Target
	for _, t := range Targets {
		out = append(out, t)
		for _, b := range BaselineTargets {
			if b.Mirrors == t.Name {
				b.Label = fmt.Sprintf("%s (%s)", b.Label, baseline)
				out = append(out, b)
			}
		}
	}
	return out
}

// isBaselineTarget says whether name is a base-* target.
func isBaselineTarget(name string) bool {
	for _, t := range BaselineTargets {
		if t.Name == name {
			return true
		}
	}
	return false
}

// Row is one fio workload.
type Row struct {
	ID     string `json:"id"`     // as in --rows
	Name   string `json:"name"`   // the workload without the pinning: randread-4k
	Pinned bool   `json:"pinned"` // fio runs with its CPU affinity set to Config.CPU
	RW     string `json:"rw"`     // fio --rw
	BS     string `json:"bs"`     // fio --bs
	Op     string `json:"op"`     // the FUSE opcode it produces: READ or WRITE
	// Latency rows report IOPS and latencies; the others GB/s.
	Latency bool `json:"latency"`
	// Meta rows measure metadata operations instead of I/O on the test
	// file: fio's Engine (filecreate or filedelete) makes each "I/O" one
	// file created or removed, in a fresh directory per run (see
	// metaFioArgs); their IOPS are files per second.
	Meta   bool   `json:"meta,omitempty"`
	Engine string `json:"engine,omitempty"`
}

// PinWord is "pinned" or "unpinned".
func (r Row) PinWord() string {
	if r.Pinned {
		return "pinned"
	}
	return "unpinned"
}

// Rows are all rows, in table order.
var Rows = []Row{
	{ID: "randread-4k-pinned", Name: "randread-4k", Pinned: true, RW: "randread", BS: "4k", Op: "READ", Latency: true},
	{ID: "randread-4k-unpinned", Name: "randread-4k", RW: "randread", BS: "4k", Op: "READ", Latency: true},
	{ID: "randwrite-4k-pinned", Name: "randwrite-4k", Pinned: true, RW: "randwrite", BS: "4k", Op: "WRITE", Latency: true},
	{ID: "randwrite-4k-unpinned", Name: "randwrite-4k", RW: "randwrite", BS: "4k", Op: "WRITE", Latency: true},
	{ID: "seqread-1m", Name: "seqread-1m", Pinned: true, RW: "read", BS: "1m", Op: "READ"},
	{ID: "seqwrite-1m", Name: "seqwrite-1m", Pinned: true, RW: "write", BS: "1m", Op: "WRITE"},
	{ID: "create", Name: "create", Pinned: true, Op: "CREATE", Latency: true, Meta: true, Engine: "filecreate"},
	{ID: "unlink", Name: "unlink", Pinned: true, Op: "UNLINK", Latency: true, Meta: true, Engine: "filedelete"},
}

// Config is one benchmark run. Zero fields take the defaults noted.
type Config struct {
	Reps    int           // repetitions; default 3
	Runtime time.Duration // per fio run, after the ramp; default 5 s
	Ramp    time.Duration // fio --ramp_time; negative: none; default 1 s
	SizeMiB int           // test file size; default 256
	// MetaFiles is the number of files one run of a meta row (create,
	// unlink) creates or removes, unless Runtime ends it first; default
	// 1000. fio's own cost per file grows with the files in a run (on
	// tmpfs about 55k creates/s at 500 files, 4k/s at 15,000), which
	// would squeeze every ratio to the directory towards 1.
	MetaFiles int
	CPU       int      // the CPU pinned rows run fio on
	Targets   []string // names or all; see SelectTargets
	Rows      []string // IDs, names or all; see SelectRows
	// Smoke marks a CI run: invalid results make Run fail.
	Smoke bool
	// Zcfuse is the zcfuse binary the zcfuse targets and the zero-copy
	// paths mount with (`zcfuse mount`); default "zcfuse" in Self's
	// directory.
	Zcfuse string
	// Self is the zcfuse-bench binary the helpers run as (the go-fuse
	// server, the zero-copy client: CmdServeGofuse, CmdZCClient);
	// default os.Executable().
	Self string
	// Baseline is another zcfuse binary (an older build) to compare with:
	// when set, the base-* targets (BaselineTargets) exist and run it with
	// the mount flags of the target each mirrors. Empty: no baseline,
	// and naming a base-* target is a usage error.
	Baseline string
	Fio      string // the fio command; default "fio"
	// ShmDir holds the temporary directory; default /dev/shm.
	ShmDir string
	// CommandLine is recorded in the report as given.
	CommandLine []string
	// Progress receives a line per fio run and notes; default io.Discard.
	Progress io.Writer
	// ZCRuntime and ZCRamp are the measured time and the unrecorded
	// warm-up of each zero-copy run (negative ramp: none); defaults 2 s
	// and 0.5 s.
	ZCRuntime time.Duration
	ZCRamp    time.Duration
	// Spin is how long a ring-poll client and server spin before they
	// sleep; default 100 µs.
	Spin time.Duration
	// ZCPin is how a pinned zero-copy client is pinned to CPU: "thread"
	// (default: sched_setaffinity on the thread that does the I/O, as
	// fio's single thread is pinned; the Go runtime's own threads stay
	// free) or "process" (the whole child, Go runtime included, as
	// taskset would).
	ZCPin string
}

func (c *Config) setDefaults() {
	if c.Reps <= 0 {
		c.Reps = 3
	}
	if c.Runtime <= 0 {
		c.Runtime = 5 * time.Second
	}
	if c.Ramp == 0 {
		c.Ramp = time.Second
	} else if c.Ramp < 0 {
		c.Ramp = 0
	}
	if c.SizeMiB <= 0 {
		c.SizeMiB = 256
	}
	if c.MetaFiles <= 0 {
		c.MetaFiles = 1000
	}
	if c.Fio == "" {
		c.Fio = "fio"
	}
	if c.ShmDir == "" {
		c.ShmDir = "/dev/shm"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ZCRuntime <= 0 {
		c.ZCRuntime = 2 * time.Second
	}
	if c.ZCRamp == 0 {
		c.ZCRamp = 500 * time.Millisecond
	} else if c.ZCRamp < 0 {
		c.ZCRamp = 0
	}
	if c.Spin <= 0 {
		c.Spin = 100 * time.Microsecond
	}
	if c.ZCPin == "" {
		c.ZCPin = PinThread
	}
}

// ZC pin methods.
const (
	PinThread  = "thread"
	PinProcess = "process"
)

// SelectTargets returns the targets named in names (all when names is
// empty or holds "all"), in table order. baseline is Config.Baseline:
// only with it do the base-* targets exist ("all" includes them); naming
// one without it is a usage error.
func SelectTargets(names []string, baseline string) ([]Target, error) {
	want, err := wanted(names, func(n string) bool {
		for _, t := range Targets {
			if t.Name == n {
				return true
			}
		}
		return isBaselineTarget(n)
	}, "target", targetNames())
	if err != nil {
		return nil, err
	}
	if baseline == "" {
		for _, t := range BaselineTargets {
			if want[t.Name] {
				return nil, fmt.Errorf("%w: target %s needs --baseline PATH (the other zcfuse binary it runs)", ErrUsage, t.Name)
			}
		}
	}
	var out []Target
	for _, t := range tableTargets(baseline) {
		if want == nil || want[t.Name] {
			out = append(out, t)
		}
	}
	return out, nil
}

// SelectRows returns the rows named in names by ID or by name
// (randread-4k selects both pinnings; all or nothing selects every row),
// in table order.
func SelectRows(names []string) ([]Row, error) {
	want, err := wanted(names, func(n string) bool {
		for _, r := range Rows {
			if r.ID == n || r.Name == n {
				return true
			}
		}
		return false
	}, "row", rowNames())
	if err != nil {
		return nil, err
	}
	var out []Row
	for _, r := range Rows {
		if want == nil || want[r.ID] || want[r.Name] {
			out = append(out, r)
		}
	}
	return out, nil
}

// wanted turns a filter list into a set; nil means everything.
func wanted(names []string, known func(string) bool, what, valid string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case n == "all":
			return nil, nil
		case !known(n):
			return nil, fmt.Errorf("%w: unknown %s %q (want %s)", ErrUsage, what, n, valid)
		default:
			set[n] = true
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	return set, nil
}

func targetNames() string {
	var s, b []string
	for _, t := range Targets {
		s = append(s, t.Name)
	}
	for _, t := range BaselineTargets {
		b = append(b, t.Name)
	}
	return strings.Join(s, ", ") + ", and with --baseline " + strings.Join(b, ", ")
}

func rowNames() string {
	var s []string
	for _, r := range Rows {
		s = append(s, r.ID)
	}
	return strings.Join(s, ", ") + ", or randread-4k, randwrite-4k for both pinnings"
}

// order returns the targets for repetition rep (1-based): rotated by one
// each repetition so that no target always runs first.
func order[T any](ts []T, rep int) []T {
	out := make([]T, len(ts))
	for i := range ts {
		out[i] = ts[(i+rep-1)%len(ts)]
	}
	return out
}
