package server

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// listxattr lists path's attribute names.
func listxattr(t *testing.T, path string) []string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(path, buf)
	require.NoError(t, err)
	var names []string
	for _, b := range bytes.Split(buf[:n], []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	return names
}

// TestListxattrFilters: a listing through the mount leaves out the
// server's own attribute names (a backing file may carry them), and
// trusted.* for a root caller without CAP_SYS_ADMIN (which it would not
// see on the backing file system; the request runs as the server).
func TestListxattrFilters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("trusted.* attributes need root")
	}
	_, backing, mnt := mount(t, transports(t)[0], Options{AllowOther: true})
	p := join(backing, "f")
	writeFile(t, p, []byte("x"))
	for _, a := range []string{"trusted.t", "user.u", ControlXattr} {
		require.NoError(t, unix.Setxattr(p, a, []byte("v"), 0))
	}
	require.ElementsMatch(t, []string{"trusted.t", "user.u"}, listxattr(t, join(mnt, "f")), "root with CAP_SYS_ADMIN")
	got := make(chan []string)
	go func() {
		runtime.LockOSThread() // dies with the goroutine, capability gone
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			got <- []string{err.Error()}
			return
		}
		data[0].Effective &^= 1 << 21 // CAP_SYS_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			got <- []string{err.Error()}
			return
		}
		buf := make([]byte, 4096)
		n, err := unix.Listxattr(join(mnt, "f"), buf)
		if err != nil {
			got <- []string{err.Error()}
			return
		}
		got <- strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	}()
	require.Equal(t, []string{"user.u"}, <-got, "root without CAP_SYS_ADMIN")
}

// TestDeletedFileSpace: a file the kernel still remembers but that was
// deleted directly on the backing directory is not kept open by the
// server's fd cache for long: its space comes back.
func TestDeletedFileSpace(t *testing.T) {
	_, backing, mnt := mount(t, transports(t)[0], Options{AttrTimeout: time.Hour, EntryTimeout: time.Hour})
	writeFile(t, join(mnt, "gone"), bytes.Repeat([]byte("x"), 1<<20))
	_, err := os.Stat(join(mnt, "gone")) // the kernel remembers it for an hour
	require.NoError(t, err)
	require.NoError(t, os.Remove(join(backing, "gone")))
	held := func() bool {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasSuffix(l, "/gone (deleted)") {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return !held() }, 5*time.Second, 50*time.Millisecond,
		"the server still holds the deleted file open")
}
