// Package opq is the layout of a session's shared op queue: the memory
// through which a client hands the server zero-copy read, write and
// fsync operations and gets their results back, without a system call
// per operation (a doorbell eventfd wakes a sleeping server thread, a
// completion eventfd a sleeping client).
//
// The server creates the queue: a memfd sealed against shrinking and
// growing, so the client can neither truncate it under the server nor
// make it fault. Both sides map it MAP_SHARED.
//
// # Layout
//
// All fields are little-endian (the machine's order: both sides run on
// one machine), each index on its own 64-byte cache line:
//
//	offset  field          written by  meaning
//	   0    magic u32      server      Magic
//	   4    version u32    server      Version
//	   8    entries u32    server      SQ and CQ entries (a power of two)
//	  12    doorbells u32  server      one per server CPU
//	  64    sq_tail u32    client      descriptors published
//	 128    sq_head u32    server      descriptors consumed (advice only)
//	 192    cq_tail u32    server      completions published
//	 256    cq_head u32    client      completions consumed
//	 320    need_wake u32  server      1: no server thread polls; ring a doorbell
//	 384    cq_wake u32    client      1: write the completion eventfd
//	 448    mode u32       client      0 sleep, 1 poll (advice)
//	 452    spin u32       client      poll mode: how long to spin, µs (advice)
//	 512    SQ: entries × SQESize
//	  ...   CQ: entries × CQESize
//
// The server never trusts what the client writes: it keeps its own
// copies of sq_head and cq_tail, reads each descriptor once into private
// memory before checking it, and treats impossible indices as a broken
// queue that fails only that session.
package opq

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Layout constants.
const (
	Magic   uint32 = 0x51504f5a // "ZOPQ"
	Version uint32 = 1

	offMagic     = 0
	offVersion   = 4
	offEntries   = 8
	offDoorbells = 12
	offSQTail    = 64
	offSQHead    = 128
	offCQTail    = 192
	offCQHead    = 256
	offNeedWake  = 320
	offCQWake    = 384
	offMode      = 448
	offSpin      = 452
	HeaderSize   = 512

	SQESize = 64
	CQESize = 16

	// DefaultEntries is the queue depth a session gets.
	DefaultEntries = 256
	// MaxDoorbells bounds the doorbell fds sent with a queue.
	MaxDoorbells = 64
)

// Opcodes of a descriptor.
const (
	OpRead  uint8 = 1 // file → arena
	OpWrite uint8 = 2 // arena → file
	OpFsync uint8 = 3 // fsync (Flags: FsyncDatasync for fdatasync)
)

// Descriptor flags.
const (
	FsyncDatasync uint32 = 1 // OpFsync: fdatasync instead of fsync
)

// SQE is one operation. Read and write move Len bytes between
// [ArenaOff, ArenaOff+Len) of arena ArenaID and [FileOff, ...) of attached
// file FileID. Laid out as SQESize bytes:
//
//	0 opcode u8, 1 flags u8 (0), 2 reserved u16, 4 file_id u32,
//	8 arena_id u32, 12 op_flags u32, 16 arena_off u64, 24 len u64,
//	32 file_off u64, 40 user_data u64, 48..64 reserved
type SQE struct {
	Opcode   uint8
	Flags    uint8
	FileID   uint32
	ArenaID  uint32
	OpFlags  uint32
	ArenaOff uint64
	Len      uint64
	FileOff  uint64
	UserData uint64
}

// CQE is one result: bytes moved, or -errno.
type CQE struct {
	UserData uint64
	Res      int64
}

// Size is the bytes of a queue with entries entries, rounded up to pages.
func Size(entries uint32) int {
	n := HeaderSize + int(entries)*(SQESize+CQESize)
	return (n + 4095) &^ 4095
}

// Queue is a view of a mapped queue.
type Queue struct {
	mem     []byte
	entries uint32
	mask    uint32
}

var le = binary.LittleEndian

// Init writes the header of a fresh queue into mem (server side).
func Init(mem []byte, entries, doorbells uint32) *Queue {
	le.PutUint32(mem[offMagic:], Magic)
	le.PutUint32(mem[offVersion:], Version)
	le.PutUint32(mem[offEntries:], entries)
	le.PutUint32(mem[offDoorbells:], doorbells)
	q := &Queue{mem: mem, entries: entries, mask: entries - 1}
	q.word(offNeedWake).Store(1)
	q.word(offCQWake).Store(1)
	return q
}

// Open checks the header of a mapped queue (client side) and returns the
// view, or false when it is not a queue this package understands.
func Open(mem []byte) (*Queue, bool) {
	if len(mem) < HeaderSize || le.Uint32(mem[offMagic:]) != Magic || le.Uint32(mem[offVersion:]) != Version {
		return nil, false
	}
	e := le.Uint32(mem[offEntries:])
	if e == 0 || e&(e-1) != 0 || len(mem) < Size(e) {
		return nil, false
	}
	return &Queue{mem: mem, entries: e, mask: e - 1}, true
}

// Entries is the depth of both rings.
func (q *Queue) Entries() uint32 { return q.entries }

// Doorbells is the number of doorbells the server sent.
func (q *Queue) Doorbells() uint32 { return le.Uint32(q.mem[offDoorbells:]) }

func (q *Queue) word(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&q.mem[off]))
}

// The shared indices and flags, each read and written atomically.
func (q *Queue) SQTail() *atomic.Uint32   { return q.word(offSQTail) }
func (q *Queue) SQHead() *atomic.Uint32   { return q.word(offSQHead) }
func (q *Queue) CQTail() *atomic.Uint32   { return q.word(offCQTail) }
func (q *Queue) CQHead() *atomic.Uint32   { return q.word(offCQHead) }
func (q *Queue) NeedWake() *atomic.Uint32 { return q.word(offNeedWake) }
func (q *Queue) CQWake() *atomic.Uint32   { return q.word(offCQWake) }
func (q *Queue) Mode() *atomic.Uint32     { return q.word(offMode) }
func (q *Queue) Spin() *atomic.Uint32     { return q.word(offSpin) }

func (q *Queue) sqe(i uint32) []byte {
	off := HeaderSize + int(i&q.mask)*SQESize
	return q.mem[off : off+SQESize]
}

func (q *Queue) cqe(i uint32) []byte {
	off := HeaderSize + int(q.entries)*SQESize + int(i&q.mask)*CQESize
	return q.mem[off : off+CQESize]
}

// ReadSQE copies descriptor i (taken modulo the depth) out of shared memory.
func (q *Queue) ReadSQE(i uint32) SQE {
	var raw [SQESize]byte
	copy(raw[:], q.sqe(i)) // one copy: the checks then see stable bytes
	b := raw[:]
	return SQE{
		Opcode:   b[0],
		Flags:    b[1],
		FileID:   le.Uint32(b[4:]),
		ArenaID:  le.Uint32(b[8:]),
		OpFlags:  le.Uint32(b[12:]),
		ArenaOff: le.Uint64(b[16:]),
		Len:      le.Uint64(b[24:]),
		FileOff:  le.Uint64(b[32:]),
		UserData: le.Uint64(b[40:]),
	}
}

// WriteSQE stores descriptor i (client side); publish it with SQTail.
func (q *Queue) WriteSQE(i uint32, e *SQE) {
	var raw [SQESize]byte
	b := raw[:]
	b[0], b[1] = e.Opcode, e.Flags
	le.PutUint32(b[4:], e.FileID)
	le.PutUint32(b[8:], e.ArenaID)
	le.PutUint32(b[12:], e.OpFlags)
	le.PutUint64(b[16:], e.ArenaOff)
	le.PutUint64(b[24:], e.Len)
	le.PutUint64(b[32:], e.FileOff)
	le.PutUint64(b[40:], e.UserData)
	copy(q.sqe(i), b)
}

// ReadCQE copies completion i out of shared memory.
func (q *Queue) ReadCQE(i uint32) CQE {
	b := q.cqe(i)
	return CQE{UserData: le.Uint64(b[0:]), Res: int64(le.Uint64(b[8:]))}
}

// WriteCQE stores completion i (server side); publish it with CQTail.
func (q *Queue) WriteCQE(i uint32, c CQE) {
	b := q.cqe(i)
	le.PutUint64(b[0:], c.UserData)
	le.PutUint64(b[8:], uint64(c.Res))
}
