package fs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A lent fd outlives the handle's release until its last loan is given
// back (so its number is never reused under an op in flight); a released
// handle lends nothing; giving back twice is harmless.
func TestLendFd(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	fd, err := unix.Dup(int(f.Fd()))
	require.NoError(t, err)
	f.Close()
	h := &Handle{fd: fd}
	open := func() bool { _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); return err == nil }

	lfd, back1, err := h.LendFd()
	require.NoError(t, err)
	require.Equal(t, fd, lfd, "the handle's own fd, no duplicate")
	_, back2, err := h.LendFd()
	require.NoError(t, err)
	h.closeFd() // RELEASE
	require.True(t, open(), "two loans out: still open")
	_, _, err = h.LendFd()
	require.ErrorIs(t, err, syscall.EBADF, "released: nothing more to lend")
	back1()
	back1()
	require.True(t, open(), "one loan still out (a second give-back of the first counts once)")
	back2()
	require.False(t, open(), "the last loan back closes it")

	fd2, err := unix.Dup(0)
	require.NoError(t, err)
	h2 := &Handle{fd: fd2}
	h2.closeFd()
	_, err = unix.FcntlInt(uintptr(fd2), unix.F_GETFD, 0)
	require.Error(t, err, "no loans: closed at release")
}
