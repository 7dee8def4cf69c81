// Package bench is zcfuse's benchmark harness, the zcfuse-bench command
// (gosrc/cmd/zcfuse-bench; `make bench` builds and runs it).
//
// It owns the measurement: the targets and rows, the runs, the checks on
// the servers' counters, the report (tables, chart, JSON) and the two
// helpers it runs as child processes. It is a client of zcfuse like any
// other: it mounts with the zcfuse binary (`zcfuse mount`), reads the
// servers' counters through server.ReadStats (the stats xattr) and drives
// the zero-copy path through gosrc/client and gosrc/arena. It may not
// reach into the server's internals, and nothing in the library or the
// zcfuse CLI may import it: its plotting and font code stays out of what
// users install. Starting, stopping and unmounting servers goes through
// gosrc/mountproc, shared with the integration tests.
//
// It measures the posix paths with fio on a /dev/shm backing directory
// holding one test file of random data, for several targets side by side:
// the directory itself, zcfuse over /dev/fuse (classic), zcfuse over
// FUSE-over-io_uring, go-fuse's own server with its loopback node tree
// (kernel passthrough off) and zcfuse with kernel passthrough. Every row
// uses O_DIRECT and fio's psync engine at queue depth 1:
//
//	randread-4k-pinned     4 KiB random read, fio pinned to one CPU
//	randread-4k-unpinned   the same, fio free to move
//	randwrite-4k-pinned    4 KiB random write, pinned
//	randwrite-4k-unpinned  4 KiB random write, unpinned
//	seqread-1m             1 MiB sequential read, pinned
//	seqwrite-1m            1 MiB sequential overwrite of the file, pinned
//
// Two metadata rows use fio's filecreate and filedelete engines instead
// (QD1, pinned, no O_DIRECT, no ramp), each run in a fresh directory:
//
//	create                 files created per second (open O_CREAT, empty)
//	unlink                 files removed per second (unlink(2))
//
// A run does Config.MetaFiles files or stops at the runtime; its check is
// that the server counted at least as many CREATE (UNLINK) requests on
// the target's channel (the ring with passthrough) as fio did files.
//
// With --baseline PATH (Config.Baseline), two more fio targets compare
// another zcfuse binary, typically an older build, with the running one
// in the same run: base-classic and base-uring mount exactly as
// zcfuse-classic and zcfuse-uring do but run PATH, and in table order
// each comes right after the target it mirrors. They are interleaved and
// checked like the others (their counters are read the same way, through
// the stats xattr), `--targets all` includes them only when --baseline is
// given, and naming one without it is a usage error. The report records
// the baseline binary's path, size, mtime, SHA-256 and the VCS revision
// Go stamped into it (Machine.Baseline). The zero-copy rows are
// unaffected.
//
// The 4 KiB tables give getxattr/op for the zcfuse targets: the GETXATTR
// requests the server counted (ring and /dev/fuse together) over the
// valid runs of the row, divided by the READs or WRITEs it counted in
// them (fast-path READs included). On WRITE it shows whether the kernel
// asks for security.capability before every write (about 1.00) or
// leaves kill-priv to the server (about 0.00). It is "–" for the
// directory, go-fuse (no such counter) and passthrough (no READ or WRITE
// reaches the server). The harness's own stats read after each run is
// one GETXATTR among tens of thousands of ops.
//
// The zero-copy rows measure zcfuse's own client, a child process too
// (`zcfuse-bench zc-client SPEC`, see ZCClient), along five paths to the
// same file: native pread/pwrite on the backing file from a Go buffer
// (the floor) and from an arena mapping, pread/pwrite with O_DIRECT
// through a zcfuse uring mount, and the ring path (client.Session ops
// with RequireZC from a shared arena) in sleep and in poll mode. The rows
// are 4 KiB random read and write at QD1 (client pinned and unpinned),
// 4 KiB random at QD32 as batches (Submit 32, Wait), and sequential read
// and overwrite from 4 KiB to 16 MiB (the 1 MiB rows are the headline).
// Every ring run must pass the proof of path, from the server's counters
// before and after: zero_copy_bytes grew by exactly the bytes the client
// moved, zc_ops by its ops, copied_bytes and zc_errors not at all, and no
// FUSE READ or WRITE reached the server; the posix-uring runs must show
// every call as a FUSE request over the ring. The report compares the
// medians with the zero-copy path's goals (Report.ZCTargets). Fio targets
// and zero-copy paths share --targets, fio rows and zero-copy rows (named
// zc-...) share --rows, and all of them are interleaved in one run.
//
// Each server runs in a child process of its own, so its CPU time and
// garbage collection are not the harness's: zcfuse targets run the zcfuse
// binary (Config.Zcfuse: next to zcfuse-bench, or --zcfuse PATH) as
// `zcfuse mount`, and the go-fuse target runs zcfuse-bench itself as
// `zcfuse-bench serve-gofuse BACKING MOUNTPOINT`, which serves go-fuse's
// loopback (see ServeGofuse). The helpers are plain subcommands, listed
// in --help; nothing is chosen through the environment. Repetitions are
// interleaved (repetition 1 of every target, then repetition 2, ...),
// each on a fresh mount, and the tables show medians.
//
// Both kinds of rows, fio's on targets and the client's on paths, keep
// their own results in the report (Results, ZCResults: each measures
// different things), and go through one pipeline from there: the same
// medians, the same tables and the same chart code, over a family of
// columns and rows per kind. The JSON is the report itself; --from reads
// it back and prints the tables (and the chart) again.
//
// After every fio run the harness checks that the I/O reached the server
// where it should: for zcfuse from the server's per-channel counters (READ
// or WRITE over the ring for uring, over /dev/fuse for classic, none at all
// with passthrough), for go-fuse from the child's own counters. A run that
// fails the check is marked invalid, left out of the medians and listed
// under the tables.
//
// # Lifetimes
//
// Run makes a temporary directory under /dev/shm holding the backing
// directory and the mountpoints. Before it returns, on every path
// (including a cancelled context), every server it started is stopped,
// every mount under that directory is taken down (lazily as a last
// resort) and the directory is removed. Servers also get SIGTERM if the
// harness dies (PR_SET_PDEATHSIG), and unmount on it.
//
// # Errors
//
// Run fails before measuring when the machine lacks what a selected
// target needs (root, fio, /dev/fuse, FUSE-over-io_uring switched on, the
// zcfuse binary to mount with), naming what is missing. A server that does not mount or a fio run that
// fails is recorded in that result and the run goes on; Run then returns
// an error after writing the report. Invalid results (a failed channel
// check) are only an error with Config.Smoke.
package bench
