package server

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A change made behind the kernel's back stays invisible through the
// mount while the page cache holds the old bytes; the server's
// invalidation (written to /dev/fuse by the notifier goroutine, on either
// transport) makes the next read fresh.
func TestNotifyInvalidatesPageCache(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, mnt := mount(t, tr, Options{AttrTimeout: time.Hour, EntryTimeout: time.Hour})
			writeFile(t, join(backing, "f"), []byte("old content"))
			// One open file: every open without FOPEN_KEEP_CACHE drops the
			// cache, so reread through the same descriptor.
			f, err := os.Open(join(mnt, "f"))
			require.NoError(t, err)
			defer f.Close()
			read := func() string {
				buf := make([]byte, 64)
				n, err := f.ReadAt(buf, 0)
				if n == 0 {
					require.NoError(t, err)
				}
				return string(buf[:n])
			}
			require.Equal(t, "old content", read())

			// Same size, so the cached attributes do not give it away.
			writeFile(t, join(backing, "f"), []byte("new content"))
			require.Equal(t, "old content", read(), "expected the page cache to serve stale bytes before invalidation")

			var st syscall.Stat_t
			require.NoError(t, syscall.Stat(join(backing, "f"), &st))
			node, ok := srv.fsys.NodeOf(st.Ino)
			require.True(t, ok, "the kernel remembers the open file's inode")
			require.NoError(t, srv.conn.Load().Invalidator().InvalidateNow(node, 0, 0))
			require.Eventually(t, func() bool { return read() == "new content" }, 5*time.Second, 10*time.Millisecond)
		})
	}
}
