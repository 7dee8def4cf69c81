package server

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain guards against the one failure an in-process FUSE test cannot
// recover from: if a test hangs until go test's -timeout kills the
// binary, a thread blocked in a request to its own (now dead) server
// stays in D state forever. Shortly before the timeout this aborts every
// test mount's connection, so the blocked calls fail and the process can
// exit and report the hang.
func TestMain(m *testing.M) {
	if mnt := os.Getenv(clientModeEnv); mnt != "" {
		os.Exit(clientMode(mnt)) // this binary re-executed as a client process
	}
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 30*time.Second {
			time.AfterFunc(d-15*time.Second, func() {
				fmt.Fprintln(os.Stderr, "zcfuse tests: about to time out; aborting test mounts")
				abortTestMounts()
			})
		}
	}
	os.Exit(m.Run())
}

// abortTestMounts aborts the FUSE connection of every mount under
// /dev/shm/zcfuse-test-* owned by this test binary's mounts and detaches it.
func abortTestMounts() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[4], "/dev/shm/zcfuse-test-mnt-") || !strings.Contains(sc.Text(), " - fuse.zcfuse ") {
			continue
		}
		minor := fields[2][strings.IndexByte(fields[2], ':')+1:]
		os.WriteFile("/sys/fs/fuse/connections/"+minor+"/abort", []byte("1"), 0)
		unix.Unmount(fields[4], unix.MNT_DETACH)
	}
}
