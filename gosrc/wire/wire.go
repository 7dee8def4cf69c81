package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"unicode/utf8"
)

// Framing constants. A message is a HeaderSize-byte header and a body of
// at most MaxMsgSize-HeaderSize bytes.
const (
	Magic           uint32 = 0x5746435a // "ZCFW" as the first four bytes on the wire
	Version         uint16 = 1          // the only wire version this package speaks
	HeaderSize             = 16
	MaxMsgSize             = 4096
	MaxBody                = MaxMsgSize - HeaderSize
	MaxErrorMessage        = 256 // bytes of Error.Message
	MaxErrno               = 4095
)

// Type names a message's layout. Requests are answered with their reply
// type (see Type.Reply) or with an Error.
type Type uint16

const (
	TypeHello           Type = 1
	TypeHelloReply      Type = 2
	TypeShareArena      Type = 3
	TypeShareArenaReply Type = 4
	TypeReleaseArena    Type = 5
	TypeDetach          Type = 6
	TypeStats           Type = 7
	TypeStatsReply      Type = 8
	TypeBye             Type = 9
	TypeOk              Type = 10
	TypeError           Type = 11
	// The server sends OpQueue and then one Doorbell per server CPU right
	// after HelloReply, unasked: they carry the session's op queue.
	TypeOpQueue  Type = 12
	TypeDoorbell Type = 13
)

// spec is what a type's body and ancillary data must look like.
type spec struct {
	name   string
	size   int // exact body size; for Error the fixed part before the string
	strMax int // bytes of trailing string allowed after size (Error only)
	fds    int // exact number of fds the message carries
	reply  Type
	decode func(b []byte) (Msg, error)
}

var specs = [...]spec{
	TypeHello:           {name: "Hello", size: 10, reply: TypeHelloReply, decode: decodeHello},
	TypeHelloReply:      {name: "HelloReply", size: 50, decode: decodeHelloReply},
	TypeShareArena:      {name: "ShareArena", size: 12, fds: 1, reply: TypeShareArenaReply, decode: decodeShareArena},
	TypeShareArenaReply: {name: "ShareArenaReply", size: 5, decode: decodeShareArenaReply},
	TypeReleaseArena:    {name: "ReleaseArena", size: 4, reply: TypeOk, decode: decodeReleaseArena},
	TypeDetach:          {name: "Detach", size: 4, reply: TypeOk, decode: decodeDetach},
	TypeStats:           {name: "Stats", size: 0, reply: TypeStatsReply, decode: func([]byte) (Msg, error) { return &Stats{}, nil }},
	TypeStatsReply:      {name: "StatsReply", size: 32, decode: decodeStatsReply},
	TypeBye:             {name: "Bye", size: 0, reply: TypeOk, decode: func([]byte) (Msg, error) { return &Bye{}, nil }},
	TypeOk:              {name: "Ok", size: 0, decode: func([]byte) (Msg, error) { return &Ok{}, nil }},
	TypeError:           {name: "Error", size: 4, strMax: MaxErrorMessage, decode: decodeError},
	TypeOpQueue:         {name: "OpQueue", size: 8, fds: 2, decode: decodeOpQueue},
	TypeDoorbell:        {name: "Doorbell", size: 4, fds: 1, decode: decodeDoorbell},
}

func (t Type) spec() (spec, bool) {
	if int(t) >= len(specs) || specs[t].decode == nil {
		return spec{}, false
	}
	return specs[t], true
}

// String returns the type's name, or "Type(n)" for an unknown one.
func (t Type) String() string {
	if s, ok := t.spec(); ok {
		return s.name
	}
	return fmt.Sprintf("Type(%d)", uint16(t))
}

// FDs returns how many fds a message of type t carries: 1 for ShareArena
// and Doorbell, 2 for OpQueue, 0 for every other known type, -1 for an
// unknown type.
func (t Type) FDs() int {
	if s, ok := t.spec(); ok {
		return s.fds
	}
	return -1
}

// Reply returns the type that answers a request of type t (besides
// Error), or 0 if t is not a request.
func (t Type) Reply() Type {
	s, _ := t.spec()
	return s.reply
}

// Msg is one message. Only this package's types implement it; each is
// used as a pointer (*Hello, *Error, ...).
type Msg interface {
	Type() Type
	appendBody(b []byte) ([]byte, error)
}

// Hello opens a session. Version is the highest protocol version the
// client speaks; PID is informational only (the server trusts SO_PEERCRED).
// Flags must be 0 in version 1; the server rejects bits it does not know.
type Hello struct {
	Version uint16
	Flags   uint32
	PID     uint32
}

// HelloReply accepts a session. Version is the protocol version the
// session speaks (≤ Hello.Version); Token is the session's secret attach
// token; the limits hold per session (MaxArenaSize for one arena,
// MaxArenaBytes for all of the session's arenas together).
type HelloReply struct {
	Version          uint16
	SessionID        uint64
	Token            [16]byte
	MaxArenas        uint32
	MaxArenaSize     uint64
	MaxArenaBytes    uint64
	MaxAttachedFiles uint32
}

// ShareArena hands the server an arena memfd (the message's one fd) of
// Size bytes. Flags must be 0 in version 1.
type ShareArena struct {
	Size  uint64
	Flags uint32
}

// ShareArenaReply names the shared arena and says whether the server
// registered it as an io_uring fixed buffer.
type ShareArenaReply struct {
	ArenaID    uint32
	Registered bool
}

// ReleaseArena asks the server to unmap and forget an arena; answered by Ok.
type ReleaseArena struct{ ArenaID uint32 }

// Detach ends an attachment made by the attach ioctl; answered by Ok.
type Detach struct{ FileID uint32 }

// Stats asks for the server's counters; answered by StatsReply.
type Stats struct{}

// StatsReply holds the server's counters.
type StatsReply struct {
	Sessions        uint64
	Arenas          uint64
	RegisteredBytes uint64
	AttachedFiles   uint64
}

// OpQueue hands the client its op queue (package opq): the fds are the
// queue memfd, sealed by the server, of opq.Size(Entries) bytes, and the
// completion eventfd the server writes when the client asked for a wake.
// Doorbells Doorbell messages follow.
type OpQueue struct {
	Entries   uint32
	Doorbells uint32
}

// Doorbell hands the client the eventfd (the message's fd) that wakes the
// server thread serving CPU Index (mod the number of doorbells).
type Doorbell struct{ Index uint32 }

// Bye ends the session cleanly; answered by Ok, after which the server
// closes the connection.
type Bye struct{}

// Ok answers ReleaseArena, Detach and Bye.
type Ok struct{}

// Error answers any request that failed. Errno is in [1, MaxErrno];
// Message is at most MaxErrorMessage bytes of UTF-8 without NUL. An *Error
// is also an error that unwraps to its Errno, so errors.Is(err,
// unix.ENOSPC) works on a reply returned by Call.
type Error struct {
	Errno   syscall.Errno
	Message string
}

func (*Hello) Type() Type           { return TypeHello }
func (*HelloReply) Type() Type      { return TypeHelloReply }
func (*ShareArena) Type() Type      { return TypeShareArena }
func (*ShareArenaReply) Type() Type { return TypeShareArenaReply }
func (*ReleaseArena) Type() Type    { return TypeReleaseArena }
func (*Detach) Type() Type          { return TypeDetach }
func (*Stats) Type() Type           { return TypeStats }
func (*StatsReply) Type() Type      { return TypeStatsReply }
func (*Bye) Type() Type             { return TypeBye }
func (*Ok) Type() Type              { return TypeOk }
func (*Error) Type() Type           { return TypeError }

func (e *Error) Error() string {
	if e.Message == "" {
		return "zcfuse server: " + e.Errno.Error()
	}
	return "zcfuse server: " + e.Message + ": " + e.Errno.Error()
}

func (e *Error) Unwrap() error { return e.Errno }

// ErrorFrom builds the Error reply for err: its syscall.Errno if it wraps
// one (else EIO), and its text cut to MaxErrorMessage bytes of valid
// UTF-8 without NUL. It never fails to encode.
func ErrorFrom(err error) *Error {
	e := &Error{Errno: syscall.EIO}
	if err == nil {
		return e
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno > 0 && errno <= MaxErrno {
		e.Errno = errno
	}
	msg := make([]byte, 0, MaxErrorMessage)
	for _, r := range err.Error() {
		if r == 0 || r == utf8.RuneError {
			r = '?'
		}
		if len(msg)+utf8.RuneLen(r) > MaxErrorMessage {
			break
		}
		msg = utf8.AppendRune(msg, r)
	}
	e.Message = string(msg)
	return e
}

var le = binary.LittleEndian

func (m *Hello) appendBody(b []byte) ([]byte, error) {
	if m.Version == 0 {
		return nil, errorf(syscall.EINVAL, "Hello: version 0")
	}
	b = le.AppendUint16(b, m.Version)
	b = le.AppendUint32(b, m.Flags)
	return le.AppendUint32(b, m.PID), nil
}

func decodeHello(b []byte) (Msg, error) {
	m := &Hello{Version: le.Uint16(b), Flags: le.Uint32(b[2:]), PID: le.Uint32(b[6:])}
	if m.Version == 0 {
		return nil, errorf(syscall.EBADMSG, "Hello: version 0")
	}
	return m, nil
}

func (m *HelloReply) appendBody(b []byte) ([]byte, error) {
	if m.Version == 0 {
		return nil, errorf(syscall.EINVAL, "HelloReply: version 0")
	}
	b = le.AppendUint16(b, m.Version)
	b = le.AppendUint64(b, m.SessionID)
	b = append(b, m.Token[:]...)
	b = le.AppendUint32(b, m.MaxArenas)
	b = le.AppendUint64(b, m.MaxArenaSize)
	b = le.AppendUint64(b, m.MaxArenaBytes)
	return le.AppendUint32(b, m.MaxAttachedFiles), nil
}

func decodeHelloReply(b []byte) (Msg, error) {
	m := &HelloReply{
		Version:          le.Uint16(b),
		SessionID:        le.Uint64(b[2:]),
		MaxArenas:        le.Uint32(b[26:]),
		MaxArenaSize:     le.Uint64(b[30:]),
		MaxArenaBytes:    le.Uint64(b[38:]),
		MaxAttachedFiles: le.Uint32(b[46:]),
	}
	copy(m.Token[:], b[10:26])
	if m.Version == 0 {
		return nil, errorf(syscall.EBADMSG, "HelloReply: version 0")
	}
	return m, nil
}

func (m *ShareArena) appendBody(b []byte) ([]byte, error) {
	b = le.AppendUint64(b, m.Size)
	return le.AppendUint32(b, m.Flags), nil
}

func decodeShareArena(b []byte) (Msg, error) {
	return &ShareArena{Size: le.Uint64(b), Flags: le.Uint32(b[8:])}, nil
}

func (m *ShareArenaReply) appendBody(b []byte) ([]byte, error) {
	b = le.AppendUint32(b, m.ArenaID)
	if m.Registered {
		return append(b, 1), nil
	}
	return append(b, 0), nil
}

func decodeShareArenaReply(b []byte) (Msg, error) {
	if b[4] > 1 {
		return nil, errorf(syscall.EBADMSG, "ShareArenaReply: registered byte %d is not 0 or 1", b[4])
	}
	return &ShareArenaReply{ArenaID: le.Uint32(b), Registered: b[4] == 1}, nil
}

func (m *ReleaseArena) appendBody(b []byte) ([]byte, error) {
	return le.AppendUint32(b, m.ArenaID), nil
}

func decodeReleaseArena(b []byte) (Msg, error) { return &ReleaseArena{ArenaID: le.Uint32(b)}, nil }

func (m *Detach) appendBody(b []byte) ([]byte, error) { return le.AppendUint32(b, m.FileID), nil }

func decodeDetach(b []byte) (Msg, error) { return &Detach{FileID: le.Uint32(b)}, nil }

func (*Stats) appendBody(b []byte) ([]byte, error) { return b, nil }

func (m *StatsReply) appendBody(b []byte) ([]byte, error) {
	b = le.AppendUint64(b, m.Sessions)
	b = le.AppendUint64(b, m.Arenas)
	b = le.AppendUint64(b, m.RegisteredBytes)
	return le.AppendUint64(b, m.AttachedFiles), nil
}

func decodeStatsReply(b []byte) (Msg, error) {
	return &StatsReply{
		Sessions:        le.Uint64(b),
		Arenas:          le.Uint64(b[8:]),
		RegisteredBytes: le.Uint64(b[16:]),
		AttachedFiles:   le.Uint64(b[24:]),
	}, nil
}

func (*Bye) appendBody(b []byte) ([]byte, error) { return b, nil }

func (*OpQueue) Type() Type  { return TypeOpQueue }
func (*Doorbell) Type() Type { return TypeDoorbell }

func (m *OpQueue) appendBody(b []byte) ([]byte, error) {
	return le.AppendUint32(le.AppendUint32(b, m.Entries), m.Doorbells), nil
}

func decodeOpQueue(b []byte) (Msg, error) {
	m := &OpQueue{Entries: le.Uint32(b), Doorbells: le.Uint32(b[4:])}
	if m.Entries == 0 || m.Entries&(m.Entries-1) != 0 || m.Doorbells == 0 || m.Doorbells > 64 {
		return nil, errorf(syscall.EBADMSG, "OpQueue of %d entries and %d doorbells", m.Entries, m.Doorbells)
	}
	return m, nil
}

func (m *Doorbell) appendBody(b []byte) ([]byte, error) { return le.AppendUint32(b, m.Index), nil }

func decodeDoorbell(b []byte) (Msg, error) { return &Doorbell{Index: le.Uint32(b)}, nil }

func (*Ok) appendBody(b []byte) ([]byte, error) { return b, nil }

// checkError says what is wrong with an Error's fields, or "".
func checkError(errno int64, msg string) string {
	switch {
	case errno < 1 || errno > MaxErrno:
		return fmt.Sprintf("errno %d outside [1, %d]", errno, MaxErrno)
	case len(msg) > MaxErrorMessage:
		return fmt.Sprintf("message of %d bytes, more than %d", len(msg), MaxErrorMessage)
	case !utf8.ValidString(msg):
		return "message is not UTF-8"
	}
	for i := 0; i < len(msg); i++ {
		if msg[i] == 0 {
			return "message holds a NUL byte"
		}
	}
	return ""
}

func (m *Error) appendBody(b []byte) ([]byte, error) {
	if why := checkError(int64(m.Errno), m.Message); why != "" {
		return nil, errorf(syscall.EINVAL, "Error: %s", why)
	}
	b = le.AppendUint32(b, uint32(m.Errno))
	return append(b, m.Message...), nil
}

func decodeError(b []byte) (Msg, error) {
	errno := int32(le.Uint32(b))
	msg := string(b[4:])
	if why := checkError(int64(errno), msg); why != "" {
		return nil, errorf(syscall.EBADMSG, "Error: %s", why)
	}
	return &Error{Errno: syscall.Errno(errno), Message: msg}, nil
}

// errorf returns an error that reads "wire: ..." and unwraps to errno.
func errorf(errno syscall.Errno, format string, args ...any) error {
	return fmt.Errorf("wire: "+format+": %w", append(args, errno)...)
}

// isNil reports whether m is nil or a typed nil pointer.
func isNil(m Msg) bool {
	if m == nil {
		return true
	}
	v := reflect.ValueOf(m)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// Encode returns m's bytes: header and body. It fails with EINVAL for a
// nil message or one that Decode would reject (Hello version 0, an Error
// outside its bounds).
func Encode(m Msg) ([]byte, error) {
	if isNil(m) {
		return nil, errorf(syscall.EINVAL, "encode: nil message")
	}
	t := m.Type()
	b := make([]byte, HeaderSize, HeaderSize+64)
	b, err := m.appendBody(b)
	if err != nil {
		return nil, err
	}
	le.PutUint32(b[0:], Magic)
	le.PutUint16(b[4:], Version)
	le.PutUint16(b[6:], uint16(t))
	le.PutUint32(b[8:], uint32(len(b)-HeaderSize))
	le.PutUint32(b[12:], 0)
	return b, nil
}

// Decode parses one whole message b that arrived with nfds fds. It checks,
// in order: the framing (EPROTO: shorter than a header, bad magic,
// reserved not 0, length field not the body's length), the version
// (EPROTONOSUPPORT), the size (EMSGSIZE: over MaxMsgSize), the type and
// body (EBADMSG: unknown type, body size not the type's, a field out of
// range), and the fd count (EBADMSG). The returned message does not
// alias b.
func Decode(b []byte, nfds int) (Msg, error) {
	if len(b) < HeaderSize {
		return nil, errorf(syscall.EPROTO, "message of %d bytes is shorter than the %d-byte header", len(b), HeaderSize)
	}
	if magic := le.Uint32(b); magic != Magic {
		return nil, errorf(syscall.EPROTO, "bad magic %#08x", magic)
	}
	if v := le.Uint16(b[4:]); v != Version {
		return nil, errorf(syscall.EPROTONOSUPPORT, "wire version %d, want %d", v, Version)
	}
	if r := le.Uint32(b[12:]); r != 0 {
		return nil, errorf(syscall.EPROTO, "reserved header field is %#x, not 0", r)
	}
	if len(b) > MaxMsgSize {
		return nil, errorf(syscall.EMSGSIZE, "message of %d bytes, more than %d", len(b), MaxMsgSize)
	}
	if n := le.Uint32(b[8:]); n > MaxBody {
		return nil, errorf(syscall.EMSGSIZE, "length field %d, more than %d", n, MaxBody)
	} else if int(n) != len(b)-HeaderSize {
		return nil, errorf(syscall.EPROTO, "length field %d, but the body has %d bytes", n, len(b)-HeaderSize)
	}
	t := Type(le.Uint16(b[6:]))
	s, ok := t.spec()
	if !ok {
		return nil, errorf(syscall.EBADMSG, "unknown message type %v", t)
	}
	body := b[HeaderSize:]
	if len(body) < s.size || len(body) > s.size+s.strMax {
		if s.strMax > 0 {
			return nil, errorf(syscall.EBADMSG, "%v body of %d bytes, want %d to %d", t, len(body), s.size, s.size+s.strMax)
		}
		return nil, errorf(syscall.EBADMSG, "%v body of %d bytes, want %d", t, len(body), s.size)
	}
	if nfds != s.fds {
		return nil, errorf(syscall.EBADMSG, "%v with %d fds, want %d", t, nfds, s.fds)
	}
	return s.decode(body)
}

// ProtocolVersion is the back-channel protocol of this package, negotiated
// in Hello.Version.
const ProtocolVersion = 1

// ControlXattr is the extended attribute on a zcfuse mount root that
// names the server's control socket, so a client finds the server from
// the mountpoint alone. The server answers it itself: it never reaches
// the backing directory and is not listed.
const ControlXattr = "user.zcfuse.control"
