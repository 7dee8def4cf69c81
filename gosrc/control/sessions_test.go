package control

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A server that died without cleaning up leaves its socket; the next
// server in the same directory removes it, and leaves live ones alone.
func TestSweepStaleSockets(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "zcfuse-999999999-deadbeef.sock")
	live := filepath.Join(dir, fmt.Sprintf("zcfuse-%d-0.sock", os.Getpid()))
	for _, p := range []string{stale, live} {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Bind(fd, &unix.SockaddrUnix{Name: p}))
		unix.Close(fd)
	}
	sweepStaleSockets(dir)
	_, err := os.Stat(stale)
	require.True(t, os.IsNotExist(err), "stale socket removed")
	_, err = os.Stat(live)
	require.NoError(t, err, "a live server's socket stays")
}
