package arena

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/ring"
	"golang.org/x/sys/unix"
)

func countFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func countMaps(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	return strings.Count(string(b), "\n")
}

// Create gives a sealed, shared, writable arena: the seals forbid both
// truncation and growth, and an import of its fd sees the same bytes.
func TestCreateSealedShared(t *testing.T) {
	for _, size := range []int64{PageSize, 64 << 20} {
		a, err := Create(size, Options{})
		require.NoError(t, err)
		require.EqualValues(t, size, a.Size())
		seals, err := unix.FcntlInt(uintptr(a.Fd()), unix.F_GET_SEALS, 0)
		require.NoError(t, err)
		require.Equal(t, RequiredSeals, seals&RequiredSeals)
		require.ErrorIs(t, unix.Ftruncate(a.Fd(), size/2), unix.EPERM, "shrink must be refused")
		require.ErrorIs(t, unix.Ftruncate(a.Fd(), size*2), unix.EPERM, "grow must be refused")

		b, err := Import(a.Fd(), size)
		require.NoError(t, err)
		copy(a.Bytes()[size-5:], "hello")
		require.Equal(t, "hello", string(b.Bytes()[size-5:]))
		require.NoError(t, b.Close())
		require.NoError(t, a.Close())
		require.NoError(t, a.Close(), "second Close")
	}
}

func TestCreateBadSizes(t *testing.T) {
	for _, size := range []int64{0, -4096, 100, PageSize + 1, MaxSize + PageSize} {
		_, err := Create(size, Options{})
		require.ErrorIs(t, err, unix.EINVAL, "size %d", size)
	}
}

// What a server must refuse, each with its errno.
func TestValidateRejects(t *testing.T) {
	const size = 64 << 10

	unsealed, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	require.NoError(t, err)
	defer unix.Close(unsealed)
	require.NoError(t, unix.Ftruncate(unsealed, size))
	_, err = Validate(unsealed, size)
	require.ErrorIs(t, err, unix.EPERM, "unsealed memfd")

	small, err := Create(size/2, Options{})
	require.NoError(t, err)
	defer small.Close()
	_, err = Validate(small.Fd(), size)
	require.ErrorIs(t, err, unix.EINVAL, "smaller than declared")
	_, err = Validate(small.Fd(), size/2+1)
	require.ErrorIs(t, err, unix.EINVAL, "unaligned declared size")

	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	_, err = Validate(p[0], size)
	require.ErrorIs(t, err, unix.EINVAL, "pipe")

	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	_, err = Validate(sp[0], size)
	require.ErrorIs(t, err, unix.EINVAL, "socket")

	// A regular file on disk cannot be sealed at all; one on tmpfs can
	// but carries only F_SEAL_SEAL, so it may still shrink.
	for dir, want := range map[string]error{t.TempDir(): unix.EINVAL, "/dev/shm": unix.EPERM} {
		f, err := os.CreateTemp(dir, "zcfuse-arena-test-")
		require.NoError(t, err)
		defer os.Remove(f.Name())
		defer f.Close()
		require.NoError(t, f.Truncate(size))
		_, err = Validate(int(f.Fd()), size)
		require.ErrorIs(t, err, want, "regular file in %s", dir)
	}

	_, err = Validate(-1, size)
	require.Error(t, err)
	_, err = Import(unsealed, size)
	require.ErrorIs(t, err, unix.EPERM, "Import validates")
}

// An arena's fd survives SCM_RIGHTS and still validates on the far side:
// the path every arena takes to the server.
func TestImportAfterSCMRights(t *testing.T) {
	a, err := Create(1<<20, Options{})
	require.NoError(t, err)
	defer a.Close()
	copy(a.Bytes(), "across")

	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	require.NoError(t, unix.Sendmsg(sp[0], []byte{1}, unix.UnixRights(a.Fd()), nil, 0))
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sp[1], make([]byte, 1), oob, unix.MSG_CMSG_CLOEXEC)
	require.NoError(t, err)
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	require.NoError(t, err)
	fds, err := unix.ParseUnixRights(&msgs[0])
	require.NoError(t, err)
	require.Len(t, fds, 1)
	defer unix.Close(fds[0])

	b, err := Import(fds[0], 1<<20)
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, "across", string(b.Bytes()[:6]))
}

// Arena memory registers as an io_uring fixed buffer, and a WRITE_FIXED
// from it reaches a file: the server's zero-copy path in miniature.
func TestRegistersAsFixedBuffer(t *testing.T) {
	a, err := Create(1<<20, Options{})
	require.NoError(t, err)
	defer a.Close()
	copy(a.Bytes(), "fixed buffer bytes")

	r, err := ring.New(ring.Config{Entries: 4})
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.RegisterBuffersSparse(2))
	require.NoError(t, r.UpdateBuffers(1, [][]byte{a.Bytes()}))

	f, err := os.CreateTemp("/dev/shm", "zcfuse-arena-fixed-")
	require.NoError(t, err)
	defer os.Remove(f.Name())
	defer f.Close()
	sqe := r.GetSQE()
	ring.PrepWriteFixed(sqe, int(f.Fd()), a.Bytes()[:18], 0, 1, 7)
	cqe, err := r.WaitCQE(-1)
	require.NoError(t, err)
	require.EqualValues(t, 7, cqe.UserData)
	require.EqualValues(t, 18, cqe.Res)
	r.CQESeen()
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	require.Equal(t, "fixed buffer bytes", string(got))
}

func TestContains(t *testing.T) {
	a, err := Create(2*PageSize, Options{})
	require.NoError(t, err)
	defer a.Close()
	base := uintptr(unsafe.Pointer(&a.Bytes()[0]))
	for _, c := range []struct {
		p    uintptr
		n    int
		off  int64
		want bool
	}{
		{base, 1, 0, true},
		{base, 2 * PageSize, 0, true},
		{base + 100, 2*PageSize - 100, 100, true},
		{base + 100, 2*PageSize - 99, 0, false}, // straddles the end
		{base - 1, 2, 0, false},                 // starts before
		{base + 2*PageSize, 1, 0, false},        // starts at the end
		{base, 0, 0, false},
		{^uintptr(0) - 10, 100, 0, false}, // would overflow
	} {
		off, ok := a.Contains(c.p, c.n)
		require.Equal(t, c.want, ok, "%#x+%d", c.p-base, c.n)
		if ok {
			require.Equal(t, c.off, off)
		}
	}
}

// Huge-page arenas need reserved pages. Without free ones the error says
// how to reserve some; as root the test then reserves two itself (and
// gives them back) to check the arena works.
func TestHuge(t *testing.T) {
	_, err := Create(PageSize, Options{Huge: true})
	require.ErrorIs(t, err, unix.EINVAL, "huge arenas are whole huge pages")

	const knob = "/proc/sys/vm/nr_hugepages"
	a, err := Create(HugePageSize, Options{Huge: true})
	if errors.Is(err, unix.ENOMEM) {
		require.Contains(t, err.Error(), "nr_hugepages", "the error must say how to reserve pages")
		old, rerr := os.ReadFile(knob)
		if rerr != nil || os.Geteuid() != 0 {
			t.Skipf("no huge pages free and not root to reserve some: %v", err)
		}
		n := strings.TrimSpace(string(old))
		require.NoError(t, os.WriteFile(knob, []byte(fmt.Sprint(atoi(n)+2)), 0))
		t.Cleanup(func() { os.WriteFile(knob, []byte(n), 0) })
		a, err = Create(HugePageSize, Options{Huge: true})
		if errors.Is(err, unix.ENOMEM) {
			t.Skipf("the kernel could not find 2 huge pages to reserve: %v", err)
		}
	}
	require.NoError(t, err)
	defer a.Close()
	require.True(t, a.Huge())
	copy(a.Bytes()[HugePageSize-4:], "huge")
	huge, err := Validate(a.Fd(), HugePageSize)
	require.NoError(t, err)
	require.True(t, huge)
	b, err := Import(a.Fd(), HugePageSize)
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, "huge", string(b.Bytes()[HugePageSize-4:]))
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// Creating and closing many arenas leaves no fd and no mapping behind.
func TestNoLeaks(t *testing.T) {
	fds, maps := countFds(t), countMaps(t)
	for range 200 {
		a, err := Create(64<<10, Options{})
		require.NoError(t, err)
		b, err := Import(a.Fd(), 64<<10)
		require.NoError(t, err)
		am, bm := a.Bytes(), b.Bytes()
		require.NoError(t, b.Close())
		require.NoError(t, a.Close())
		if !raceEnabled {
			require.False(t, mapped(am), "still mapped after Close")
			require.False(t, mapped(bm), "import still mapped after Close")
		}
	}
	require.Equal(t, fds, countFds(t))
	// The runtime maps memory of its own meanwhile; 200 leaked arenas
	// would add hundreds.
	require.LessOrEqual(t, countMaps(t), maps+8)
}

// mapped reports whether any page of b is mapped (mincore fails with
// ENOMEM on unmapped memory).
func mapped(b []byte) bool {
	vec := make([]byte, (len(b)+PageSize-1)/PageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	return !errors.Is(errno, unix.ENOMEM)
}
