// Command zcfuse mounts a directory through zcfuse and reports on it.
//
//	zcfuse mount [--transport auto|uring|classic] [--queue-depth N]
//	             [--allow-other] [--read-only] [--passthrough] [--cross-mounts]
//	             [-d] BACKING_DIR MOUNTPOINT
//	zcfuse stats [--json] MOUNTPOINT
//
// The benchmark harness is a separate command, zcfuse-bench.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/zcfuse/zcfuse/gosrc/control"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/server"
	"golang.org/x/sys/unix"
)

const usage = `usage:
  zcfuse mount [--transport auto|uring|classic] [--queue-depth N] [--allow-other]
               [--read-only] [--passthrough] [--cross-mounts] [-d] BACKING_DIR MOUNTPOINT
  zcfuse stats [--json] MOUNTPOINT
  zcfuse cp [--chunk MiB] [--depth N] SRC DST   (zero-copy copy within a mount)
`

// errUsage marks errors that exit with status 2.
var errUsage = errors.New("usage")

// errHelp is returned after a subcommand printed its --help: exit 0.
var errHelp = errors.New("help printed")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, errHelp):
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
		return cmdMount(args[1:], stdout, stderr)
	case "stats":
		return cmdStats(args[1:], stdout)
	case "cp":
		return cmdCp(args[1:], stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// version describes this binary: the library version, the commit it was
// built from (with "-dirty" for uncommitted changes) and the Go release.
func version() string {
	v := fmt.Sprintf("zcfuse %s", zcfuseVersion)
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, when, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += fmt.Sprintf(" (commit %s%s, %s)", rev, dirty, when)
		}
		v += " " + bi.GoVersion
	}
	return v
}

// zcfuseVersion is the library's version (include/zcfuse.h's
// ZCFUSE_VERSION_MAJOR.MINOR.PATCH).
const zcfuseVersion = "0.1.0"

// command is a subcommand's flags and what its --help prints.
type command struct {
	*flag.FlagSet
	synopsis string // after "zcfuse NAME "
	about    string // what it does
	stdout   io.Writer
}

func newFlags(name, synopsis, about string, stdout io.Writer) *command {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	return &command{FlagSet: fl, synopsis: synopsis, about: about, stdout: stdout}
}

// help prints the subcommand's usage and every flag.
func (c *command) help() {
	fmt.Fprintf(c.stdout, "usage: zcfuse %s %s\n\n%s\n", c.Name(), c.synopsis, c.about)
	n := 0
	c.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(c.stdout, "\nflags (before or after the arguments; -flag and --flag alike):\n")
		c.SetOutput(c.stdout)
		c.PrintDefaults()
		c.SetOutput(io.Discard)
	}
}

// parse reads flags anywhere among the arguments (up to "--", after which
// everything is an argument) and wants nargs arguments. --help prints the
// subcommand's help and returns errHelp.
func (c *command) parse(args []string, nargs int) ([]string, error) {
	var pos []string
	for {
		err := c.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.help()
			return nil, errHelp
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v (zcfuse %s --help lists the flags)", errUsage, c.Name(), err, c.Name())
		}
		rest := c.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != nargs {
		return nil, fmt.Errorf("%w: %s needs %s, got %d argument(s): %q", errUsage, c.Name(), c.synopsis, len(pos), pos)
	}
	return pos, nil
}

func cmdMount(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("mount", "[flags] BACKING_DIR MOUNTPOINT",
		"Mounts BACKING_DIR on MOUNTPOINT through zcfuse and serves it in the foreground until\nSIGINT, SIGTERM or an umount. Needs root (mount(2), /dev/fuse).", stdout)
	transport := fl.String("transport", "auto", "auto, uring or classic")
	depth := fl.Int("queue-depth", fusering.DefaultQueueDepth, fmt.Sprintf("ring entries (each on a thread of its own) per CPU queue, 1..%d", fusering.MaxQueueDepth))
	allowOther := fl.Bool("allow-other", false, "let other users in (implies default_permissions)")
	readOnly := fl.Bool("read-only", false, "mount read-only")
	passthrough := fl.Bool("passthrough", false, "kernel FUSE passthrough for READ/WRITE")
	crossMounts := fl.Bool("cross-mounts", false, "serve what is mounted below BACKING_DIR too (default: the directories underneath)")
	debug := fl.Bool("d", false, "log every request")
	var limits control.Limits
	fl.Func("limit", "NAME=VALUE sets one of the server's limits; repeat for more (0: the default).\nNAME is one of: "+
		wrapNames(server.LimitNames(), 5)+"\n(durations in milliseconds; the README's Limits section has the defaults)", func(v string) error {
		name, val, ok := strings.Cut(v, "=")
		n, err := strconv.ParseUint(val, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("--limit %q: want NAME=VALUE with a number", v)
		}
		if err := limits.Set(name, n); errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("no limit named %q", name)
		} else if err != nil {
			return fmt.Errorf("--limit %s: %d is out of range", name, n)
		}
		return nil
	})
	rootRequests := fl.Bool("test-root-requests", false, "tests only, never for real use: serve go-fuse's loopback with every request\nrun as root (the layer before zcfuse's own: the control half of attack tests)")
	pos, err := fl.parse(args, 2)
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
		TestRootRequests: *rootRequests, Limits: limits,
		// With auto, fail rather than fall back to /dev/fuse (CI sets it).
		RequireURing: os.Getenv(fusering.RequireURingEnv) == "1",
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
		if os.Geteuid() != 0 && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
			return fmt.Errorf("%w\nzcfuse mount needs root: it opens /dev/fuse and calls mount(2), which take CAP_SYS_ADMIN (run it with sudo)", err)
		}
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
	fl := newFlags("stats", "[--json] PATH",
		"Prints the statistics of the zcfuse server behind PATH: its mountpoint, or any file or\ndirectory inside the mount. Root and the mount owner see every counter and every user's\nusage; anyone else sees their own usage against their limits.", stdout)
	asJSON := fl.Bool("json", false, "print JSON (what the tests read)")
	pos, err := fl.parse(args, 1)
	if err != nil {
		return err
	}
	_, st, raw, err := statsAt(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := fmt.Fprintf(stdout, "%s\n", raw)
		return err
	}
	return printStats(stdout, st)
}

// wrapNames joins names, perLine on a line.
func wrapNames(names []string, perLine int) string {
	var b strings.Builder
	for i, n := range names {
		switch {
		case i == 0:
		case i%perLine == 0:
			b.WriteString(",\n")
		default:
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	return b.String()
}

// namedCounters are the counters printStats prints on lines of their own.
var namedCounters = []string{"pid", "queues", "queue_depth", "passthrough", "read_only", "fs.inodes", "fs.inode_fds",
	"fs.file_handles", "fs.detached", "fs.open_files", "fs.open_files_max_user", "fs.open_files_refused",
	"bytes_read", "bytes_written", "errors", "fast_reads",
	"sessions", "arenas", "registered_bytes", "fixed_slots_used", "attached_files", "zc_ops", "zc_errors",
	"zc_read_bytes", "zc_write_bytes", "zero_copy_bytes", "copied_bytes", "queue_high_water", "workers",
	"users_omitted"}

// printStats prints either view of the stats: the full one (root and the
// mount owner: every counter and every user's usage), or a user's own
// usage against its limits (everybody else).
func printStats(w io.Writer, st server.Stats) error {
	if st.View == server.ViewUser {
		return printUserStats(w, st)
	}
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
	fmt.Fprintf(tw, "inodes\t%d (%d fds held; file handles %v; detached clone %v)\n",
		st.FS.Inodes, st.FS.InodeFds, st.FS.FileHandles, st.FS.Detached)
	fmt.Fprintf(tw, "open files\t%d (at most %d of one user; %d refused at a user's limit)\n",
		st.FS.OpenFiles, st.FS.OpenFilesMaxUser, st.FS.OpenFilesRefused)
	fmt.Fprintf(tw, "bytes read\t%d\nbytes written\t%d\nerrors\t%d\nfast reads\t%d\n", st.BytesRead, st.BytesWritten, st.Errors, st.FastReads)
	fmt.Fprintf(tw, "control socket\t%s\nsessions\t%d\narenas\t%d\nregistered bytes\t%d\nfixed slots used\t%d\nattached files\t%d\n",
		st.ControlSocket, st.Sessions, st.Arenas, st.RegisteredBytes, st.FixedSlotsUsed, st.AttachedFiles)
	fmt.Fprintf(tw, "ring path ops\t%d (%d failed)\nring path bytes read\t%d\nring path bytes written\t%d\nzero-copy bytes\t%d\ncopied bytes\t%d\nqueue high-water mark\t%d\ndata-plane workers\t%d\n",
		st.ZCOps, st.ZCErrors, st.ZCReadBytes, st.ZCWriteBytes, st.ZeroCopyBytes, st.CopiedBytes, st.QueueHighWater, st.Workers)
	// Counters the lines above do not name (a counter added to the stats
	// model shows here with no change to this function).
	shown := map[string]bool{}
	for _, name := range namedCounters {
		shown[name] = true
	}
	for _, c := range st.Counters() {
		if !shown[c.Name] {
			fmt.Fprintf(tw, "%s\t%d\n", strings.ReplaceAll(c.Name, "_", " "), c.Value)
		}
	}
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
	if err := tw.Flush(); err != nil {
		return err
	}
	return printUsers(w, st.Users, st.UsersOmitted)
}

// printUsers prints every user's usage, one row each, under a row of the
// per-user limits.
func printUsers(w io.Writer, users []server.UserStats, omitted int) error {
	if len(users) == 0 {
		_, err := fmt.Fprintf(w, "\nusage by user: nobody holds anything\n")
		return err
	}
	fmt.Fprintf(w, "\nusage by user:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := usageFields(users[0])
	fmt.Fprintf(tw, "uid\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", usageLabel(c.name))
	}
	fmt.Fprintf(tw, "\nlimit\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.limitText())
	}
	fmt.Fprintln(tw)
	for _, u := range users {
		fmt.Fprintf(tw, "%d\t", u.UID)
		for i, c := range usageFields(u) {
			cell := c.valueText()
			if i < len(cols) && c.limitText() != cols[i].limitText() {
				cell += "/" + c.limitText() // a limit of its own
			}
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if omitted > 0 {
		_, err := fmt.Fprintf(w, "(%d more users hold less; they did not fit)\n", omitted)
		return err
	}
	return nil
}

// printUserStats prints the view of a user who is neither root nor the
// mount owner: its own usage against its limits.
func printUserStats(w io.Writer, st server.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if st.User == nil {
		st.User = &server.UserStats{}
	}
	fmt.Fprintf(tw, "your usage\tuid %d (the server's own counters are for root and the mount owner)\n", st.User.UID)
	fmt.Fprintf(tw, "transport\t%s\npassthrough\t%v\nread-only\t%v\n", st.Transport, st.Passthrough, st.ReadOnly)
	fmt.Fprintf(tw, "\t\n\tused\tlimit\n")
	for _, f := range usageFields(*st.User) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", usageLabel(f.name), f.valueText(), f.limitText())
	}
	return tw.Flush()
}

// usageField is one number of a user's usage and its limit.
type usageField struct {
	name            string // its JSON name
	value, limit    uint64
	hasLimit, bytes bool
}

func (f usageField) valueText() string {
	if f.bytes {
		return sizeText(f.value)
	}
	return strconv.FormatUint(f.value, 10)
}

func (f usageField) limitText() string {
	switch {
	case !f.hasLimit:
		return "-"
	case f.limit == 0:
		return "none"
	case f.bytes:
		return sizeText(f.limit)
	}
	return strconv.FormatUint(f.limit, 10)
}

// usageFields is u's numbers in the order of its JSON, each with its
// limit (the number named NAME_limit), the uid left out: a number added
// to the usage model shows with no change here.
func usageFields(u server.UserStats) []usageField {
	b, err := json.Marshal(u)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var names []string
	values := map[string]uint64{}
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil
		}
		v, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := k.(string)
		n, ok := v.(json.Number)
		if !ok {
			continue
		}
		if values[name], err = strconv.ParseUint(string(n), 10, 64); err == nil {
			names = append(names, name)
		}
	}
	var out []usageField
	for _, name := range names {
		if name == "uid" || strings.HasSuffix(name, "_limit") {
			continue
		}
		limit, has := values[name+"_limit"]
		out = append(out, usageField{name: name, value: values[name], limit: limit, hasLimit: has,
			bytes: strings.HasSuffix(name, "_bytes")})
	}
	return out
}

// usageLabel is how a usage number is called in the listings.
func usageLabel(name string) string {
	if name == "half_open" {
		return "connections before Hello"
	}
	return strings.ReplaceAll(name, "_", " ")
}

// sizeText writes a byte count in binary units ("64 GiB", "1.5 MiB").
func sizeText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %ciB", int64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}

// statsAt finds the zcfuse mount PATH lies in (PATH itself, or the
// nearest directory above it on the same file system that answers the
// stats attribute: only a mount's root does) and reads its server's
// stats.
func statsAt(path string) (root string, st server.Stats, raw []byte, err error) {
	var first unix.Stat_t
	if err := unix.Stat(path, &first); err != nil {
		return "", st, nil, err
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return "", st, nil, err
	}
	for {
		if st, raw, err := server.ReadStats(p); err == nil {
			return p, st, raw, nil
		}
		parent := filepath.Dir(p)
		var pst unix.Stat_t
		if parent == p || unix.Stat(parent, &pst) != nil || pst.Dev != first.Dev {
			return "", st, nil, fmt.Errorf("%s is not inside a zcfuse mount (no zcfuse server answers at %s, the root of its file system)", path, p)
		}
		p = parent
	}
}
