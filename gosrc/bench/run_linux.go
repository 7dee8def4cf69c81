package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"
	"golang.org/x/sys/unix"
)

const testFile = "bench.dat"

// Run measures every selected target and row cfg.Reps times and returns
// the report with its medians. The report is returned with an error too
// when some runs failed (their results say why); a nil report means
// nothing was measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	if cfg.Baseline != "" {
		abs, err := filepath.Abs(cfg.Baseline)
		if err != nil {
			return nil, fmt.Errorf("--baseline %s: %w", cfg.Baseline, err)
		}
		cfg.Baseline = abs
	}
	sel, err := selectAll(cfg.Targets, cfg.Rows, cfg.Smoke, cfg.Baseline)
	if err != nil {
		return nil, err
	}
	targets, rows := sel.targets, sel.rows
	if cfg.Self == "" {
		if cfg.Self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("own executable: %w", err)
		}
	}
	if cfg.Zcfuse == "" {
		cfg.Zcfuse = filepath.Join(filepath.Dir(cfg.Self), "zcfuse")
	}
	if cfg.ZCPin != PinThread && cfg.ZCPin != PinProcess {
		return nil, fmt.Errorf("%w: zero-copy pin method %q: want %s or %s", ErrUsage, cfg.ZCPin, PinThread, PinProcess)
	}
	if err := preflight(&cfg, sel); err != nil {
		return nil, err
	}

	r := &Report{
		What: "fio (psync, QD1, O_DIRECT) through each target to one file in a tmpfs backing directory, " +
			"and zcfuse's own client along each zero-copy path to the same file; " +
			"medians of the valid repetitions; ratios to the directory itself and to native pread/pwrite",
		Command: shellQuote(cfg.CommandLine),
		Start:   time.Now().Format(time.RFC3339),
		Machine: machineInfo(cfg.Fio, cfg.Zcfuse),
		Params: Params{Reps: cfg.Reps, RuntimeS: cfg.Runtime.Seconds(), RampS: cfg.Ramp.Seconds(),
			SizeMiB: cfg.SizeMiB, CPU: cfg.CPU, Smoke: cfg.Smoke,
			Fio: strings.Join(fioArgs(Row{ID: "ROW", RW: "RW", BS: "BS"}, "FILE", "OUT", cfg.Runtime, cfg.Ramp), " ")},
		Rows:   rows,
		ZCRows: sel.zcRows,
	}
	for _, row := range rows {
		if row.Meta {
			r.Params.MetaFiles = cfg.MetaFiles
			r.Params.MetaFio = strings.Join(metaFioArgs(Row{ID: "ROW", Engine: "ENGINE"}, "DIR", "OUT", cfg.MetaFiles, cfg.Runtime), " ")
			break
		}
	}
	if len(sel.paths) > 0 {
		r.Params.ZCRuntimeS, r.Params.ZCRampS, r.Params.SpinUs = cfg.ZCRuntime.Seconds(), cfg.ZCRamp.Seconds(), float64(cfg.Spin/time.Microsecond)
		r.Params.ZCPin = cfg.ZCPin
	}
	for _, t := range targets {
		r.Targets = append(r.Targets, TargetInfo{Name: t.Name, Label: t.Label, Channel: t.Channel, Baseline: t.Baseline})
		if t.Baseline && len(rows) > 0 && r.Machine.Baseline == nil {
			r.Machine.Baseline = binaryInfo(cfg.Baseline)
		}
	}
	if cfg.Baseline != "" && r.Machine.Baseline == nil {
		fmt.Fprintf(cfg.Progress, "zcfuse-bench: --baseline %s given, but no base-* target is selected\n", cfg.Baseline)
	}
	for _, p := range sel.paths {
		r.ZCPaths = append(r.ZCPaths, ZCPathInfo{Name: p.Name, Label: p.Label, Mode: p.Mode, Check: p.Check})
	}

	tmp, err := os.MkdirTemp(cfg.ShmDir, "zcfuse-bench.")
	if err != nil {
		return nil, err
	}
	defer removeTmp(tmp, cfg.Progress)
	r.Machine.ShmFS = fsType(tmp)
	if r.Machine.ShmFS != "tmpfs" {
		fmt.Fprintf(cfg.Progress, "zcfuse-bench: WARNING: %s is on %s, not tmpfs: the numbers include that file system\n", tmp, r.Machine.ShmFS)
	}
	backing := filepath.Join(tmp, "backing")
	if err := os.Mkdir(backing, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "zcfuse-bench: writing a %d MiB file of random data to %s (%s)\n", cfg.SizeMiB, backing, r.Machine.ShmFS)
	if err := writeRandomFile(filepath.Join(backing, testFile), cfg.SizeMiB); err != nil {
		return nil, err
	}

	nfio := cfg.Reps * len(targets) * len(rows)
	nzc := cfg.Reps * len(sel.paths) * len(sel.zcRows)
	total := nfio + nzc
	per, zper := cfg.Runtime+cfg.Ramp, cfg.ZCRuntime+cfg.ZCRamp
	if nfio > 0 {
		fmt.Fprintf(cfg.Progress, "zcfuse-bench: %d targets × %d rows × %d reps = %d fio runs of %v\n", len(targets), len(rows), cfg.Reps, nfio, per)
	}
	if nzc > 0 {
		fmt.Fprintf(cfg.Progress, "zcfuse-bench: %d zero-copy paths × %d rows × %d reps = %d client runs of %v\n", len(sel.paths), len(sel.zcRows), cfg.Reps, nzc, zper)
	}
	fmt.Fprintf(cfg.Progress, "zcfuse-bench: %d runs: about %v\n", total,
		(time.Duration(nfio)*(per+300*time.Millisecond) + time.Duration(nzc)*(zper+150*time.Millisecond)).Round(time.Second))
	r.OtherFio = otherFio()
	if len(r.OtherFio) > 0 {
		fmt.Fprintf(cfg.Progress, "zcfuse-bench: WARNING: other fio processes are running (pids %s): numbers will be disturbed\n", strings.Join(r.OtherFio, " "))
	}
	r.LoadStart = loadAvg()
	fmt.Fprintf(cfg.Progress, "zcfuse-bench: load at start: %s\n", r.LoadStart)

	b := &bencher{cfg: cfg, r: r, tmp: tmp, backing: backing, total: total}
	// One unit per fio target and per zero-copy path, rotated together
	// from one repetition to the next.
	var units []func(rep int) error
	if len(rows) > 0 {
		for _, t := range targets {
			units = append(units, func(rep int) error { return b.target(ctx, t, rows, rep) })
		}
	}
	if len(sel.zcRows) > 0 {
		for _, p := range sel.paths {
			units = append(units, func(rep int) error { return b.zcPath(ctx, p, sel.zcRows, rep) })
		}
	}
	var runErr error
	for rep := 1; rep <= cfg.Reps && runErr == nil; rep++ {
		for _, u := range order(units, rep) {
			if runErr = u(rep); runErr != nil {
				break
			}
		}
	}
	r.LoadEnd = loadAvg()
	r.End = time.Now().Format(time.RFC3339)
	fmt.Fprintf(cfg.Progress, "zcfuse-bench: load at end: %s\n", r.LoadEnd)
	r.summarize()
	if runErr != nil {
		return r, runErr
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%d of %d runs failed (see the problems listed)", r.Errors, total)
	}
	return r, nil
}

// bencher carries one Run's state.
type bencher struct {
	cfg     Config
	r       *Report
	tmp     string
	backing string
	done    int
	total   int
}

// target measures every row on one fresh mount of t (or on the directory).
// It returns an error only when the run must end (cancelled).
func (b *bencher) target(ctx context.Context, t Target, rows []Row, rep int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := filepath.Join(b.backing, testFile)
	root := b.backing // where the meta rows' directories are seen
	var srv *serverProc
	if t.kind != kindDir {
		mnt := filepath.Join(b.tmp, fmt.Sprintf("mnt.%s.%d", t.Name, rep))
		var err error
		zcfuse := b.cfg.Zcfuse
		if t.Baseline {
			zcfuse = b.cfg.Baseline
		}
		if srv, err = startServer(ctx, zcfuse, b.cfg.Self, t, b.backing, mnt); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, row := range rows {
				b.record(Result{Target: t.Name, Row: row.ID, Rep: rep, Problem: err.Error()}, row, true)
			}
			return nil
		}
		if b.r.Servers == nil {
			b.r.Servers = map[string]string{}
		}
		if b.r.Servers[t.Name] == "" {
			b.r.Servers[t.Name] = srv.info
		}
		defer func() {
			if err := srv.stop(); err != nil {
				b.r.Problems = append(b.r.Problems, err.Error())
			}
		}()
		file = filepath.Join(mnt, testFile)
		root = mnt
	}
	for _, row := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := Result{Target: t.Name, Row: row.ID, Rep: rep}
		var before snapshot
		var err error
		path := file
		if row.Meta {
			name, err := b.metaDir(t, row, rep)
			if err != nil {
				res.Problem = err.Error()
				b.record(res, row, true)
				continue
			}
			defer os.RemoveAll(filepath.Join(b.backing, name))
			path = filepath.Join(root, name)
		}
		if srv != nil {
			if before, err = srv.counts(); err != nil {
				res.Problem = fmt.Sprintf("server counters: %v", err)
				b.record(res, row, true)
				continue
			}
		}
		out := filepath.Join(b.tmp, fmt.Sprintf("fio.%s.%s.%d.json", t.Name, row.ID, rep))
		var ticks int64 = -1
		if srv != nil {
			ticks = srv.cpuTicks()
		}
		res.Measurement, res.FioCPUs, err = b.fio(ctx, row, path, out)
		if srv != nil && ticks >= 0 {
			if t1 := srv.cpuTicks(); t1 >= ticks {
				cpu := float64(t1-ticks) / 100
				res.ServerCPU = &cpu
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.Problem = err.Error()
			b.record(res, row, true)
			continue
		}
		res.Valid = true
		if row.Pinned && res.FioCPUs != fmt.Sprint(b.cfg.CPU) {
			res.Valid = false
			res.Problem = fmt.Sprintf("fio ran with CPU affinity %q, want %d", res.FioCPUs, b.cfg.CPU)
		}
		if srv != nil {
			after, err := srv.counts()
			if err != nil {
				res.Valid = false
				res.Problem = fmt.Sprintf("server counters: %v", err)
			} else {
				res.Check = &Check{Transport: after.transport, Want: t.Channel, Op: row.Op,
					Ops: after.ops.sub(before.ops), FastReads: after.fastReads - before.fastReads}
				if p := check(t, row, res.Check, res.IOs); p != "" {
					res.Valid = false
					res.Problem = p
				}
			}
		}
		b.record(res, row, false)
	}
	return nil
}

// metaDir makes a fresh directory in the backing directory for one run
// of the meta row row on t and returns its name: empty for create, and
// for unlink holding the Config.MetaFiles empty files fio will remove,
// made directly in the backing directory so that no server sees them
// made. The caller removes it after the run.
func (b *bencher) metaDir(t Target, row Row, rep int) (string, error) {
	name := fmt.Sprintf("meta.%s.%s.%d", t.Name, row.ID, rep)
	dir := filepath.Join(b.backing, name)
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	if row.Op == "UNLINK" {
		for i := 0; i < b.cfg.MetaFiles; i++ {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s0.%d", metaFilePrefix, i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				os.RemoveAll(dir)
				return "", fmt.Errorf("make the files to unlink: %w", err)
			}
			f.Close()
		}
	}
	return name, nil
}

// check says what is wrong with the counts of a run of row on t that did
// ios I/Os, or "" when the I/O went where it should.
func check(t Target, row Row, c *Check, ios uint64) string {
	if t.Transport != "" && c.Transport != t.Transport {
		return fmt.Sprintf("server transport is %q, want %q", c.Transport, t.Transport)
	}
	if row.Meta && t.Channel == ChannelNone {
		// passthrough is for READ and WRITE only: CREATE and UNLINK
		// still go over the ring
		t.Channel = ChannelRing
	}
	ring, dev, srv := c.Ops[ChannelRing][row.Op], c.Ops[ChannelDev][row.Op], c.Ops[ChannelServer][row.Op]
	switch t.Channel {
	case ChannelRing, ChannelDev:
		got, other, otherName := ring, dev, ChannelDev
		if t.Channel == ChannelDev {
			got, other, otherName = dev, ring, ChannelRing
		}
		if got < ios || other != 0 {
			return fmt.Sprintf("%s counted on ring=%d dev=%d, fio did %d I/Os: want all on %s, none on %s",
				row.Op, ring, dev, ios, t.Channel, otherName)
		}
	case ChannelServer:
		if srv < ios {
			return fmt.Sprintf("the server counted %d %s requests, fio did %d I/Os", srv, row.Op, ios)
		}
	case ChannelNone:
		var seen []string
		for _, ch := range []string{ChannelRing, ChannelDev} {
			for _, op := range []string{"READ", "WRITE"} {
				if n := c.Ops[ch][op]; n != 0 {
					seen = append(seen, fmt.Sprintf("%s %s=%d", ch, op, n))
				}
			}
		}
		if len(seen) > 0 {
			return "passthrough: the server saw " + strings.Join(seen, ", ") + ", want none"
		}
	}
	return ""
}

// record keeps res and prints its progress line.
func (b *bencher) record(res Result, row Row, failed bool) {
	b.r.Results = append(b.r.Results, res)
	val := fmt.Sprintf("%.2f GB/s", res.GBps)
	if row.Meta {
		val = fmt.Sprintf("%s files/s (%d files), mean %s µs, p99 %s µs", fmtIOPS(res.IOPS), res.IOs, fmtUs(res.MeanUs), fmtUs(res.P99Us))
	} else if row.Latency {
		val = fmt.Sprintf("%s IOPS, mean %s µs, p99 %s µs", fmtIOPS(res.IOPS), fmtUs(res.MeanUs), fmtUs(res.P99Us))
	}
	b.progress(fmt.Sprintf("%s %s %s rep %d", res.Target, row.Name, row.PinWord(), res.Rep), val, failed, res.Valid, res.Problem)
}

// progress counts one run of either kind, prints its line (what, then
// val, its figures) and lists its problem: a run that failed produced
// nothing, an invalid one failed its check.
func (b *bencher) progress(what, val string, failed, valid bool, problem string) {
	b.done++
	if failed {
		b.r.Errors++
		b.r.Problems = append(b.r.Problems, fmt.Sprintf("%s: FAILED: %s", what, problem))
		fmt.Fprintf(b.cfg.Progress, "[%d/%d] %s: FAILED: %s\n", b.done, b.total, what, problem)
		return
	}
	if !valid {
		b.r.Problems = append(b.r.Problems, fmt.Sprintf("%s: INVALID: %s", what, problem))
		val += " — INVALID: " + problem
	}
	fmt.Fprintf(b.cfg.Progress, "[%d/%d] %s: %s\n", b.done, b.total, what, val)
}

// fio runs one row on file and returns what it measured and the CPU
// affinity fio ran with.
func (b *bencher) fio(ctx context.Context, row Row, file, out string) (Measurement, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Runtime+b.cfg.Ramp+60*time.Second)
	defer cancel()
	args := fioArgs(row, file, out, b.cfg.Runtime, b.cfg.Ramp)
	if row.Meta {
		args = metaFioArgs(row, file, out, b.cfg.MetaFiles, b.cfg.Runtime)
	}
	cmd := exec.CommandContext(ctx, b.cfg.Fio, args...)
	var text bytes.Buffer
	cmd.Stdout, cmd.Stderr = &text, &text
	// fio forks its job: on cancel, kill the whole process group, so that
	// no job is left holding the file open on a mount.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var err error
	if row.Pinned {
		err = startPinned(cmd, b.cfg.CPU)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return Measurement{}, "", fmt.Errorf("start fio: %w", err)
	}
	cpus := procField(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid), "Cpus_allowed_list")
	if err := cmd.Wait(); err != nil {
		return Measurement{}, cpus, fmt.Errorf("fio: %v: %s", err, strings.TrimSpace(lastLines(text.String(), 4)))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return Measurement{}, cpus, err
	}
	m, err := parseFio(data, row.Op)
	return m, cpus, err
}

// startPinned starts cmd with its CPU affinity set to cpu, as taskset
// would: the child inherits the affinity of the thread that forks it.
// That thread then gets its old affinity back. (It must outlive the
// child, whose Pdeathsig is tied to it, so it is not simply retired.)
func startPinned(cmd *exec.Cmd, cpu int) error {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	err := cmd.Start()
	if unix.SchedSetaffinity(0, &old) == nil {
		runtime.UnlockOSThread()
	} // else the pinned thread stays with the calling goroutine only
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// preflight checks that the machine has what the targets need.
func preflight(cfg *Config, sel selection) error {
	var errs []error
	targets := sel.targets
	if len(sel.rows) == 0 {
		targets = nil
	}
	if len(targets) > 0 {
		if _, err := exec.LookPath(cfg.Fio); err != nil {
			errs = append(errs, fmt.Errorf("fio not found (%v): install fio (apt-get install fio)", err))
		}
	}
	for _, p := range sel.paths {
		if p.needsMount() && len(sel.zcRows) > 0 {
			targets = append(targets, Target{Name: p.Name, kind: kindZcfuse, Transport: "uring"})
		}
	}
	helpers := len(sel.paths) > 0 && len(sel.zcRows) > 0 // the zero-copy client
	for _, t := range targets {
		helpers = helpers || t.kind == kindGofuse
	}
	if helpers {
		if st, err := os.Stat(cfg.Self); err != nil || st.IsDir() {
			errs = append(errs, fmt.Errorf("zcfuse-bench binary %s (the go-fuse server and the zero-copy client run as it): %v", cfg.Self, err))
		}
	}
	if cfg.CPU < 0 || cfg.CPU >= runtime.NumCPU() {
		errs = append(errs, fmt.Errorf("%w: --cpu %d: this process may use %d CPUs", ErrUsage, cfg.CPU, runtime.NumCPU()))
	}
	var mounts, zcfuse, uring, baseline bool
	for _, t := range targets {
		mounts = mounts || t.kind != kindDir
		zcfuse = zcfuse || (t.kind == kindZcfuse && !t.Baseline)
		uring = uring || t.Transport == "uring"
		baseline = baseline || t.Baseline
	}
	if baseline {
		if st, err := os.Stat(cfg.Baseline); err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			if err == nil {
				err = errors.New("not an executable file")
			}
			errs = append(errs, fmt.Errorf("--baseline %s (the base-* targets' zcfuse binary): %v", cfg.Baseline, err))
		}
	}
	if mounts {
		if os.Geteuid() != 0 {
			errs = append(errs, errors.New("the FUSE targets need root (mount(2) on /dev/fuse); --targets dir needs none"))
		}
		if _, err := os.Stat("/dev/fuse"); err != nil {
			errs = append(errs, fmt.Errorf("/dev/fuse: %w", err))
		}
	}
	if zcfuse {
		if st, err := os.Stat(cfg.Zcfuse); err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			if err == nil {
				err = fmt.Errorf("%s: not an executable file", cfg.Zcfuse)
			}
			errs = append(errs, fmt.Errorf("no zcfuse binary to mount with: %v (zcfuse-bench looks next to itself; build zcfuse there, or name one with --zcfuse PATH)", err))
		}
	}
	if uring {
		if v := readTrim(URingParam); v != "Y" {
			errs = append(errs, fmt.Errorf("FUSE-over-io_uring is off (%s is %q): as root, echo Y > %s, or leave out the uring targets", URingParam, v, URingParam))
		}
	}
	return errors.Join(errs...)
}

// writeRandomFile writes sizeMiB MiB of pseudo-random bytes to path.
func writeRandomFile(path string, sizeMiB int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'z', 'c', 'f', 'u', 's', 'e'})
	buf := make([]byte, 1<<20)
	for i := 0; i < sizeMiB; i++ {
		rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// removeTmp takes down anything still mounted under tmp and removes it;
// it leaves tmp in place (and says so) if a mount will not go.
func removeTmp(tmp string, progress io.Writer) {
	if err := mountproc.UnmountAll(tmp); err != nil {
		fmt.Fprintf(progress, "zcfuse-bench: %v\n", err)
	}
	if m := mountproc.Mounts(tmp); len(m) > 0 {
		fmt.Fprintf(progress, "zcfuse-bench: leaving %s: still mounted: %s\n", tmp, strings.Join(m, " "))
		return
	}
	os.RemoveAll(tmp)
}

// shellQuote writes args as a shell would read them back.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
