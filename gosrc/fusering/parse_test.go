package fusering

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1": 2, "0-3,8-11": 12, "0,2": 3} {
		got, err := parseCPUList(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "x", "0-y"} {
		_, err := parseCPUList(bad)
		require.Error(t, err, bad)
	}
	n, err := PossibleCPUs()
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 1)
}

func TestOpName(t *testing.T) {
	require.Equal(t, "READ", OpName(15))
	require.Equal(t, "WRITE", OpName(16))
	require.Equal(t, "INIT", OpName(26))
	require.Equal(t, "OP_7", OpName(7))
	require.Equal(t, "OTHER", OpName(0))
	require.Equal(t, "OTHER", OpName(4096))
}

// readAt reads across iovec boundaries the way a reply is split between
// the ring header and the payload.
func TestReadAt(t *testing.T) {
	stream := make([]byte, 24)
	binary.NativeEndian.PutUint32(stream[16:], 0xdeadbeef)
	binary.NativeEndian.PutUint32(stream[14:], 0x01020304)
	for _, cut := range []int{0, 15, 16, 17, 20, 24} {
		iov := [][]byte{stream[:cut], stream[cut:]}
		for _, off := range []int{14, 16, 20, 22, 24, 30} {
			var wo uapi.FuseWriteOut
			readAt(bytesOf(&wo), iov, off)
			var want [8]byte
			if off < len(stream) {
				copy(want[:], stream[off:])
			}
			require.Equal(t, want[:], bytesOf(&wo), "cut %d off %d", cut, off)
		}
	}
}

func TestOpNameDelegates(t *testing.T) {
	for op := uint32(1); op < NumOps; op++ {
		require.Equal(t, uapi.FuseOpcode(op).String(), OpName(op))
	}
	require.Equal(t, "GETXATTR", OpName(uint32(uapi.FuseOpGetxattr)))
	require.Equal(t, "COPY_FILE_RANGE_64", OpName(53))
	require.Equal(t, "OTHER", OpName(uint32(uapi.FuseOpCuseInit)))
}

func TestUnescapeMountinfo(t *testing.T) {
	require.Equal(t, "/a b", unescapeMountinfo(`/a\040b`))
	require.Equal(t, "/plain", unescapeMountinfo("/plain"))
	require.Equal(t, `/tab	x`, unescapeMountinfo(`/tab\011x`))
}

func TestParseTransport(t *testing.T) {
	for _, s := range []string{"auto", "uring", "classic"} {
		tr, err := ParseTransport(s)
		require.NoError(t, err)
		require.Equal(t, s, string(tr))
	}
	_, err := ParseTransport("fast")
	require.ErrorContains(t, err, "unknown transport")
}

func TestOpenRejectsBadDepth(t *testing.T) {
	for _, d := range []int{-1, MaxQueueDepth + 1} {
		_, err := Open(Config{Mountpoint: "/nonexistent", QueueDepth: d})
		require.ErrorContains(t, err, "queue depth")
	}
}

func TestMounts(t *testing.T) {
	mounts, err := Mounts()
	require.NoError(t, err)
	var root bool
	for _, m := range mounts {
		if m.Mountpoint == "/" {
			root = true
			require.NotEmpty(t, m.FSType)
		}
	}
	require.True(t, root, "/ is not in /proc/self/mountinfo: %v", mounts)
}
