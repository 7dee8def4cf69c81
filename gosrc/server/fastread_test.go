package server

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// READs on handles opened over the ring take the fast path (a pread on
// the backing fd, no ProtocolServer) and return the right bytes, also when
// handles and fds are closed and reused between files; on the classic
// transport nothing takes it.
func TestFastReadPath(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, mnt := mount(t, tr, Options{})
			want := map[string][]byte{}
			for i := range 8 {
				name := fmt.Sprintf("f%d", i)
				want[name] = bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i*4096)
				writeFile(t, join(backing, name), want[name])
			}
			for round := range 3 {
				for name, data := range want {
					flags := os.O_RDONLY
					if round == 1 {
						flags |= unix.O_DIRECT
					}
					f, err := os.OpenFile(join(mnt, name), flags, 0)
					require.NoError(t, err)
					buf := make([]byte, len(data)+8192)
					if flags&unix.O_DIRECT != 0 {
						buf = alignedBuf(t, len(data)+8192)
					}
					n, err := f.ReadAt(buf, 0)
					require.True(t, err == nil || n == len(data), "%v", err)
					require.True(t, bytes.Equal(data, buf[:n]), "%s round %d: wrong bytes", name, round)
					require.NoError(t, f.Close())
				}
			}
			st := srv.Stats()
			if tr == fusering.TransportURing {
				require.NotZero(t, st.FastReads)
				require.LessOrEqual(t, st.FastReads, st.Requests[fusering.ChannelRing]["READ"])
			} else {
				require.Zero(t, st.FastReads)
			}
		})
	}
}

func alignedBuf(t *testing.T, n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}
