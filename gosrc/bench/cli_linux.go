package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrUsage marks errors in the command line.
var ErrUsage = errors.New("usage")

// Usage is the synopsis of zcfuse-bench.
const Usage = `usage:
  zcfuse-bench [--reps N] [--runtime DUR] [--ramp DUR] [--size MIB] [--cpu N] [--meta-files N]
               [--targets LIST] [--rows LIST] [--smoke] [--json FILE] [--plot FILE.png]
               [--zc-runtime DUR] [--zc-ramp DUR] [--spin DUR] [--zc-pin thread|process]
               [--fio PATH] [--tmpdir DIR] [--zcfuse PATH] [--baseline PATH]
  zcfuse-bench --from FILE.json [--plot FILE.png]
`

// The helpers the harness runs as child processes, each a subcommand of
// its own binary (Config.Self), so that a server's or a client's CPU
// time and garbage collection are not the harness's.
const (
	// CmdServeGofuse BACKING MOUNTPOINT serves go-fuse's loopback: the
	// gofuse target (ServeGofuse).
	CmdServeGofuse = "serve-gofuse"
	// CmdZCClient SPEC runs one zero-copy client run (ZCClient).
	CmdZCClient = "zc-client"
)

// helpers is what --help says of them.
const helpers = `
helpers the harness runs as child processes (not needed by hand):
  zcfuse-bench ` + CmdServeGofuse + ` BACKING MOUNTPOINT   go-fuse's loopback server, the gofuse target;
                                                 "ready" on stderr once mounted, counts on SIGUSR1
  zcfuse-bench ` + CmdZCClient + ` SPEC                    one zero-copy client run as the JSON SPEC says;
                                                 the measurement as JSON on stdout
`

// Main is zcfuse-bench ARGS: it runs the benchmark, prints progress on
// stderr and the tables on stdout, and writes the JSON and the chart when
// asked; or, given one of the helper subcommands first, runs that helper.
func Main(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case CmdServeGofuse:
			return ServeGofuse(args[1:], stderr)
		case CmdZCClient:
			return ZCClient(args[1:], stdout)
		case "help":
			args = []string{"--help"}
		}
	}
	fl := flag.NewFlagSet("zcfuse-bench", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	reps := fl.Int("reps", 3, "repetitions (medians of them)")
	runtimeS := fl.String("runtime", "5s", "measured time per fio run (seconds, or a duration: 1500ms)")
	rampS := fl.String("ramp", "1s", "fio --ramp_time before each measurement (0: none)")
	size := fl.Int("size", 256, "test file size in MiB")
	metaFiles := fl.Int("meta-files", 0, "files per run of the create and unlink rows, unless --runtime ends it first (default 1000: fio's own cost per file grows with the files in a run; 500 with --smoke)")
	cpu := fl.Int("cpu", 0, "the CPU pinned rows run fio on")
	targets := fl.String("targets", "all", "comma list: fio targets "+targetNames()+"; zero-copy paths "+zcPathNames())
	rows := fl.String("rows", "all", "comma list: fio rows "+rowNames()+"; zero-copy rows "+zcRowNames()+
		" (a list naming one family only leaves the other out)")
	zcRuntimeS := fl.String("zc-runtime", "2s", "measured time per zero-copy client run")
	zcRampS := fl.String("zc-ramp", "500ms", "unrecorded warm-up before each zero-copy measurement (0: none)")
	zcPin := fl.String("zc-pin", PinThread, "how a pinned zero-copy client is pinned: thread (the thread doing the I/O, as fio's one thread) or process (the whole Go process, runtime threads included)")
	spin := fl.String("spin", "100us", "ring-poll: how long client and server spin before they sleep")
	smoke := fl.Bool("smoke", false, "CI run: 1 repetition, 2 s fio runs without ramp, 500 files per create/unlink run, 0.25 s zero-copy runs of "+
		strings.Join(smokeZCRows, ", ")+" unless --rows names others; invalid results fail")
	jsonPath := fl.String("json", "", "write every result, the medians and the machine to FILE")
	plotPath := fl.String("plot", "", "write a bar chart PNG to FILE")
	fio := fl.String("fio", "fio", "the fio command")
	tmpdir := fl.String("tmpdir", "/dev/shm", "where the temporary backing directory and mountpoints go (tmpfs)")
	zcfuse := fl.String("zcfuse", "", "the zcfuse binary the zcfuse targets and the zero-copy paths mount with (default: zcfuse next to zcfuse-bench)")
	baseline := fl.String("baseline", "", "another zcfuse binary (an older build) to compare with in the same run: adds the targets "+
		"base-classic and base-uring, mounted as zcfuse-classic and zcfuse-uring but by PATH, interleaved with the others; "+
		"--targets all includes them, naming them needs this flag; the report records PATH's size, mtime, sha256 and VCS revision")
	from := fl.String("from", "", "measure nothing: print the tables (and --plot) of a --json FILE written before")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\nflags:\n", Usage)
			fl.SetOutput(stdout)
			fl.PrintDefaults()
			fmt.Fprint(stdout, helpers)
			return nil
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fl.NArg() != 0 {
		return fmt.Errorf("%w: unknown command %q (zcfuse-bench takes flags only, or a helper: %s, %s)", ErrUsage, fl.Arg(0), CmdServeGofuse, CmdZCClient)
	}
	if *from != "" {
		rep, err := ReadJSON(*from)
		if err != nil {
			return err
		}
		rep.summarize()
		rep.WriteTables(stdout)
		if *plotPath != "" {
			return rep.WritePlot(*plotPath)
		}
		return nil
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := Config{
		Reps: *reps, SizeMiB: *size, MetaFiles: *metaFiles, CPU: *cpu, Smoke: *smoke, Fio: *fio, ShmDir: *tmpdir,
		ZCPin:       *zcPin,
		Zcfuse:      *zcfuse,
		Baseline:    *baseline,
		Targets:     splitList(*targets),
		Rows:        splitList(*rows),
		CommandLine: append([]string{os.Args[0]}, args...),
		Progress:    stderr,
	}
	var err error
	if cfg.Runtime, err = parseSeconds(*runtimeS); err != nil || cfg.Runtime <= 0 {
		return fmt.Errorf("%w: --runtime %q: want a positive number of seconds or a duration", ErrUsage, *runtimeS)
	}
	if cfg.Ramp, err = parseSeconds(*rampS); err != nil || cfg.Ramp < 0 {
		return fmt.Errorf("%w: --ramp %q: want seconds or a duration", ErrUsage, *rampS)
	}
	if cfg.Ramp == 0 {
		cfg.Ramp = -1 // Config's "none"
	}
	if cfg.ZCRuntime, err = parseSeconds(*zcRuntimeS); err != nil || cfg.ZCRuntime <= 0 {
		return fmt.Errorf("%w: --zc-runtime %q: want a positive number of seconds or a duration", ErrUsage, *zcRuntimeS)
	}
	if cfg.ZCRamp, err = parseSeconds(*zcRampS); err != nil || cfg.ZCRamp < 0 {
		return fmt.Errorf("%w: --zc-ramp %q: want seconds or a duration", ErrUsage, *zcRampS)
	}
	if cfg.ZCRamp == 0 {
		cfg.ZCRamp = -1
	}
	if cfg.Spin, err = parseSeconds(*spin); err != nil || cfg.Spin < time.Microsecond || cfg.Spin > time.Millisecond {
		return fmt.Errorf("%w: --spin %q: want a duration from 1us to 1ms (the server caps its spin at 1 ms)", ErrUsage, *spin)
	}
	if *zcPin != PinThread && *zcPin != PinProcess {
		return fmt.Errorf("%w: --zc-pin %q: want thread or process", ErrUsage, *zcPin)
	}
	if *reps < 1 {
		return fmt.Errorf("%w: --reps %d: want 1 or more", ErrUsage, *reps)
	}
	if *smoke {
		if !set["reps"] {
			cfg.Reps = 1
		}
		if !set["runtime"] {
			cfg.Runtime = 2 * time.Second
		}
		if !set["ramp"] {
			cfg.Ramp = -1
		}
		if !set["meta-files"] {
			cfg.MetaFiles = 500
		}
		if !set["zc-runtime"] {
			cfg.ZCRuntime = 250 * time.Millisecond
		}
		if !set["zc-ramp"] {
			cfg.ZCRamp = 50 * time.Millisecond
		}
	}
	if *plotPath != "" && !strings.HasSuffix(strings.ToLower(*plotPath), ".png") {
		return fmt.Errorf("%w: --plot %q: the chart is a PNG; name it .png", ErrUsage, *plotPath)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, runErr := Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	fmt.Fprintln(stdout)
	rep.WriteTables(stdout)
	if errors.Is(runErr, context.Canceled) {
		// a partial run: no files, so that it replaces no complete one
		return fmt.Errorf("interrupted; --json and --plot not written: %w", runErr)
	}
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if *jsonPath != "" {
		if err := rep.WriteJSON(*jsonPath); err != nil {
			errs = append(errs, fmt.Errorf("--json: %w", err))
		} else {
			fmt.Fprintf(stderr, "zcfuse-bench: wrote %s\n", *jsonPath)
		}
	}
	if *plotPath != "" {
		if err := rep.WritePlot(*plotPath); err != nil {
			errs = append(errs, fmt.Errorf("--plot: %w", err))
		} else {
			fmt.Fprintf(stderr, "zcfuse-bench: wrote %s\n", *plotPath)
		}
	}
	if n := rep.Invalid() - rep.Errors; n > 0 {
		if cfg.Smoke {
			errs = append(errs, fmt.Errorf("smoke: %d result(s) invalid (see the warnings)", n))
		} else {
			fmt.Fprintf(stderr, "zcfuse-bench: %d result(s) invalid and left out of the medians (see the warnings)\n", n)
		}
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseSeconds reads "5", "0.5" (seconds) or a Go duration ("1500ms").
func parseSeconds(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}
