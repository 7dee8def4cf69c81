// Command zcfuse mounts a directory through zcfuse and reports on it.
//
//	zcfuse mount [--transport auto|uring|classic] [--queue-depth N]
//	             [--allow-other] [--read-only] [--passthrough] [--cross-mounts]
//	             [-d] BACKING_DIR MOUNTPOINT
//	zcfuse stats [--json] MOUNTPOINT
//	zcfuse bench [--smoke] [--reps N] [--runtime DUR] [--targets LIST] [--rows LIST]
//	             [--json FILE] [--plot FILE.png] ...   (zcfuse bench --help)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/zcfuse/zcfuse/gosrc/bench"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/server"
)

const usage = `usage:
  zcfuse mount [--transport auto|uring|classic] [--queue-depth N] [--allow-other]
               [--read-only] [--passthrough] [--cross-mounts] [-d] BACKING_DIR MOUNTPOINT
  zcfuse stats [--json] MOUNTPOINT
  zcfuse cp [--chunk MiB] [--depth N] SRC DST   (zero-copy copy within a mount)
  zcfuse bench [--smoke] [--reps N] [--runtime DUR] [--targets LIST] [--rows LIST]
               [--json FILE] [--plot FILE.png] ...   (zcfuse bench --help)
`

// errUsage marks errors that exit with status 2.
var errUsage = errors.New("usage")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "zcfuse: %v\n%s", err, usage)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "zcfuse: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "mount":
		return cmdMount(args[1:], stderr)
	case "stats":
		return cmdStats(args[1:], stdout)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "cp":
		return cmdCp(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func newFlags(name string) *flag.FlagSet {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	return fl
}

func parse(fl *flag.FlagSet, args []string, nargs int, what string) ([]string, error) {
	if err := fl.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errUsage, fl.Name(), err)
	}
	if fl.NArg() != nargs {
		return nil, fmt.Errorf("%w: %s needs %s", errUsage, fl.Name(), what)
	}
	return fl.Args(), nil
}

func cmdMount(args []string, stderr io.Writer) error {
	fl := newFlags("mount")
	transport := fl.String("transport", "auto", "auto, uring or classic")
	depth := fl.Int("queue-depth", fusering.DefaultQueueDepth, "ring threads per queue")
	allowOther := fl.Bool("allow-other", false, "let other users in (implies default_permissions)")
	readOnly := fl.Bool("read-only", false, "mount read-only")
	passthrough := fl.Bool("passthrough", false, "kernel FUSE passthrough for READ/WRITE")
	crossMounts := fl.Bool("cross-mounts", false, "serve what is mounted below BACKING_DIR too (default: the directories underneath)")
	debug := fl.Bool("d", false, "log every request")
	pos, err := parse(fl, args, 2, "BACKING_DIR MOUNTPOINT")
	if err != nil {
		return err
	}
	t, err := fusering.ParseTransport(*transport)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *depth < 1 || *depth > fusering.MaxQueueDepth {
		return fmt.Errorf("%w: --queue-depth %d out of range [1, %d]", errUsage, *depth, fusering.MaxQueueDepth)
	}
	logger := log.New(stderr, "zcfuse: ", 0)
	srv, err := server.New(pos[0], pos[1], server.Options{
		Transport: t, QueueDepth: *depth, AllowOther: *allowOther, ReadOnly: *readOnly,
		Passthrough: *passthrough, CrossMounts: *crossMounts, Debug: *debug, Logger: logger,
	})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// A log write to a closed stderr (the parent died) must not kill the
	// server before it unmounts: without this, SIGPIPE leaves a dead mount.
	signal.Ignore(syscall.SIGPIPE)
	if err := srv.Start(); err != nil {
		return err
	}
	st := srv.Stats()
	extra := ""
	if st.Transport == string(fusering.TransportURing) {
		extra = fmt.Sprintf(" queues=%d depth=%d", st.Queues, st.QueueDepth)
	} else if st.FallbackReason != "" {
		extra = fmt.Sprintf(" fallback=%q", st.FallbackReason)
	}
	logger.Printf("ready: %s on %s transport=%s%s pid=%d", st.Backing, st.Mountpoint, st.Transport, extra, os.Getpid())
	select {
	case sig := <-sigs:
		logger.Printf("%v: unmounting %s", sig, st.Mountpoint)
	case <-srv.Done():
		logger.Printf("%s was unmounted", st.Mountpoint)
	}
	return srv.Stop()
}

func cmdStats(args []string, stdout io.Writer) error {
	fl := newFlags("stats")
	asJSON := fl.Bool("json", false, "print JSON")
	pos, err := parse(fl, args, 1, "MOUNTPOINT")
	if err != nil {
		return err
	}
	st, raw, err := server.ReadStats(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := fmt.Fprintf(stdout, "%s\n", raw)
		return err
	}
	return printStats(stdout, st)
}

// cmdBench runs the benchmark harness (package bench), or the server
// child it started this binary as.
func cmdBench(args []string, stdout, stderr io.Writer) error {
	err := bench.Main(args, stdout, stderr)
	if errors.Is(err, bench.ErrUsage) {
		return fmt.Errorf("%w: %s", errUsage, strings.TrimPrefix(err.Error(), bench.ErrUsage.Error()+": "))
	}
	return err
}

func printStats(w io.Writer, st server.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "mountpoint\t%s\nbacking\t%s\nserver pid\t%d\n", st.Mountpoint, st.Backing, st.PID)
	fmt.Fprintf(tw, "transport\t%s", st.Transport)
	if st.Transport == string(fusering.TransportURing) {
		fmt.Fprintf(tw, " (%d queues x depth %d)", st.Queues, st.QueueDepth)
	}
	fmt.Fprintln(tw)
	if st.FallbackReason != "" {
		fmt.Fprintf(tw, "fallback reason\t%s\n", st.FallbackReason)
	}
	fmt.Fprintf(tw, "passthrough\t%v\nread-only\t%v\n", st.Passthrough, st.ReadOnly)
	fmt.Fprintf(tw, "inodes\t%d (%d fds held; file handles %v; detached clone %v)\nopen files\t%d\n",
		st.FS.Inodes, st.FS.InodeFds, st.FS.FileHandles, st.FS.Detached, st.FS.OpenFiles)
	fmt.Fprintf(tw, "bytes read\t%d\nbytes written\t%d\nerrors\t%d\nfast reads\t%d\n", st.BytesRead, st.BytesWritten, st.Errors, st.FastReads)
	fmt.Fprintf(tw, "control socket\t%s\nsessions\t%d\narenas\t%d\nregistered bytes\t%d\nfixed slots used\t%d\nattached files\t%d\n",
		st.ControlSocket, st.Sessions, st.Arenas, st.RegisteredBytes, st.FixedSlotsUsed, st.AttachedFiles)
	fmt.Fprintf(tw, "ring path ops\t%d (%d failed)\nring path bytes read\t%d\nring path bytes written\t%d\nzero-copy bytes\t%d\ncopied bytes\t%d\nqueue high-water mark\t%d\ndata-plane workers\t%d\n",
		st.ZCOps, st.ZCErrors, st.ZCReadBytes, st.ZCWriteBytes, st.ZeroCopyBytes, st.CopiedBytes, st.QueueHighWater, st.Workers)
	tw.Flush()
	fmt.Fprintf(w, "\nrequests by opcode:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "opcode\tring\tdev\t\n")
	names := map[string]bool{}
	for _, m := range st.Requests {
		for k := range m {
			names[k] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", strings.ToLower(k), st.Requests[fusering.ChannelRing][k], st.Requests[fusering.ChannelDev][k])
	}
	return tw.Flush()
}
