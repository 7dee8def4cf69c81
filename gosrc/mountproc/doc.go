// Package mountproc starts the server processes that mount a file system
// for zcfuse's integration tests (tests/) and its benchmark harness
// (gosrc/bench), and cleans up after them: it starts one with its output
// collected, waits for the line that says the mount is ready, stops it,
// and finds and takes down whatever is still mounted under a directory.
// Two smaller helpers serve the tests of every package: StatusField reads
// a process's /proc status (threads, RSS), and UIDThread runs code on a
// thread of its own that has taken another uid.
//
// It knows nothing of zcfuse itself: the caller builds the command
// (`zcfuse mount ...`, the harness's go-fuse server) and says which line
// means ready. It is not part of zcfuse's API: only the tests and the
// harness use it, and nothing the library or the CLI links imports it.
// (It is not under gosrc/internal/ because tests/ lies outside gosrc/ and
// could not import it from there.)
//
// # Lifetimes
//
// Start begins a goroutine that waits for the process; Proc.Exited is
// closed once the process has ended (and, when Start connected its output
// to the Log, once that output is all in the Log). The caller stops the
// process (Proc.Stop, or a signal of its own) and then removes the mount
// if the process left it (Unmount, UnmountAll). The mount table is read
// afresh from /proc/self/mountinfo (fusering.Mounts) on every call.
//
// # Errors
//
// Proc.WaitReady returns ErrExited when the process ended before its
// ready line, and an error naming the timeout when neither came in time;
// the Log's Tail or String says what the process printed. Unmount and
// UnmountAll return the mounts that would not go, after a lazy unmount
// as the last resort.
package mountproc
