package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/opq"
	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// Op flags.
const (
	// RequireZC makes an op whose buffer lies outside every shared arena
	// fail with EFAULT instead of taking the copying posix path.
	RequireZC uint32 = 1 << 0
	// Datasync makes an fsync an fdatasync.
	Datasync uint32 = 1 << 1
	// ArenaRef makes a read or write name its memory as Arena, ArenaOff
	// and Len (an id from Share and a byte range in that arena) instead
	// of Buf: no search of the shared arenas, only the zero-copy path.
	// A range not inside an arena this session shares fails with EFAULT.
	ArenaRef uint32 = 1 << 2

	knownFlags = RequireZC | Datasync | ArenaRef
)

// Opcodes.
const (
	OpRead  = opq.OpRead
	OpWrite = opq.OpWrite
	OpFsync = opq.OpFsync
)

// Op is one operation for Submit. A read or write names its memory
// either as Buf, which is looked up among the shared arenas (zero copy
// inside one, the posix path outside all), or, with ArenaRef in Flags,
// as Len bytes at ArenaOff in arena Arena, found by id in O(1) (Buf is
// then ignored).
type Op struct {
	Opcode   uint8  // OpRead, OpWrite or OpFsync
	Flags    uint32 // RequireZC, ArenaRef, Datasync (fsync); others: EINVAL
	File     uint32 // an id from Attach
	Buf      []byte // read into / write from; inside a shared arena for zero copy
	Arena    uint32 // ArenaRef: an arena id from Share or ShareFd
	ArenaOff uint64 // ArenaRef: byte offset in that arena
	Len      uint64 // ArenaRef: bytes to move
	Off      int64  // file offset
	UserData uint64 // returned in the completion
}

// Completion is an op's result: bytes moved (0 for fsync), or -errno.
type Completion struct {
	UserData uint64
	Res      int64
}

// Mode is how a session waits.
type Mode int

const (
	// ModeSleep: the client rings a doorbell for every batch and sleeps
	// on the completion eventfd; an idle session costs no CPU.
	ModeSleep Mode = iota
	// ModePoll: client and server spin for a while before they sleep,
	// and the client's ops go to the server thread of the next CPU, so
	// the two spinning threads do not share one.
	ModePoll
)

// MaxChunk is the most bytes Pread and Pwrite put in one descriptor;
// larger calls are split.
const MaxChunk = 16 << 20

type arenaRef struct {
	id         uint32
	base, size uintptr
}

// arenaSize is what an op by arena id needs to know of an arena.
type arenaSize struct{ size uint64 }

type fileRef struct {
	fd       int
	dev, ino uint64
}

// opState is a session's op queue, client side. Like the session, it is
// used by one goroutine at a time.
type opState struct {
	q        *opq.Queue
	mem      []byte
	evfd     int
	bells    []int
	sqTail   uint32
	cqHead   uint32
	inflight int // ring ops submitted and not yet reaped
	ready    []Completion
	amu      sync.RWMutex         // arenas, byID: an arena may be closed from any thread
	arenas   []arenaRef           // mapped here: searched by address (locate)
	byID     map[uint32]arenaSize // every shared arena, by id (ArenaRef ops)
	files    map[uint32]fileRef
	mode     Mode
	spin     time.Duration
	dead     bool
	nextSync uint64
	// fsize is the process's RLIMIT_FSIZE soft limit, read once per
	// Submit (fileSizeLimit).
	fsize uint64

	// Every op in flight has a slot; the descriptor carries the slot's
	// index, so the caller's user data is never interpreted. Ops of
	// Pread/Pwrite/Fsync are marked with their sync id, and their results
	// go to syncDone instead of to Wait.
	slots     []slotInfo
	freeSlots []uint32
	syncDone  map[uint64]int64
}

type slotInfo struct {
	userData uint64
	sync     uint64 // 0: an op of Submit
}

// openQueue receives the queue the server sends after HelloReply.
func (s *Session) openQueue() error {
	buf := make([]byte, wire.MaxMsgSize)
	m, fds, err := wire.Recv(s.fd, buf)
	if err != nil {
		return err
	}
	if e, ok := m.(*wire.Error); ok {
		return e
	}
	oq, ok := m.(*wire.OpQueue)
	if !ok {
		return fmt.Errorf("got %v, want OpQueue: %w", m.Type(), unix.EPROTO)
	}
	o := &s.ops
	o.evfd = fds[1]
	o.files = map[uint32]fileRef{}
	size := opq.Size(oq.Entries)
	o.mem, err = unix.Mmap(fds[0], 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	unix.Close(fds[0])
	if err != nil {
		s.closeQueue()
		return fmt.Errorf("map op queue: %w", err)
	}
	if o.q, ok = opq.Open(o.mem); !ok || o.q.Entries() != oq.Entries {
		s.closeQueue()
		return fmt.Errorf("op queue header: %w", unix.EPROTO)
	}
	o.slots = make([]slotInfo, oq.Entries)
	for i := oq.Entries; i > 0; i-- {
		o.freeSlots = append(o.freeSlots, i-1)
	}
	o.syncDone = map[uint64]int64{}
	for range oq.Doorbells {
		m, fds, err := wire.Recv(s.fd, buf)
		if err != nil {
			s.closeQueue()
			return err
		}
		if _, ok := m.(*wire.Doorbell); !ok {
			s.closeQueue()
			return fmt.Errorf("got %v, want Doorbell: %w", m.Type(), unix.EPROTO)
		}
		o.bells = append(o.bells, fds[0])
	}
	return nil
}

func (s *Session) closeQueue() {
	o := &s.ops
	if o.mem != nil {
		unix.Munmap(o.mem)
		o.mem, o.q = nil, nil
	}
	if o.evfd > 0 {
		unix.Close(o.evfd)
		o.evfd = -1
	}
	for _, fd := range o.bells {
		unix.Close(fd)
	}
	o.bells = nil
}

// noteArena records shared arena id of size bytes for ops by id and,
// when mem (its mapping here) is given, for ops by address.
func (s *Session) noteArena(id uint32, size uint64, mem []byte) {
	s.ops.amu.Lock()
	defer s.ops.amu.Unlock()
	if s.ops.byID == nil {
		s.ops.byID = map[uint32]arenaSize{}
	}
	s.ops.byID[id] = arenaSize{size}
	if len(mem) > 0 {
		s.ops.arenas = append(s.ops.arenas, arenaRef{id: id, base: uintptr(unsafe.Pointer(&mem[0])), size: uintptr(len(mem))})
	}
}

func (s *Session) forgetArena(id uint32) {
	s.ops.amu.Lock()
	defer s.ops.amu.Unlock()
	delete(s.ops.byID, id)
	a := s.ops.arenas
	for i := range a {
		if a[i].id == id {
			s.ops.arenas = append(a[:i:i], a[i+1:]...)
			return
		}
	}
}

func (s *Session) noteFile(id uint32, fd int, st *unix.Stat_t) {
	if s.ops.files != nil {
		s.ops.files[id] = fileRef{fd: fd, dev: st.Dev, ino: st.Ino}
	}
}

func (s *Session) forgetFile(id uint32) { delete(s.ops.files, id) }

// SetMode chooses how the session waits; spin bounds a poll-mode spin
// (0: 50 µs).
func (s *Session) SetMode(m Mode, spin time.Duration) {
	if spin <= 0 {
		spin = 50 * time.Microsecond
	}
	s.ops.mode, s.ops.spin = m, spin
	if s.ops.q != nil {
		s.ops.q.Mode().Store(uint32(m))
		s.ops.q.Spin().Store(uint32(spin / time.Microsecond))
	}
}

// Fd is the completion eventfd: it turns readable when the server posts
// completions, for epoll, asyncio or tokio. Reap them with Wait.
func (s *Session) Fd() int { return s.ops.evfd }

// locate finds b among the shared arenas: the arena and offset, or
// (nil, EFAULT) when b straddles an arena's end, or (nil, 0) when it
// lies outside every arena.
func (o *opState) locate(b []byte) (*arenaRef, uint64, unix.Errno) {
	if len(b) == 0 {
		return nil, 0, 0
	}
	p := uintptr(unsafe.Pointer(&b[0]))
	end := p + uintptr(len(b))
	o.amu.RLock()
	defer o.amu.RUnlock()
	for i := range o.arenas {
		a := &o.arenas[i]
		aend := a.base + a.size
		switch {
		case p >= a.base && p < aend:
			if end > aend || end < p {
				return nil, 0, unix.EFAULT
			}
			ref := *a
			return &ref, uint64(p - a.base), 0
		case p < a.base && end > a.base:
			return nil, 0, unix.EFAULT // starts before, ends inside
		}
	}
	return nil, 0, 0
}

// checkArena checks that [off, off+n) lies inside shared arena id: EFAULT
// when the session shares no such arena (never shared, unshared, or its
// Arena closed) or the range leaves it (overflow included).
func (o *opState) checkArena(id uint32, off, n uint64) unix.Errno {
	o.amu.RLock()
	a, ok := o.byID[id]
	o.amu.RUnlock()
	if !ok || off > a.size || n > a.size-off {
		return unix.EFAULT
	}
	return 0
}

// Submit queues ops and returns how many it took: all of them, or fewer
// when the queue is full (Wait, then submit the rest). An op that cannot
// start (bad buffer, unknown file, the copying path's result) is taken
// and completes at once. Errors: EBADF (session closed), ENOTCONN
// (server gone), EAGAIN (queue full, nothing taken).
func (s *Session) Submit(ops []Op) (int, error) {
	return s.submit(ops, 0)
}

// submit is Submit; with syncBase ≠ 0, op i is sync op syncBase+i.
func (s *Session) submit(ops []Op, syncBase uint64) (int, error) {
	o := &s.ops
	if err := s.usable(); err != nil {
		return 0, err
	}
	taken, queued, local := 0, 0, false
	o.fsize = fileSizeLimit()
	for i := range ops {
		op := &ops[i]
		if len(o.freeSlots) == 0 {
			break
		}
		var sync uint64
		if syncBase != 0 {
			sync = syncBase + uint64(i)
		}
		e, res, isLocal := o.prepare(op)
		taken++
		if isLocal {
			if sync != 0 {
				o.syncDone[sync] = res
			} else {
				o.ready = append(o.ready, Completion{op.UserData, res})
				local = true
			}
			continue
		}
		o.queue(&e, slotInfo{op.UserData, sync})
		queued++
	}
	if queued > 0 {
		o.publish(queued)
	}
	if local {
		o.signal() // completions ready at once: the session fd says so too
	}
	if taken == 0 && len(ops) > 0 {
		return 0, fmt.Errorf("op queue full (%d in flight): %w", o.inflight, unix.EAGAIN)
	}
	return taken, nil
}

// queue writes e in the next submission entry, under a slot for info.
func (o *opState) queue(e *opq.SQE, info slotInfo) {
	slot := o.freeSlots[len(o.freeSlots)-1]
	o.freeSlots = o.freeSlots[:len(o.freeSlots)-1]
	o.slots[slot] = info
	e.UserData = uint64(slot)
	o.q.WriteSQE(o.sqTail, e)
	o.sqTail++
}

// publish hands the server n queued entries.
func (o *opState) publish(n int) {
	o.q.SQTail().Store(o.sqTail)
	o.inflight += n
	o.ring()
}

func (s *Session) usable() error {
	switch {
	case s.ops.q == nil:
		return fmt.Errorf("session closed: %w", unix.EBADF)
	case s.ops.dead:
		return fmt.Errorf("server gone: %w", unix.ENOTCONN)
	}
	return nil
}

// prepare turns op into a descriptor, or into a local result (local
// true): an error, or what the copying path did.
func (o *opState) prepare(op *Op) (e opq.SQE, res int64, local bool) {
	e = opq.SQE{Opcode: op.Opcode, FileID: op.File, FileOff: uint64(op.Off), UserData: op.UserData}
	if op.Flags&^knownFlags != 0 {
		return e, -int64(unix.EINVAL), true
	}
	switch op.Opcode {
	case opq.OpFsync:
		if op.Flags&Datasync != 0 {
			e.OpFlags = opq.FsyncDatasync
		}
		return e, 0, false
	case opq.OpRead, opq.OpWrite:
	default:
		return e, -int64(unix.EINVAL), true
	}
	if op.Off < 0 {
		return e, -int64(unix.EINVAL), true
	}
	if op.Flags&ArenaRef != 0 {
		if errno := o.checkArena(op.Arena, op.ArenaOff, op.Len); errno != 0 {
			return e, -int64(errno), true
		}
		if op.Opcode == opq.OpWrite && pastLimit(op.Off, op.Len, o.fsize) {
			return e, -int64(unix.EFBIG), true
		}
		e.ArenaID, e.ArenaOff, e.Len = op.Arena, op.ArenaOff, op.Len
		return e, 0, false
	}
	if op.Opcode == opq.OpWrite && pastLimit(op.Off, uint64(len(op.Buf)), o.fsize) {
		return e, -int64(unix.EFBIG), true
	}
	a, off, errno := o.locate(op.Buf)
	switch {
	case errno != 0:
		return e, -int64(errno), true
	case a != nil:
		e.ArenaID, e.ArenaOff, e.Len = a.id, off, uint64(len(op.Buf))
		return e, 0, false
	case len(op.Buf) == 0:
		return e, 0, false // the server checks the file and answers 0
	case op.Flags&RequireZC != 0:
		return e, -int64(unix.EFAULT), true
	}
	return e, o.copyPath(op), true
}

// copyPath does a read or write outside every arena as plain pread or
// pwrite on the attached fd: through the mount, the posix path.
func (o *opState) copyPath(op *Op) int64 {
	f, ok := o.files[op.File]
	if !ok {
		return -int64(unix.EBADF)
	}
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil || st.Dev != f.dev || st.Ino != f.ino {
		return -int64(unix.EBADF) // closed, or the number now names another file
	}
	var n int
	var err error
	for done := 0; done < len(op.Buf); done += n {
		if op.Opcode == opq.OpWrite {
			n, err = unix.Pwrite(f.fd, op.Buf[done:], op.Off+int64(done))
		} else {
			n, err = unix.Pread(f.fd, op.Buf[done:], op.Off+int64(done))
		}
		if err == unix.EINTR {
			n = 0
			continue
		}
		if err != nil || n == 0 {
			if done > 0 {
				return int64(done)
			}
			if err != nil {
				return -int64(err.(unix.Errno))
			}
			return 0
		}
	}
	return int64(len(op.Buf))
}

// ring wakes the server thread for this CPU (the next one in poll mode)
// unless a server thread is polling the queue already.
func (o *opState) ring() {
	if o.q.NeedWake().Load() == 0 {
		return
	}
	var cpu, node uint32
	unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0)
	if o.mode == ModePoll {
		cpu++
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(o.bells[int(cpu)%len(o.bells)], one[:])
}

// signal makes the completion eventfd readable.
func (o *opState) signal() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(o.evfd, one[:])
}

// reset empties the completion eventfd, so that it turns readable again
// only for completions posted from now on.
func (o *opState) reset() {
	var b [8]byte
	unix.Read(o.evfd, b[:])
}

// harvest moves completions from the shared queue: those of Submit into
// out, those of sync ops into syncDone. It returns how many went to out
// and whether any sync op finished.
func (o *opState) harvest(out []Completion) (n int, synced bool) {
	tail := o.q.CQTail().Load()
	for o.cqHead != tail {
		c := o.q.ReadCQE(o.cqHead)
		if c.UserData >= uint64(len(o.slots)) {
			o.cqHead++ // not a slot of ours: the server is broken; skip it
			continue
		}
		info := o.slots[c.UserData]
		if info.sync == 0 && n == len(out) {
			break
		}
		o.cqHead++
		o.inflight--
		o.freeSlots = append(o.freeSlots, uint32(c.UserData))
		if info.sync != 0 {
			o.syncDone[info.sync] = c.Res
			synced = true
			continue
		}
		out[n] = Completion{info.userData, c.Res}
		n++
	}
	o.q.CQHead().Store(o.cqHead)
	return n, synced
}

// Wait fills cqes with at least min completions (fewer when fewer are
// pending), waiting up to timeout (negative: no limit). It returns how
// many it filled: ETIME when the time ran out first, ENOTCONN when the
// server went away (noticed at once: the wait watches the session's
// socket too), EBADF on a closed session.
func (s *Session) Wait(cqes []Completion, min int, timeout time.Duration) (int, error) {
	if s.ops.q == nil {
		return 0, fmt.Errorf("session closed: %w", unix.EBADF)
	}
	n := 0
	if len(s.ops.ready) > 0 {
		s.ops.reset() // the local completions' signal
	}
	for n < len(cqes) && len(s.ops.ready) > 0 {
		cqes[n] = s.ops.ready[0]
		s.ops.ready = s.ops.ready[1:]
		n++
	}
	m, _, err := s.waitQueue(cqes[n:], min-n, timeout, false)
	return n + m, err
}

// waitQueue is Wait on the shared completion queue alone. With anySync
// it also returns as soon as a sync op finished.
func (s *Session) waitQueue(cqes []Completion, want int, timeout time.Duration, anySync bool) (int, bool, error) {
	o := &s.ops
	want = max(0, min(want, o.inflight, len(cqes)))
	deadline := time.Now().Add(timeout)
	n, synced := o.harvest(cqes)
	more := func() {
		m, sy := o.harvest(cqes[n:])
		n += m
		synced = synced || sy
	}
	done := func() bool { return n >= want || (anySync && synced) }
	if n > 0 || synced {
		// The server signalled these: reset the eventfd, then look again
		// for what it posted in between, so the fd is readable only when
		// something is left to reap.
		o.reset()
		more()
	}
	for !done() {
		if o.dead {
			return n, synced, fmt.Errorf("server gone: %w", unix.ENOTCONN)
		}
		if o.mode == ModePoll {
			o.q.CQWake().Store(0)
			spinEnd := time.Now().Add(o.spin)
			for !done() && time.Now().Before(spinEnd) {
				more()
			}
			o.q.CQWake().Store(1)
			if done() {
				break
			}
		}
		more() // after CQWake is set: nothing slips between
		if done() {
			break
		}
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return n, synced, fmt.Errorf("wait: %w", unix.ETIME)
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		pfd := []unix.PollFd{{Fd: int32(o.evfd), Events: unix.POLLIN}, {Fd: int32(s.fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if _, err := unix.Poll(pfd, ms); err != nil && err != unix.EINTR {
			return n, synced, fmt.Errorf("wait: %w", err)
		}
		if pfd[1].Revents != 0 {
			o.dead = true // the server sends nothing unasked after setup: this is its end
		}
		if pfd[0].Revents&unix.POLLIN != 0 {
			o.reset()
		}
		more()
	}
	return n, synced, nil
}

// Pwrite writes buf to file at off and returns the bytes written. buf
// inside one shared arena moves zero-copy (split into MaxChunk pieces);
// outside every arena it is written through the mount, unless flags has
// RequireZC (then EFAULT); straddling an arena's end is EFAULT. flags:
// RequireZC or 0 (Datasync is ignored; others are EINVAL).
func (s *Session) Pwrite(file uint32, buf []byte, off int64, flags uint32) (int, error) {
	return s.rw(OpWrite, file, buf, off, flags)
}

// Pread reads into buf from file at off; see Pwrite. Fewer bytes than
// asked means the end of the file.
func (s *Session) Pread(file uint32, buf []byte, off int64, flags uint32) (int, error) {
	return s.rw(OpRead, file, buf, off, flags)
}

// PwriteArena writes n bytes at arenaOff in shared arena arena to file
// at off, zero-copy, split into MaxChunk pieces as Pwrite; EFAULT (and
// nothing written) unless the whole range lies inside an arena this
// session shares. flags: RequireZC, ArenaRef or 0 (both change nothing
// here); others are EINVAL.
func (s *Session) PwriteArena(file, arena uint32, arenaOff, n uint64, off int64, flags uint32) (int, error) {
	return s.rwArena(OpWrite, file, arena, arenaOff, n, off, flags)
}

// PreadArena reads up to n bytes of file at off into shared arena arena
// at arenaOff; see PwriteArena. Fewer bytes than asked means the end of
// the file.
func (s *Session) PreadArena(file, arena uint32, arenaOff, n uint64, off int64, flags uint32) (int, error) {
	return s.rwArena(OpRead, file, arena, arenaOff, n, off, flags)
}

// Fsync flushes file to stable storage (fdatasync with Datasync).
func (s *Session) Fsync(file uint32, flags uint32) error {
	res, err := s.sync1([]Op{{Opcode: OpFsync, File: file, Flags: flags}})
	if err != nil {
		return err
	}
	if res[0] < 0 {
		return unix.Errno(-res[0])
	}
	return nil
}

func (s *Session) rw(opcode uint8, file uint32, buf []byte, off int64, flags uint32) (int, error) {
	if flags&^(RequireZC|Datasync) != 0 {
		return 0, fmt.Errorf("flags %#x: %w", flags, unix.EINVAL)
	}
	if opcode == OpWrite && off >= 0 && pastLimit(off, uint64(len(buf)), fileSizeLimit()) {
		return 0, unix.EFBIG // the whole write, before any chunk of it is sent
	}
	var ops []Op
	for done := 0; done < len(buf) || len(ops) == 0; {
		n := min(len(buf)-done, MaxChunk)
		ops = append(ops, Op{Opcode: opcode, Flags: flags & RequireZC, File: file, Buf: buf[done : done+n], Len: uint64(n), Off: off + int64(done)})
		done += n
		if n == 0 {
			break
		}
	}
	return s.rwSync(ops)
}

func (s *Session) rwArena(opcode uint8, file, arena uint32, arenaOff, n uint64, off int64, flags uint32) (int, error) {
	if flags&^(RequireZC|ArenaRef) != 0 {
		return 0, fmt.Errorf("flags %#x: %w", flags, unix.EINVAL)
	}
	if errno := s.ops.checkArena(arena, arenaOff, n); errno != 0 {
		return 0, fmt.Errorf("arena %d bytes [%d, +%d): not inside an arena this session shares: %w", arena, arenaOff, n, errno)
	}
	if opcode == OpWrite && off >= 0 && pastLimit(off, n, fileSizeLimit()) {
		return 0, unix.EFBIG // the whole write, before any chunk of it is sent
	}
	var ops []Op
	for done := uint64(0); done < n || len(ops) == 0; {
		k := min(n-done, MaxChunk)
		ops = append(ops, Op{Opcode: opcode, Flags: ArenaRef, File: file, Arena: arena, ArenaOff: arenaOff + done, Len: k, Off: off + int64(done)})
		done += k
		if k == 0 {
			break
		}
	}
	return s.rwSync(ops)
}

// rwSync runs the pieces of one Pread or Pwrite (Len set in each) and
// adds up their results: a short piece ends it (end of file), an error
// after some bytes moved is the count so far.
func (s *Session) rwSync(ops []Op) (int, error) {
	res, err := s.sync1(ops)
	if err != nil {
		return 0, err
	}
	total := 0
	for i, r := range res {
		if r < 0 {
			if total > 0 {
				return total, nil
			}
			return 0, unix.Errno(-r)
		}
		total += int(r)
		if uint64(r) < ops[i].Len {
			break // end of file
		}
	}
	return total, nil
}

// sync1 runs ops and waits for exactly their completions, keeping any
// other op's completion for a later Wait.
func (s *Session) sync1(ops []Op) ([]int64, error) {
	o := &s.ops
	base := o.nextSync + 1
	o.nextSync += uint64(len(ops))
	res := make([]int64, len(ops))
	got, sent := 0, 0
	var buf [64]Completion
	collect := func() {
		for i := range ops {
			id := base + uint64(i)
			if r, ok := o.syncDone[id]; ok {
				res[i] = r
				delete(o.syncDone, id)
				got++
			}
		}
	}
	for {
		if sent < len(ops) {
			n, err := s.submit(ops[sent:], base+uint64(sent))
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				return nil, err
			}
			sent += n
		}
		collect()
		if got == len(ops) {
			break
		}
		n, _, err := s.waitQueue(buf[:], 1, -1, true)
		o.ready = append(o.ready, buf[:n]...) // others' completions: for a later Wait
		if err != nil {
			return nil, err
		}
	}
	if len(o.ready) > 0 {
		o.signal() // others' completions kept for Wait: the fd must say so
	}
	return res, nil
}

// SubmitRaw queues descriptors as given, unchecked, for tests and tools
// that speak the queue protocol themselves: the server must cope with
// whatever a client writes. Only UserData is mapped (to a slot, and back
// in the completion). Reap the completions with Wait.
func (s *Session) SubmitRaw(es []opq.SQE) (int, error) {
	o := &s.ops
	if err := s.usable(); err != nil {
		return 0, err
	}
	n := 0
	for i := range es {
		if len(o.freeSlots) == 0 {
			break
		}
		e := es[i]
		o.queue(&e, slotInfo{userData: es[i].UserData})
		n++
	}
	o.publish(n)
	return n, nil
}

// RawQueue is the session's op queue itself, for tests that play a
// misbehaving client (scribbling over the indices); nil once closed.
func (s *Session) RawQueue() *opq.Queue { return s.ops.q }

// Ring rings the server's doorbell for this CPU.
func (s *Session) Ring() {
	if s.ops.q != nil {
		s.ops.ring()
	}
}

// fileSizeLimit is the process's RLIMIT_FSIZE soft limit (RLIM_INFINITY
// when it cannot be read).
func fileSizeLimit() uint64 {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_FSIZE, &rl) != nil {
		return unix.RLIM_INFINITY
	}
	return rl.Cur
}

// pastLimit reports whether writing n bytes at off would reach past the
// file size limit. Ring writes past it fail whole with EFBIG: unlike
// write(2) they are not shortened to the limit, and no SIGXFSZ is sent.
func pastLimit(off int64, n uint64, limit uint64) bool {
	return n > 0 && (uint64(off)+n > limit || uint64(off)+n < n)
}
