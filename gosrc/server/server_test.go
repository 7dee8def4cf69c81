package server

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
)

// The stats attribute is answered by the server: it is valid JSON with
// the transport, it is not listed, it cannot be set or removed, and it
// never reaches the backing directory.
func TestStatsXattr(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, mnt := mount(t, tr, Options{})
			writeFile(t, join(mnt, "f"), []byte("0123456789"))
			got, _, err := ReadStats(mnt)
			require.NoError(t, err)
			require.Equal(t, string(tr), got.Transport)
			require.Equal(t, os.Getpid(), got.PID)
			require.Equal(t, srv.Stats().Mountpoint, got.Mountpoint)
			require.GreaterOrEqual(t, got.BytesWritten, uint64(10))

			buf := make([]byte, 4096)
			n, err := syscall.Listxattr(mnt, buf)
			require.NoError(t, err)
			require.NotContains(t, string(buf[:n]), StatsXattr)
			require.ErrorIs(t, syscall.Setxattr(mnt, StatsXattr, []byte("x"), 0), syscall.EPERM)
			require.ErrorIs(t, syscall.Removexattr(mnt, StatsXattr), syscall.EPERM)
			_, err = syscall.Getxattr(backing, StatsXattr, buf)
			require.Error(t, err, "the backing directory must not carry the attribute")
		})
	}
}

// New refuses bad directories with errors that name the problem.
func TestNewErrors(t *testing.T) {
	dir := shmDir(t, "new")
	file := join(dir, "file")
	writeFile(t, file, nil)
	for _, c := range []struct{ backing, mnt, want string }{
		{join(dir, "missing"), dir, "no such file"},
		{file, dir, "not a directory"},
		{dir, join(dir, "missing"), "no such file"},
		{dir, file, "not a directory"},
		{dir, dir, "same"},
	} {
		_, err := New(c.backing, c.mnt, Options{})
		require.Error(t, err, "%s on %s", c.backing, c.mnt)
		require.True(t, strings.Contains(err.Error(), c.want), "%v should say %q", err, c.want)
	}
}

// A second server on a busy mountpoint fails before mounting anything.
func TestBusyMountpoint(t *testing.T) {
	_, _, mnt := mount(t, fusering.TransportClassic, Options{})
	_, err := New(shmDir(t, "b2"), mnt, Options{})
	require.ErrorContains(t, err, "busy")
}
