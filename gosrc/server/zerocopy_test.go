package server

import (
	"bytes"
	"crypto/rand"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// fuseRW is how many FUSE READ and WRITE requests the server has seen,
// on either channel.
func fuseRW(st Stats) uint64 {
	return st.RingOps[uapi.FuseOpRead] + st.RingOps[uapi.FuseOpWrite] + st.DevOps[uapi.FuseOpRead] + st.DevOps[uapi.FuseOpWrite]
}

// zcSetup mounts, writes file f through the mount, and gives a session
// with one shared arena and f attached read-write.
func zcSetup(t *testing.T, tr fusering.Transport, opts Options, arenaSize int64) (*Server, string, *client.Session, *arena.Arena, uint32, int) {
	t.Helper()
	srv, backing, mnt := mount(t, tr, opts)
	writeFile(t, join(mnt, "f"), []byte("posix"))
	s, err := client.Connect(mnt)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	a, err := arena.Create(arenaSize, arena.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	_, _, err = s.Share(a)
	require.NoError(t, err)
	fd := openFd(t, join(mnt, "f"), unix.O_RDWR)
	t.Cleanup(func() { unix.Close(fd) })
	id, err := s.Attach(fd)
	require.NoError(t, err)
	return srv, backing, s, a, id, fd
}

// Proof of path: bytes in an arena reach the backing file and come back
// zero-copy — the server's zero-copy bytes grow by exactly what was
// issued, it copies nothing, and no FUSE READ or WRITE moves — on both
// transports. Outside an arena the same call takes the posix path, or
// fails with EFAULT under RequireZC; a buffer across an arena's end is
// EFAULT.
func TestZeroCopyProofOfPath(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, s, a, f, _ := zcSetup(t, tr, Options{}, 8<<20)
			mem := a.Bytes()
			rand.Read(mem[:1<<20])
			before := srv.Stats()

			n, err := s.Pwrite(f, mem[:1<<20], 4096, client.RequireZC)
			require.NoError(t, err)
			require.Equal(t, 1<<20, n)
			n, err = s.Pread(f, mem[2<<20:3<<20], 4096, client.RequireZC)
			require.NoError(t, err)
			require.Equal(t, 1<<20, n)
			require.True(t, bytes.Equal(mem[:1<<20], mem[2<<20:3<<20]), "read back what was written")
			onDisk, err := os.ReadFile(join(backing, "f"))
			require.NoError(t, err)
			require.Equal(t, 4096+1<<20, len(onDisk))
			require.True(t, bytes.Equal(mem[:1<<20], onDisk[4096:]), "the backing file holds the arena's bytes")

			after := srv.Stats()
			require.Equal(t, before.ZeroCopyBytes+2<<20, after.ZeroCopyBytes, "zero-copied bytes grew by what was issued")
			require.Equal(t, before.CopiedBytes, after.CopiedBytes, "nothing copied")
			require.Equal(t, fuseRW(before), fuseRW(after), "no FUSE READ or WRITE")
			require.Equal(t, before.ZCOps+2, after.ZCOps)

			// Outside every arena: EFAULT under RequireZC, and nothing moves.
			plain := make([]byte, 4096)
			_, err = s.Pwrite(f, plain, 0, client.RequireZC)
			require.ErrorIs(t, err, unix.EFAULT)
			_, err = s.Pread(f, plain, 0, client.RequireZC)
			require.ErrorIs(t, err, unix.EFAULT)
			// Across the arena's end: EFAULT, with or without RequireZC.
			_, err = s.Pwrite(f, unsafeExtend(mem[len(mem)-4096:], 8192), 0, 0)
			require.ErrorIs(t, err, unix.EFAULT)
			st := srv.Stats()
			require.Equal(t, after.ZeroCopyBytes, st.ZeroCopyBytes)
			require.Equal(t, fuseRW(after), fuseRW(st))

			// Without RequireZC a plain buffer takes the posix path.
			copy(plain, "plain buffer")
			n, err = s.Pwrite(f, plain, 0, 0)
			require.NoError(t, err)
			require.Equal(t, 4096, n)
			st2 := srv.Stats()
			require.Equal(t, st.ZeroCopyBytes, st2.ZeroCopyBytes, "the posix path is not zero-copy")
			require.Greater(t, fuseRW(st2), fuseRW(st), "it went through FUSE")
			got := make([]byte, 12)
			_, err = s.Pread(f, got, 0, 0)
			require.NoError(t, err)
			require.Equal(t, "plain buffer", string(got))
		})
	}
}

// unsafeExtend returns b grown to n bytes past its length, in place: a
// slice that runs over the end of the memory b lies in.
func unsafeExtend(b []byte, n int) []byte {
	return unsafe.Slice(&b[0], n)
}

// Both wait modes move the same bytes; poll mode is just another way to
// wait.
func TestZeroCopyModes(t *testing.T) {
	srv, _, s, a, f, _ := zcSetup(t, fusering.TransportURing, Options{}, 1<<20)
	mem := a.Bytes()
	for _, mode := range []client.Mode{client.ModePoll, client.ModeSleep, client.ModePoll} {
		s.SetMode(mode, 100*time.Microsecond)
		for i := range 200 {
			rand.Read(mem[:4096])
			n, err := s.Pwrite(f, mem[:4096], int64(i)*4096, client.RequireZC)
			require.NoError(t, err)
			require.Equal(t, 4096, n)
			n, err = s.Pread(f, mem[4096:8192], int64(i)*4096, client.RequireZC)
			require.NoError(t, err)
			require.Equal(t, 4096, n)
			require.True(t, bytes.Equal(mem[:4096], mem[4096:8192]), "mode %d op %d", mode, i)
		}
		time.Sleep(5 * time.Millisecond) // the server stops polling
	}
	require.EqualValues(t, 3*200*2*4096, srv.Stats().ZeroCopyBytes)
}
