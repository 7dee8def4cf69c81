package fusering

import (
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/zcfuse/zcfuse/gosrc/uapi"
	"golang.org/x/sys/unix"
)

// Transport selects how requests travel from the kernel.
type Transport string

const (
	// TransportAuto uses FUSE-over-io_uring when the kernel offers it and
	// falls back to /dev/fuse otherwise, keeping the reason in Stats.
	TransportAuto Transport = "auto"
	// TransportURing requires FUSE-over-io_uring: Start fails otherwise.
	TransportURing Transport = "uring"
	// TransportClassic serves every request over /dev/fuse read/write.
	TransportClassic Transport = "classic"
)

// ParseTransport checks a transport name.
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(s); t {
	case TransportAuto, TransportURing, TransportClassic:
		return t, nil
	}
	return "", fmt.Errorf("unknown transport %q (want auto, uring or classic): %w", s, unix.EINVAL)
}

// MaxWrite is the largest WRITE (and READ) the kernel sends: 1 MiB.
const MaxWrite = 1 << 20

// DefaultQueueDepth is the number of ring threads (one entry each) per
// queue when Config.QueueDepth is zero.
const DefaultQueueDepth = 4

// MaxQueueDepth bounds Config.QueueDepth.
const MaxQueueDepth = 64

// Config describes a mount.
type Config struct {
	Mountpoint string
	// Source is the device name shown in /proc/mounts.
	Source string
	// Subtype makes the file system type fuse.<Subtype>; default zcfuse.
	Subtype   string
	Transport Transport
	// RequireURing makes TransportAuto fail where it would fall back to
	// /dev/fuse (what TransportURing does anyway). Programs set it from
	// RequireURingEnv; this package never reads the environment.
	RequireURing bool
	// QueueDepth is the number of ring threads per queue, each holding one
	// entry, so a handler that blocks traps only its own request.
	QueueDepth int
	// AllowOther lets other users in; it implies DefaultPermissions so the
	// kernel checks file modes before a root server opens anything.
	AllowOther         bool
	DefaultPermissions bool
	ReadOnly           bool
	// Passthrough lets the file system register backing files for kernel
	// FUSE passthrough (Notifier then offers RegisterBackingFd); READ and
	// WRITE then bypass the server.
	Passthrough bool
	// MountOptions is the template for the ProtocolServer (Debug,
	// EnableLocks, MaxBackground, Logger...). MaxWrite and the io_uring
	// and passthrough capabilities are set from the fields above.
	MountOptions fuse.MountOptions
	// ReadyTimeout bounds the wait for INIT and for the first stat of the
	// root; zero means 10 s.
	ReadyTimeout time.Duration
	Logger       *log.Logger
	// NoFastRead turns the READ fast path off, so every READ reaches the
	// file system (a server whose read hook must see the data).
	NoFastRead bool
	// ThreadInit, if set, runs on every request thread once it has its
	// own file-system context (requestThread), before it serves anything:
	// a file system can set the thread's working directory there.
	ThreadInit func() error
}

// Conn is one FUSE connection: a mount, its /dev/fuse fd and the threads
// that serve it.
type Conn struct {
	cfg      Config
	devFd    int
	notifier *Notifier
	ps       *fuse.ProtocolServer
	cnt      counters
	logger   *log.Logger

	nqueues   int
	transport Transport
	fallback  string
	minor     uint32
	mounted   bool
	serving   bool // the threads and their monitor were started

	mu      sync.Mutex
	workers []*ringWorker

	wg       sync.WaitGroup
	done     chan struct{}
	ending   atomic.Bool
	stopOnce sync.Once
	stopErr  error

	fastRead bool     // the READ fast path may be on (not in debug mode)
	readFd   ReadFder // set by Start when it is on

	readers    atomic.Int32
	idle       atomic.Int32
	maxReaders int32
}

// Open checks cfg and opens /dev/fuse; nothing is mounted yet.
func Open(cfg Config) (*Conn, error) {
	if cfg.Mountpoint == "" {
		return nil, fmt.Errorf("no mountpoint: %w", unix.EINVAL)
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportAuto
	}
	if _, err := ParseTransport(string(cfg.Transport)); err != nil {
		return nil, err
	}
	if cfg.QueueDepth == 0 {
		cfg.QueueDepth = DefaultQueueDepth
	}
	if cfg.QueueDepth < 1 || cfg.QueueDepth > MaxQueueDepth {
		return nil, fmt.Errorf("queue depth %d out of range [1, %d]: %w", cfg.QueueDepth, MaxQueueDepth, unix.EINVAL)
	}
	if cfg.Subtype == "" {
		cfg.Subtype = "zcfuse"
	}
	if cfg.Source == "" {
		cfg.Source = "zcfuse"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if cfg.AllowOther {
		cfg.DefaultPermissions = true
	}
	logger := cfg.Logger
	if logger == nil {
		logger = log.New(os.Stderr, "zcfuse: ", 0)
	}
	if cfg.MountOptions.Logger == nil {
		cfg.MountOptions.Logger = logger
	}
	nq, err := PossibleCPUs()
	if err != nil {
		return nil, fmt.Errorf("possible CPUs: %w", err)
	}
	fd, err := openDevFuse()
	if err != nil {
		return nil, err
	}
	c := &Conn{cfg: cfg, devFd: fd, logger: logger, nqueues: nq, done: make(chan struct{}), fastRead: !cfg.MountOptions.Debug && !cfg.NoFastRead}
	c.notifier = newNotifier(fd)
	return c, nil
}

// Invalidator is the connection's Notifier itself, for InvalidateNow.
func (c *Conn) Invalidator() *Notifier { return c.notifier }

// Notifier returns the connection's notification calls (go-fuse's
// fs.ServerCallbacks). With Config.Passthrough it also carries the
// backing-file calls (RegisterBackingFd, UnregisterBackingFd) that enable
// kernel passthrough; without, a file system cannot turn it on.
func (c *Conn) Notifier() fs.ServerCallbacks {
	if c.cfg.Passthrough {
		return passthroughNotifier{c.notifier}
	}
	return c.notifier
}

// Logger is where the connection logs.
func (c *Conn) Logger() *log.Logger { return c.logger }

// Transport returns the transport in use after Start.
func (c *Conn) Transport() Transport { return c.transport }

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	s := Stats{
		Transport:      string(c.transport),
		FallbackReason: c.fallback,
		Queues:         c.nqueues,
		QueueDepth:     c.cfg.QueueDepth,
	}
	if c.transport != TransportURing {
		s.Queues, s.QueueDepth = 0, 0
	}
	c.cnt.snapshot(&s)
	return s
}

// Start mounts the file system and serves it; it returns once the mount
// is ready, or an error after undoing the mount.
func (c *Conn) Start(rawFS fuse.RawFileSystem) (err error) {
	if err := CheckMountpoint(c.cfg.Mountpoint); err != nil {
		return err
	}
	if err := doMount(c.devFd, mountParams{
		mountpoint: c.cfg.Mountpoint, source: c.cfg.Source, subtype: c.cfg.Subtype,
		allowOther: c.cfg.AllowOther, readOnly: c.cfg.ReadOnly, defaultPerm: c.cfg.DefaultPermissions,
	}); err != nil {
		return err
	}
	c.mounted = true
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	var found bool
	if c.minor, found, err = mountID(c.cfg.Mountpoint); err != nil || !found {
		return fmt.Errorf("mount of %s not in /proc/self/mountinfo (%v)", c.cfg.Mountpoint, err)
	}
	if err := c.init(rawFS); err != nil {
		return err
	}
	c.notifier.start()
	if c.transport == TransportURing {
		c.maxReaders = 4 // FORGET, INTERRUPT and whatever came before the ring
	} else {
		c.maxReaders = 16
	}
	c.serving = true
	c.spawnReader()
	go func() {
		c.wg.Wait()
		close(c.done)
	}()
	if c.transport == TransportURing {
		if err := c.startRings(); err != nil {
			if c.cfg.Transport == TransportURing || c.cfg.RequireURing {
				return err
			}
			c.fallback = err.Error()
			c.transport = TransportClassic
			c.maxReaders = 16
			c.logger.Printf("falling back to /dev/fuse: %v", err)
		}
	}
	return c.waitReady()
}

// init answers INIT over /dev/fuse and picks the transport.
func (c *Conn) init(rawFS fuse.RawFileSystem) error {
	buf := make([]byte, MaxWrite+64<<10)
	n, err := readDev(c.devFd, buf, c.cfg.ReadyTimeout)
	if err != nil {
		return fmt.Errorf("read INIT: %w", err)
	}
	req := buf[:n]
	h := structAt[uapi.FuseInHeader](req)
	if h == nil || n < uapi.FuseInHeaderSize+initInMin || uapi.FuseOpcode(h.Opcode) != uapi.FuseOpInit {
		return fmt.Errorf("first request is not INIT (%d bytes)", n)
	}
	// Kernels before protocol 7.36 send a shorter fuse_init_in: what
	// they leave out reads as zero.
	var initIn uapi.FuseInitIn
	copy(bytesOf(&initIn), req[uapi.FuseInHeaderSize:])
	flags := uint64(initIn.Flags) | uint64(initIn.Flags2)<<32
	offered := flags&uapi.CapOverIOURing != 0
	require := c.cfg.Transport == TransportURing || (c.cfg.Transport == TransportAuto && c.cfg.RequireURing)
	switch {
	case c.cfg.Transport == TransportClassic:
		c.transport = TransportClassic
	case offered:
		c.transport = TransportURing
	case require:
		replyError(c.devFd, h.Unique, syscall.EPROTO)
		return fmt.Errorf("the kernel does not offer FUSE-over-io_uring (is %s Y? as root: echo Y > %s): %w", URingEnabledPath, URingEnabledPath, unix.EPROTONOSUPPORT)
	default:
		c.transport = TransportClassic
		c.fallback = "the kernel did not offer FUSE-over-io_uring in INIT (" + URingEnabledPath + " is not Y, or the kernel predates 6.14)"
		c.logger.Printf("falling back to /dev/fuse: %s", c.fallback)
	}
	opts := c.cfg.MountOptions
	opts.MaxWrite = MaxWrite
	if c.transport == TransportURing {
		opts.ExtraCapabilities |= uapi.CapOverIOURing
	}
	if !c.cfg.Passthrough {
		opts.DisabledCapabilities |= fuse.CAP_PASSTHROUGH
	}
	c.ps = fuse.NewProtocolServer(rawFS, &opts)
	if rf, ok := rawFS.(ReadFder); ok && c.fastRead {
		c.readFd = rf
	}
	out := make([]byte, 4096)
	m := c.serve(chanDev, [][]byte{buf[:n]}, [][]byte{out})
	if _, err := unix.Write(c.devFd, out[:m]); err != nil {
		return fmt.Errorf("reply to INIT: %w", err)
	}
	if oh := structAt[uapi.FuseOutHeader](out[:m]); oh == nil {
		return fmt.Errorf("no reply to INIT (%d bytes)", m)
	} else if oh.Error != 0 {
		return fmt.Errorf("INIT failed: %w", syscall.Errno(-oh.Error))
	}
	return nil
}

// readDev reads one request, giving up after timeout.
func readDev(fd int, buf []byte, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, fmt.Errorf("no request from the kernel within %v", timeout)
		}
		if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return 0, err
		}
		if pfd[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR || err == unix.EAGAIN || err == unix.ENOENT {
			continue
		}
		return n, err
	}
}

// replyError answers request unique with -errno.
func replyError(fd int, unique uint64, errno syscall.Errno) {
	var out uapi.FuseOutHeader
	putError(&out, unique, errno)
	unix.Write(fd, bytesOf(&out))
}

// putError makes out the header of a reply to request unique that fails
// with errno. out may share memory with the request's in header (a ring
// entry's in_out): unique is read before out is written.
func putError(out *uapi.FuseOutHeader, unique uint64, errno syscall.Errno) {
	*out = uapi.FuseOutHeader{Len: uapi.FuseOutHeaderSize, Error: -int32(errno), Unique: unique}
}

// serve runs one request through the ProtocolServer, counts it, and
// returns the length of the reply in out (0: no reply). in[0] starts
// with the request's fuse_in_header, out[0] receives the reply's
// fuse_out_header.
func (c *Conn) serve(ch int, in, out [][]byte) int {
	ih := structAt[uapi.FuseInHeader](in[0])
	oh := structAt[uapi.FuseOutHeader](out[0])
	if ih == nil || oh == nil {
		return c.serveShort(in[0], out[0])
	}
	op := uapi.FuseOpcode(ih.Opcode)
	c.cnt.ops[ch][opSlot(op)].Add(1)
	n, st := c.ps.HandleRequest(in, out)
	if n == 0 {
		if st == fuse.OK {
			return 0 // FORGET and friends: no reply
		}
		c.logger.Printf("malformed %s request: %v", OpName(uint32(op)), st)
		putError(oh, ih.Unique, syscall.EIO)
		c.cnt.errors.Add(1)
		return uapi.FuseOutHeaderSize
	}
	if oh.Error != 0 {
		if !expectedErrno(syscall.Errno(-oh.Error)) {
			c.cnt.errors.Add(1)
		}
	} else if op == uapi.FuseOpRead {
		c.cnt.bytesRead.Add(uint64(n - uapi.FuseOutHeaderSize))
	} else if op == uapi.FuseOpWrite {
		var wo uapi.FuseWriteOut
		readAt(bytesOf(&wo), out, uapi.FuseOutHeaderSize)
		c.cnt.bytesWritten.Add(uint64(wo.Size))
	}
	return n
}

// serveShort answers a request too short for a fuse_in_header (the
// kernel never sends one) with EIO, when it has a whole unique to answer
// and out has room for the reply's header; it returns the reply's length.
func (c *Conn) serveShort(in, out []byte) int {
	c.logger.Printf("short request (%d bytes)", len(in))
	c.cnt.errors.Add(1)
	var ih uapi.FuseInHeader
	copy(bytesOf(&ih), in)
	oh := structAt[uapi.FuseOutHeader](out)
	if len(in) < inHeaderUniqueEnd || oh == nil {
		return 0
	}
	putError(oh, ih.Unique, syscall.EIO)
	return uapi.FuseOutHeaderSize
}

// expectedErrno tells answers to ordinary questions (no such name, no
// such attribute: the kernel asks for security.capability before every
// write; no such operation: the POLL probe) from errors worth counting.
func expectedErrno(e syscall.Errno) bool {
	return e == syscall.ENOENT || e == syscall.ENODATA || e == syscall.ENOSYS
}

// readAt fills dst from byte offset off of the stream that the iovecs
// in iov make, the way a reply is split between a ring entry's header
// and its payload; what lies past the stream's end is left as it was.
func readAt(dst []byte, iov [][]byte, off int) {
	got := 0
	for _, e := range iov {
		if got == len(dst) {
			break
		}
		if off >= len(e) {
			off -= len(e)
			continue
		}
		got += copy(dst[got:], e[off:])
		off = 0
	}
}

// spawnReader starts one more /dev/fuse reader.
func (c *Conn) spawnReader() {
	c.readers.Add(1)
	c.idle.Add(1)
	c.wg.Add(1)
	go c.devReader()
}

// devReader serves requests read from /dev/fuse: every request on the
// classic transport; FORGET, INTERRUPT and early requests on io_uring.
// When the last idle reader takes a request, another is started (up to
// maxReaders), so a handler that blocks does not stall the rest.
func (c *Conn) devReader() {
	defer c.wg.Done()
	// Locked for good: the thread dies with the goroutine, and its
	// private umask with it.
	runtime.LockOSThread()
	if err := c.requestThread(); err != nil {
		c.logger.Printf("/dev/fuse reader: %v", err)
		c.ending.Store(true)
		return
	}
	defer requestThreads.Delete(unix.Gettid())
	buf := make([]byte, MaxWrite+64<<10)
	out := make([]byte, MaxWrite+64<<10)
	for {
		n, err := unix.Read(c.devFd, buf)
		if err != nil {
			switch err {
			case unix.EINTR, unix.EAGAIN, unix.ENOENT:
				continue
			case unix.ENODEV:
			default:
				c.logger.Printf("read /dev/fuse: %v", err)
			}
			c.ending.Store(true)
			return
		}
		if c.idle.Add(-1) == 0 && c.readers.Load() < c.maxReaders && !c.ending.Load() {
			c.spawnReader()
		}
		if m := c.serve(chanDev, [][]byte{buf[:n]}, [][]byte{out}); m > 0 {
			if _, err := unix.Write(c.devFd, out[:m]); err != nil && err != unix.ENOENT && err != unix.ENODEV {
				c.logger.Printf("write /dev/fuse: %v", err)
			}
		}
		c.idle.Add(1)
	}
}

// waitReady stats the root through the mount; until that works the mount
// is not reported ready.
func (c *Conn) waitReady() error {
	res := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		if err := unix.Stat(c.cfg.Mountpoint, &st); err != nil {
			res <- err
			return
		}
		res <- pollHack(c.cfg.Mountpoint)
	}()
	select {
	case err := <-res:
		if err != nil {
			return fmt.Errorf("mount is not answering: stat %s: %w", c.cfg.Mountpoint, err)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("server stopped before the mount became ready: %w", unix.ENOTCONN)
	case <-time.After(c.cfg.ReadyTimeout):
		return fmt.Errorf("mount is not answering: stat %s did not return within %v: %w", c.cfg.Mountpoint, c.cfg.ReadyTimeout, unix.ETIMEDOUT)
	}
}

// Wait blocks until the file system is unmounted or the connection ends.
func (c *Conn) Wait() {
	<-c.done
}

// Done is closed when every serving thread has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Stop unmounts (aborting the connection first when files are still
// open, so requests in flight fail with ENOTCONN instead of hanging),
// waits for the threads, and closes /dev/fuse. Safe to call more than
// once and after an external unmount.
func (c *Conn) Stop() error {
	c.stopOnce.Do(func() {
		c.ending.Store(true)
		var errs []error
		if c.mounted {
			if err := c.unmount(); err != nil {
				errs = append(errs, err)
			}
		}
		c.mu.Lock()
		for _, w := range c.workers {
			w.waker.Wake()
		}
		c.mu.Unlock()
		if c.serving {
			select {
			case <-c.done:
			case <-time.After(15 * time.Second):
				errs = append(errs, errors.New("serving threads did not end within 15s"))
			}
		}
		c.notifier.stop()
		if err := unix.Close(c.devFd); err != nil {
			errs = append(errs, err)
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// pollHack makes the kernel send one POLL, which go-fuse answers with
// ENOSYS, so the kernel stops asking. Without it, a process that serves
// and uses the mount itself can deadlock: the Go runtime adds every file
// it opens to its epoll set, epoll_ctl on a FUSE file sends POLL and
// waits while holding a P, and with all Ps waiting no goroutine is left
// to answer. go-fuse's own server does the same at mount.
func pollHack(mnt string) error {
	fd, err := unix.Open(mnt+"/"+pollHackName, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("poll probe: %w", err)
	}
	defer unix.Close(fd)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}
	unix.Poll(pfd, 0)
	return nil
}

// pollHackName is the name go-fuse's ProtocolServer answers itself for
// the POLL probe; it never reaches the node tree.
const pollHackName = ".go-fuse-epoll-hack"

// unmount ends the mount. A plain unmount ends the connection by itself.
// When the mount is busy (open files, a request in flight) the
// connection is aborted through fusectl, and the mount detached. Minors
// are reused as soon as a connection is gone, so the abort happens only
// while the mount on our mountpoint still carries our minor.
func (c *Conn) unmount() error {
	err := unix.Unmount(c.cfg.Mountpoint, 0)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil // unmounted now, or already
	case !errors.Is(err, unix.EBUSY):
		return fmt.Errorf("unmount %s: %w", c.cfg.Mountpoint, err)
	}
	var errs []error
	if minor, ok, _ := mountID(c.cfg.Mountpoint); ok && minor == c.minor {
		if err := abortConnection(c.minor); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unix.Unmount(c.cfg.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		errs = append(errs, fmt.Errorf("unmount %s: %w", c.cfg.Mountpoint, err))
	}
	return errors.Join(errs...)
}

// requestThread prepares the locked OS thread of a request loop: its own
// file-system context (unshare(CLONE_FS)) with umask 0, then
// Config.ThreadInit. The server's own umask must never apply to a
// caller's CREATE, MKDIR or MKNOD (the caller's does: the kernel's, or the
// file system's with FUSE_DONT_MASK); a process-wide umask(0), or chdir,
// would change them for the program that embeds the server too. The
// thread is then a request thread (OnRequestThread) until its loop ends.
func (c *Conn) requestThread() error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare(CLONE_FS) for a private umask: %w", err)
	}
	unix.Umask(0)
	if c.cfg.ThreadInit != nil {
		if err := c.cfg.ThreadInit(); err != nil {
			return fmt.Errorf("request thread set-up: %w", err)
		}
	}
	requestThreads.Store(unix.Gettid(), true)
	return nil
}

// requestThreads holds the thread ids of the request threads serving now.
var requestThreads sync.Map // int -> true

// OnRequestThread reports whether the caller runs on a request thread of
// this package: a locked OS thread with its own file-system context,
// whose credentials a file system may switch for the length of a request.
func OnRequestThread() bool {
	_, ok := requestThreads.Load(unix.Gettid())
	return ok
}
