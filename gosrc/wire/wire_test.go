package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// samples holds one message of every type, with fields that make byte
// order and offsets visible.
func samples() []Msg {
	return []Msg{
		&Hello{Version: 1, Flags: 0x01020304, PID: 4242},
		&HelloReply{
			Version: 1, SessionID: 0x1122334455667788,
			Token:     [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			MaxArenas: 64, MaxArenaSize: 1 << 30, MaxArenaBytes: 4 << 30, MaxAttachedFiles: 1024,
		},
		&ShareArena{Size: 64 << 20, Flags: 0},
		&ShareArenaReply{ArenaID: 7, Registered: true},
		&ShareArenaReply{ArenaID: 8, Registered: false},
		&ReleaseArena{ArenaID: 7},
		&Detach{FileID: 3},
		&Stats{},
		&StatsReply{Sessions: 1, Arenas: 2, RegisteredBytes: 3 << 20, AttachedFiles: 4},
		&Bye{},
		&Ok{},
		&Error{Errno: syscall.ENOSPC, Message: "arena limit reached (64)"},
		&Error{Errno: syscall.EINVAL},
		&Error{Errno: MaxErrno, Message: strings.Repeat("é", MaxErrorMessage/2)},
		&OpQueue{Entries: 256, Doorbells: 2},
		&Doorbell{Index: 1},
	}
}

// frame builds a message with a valid header around body.
func frame(t Type, body []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	le.PutUint32(b, Magic)
	le.PutUint16(b[4:], Version)
	le.PutUint16(b[6:], uint16(t))
	le.PutUint32(b[8:], uint32(len(body)))
	return append(b, body...)
}

func TestRoundTrip(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range samples() {
		b, err := Encode(m)
		require.NoError(t, err, "%T", m)
		s, _ := m.Type().spec()
		require.GreaterOrEqual(t, len(b)-HeaderSize, s.size, "%T", m)
		require.LessOrEqual(t, len(b)-HeaderSize, s.size+s.strMax, "%T", m)
		got, err := Decode(b, m.Type().FDs())
		require.NoError(t, err, "%T", m)
		require.Equal(t, m, got)
		seen[m.Type()] = true
	}
	for typ := Type(0); typ < 64; typ++ {
		if _, ok := typ.spec(); ok {
			require.True(t, seen[typ], "no sample of %v", typ)
		}
	}
}

func TestLayout(t *testing.T) {
	b, err := Encode(&ShareArena{Size: 0x0102030405060708, Flags: 0x0a0b0c0d})
	require.NoError(t, err)
	require.Equal(t, []byte{
		'Z', 'C', 'F', 'W', 1, 0, 3, 0, 12, 0, 0, 0, 0, 0, 0, 0,
		8, 7, 6, 5, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a,
	}, b)
	sizes := map[Type]int{TypeHello: 10, TypeHelloReply: 50, TypeShareArena: 12,
		TypeShareArenaReply: 5, TypeReleaseArena: 4, TypeDetach: 4, TypeStats: 0,
		TypeStatsReply: 32, TypeBye: 0, TypeOk: 0, TypeError: 4}
	for typ, n := range sizes {
		s, ok := typ.spec()
		require.True(t, ok)
		require.Equal(t, n, s.size, "%v", typ)
	}
}

func TestTypes(t *testing.T) {
	require.Equal(t, 1, TypeShareArena.FDs())
	require.Equal(t, 0, TypeHello.FDs())
	require.Equal(t, -1, Type(0).FDs())
	require.Equal(t, 2, TypeOpQueue.FDs())
	require.Equal(t, 1, TypeDoorbell.FDs())
	require.Equal(t, Type(0), TypeOpQueue.Reply(), "sent by the server, unasked")
	require.Equal(t, TypeHelloReply, TypeHello.Reply())
	require.Equal(t, TypeShareArenaReply, TypeShareArena.Reply())
	require.Equal(t, TypeOk, TypeReleaseArena.Reply())
	require.Equal(t, TypeOk, TypeDetach.Reply())
	require.Equal(t, TypeStatsReply, TypeStats.Reply())
	require.Equal(t, TypeOk, TypeBye.Reply())
	require.Equal(t, Type(0), TypeOk.Reply())
	require.Equal(t, Type(0), Type(999).Reply())
	require.Equal(t, "ShareArena", TypeShareArena.String())
	require.Equal(t, "Type(999)", Type(999).String())
	require.Equal(t, "OpQueue", TypeOpQueue.String())
}

func TestDecodeRejects(t *testing.T) {
	valid := func(m Msg) []byte {
		b, err := Encode(m)
		if err != nil {
			panic(err)
		}
		return b
	}
	with := func(b []byte, off int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[off:], v)
		return b
	}
	hello := valid(&Hello{Version: 1})
	big := frame(TypeError, append([]byte{5, 0, 0, 0}, bytes.Repeat([]byte{'x'}, MaxBody-4)...))
	cases := []struct {
		name  string
		b     []byte
		nfds  int
		errno syscall.Errno
	}{
		{"empty", nil, 0, syscall.EPROTO},
		{"short header", hello[:HeaderSize-1], 0, syscall.EPROTO},
		{"bad magic", with(hello, 0, 'z'), 0, syscall.EPROTO},
		{"reserved not 0", with(hello, 15, 1), 0, syscall.EPROTO},
		{"version 0", with(hello, 4, 0), 0, syscall.EPROTONOSUPPORT},
		{"version 2", with(hello, 4, 2), 0, syscall.EPROTONOSUPPORT},
		{"length field too small", with(hello, 8, 9), 0, syscall.EPROTO},
		{"length field too big", with(hello, 8, 11), 0, syscall.EPROTO},
		{"length field over max", with(hello, 8, 0xff, 0xff, 0xff, 0xff), 0, syscall.EMSGSIZE},
		{"header only, length says body", hello[:HeaderSize], 0, syscall.EPROTO},
		{"oversized message", frame(TypeError, make([]byte, MaxBody+1)), 0, syscall.EMSGSIZE},
		{"type 0", frame(0, nil), 0, syscall.EBADMSG},
		{"unknown type", frame(999, nil), 0, syscall.EBADMSG},
		{"OpQueue without body", frame(TypeOpQueue, nil), 2, syscall.EBADMSG},
		{"OpQueue with one fd", frame(TypeOpQueue, []byte{8, 0, 0, 0, 1, 0, 0, 0}), 1, syscall.EBADMSG},
		{"OpQueue depth not a power of two", frame(TypeOpQueue, []byte{6, 0, 0, 0, 1, 0, 0, 0}), 2, syscall.EBADMSG},
		{"OpQueue without doorbells", frame(TypeOpQueue, []byte{8, 0, 0, 0, 0, 0, 0, 0}), 2, syscall.EBADMSG},
		{"Doorbell without its fd", frame(TypeDoorbell, []byte{0, 0, 0, 0}), 0, syscall.EBADMSG},
		{"body too short", frame(TypeHello, make([]byte, 9)), 0, syscall.EBADMSG},
		{"body too long", frame(TypeHello, make([]byte, 11)), 0, syscall.EBADMSG},
		{"empty type with body", frame(TypeBye, []byte{0}), 0, syscall.EBADMSG},
		{"Error body too short", frame(TypeError, []byte{5, 0, 0}), 0, syscall.EBADMSG},
		{"Error message over 256", frame(TypeError, append([]byte{5, 0, 0, 0}, bytes.Repeat([]byte{'x'}, 257)...)), 0, syscall.EBADMSG},
		{"Error message max-size message", big, 0, syscall.EBADMSG},
		{"Error errno 0", frame(TypeError, []byte{0, 0, 0, 0}), 0, syscall.EBADMSG},
		{"Error errno negative", frame(TypeError, []byte{0xff, 0xff, 0xff, 0xff}), 0, syscall.EBADMSG},
		{"Error errno 4096", frame(TypeError, []byte{0, 0x10, 0, 0}), 0, syscall.EBADMSG},
		{"Error message not UTF-8", frame(TypeError, []byte{5, 0, 0, 0, 0xff}), 0, syscall.EBADMSG},
		{"Error message with NUL", frame(TypeError, []byte{5, 0, 0, 0, 'a', 0}), 0, syscall.EBADMSG},
		{"Hello version 0", frame(TypeHello, make([]byte, 10)), 0, syscall.EBADMSG},
		{"HelloReply version 0", frame(TypeHelloReply, make([]byte, 50)), 0, syscall.EBADMSG},
		{"bool not 0 or 1", frame(TypeShareArenaReply, []byte{1, 0, 0, 0, 2}), 0, syscall.EBADMSG},
		{"ShareArena without fd", valid(&ShareArena{Size: 4096}), 0, syscall.EBADMSG},
		{"ShareArena with 2 fds", valid(&ShareArena{Size: 4096}), 2, syscall.EBADMSG},
		{"fd on Hello", hello, 1, syscall.EBADMSG},
		{"fd on Bye", valid(&Bye{}), 1, syscall.EBADMSG},
		{"negative fd count", hello, -1, syscall.EBADMSG},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.b, c.nfds)
			require.Nil(t, m)
			require.ErrorIs(t, err, c.errno, "got %v", err)
			var errno syscall.Errno
			require.True(t, errors.As(err, &errno))
			require.Equal(t, c.errno, errno)
			require.True(t, strings.HasPrefix(err.Error(), "wire: "), err.Error())
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	var nilHello *Hello
	for _, m := range []Msg{
		nil,
		nilHello,
		&Hello{},
		&HelloReply{},
		&Error{},
		&Error{Errno: MaxErrno + 1},
		&Error{Errno: ^syscall.Errno(0)},
		&Error{Errno: syscall.EIO, Message: strings.Repeat("x", MaxErrorMessage+1)},
		&Error{Errno: syscall.EIO, Message: "a\x00b"},
		&Error{Errno: syscall.EIO, Message: "\xff"},
	} {
		b, err := Encode(m)
		require.Nil(t, b)
		require.ErrorIs(t, err, syscall.EINVAL, "%#v", m)
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	b, err := Encode(&Error{Errno: syscall.EPERM, Message: "token"})
	require.NoError(t, err)
	m, err := Decode(b, 0)
	require.NoError(t, err)
	for i := range b {
		b[i] = 'X'
	}
	require.Equal(t, &Error{Errno: syscall.EPERM, Message: "token"}, m)
}

func TestErrorFrom(t *testing.T) {
	e := ErrorFrom(fmt.Errorf("share arena: %w", syscall.ENOSPC))
	require.Equal(t, syscall.ENOSPC, e.Errno)
	require.Equal(t, "share arena: no space left on device", e.Message)
	require.ErrorIs(t, e, syscall.ENOSPC)
	require.Equal(t, "zcfuse server: share arena: no space left on device: no space left on device", e.Error())

	require.Equal(t, syscall.EIO, ErrorFrom(errors.New("plain")).Errno)
	require.Equal(t, syscall.EIO, ErrorFrom(nil).Errno)
	require.Equal(t, syscall.EIO, ErrorFrom(syscall.Errno(0)).Errno)

	long := ErrorFrom(errors.New(strings.Repeat("ü", 300) + "\x00\xff"))
	require.LessOrEqual(t, len(long.Message), MaxErrorMessage)
	_, err := Encode(long)
	require.NoError(t, err)
	odd := ErrorFrom(errors.New("a\x00b\xffc"))
	require.Equal(t, "a?b?c", odd.Message)
	_, err = Encode(odd)
	require.NoError(t, err)
}
