package fusering

import (
	"encoding/binary"
	"io"
	"log"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/ring"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// The transport reads and writes kernel structs through uapi types laid
// over the bytes (unsafe.go). These tests pin the bytes it produces
// against encodings written out by offset, the way the kernel's
// include/uapi/linux/fuse.h lays them out, and check that short or
// malformed input is answered, not read past.

var ne = binary.NativeEndian

func TestStructAt(t *testing.T) {
	buf := make([]byte, 64)
	require.NotNil(t, structAt[uapi.FuseInHeader](buf[:40]))
	require.Nil(t, structAt[uapi.FuseInHeader](buf[:39]), "short")
	require.Nil(t, structAt[uapi.FuseInHeader](nil), "empty")
	require.Nil(t, structAt[uapi.FuseInHeader](buf[4:48]), "misaligned")
	require.NotNil(t, structAt[uapi.FuseWriteOut](buf[4:12]), "4-byte aligned is enough for fuse_write_out")

	ne.PutUint32(buf[0:], 80)
	ne.PutUint32(buf[4:], 15)
	ne.PutUint64(buf[8:], 0x1122334455667788)
	h := structAt[uapi.FuseInHeader](buf)
	require.Equal(t, uapi.FuseInHeader{Len: 80, Opcode: 15, Unique: 0x1122334455667788}, *h)
	h.NodeID = 9 // a view, not a copy
	require.Equal(t, uint64(9), ne.Uint64(buf[16:]))
	require.Len(t, bytesOf(h), uapi.FuseInHeaderSize)
	require.Equal(t, 16, inHeaderUniqueEnd)

	require.Len(t, iovecsAt(make([]byte, 32), 2), 2)
	require.Nil(t, iovecsAt(make([]byte, 31), 2))
}

// worker returns a ring worker whose entry lies in Go memory (no ring),
// enough for handle and fastRead.
func worker(t testing.TB, readFd ReadFder) *ringWorker {
	c := &Conn{logger: log.New(io.Discard, "", 0), readFd: readFd}
	w := &ringWorker{c: c, payload: make([]byte, MaxWrite)}
	require.NoError(t, w.mapHeader(make([]byte, 4096)[:uapi.FuseURingHeaderSize]))
	return w
}

// putRequest writes a ring request by offset: in header, op_in, payload size.
func putRequest(hdr []byte, length, op uint32, unique uint64, opIn []byte, psz uint32) {
	clear(hdr)
	ne.PutUint32(hdr[0:], length)
	ne.PutUint32(hdr[4:], op)
	ne.PutUint64(hdr[8:], unique)
	copy(hdr[128:256], opIn)
	ne.PutUint32(hdr[272:], psz)
}

// readIn is a fuse_read_in by offset.
func readIn(fh, off uint64, size uint32) []byte {
	b := make([]byte, 40)
	ne.PutUint64(b[0:], fh)
	ne.PutUint64(b[8:], off)
	ne.PutUint32(b[16:], size)
	return b
}

// reply returns the reply a ring entry holds: out header and payload size.
func reply(hdr []byte) (length uint32, errno int32, unique uint64, psz uint32) {
	return ne.Uint32(hdr[0:]), int32(ne.Uint32(hdr[4:])), ne.Uint64(hdr[8:]), ne.Uint32(hdr[272:])
}

type fdReader int

func (f fdReader) ReadFd(fh uint64) (int, bool) { return int(f), fh == 1 }

func devZero(t testing.TB) int {
	fd, err := unix.Open("/dev/zero", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestFastReadReply(t *testing.T) {
	w := worker(t, fdReader(devZero(t)))
	putRequest(w.hdr, 80, 15, 77, readIn(1, 4096, 4096), 0)
	w.payload[0] = 1
	w.handle()
	l, e, u, psz := reply(w.hdr)
	require.Equal(t, []any{uint32(16 + 4096), int32(0), uint64(77), uint32(4096)}, []any{l, e, u, psz})
	require.Zero(t, w.payload[0], "read into the payload")
	require.Equal(t, uint64(1), w.c.cnt.ops[chanRing][15].Load())
	require.Equal(t, uint64(4096), w.c.cnt.bytesRead.Load())

	// A size larger than the payload is cut to it.
	putRequest(w.hdr, 80, 15, 78, readIn(1, 0, 1<<30), 0)
	w.handle()
	_, _, _, psz = reply(w.hdr)
	require.Equal(t, uint32(MaxWrite), psz)

	// A failed pread answers -errno.
	bad := worker(t, fdReader(-1))
	putRequest(bad.hdr, 80, 15, 79, readIn(1, 0, 4096), 0)
	bad.handle()
	l, e, u, psz = reply(bad.hdr)
	require.Equal(t, []any{uint32(16), -int32(syscall.EBADF), uint64(79), uint32(0)}, []any{l, e, u, psz})
	require.Equal(t, uint64(1), bad.c.cnt.errors.Load())
}

func TestMalformedRingRequest(t *testing.T) {
	w := worker(t, nil)
	for _, tc := range []struct {
		name   string
		length uint32
		psz    uint32
	}{
		{"shorter than its header", 8, 0},
		{"payload past the buffer", 40 + MaxWrite + 1, MaxWrite + 1},
		{"argument past op_in", 40 + 129, 0},
		{"payload larger than the request", 40, 8},
		{"zero length", 0, 0},
	} {
		putRequest(w.hdr, tc.length, 3, 55, nil, tc.psz)
		w.handle()
		l, e, u, psz := reply(w.hdr)
		require.Equal(t, []any{uint32(16), -int32(syscall.EIO), uint64(55), uint32(0)}, []any{l, e, u, psz}, tc.name)
	}
	require.Equal(t, uint64(5), w.c.cnt.errors.Load())
}

func TestShortDevRequest(t *testing.T) {
	c := &Conn{logger: log.New(io.Discard, "", 0)}
	in := make([]byte, 64)
	ne.PutUint32(in[0:], 39)
	ne.PutUint32(in[4:], 3)
	ne.PutUint64(in[8:], 0xabcdef)
	for n := 0; n < uapi.FuseInHeaderSize; n++ {
		out := make([]byte, 4096)
		m := c.serve(chanDev, [][]byte{in[:n]}, [][]byte{out})
		if n < 16 {
			require.Zero(t, m, "%d bytes: no unique to answer", n)
			continue
		}
		require.Equal(t, 16, m, "%d bytes", n)
		require.Equal(t, uint32(16), ne.Uint32(out[0:]))
		require.Equal(t, -int32(syscall.EIO), int32(ne.Uint32(out[4:])))
		require.Equal(t, uint64(0xabcdef), ne.Uint64(out[8:]))
	}
	// No room for a reply's header: nothing is written.
	require.Zero(t, c.serve(chanDev, [][]byte{in[:20]}, [][]byte{make([]byte, 8)}))
}

func TestPutError(t *testing.T) {
	// The ring's in and out headers share in_out: unique survives.
	w := worker(t, nil)
	putRequest(w.hdr, 40, 3, 0x0102030405060708, nil, 0)
	putError(w.out, w.in.Unique, syscall.ENOENT)
	want := make([]byte, 16)
	ne.PutUint32(want[0:], 16)
	errno := -int32(syscall.ENOENT)
	ne.PutUint32(want[4:], uint32(errno))
	ne.PutUint64(want[8:], 0x0102030405060708)
	require.Equal(t, want, w.hdr[:16])
}

func TestPutCmd(t *testing.T) {
	r, err := ring.New(ring.Config{Entries: 4, SQE128: true})
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	defer r.Close()
	w := &ringWorker{r: r, qid: 3}
	sqe := r.GetSQE()
	cmd := r.Cmd(sqe)
	for i := range cmd {
		cmd[i] = 0xff
	}
	require.NoError(t, w.putCmd(sqe, 0x1122334455667788))
	want := make([]byte, 24)
	ne.PutUint64(want[8:], 0x1122334455667788)
	ne.PutUint16(want[16:], 3)
	require.Equal(t, want, cmd[:24])

	small, err := ring.New(ring.Config{Entries: 4})
	require.NoError(t, err)
	defer small.Close()
	w.r = small
	require.ErrorContains(t, w.putCmd(small.GetSQE(), 1), "SQE128")
}

// oldNotification is how notifications were encoded by offset.
func oldNotification(code uint32, parts ...[]byte) []byte {
	size := 16
	for _, p := range parts {
		size += len(p)
	}
	msg := make([]byte, 16, size)
	ne.PutUint32(msg[0:], uint32(size))
	ne.PutUint32(msg[4:], code)
	for _, p := range parts {
		msg = append(msg, p...)
	}
	return msg
}

func le64(v uint64) []byte { return ne.AppendUint64(nil, v) }

func le32x2(a, b uint32) []byte { return ne.AppendUint32(ne.AppendUint32(nil, a), b) }

func TestNotifications(t *testing.T) {
	p := make([]int, 2)
	require.NoError(t, unix.Pipe2(p, unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	n := newNotifier(p[1])
	n.start()
	defer n.stop()

	read := func(size int) []byte {
		b := make([]byte, size)
		_, err := io.ReadFull(pipeReader(p[0]), b)
		require.NoError(t, err)
		return b
	}
	check := func(want []byte) {
		t.Helper()
		require.Equal(t, want, read(len(want)))
	}

	require.True(t, n.InodeNotify(7, -1, 4096).Ok())
	check(oldNotification(2, le64(7), le64(^uint64(0)), le64(4096)))

	require.True(t, n.EntryNotify(1, "name").Ok())
	check(oldNotification(3, le64(1), le32x2(4, 0), []byte("name\x00")))

	require.True(t, n.DeleteNotify(1, 9, "gone").Ok())
	check(oldNotification(6, le64(1), le64(9), le32x2(4, 0), []byte("gone\x00")))

	require.True(t, n.InodeNotifyStoreCache(5, 8192, []byte("data")).Ok())
	check(oldNotification(4, le64(5), le64(8192), le32x2(4, 0), []byte("data")))

	require.NoError(t, n.InvalidateNow(11, 0, -1))
	check(oldNotification(2, le64(11), le64(0), le64(^uint64(0))))
}

type pipeReader int

func (r pipeReader) Read(b []byte) (int, error) { return unix.Read(int(r), b) }

// The request path must not allocate.
func TestHotPathAllocs(t *testing.T) {
	w := worker(t, fdReader(devZero(t)))
	if n := testing.AllocsPerRun(100, func() {
		putRequest(w.hdr, 80, 15, 77, nil, 0)
		ne.PutUint64(w.hdr[128:], 1)
		ne.PutUint32(w.hdr[128+16:], 4096)
		w.handle()
	}); n != 0 {
		t.Errorf("fast READ: %v allocations", n)
	}
	buf := make([]byte, 4096)
	if n := testing.AllocsPerRun(100, func() {
		h := structAt[uapi.FuseInHeader](buf)
		o := structAt[uapi.FuseOutHeader](buf)
		putError(o, h.Unique, syscall.EIO)
		var wo uapi.FuseWriteOut
		readAt(bytesOf(&wo), [][]byte{buf[:16], buf[16:]}, 16)
		_ = OpName(uint32(uapi.FuseOpRead))
	}); n != 0 {
		t.Errorf("views: %v allocations", n)
	}
	var out [64]byte
	body := uapi.FuseNotifyInvalInodeOut{Ino: 1}
	if n := testing.AllocsPerRun(100, func() {
		_ = notification(out[:0], uapi.FuseNotifyInvalInode, bytesOf(&body))
	}); n != 0 {
		t.Errorf("InvalidateNow's message: %v allocations", n)
	}
}

func BenchmarkFastRead(b *testing.B) {
	w := worker(b, fdReader(devZero(b)))
	b.ReportAllocs()
	for b.Loop() {
		putRequest(w.hdr, 80, 15, 77, nil, 0)
		ne.PutUint64(w.hdr[128:], 1)
		w.handle()
	}
}

func BenchmarkMalformed(b *testing.B) {
	w := worker(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		putRequest(w.hdr, 8, 3, 77, nil, 0)
		w.handle()
	}
}
