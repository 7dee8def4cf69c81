package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"golang.org/x/sys/unix"
)

// zcArenaSize holds the largest sweep buffer and a QD32 batch of 4 KiB
// buffers after it.
const zcArenaSize = 32 << 20

// ZCClient is `zcfuse-bench zc-client SPEC`, the zero-copy client the
// harness runs for every zero-copy run (a child process, as fio is): it
// runs one row on one path as the JSON spec says (see zcSpec) and writes
// a ZCMeasurement as JSON on stdout. For pinned rows it pins its
// measuring thread itself (spec.PinThread), or the harness starts the
// whole process pinned, as it does fio (--zc-pin process).
//
// It sets everything up first (opens the file, creates and shares the
// arena, attaches, touches every buffer page), then runs the workload for
// the ramp without recording and for the runtime recording the latency
// of every call (QD1) or batch (Submit QD ops, then Wait for all of
// them). Every call must move exactly its bytes; anything else ends the
// client with an error.
func ZCClient(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: %s takes one JSON spec", ErrUsage, CmdZCClient)
	}
	var sp zcSpec
	if err := json.Unmarshal([]byte(args[0]), &sp); err != nil {
		return fmt.Errorf("%s spec: %w", CmdZCClient, err)
	}
	runtime.LockOSThread()
	if sp.PinThread != nil {
		var set unix.CPUSet
		set.Set(*sp.PinThread)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin the measuring thread to CPU %d: %w", *sp.PinThread, err)
		}
	}
	m, err := runZC(sp)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(m)
}

// zcClient is one set-up path: a function that does call i.
type zcClient struct {
	sp     zcSpec
	row    ZCRow
	fd     int
	buf    []byte // the QD1 buffer: BS bytes
	bufs   [][]byte
	arena  *arena.Arena
	sess   *client.Session
	fileID uint32
	ops    []client.Op
	cqes   []client.Completion
	offs   []int64 // random offsets, cycled
	seq    int64   // next sequential offset
	// ringOps counts the ops done: ring descriptors (what the server
	// counts as zc_ops) or calls on the other paths; bytes their bytes.
	ringOps uint64
	bytes   uint64
	regd    *bool
}

func runZC(sp zcSpec) (m ZCMeasurement, err error) {
	p, ok := zcPathByName(sp.Path)
	if !ok {
		return m, fmt.Errorf("unknown path %q", sp.Path)
	}
	row := sp.Row
	if row.BS <= 0 || row.QD <= 0 || row.BS*int64(row.QD) > sp.FileSize || row.BS > 16<<20 {
		return m, fmt.Errorf("row %s: bs %d × qd %d does not fit a %d-byte file and a 16 MiB buffer", row.ID, row.BS, row.QD, sp.FileSize)
	}
	c := &zcClient{sp: sp, row: row, fd: -1}
	defer c.close()
	if err := c.setup(p); err != nil {
		return m, err
	}
	do := c.pick(p)

	// The ramp: run, record nothing.
	start := time.Now()
	for time.Since(start) < sp.Ramp {
		if err := do(); err != nil {
			return m, err
		}
	}
	// The measured window.
	maxSamples := int(sp.Runtime/(150*time.Nanosecond)) + 1024
	maxSamples = min(maxSamples, 16<<20)
	lat := make([]uint32, 0, maxSamples)
	lat = lat[:cap(lat)]
	clear(lat) // touch it now, not in the window
	lat = lat[:0]
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	srv0 := pidTicks(sp.ServerPID)
	calls := uint64(0)
	base := time.Now()
	last := time.Duration(0)
	for last < sp.Runtime {
		if err := do(); err != nil {
			return m, err
		}
		now := time.Since(base)
		if len(lat) < cap(lat) {
			d := now - last
			if d > time.Duration(^uint32(0)) {
				d = time.Duration(^uint32(0))
			}
			lat = append(lat, uint32(d))
		}
		last = now
		calls++
	}
	wall := last
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	srv1 := pidTicks(sp.ServerPID)
	runtime.ReadMemStats(&ms1)

	ops := calls * uint64(row.QD)
	m.Ops = ops
	m.WallMs = float64(wall) / 1e6
	m.IOPS = float64(ops) / wall.Seconds()
	m.GBps = float64(ops) * float64(row.BS) / wall.Seconds() / 1e9
	m.MeanUs = float64(wall) / float64(calls) / 1e3
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(q * float64(len(lat)))
		return float64(lat[min(i, len(lat)-1)]) / 1e3
	}
	m.P50Us, m.P99Us, m.P999Us = pct(0.50), pct(0.99), pct(0.999)
	if len(lat) > 0 {
		m.MaxUs = float64(lat[len(lat)-1]) / 1e3
	}
	// Ops (calls on the sync paths) and bytes, ramp included: what the
	// server must have counted.
	m.TotalOps, m.TotalBytes = c.ringOps, c.bytes
	fops := float64(ops)
	m.ClientUsrUs = float64(tvNs(ru1.Utime)-tvNs(ru0.Utime)) / 1e3 / fops
	m.ClientSysUs = float64(tvNs(ru1.Stime)-tvNs(ru0.Stime)) / 1e3 / fops
	m.ClientVCSW = float64(ru1.Nvcsw-ru0.Nvcsw) / fops
	m.ClientIVCSW = float64(ru1.Nivcsw-ru0.Nivcsw) / fops
	m.AllocsPerOp = float64(ms1.Mallocs-ms0.Mallocs) / fops
	m.ClientGCs = ms1.NumGC - ms0.NumGC
	m.ClientCPUs = procField("/proc/thread-self/status", "Cpus_allowed_list") // the measuring thread's
	m.Registered = c.regd
	if srv0 >= 0 && srv1 >= srv0 {
		m.ServerCPUsMs = float64(srv1-srv0) * 10
	}
	return m, nil
}

func tvNs(tv unix.Timeval) int64 { return tv.Sec*1e9 + int64(tv.Usec)*1e3 }

func zcPathByName(name string) (ZCPath, bool) {
	for _, p := range ZCPaths {
		if p.Name == name {
			return p, true
		}
	}
	return ZCPath{}, false
}

// setup opens the file and the buffers of path p.
func (c *zcClient) setup(p ZCPath) error {
	sp, row := c.sp, c.row
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if p.kind == zcPosix {
		flags |= unix.O_DIRECT // as fio's rows: every call is one FUSE request
	}
	var err error
	if c.fd, err = unix.Open(sp.File, flags, 0); err != nil {
		return fmt.Errorf("open %s: %w", sp.File, err)
	}
	if p.kind == zcNative {
		// A plain Go buffer, page-aligned as the others are.
		raw := make([]byte, zcArenaSize+4096)
		off := int((4096 - uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096)
		c.bufs = [][]byte{raw[off : off+zcArenaSize]}
	} else {
		if c.arena, err = arena.Create(zcArenaSize, arena.Options{Name: "zcfuse-bench"}); err != nil {
			return err
		}
		c.bufs = [][]byte{c.arena.Bytes()}
	}
	mem := c.bufs[0]
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = byte(i>>12) | 1 // touch every page: no fault in the window
	}
	c.buf = mem[:row.BS]
	if p.kind == zcRing {
		if c.sess, err = client.Connect(sp.Mount); err != nil {
			return fmt.Errorf("connect %s: %w", sp.Mount, err)
		}
		_, registered, err := c.sess.Share(c.arena)
		if err != nil {
			return fmt.Errorf("share the arena: %w", err)
		}
		c.regd = &registered
		if c.fileID, err = c.sess.Attach(c.fd); err != nil {
			return fmt.Errorf("attach %s: %w", sp.File, err)
		}
		mode := client.ModeSleep
		if p.Mode == "poll" {
			mode = client.ModePoll
		}
		c.sess.SetMode(mode, sp.Spin)
	}
	if row.Random {
		blocks := sp.FileSize / row.BS
		rng := sp.Seed | 1
		c.offs = make([]int64, 1<<16)
		for i := range c.offs {
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			c.offs[i] = int64(rng%uint64(blocks)) * row.BS
		}
	}
	if row.QD > 1 {
		// QD distinct buffers after the largest QD1 buffer.
		for i := range row.QD {
			o := 16<<20 + i*int(row.BS)
			c.bufs = append(c.bufs, mem[o:o+int(row.BS)])
		}
		c.ops = make([]client.Op, row.QD)
		c.cqes = make([]client.Completion, row.QD)
	}
	return nil
}

func (c *zcClient) close() {
	if c.sess != nil {
		c.sess.Close()
	}
	if c.fd >= 0 {
		unix.Close(c.fd)
	}
	if c.arena != nil {
		c.arena.Close()
	}
}

// next is the offset of the next op.
func (c *zcClient) next() int64 {
	if c.row.Random {
		return c.offs[c.ringOps%uint64(len(c.offs))]
	}
	o := c.seq
	c.seq += c.row.BS
	if c.seq+c.row.BS > c.sp.FileSize {
		c.seq = 0
	}
	return o
}

var errShort = errors.New("short transfer")

// pick returns the call (QD1) or batch (QD > 1) of path p.
func (c *zcClient) pick(p ZCPath) func() error {
	row := c.row
	write := row.Op == "WRITE"
	bs := int(row.BS)
	check := func(n int, err error, off int64) error {
		if err != nil {
			return fmt.Errorf("%s %s at %d: %w", row.ID, strings.ToLower(row.Op), off, err)
		}
		if n != bs {
			return fmt.Errorf("%s %s at %d: %d of %d bytes: %w", row.ID, strings.ToLower(row.Op), off, n, bs, errShort)
		}
		c.ringOps++
		c.bytes += uint64(n)
		return nil
	}
	if p.kind != zcRing {
		one := func(buf []byte) error {
			off := c.next()
			var n int
			var err error
			for {
				if write {
					n, err = unix.Pwrite(c.fd, buf, off)
				} else {
					n, err = unix.Pread(c.fd, buf, off)
				}
				if err != unix.EINTR {
					break
				}
			}
			return check(n, err, off)
		}
		if row.QD == 1 {
			return func() error { return one(c.buf) }
		}
		return func() error {
			for i := range row.QD {
				if err := one(c.bufs[1+i]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if row.QD == 1 {
		return func() error {
			off := c.next()
			var n int
			var err error
			if write {
				n, err = c.sess.Pwrite(c.fileID, c.buf, off, client.RequireZC)
			} else {
				n, err = c.sess.Pread(c.fileID, c.buf, off, client.RequireZC)
			}
			return check(n, err, off)
		}
	}
	opcode := client.OpRead
	if write {
		opcode = client.OpWrite
	}
	return func() error {
		for i := range c.ops {
			c.ops[i] = client.Op{Opcode: opcode, Flags: client.RequireZC, File: c.fileID, Buf: c.bufs[1+i],
				Off: c.offs[(c.ringOps+uint64(i))%uint64(len(c.offs))], UserData: uint64(i)}
		}
		n, err := c.sess.Submit(c.ops)
		if err != nil {
			return fmt.Errorf("%s submit: %w", row.ID, err)
		}
		if n != len(c.ops) {
			return fmt.Errorf("%s: submit took %d of %d ops", row.ID, n, len(c.ops))
		}
		for got := 0; got < n; {
			k, err := c.sess.Wait(c.cqes[got:], n-got, -1)
			if err != nil {
				return fmt.Errorf("%s wait: %w", row.ID, err)
			}
			for _, cq := range c.cqes[got : got+k] {
				if cq.Res != int64(bs) {
					return fmt.Errorf("%s op %d: result %d, want %d", row.ID, cq.UserData, cq.Res, bs)
				}
			}
			got += k
		}
		c.ringOps += uint64(n)
		c.bytes += uint64(n * bs)
		return nil
	}
}
