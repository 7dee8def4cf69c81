package tests

// The attacker side of the hardening tests: the test binary re-executed
// (see testMain) with attackEnv set to a JSON attackSpec, usually as
// uid/gid 65534 with no supplementary groups. It does what the spec says
// with raw system calls (and, for ring writes, the Go client package) and
// prints an attackOut as JSON on stdout; the test judges the result.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	zc "github.com/zcfuse/zcfuse/gosrc/client"
	"golang.org/x/sys/unix"
)

const attackEnv = "ZCFUSE_TEST_ATTACK"

// ioctl request numbers, as the kernel's _IOC macros make them.
func iocNum(dir, typ, nr, size uint32) uint32 { return dir<<30 | size<<16 | typ<<8 | nr }

const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

var (
	ioctlExt4Shutdown   = iocNum(iocRead, 'X', 125, 4)           // EXT4_IOC_SHUTDOWN 0x8004587d
	ioctlSetFSLabel     = iocNum(iocWrite, 0x94, 50, 256)        // FS_IOC_SETFSLABEL 0x41009432
	ioctlGetFSLabel     = iocNum(iocRead, 0x94, 49, 256)         // FS_IOC_GETFSLABEL 0x81009431
	ioctlFitrim         = iocNum(iocRead|iocWrite, 'X', 121, 24) // FITRIM 0xc0185879
	ioctlExt4Checkpoint = iocNum(iocWrite, 'f', 43, 4)           // EXT4_IOC_CHECKPOINT 0x4004662b
	ioctlExt4SwapBoot   = iocNum(iocNone, 'f', 17, 0)            // EXT4_IOC_SWAP_BOOT 0x6611
	ioctlExt4MoveExt    = iocNum(iocRead|iocWrite, 'f', 15, 40)  // EXT4_IOC_MOVE_EXT 0xc028660f
	ioctlGetFlags       = iocNum(iocRead, 'f', 1, 8)             // FS_IOC_GETFLAGS 0x80086601
	ioctlSetFlags       = iocNum(iocWrite, 'f', 2, 8)            // FS_IOC_SETFLAGS 0x40086602
	ioctlGetVersion     = iocNum(iocRead, 'v', 1, 8)             // FS_IOC_GETVERSION 0x80087601
	ioctlFSGetXattr     = iocNum(iocRead, 'X', 31, 28)           // FS_IOC_FSGETXATTR 0x801c581f
	ioctlMadeUpRead     = iocNum(iocRead, 'Z', 0x77, 4096)       // no such ioctl 0x90005a77
)

type attackSpec struct {
	Kind    string     // "ioctls", "leak", "steps" or "race"
	Targets []ioTarget // ioctls: files to open and attack, in order
	Donors  [2]int     // ioctls: EXT4_IOC_MOVE_EXT donor fds tried, inclusive
	MoveLen uint64     // ioctls: EXT4_IOC_MOVE_EXT length in blocks
	// ioctls: only EXT4_IOC_SHUTDOWN (else everything but)
	Shutdown bool   `json:",omitempty"`
	Path     string // leak: the file whose ioctls are tried
	Steps    []step // steps
	// race: in directory Dir (through the mount), swap Dir/d, a directory
	// of the attacker's, with Dir/l, a symlink to Target, for Secs
	// seconds (renameat2 RENAME_EXCHANGE) while creating Dir/d/xN and
	// unlinking Dir/d/victim.
	Dir, Target string  `json:",omitempty"`
	Secs        float64 `json:",omitempty"`
	// Timeout bounds the whole attack (seconds); 0: 30 s.
	Timeout float64 `json:",omitempty"`
}

type ioTarget struct {
	Path  string
	Flags int
}

// ioctlResult is one ioctl's outcome: Errno 0 is success; Out is the
// argument buffer after the call (prefilled with 0xEE).
type ioctlResult struct {
	Target string
	Name   string
	Errno  int
	Out    []byte
	Note   string `json:",omitempty"`
}

// step is one operation of a "steps" attack:
//
//	umask Mode | create Path Mode (O_CREAT|O_EXCL|O_WRONLY) | mkdir Path Mode |
//	mkfifo Path Mode (mknod S_IFIFO|Mode) | open Path Flags |
//	write Path Off Len (open O_WRONLY, pwrite Len bytes of 'W') |
//	ftruncate Path Off (open O_WRONLY) | truncate Path Off |
//	opentrunc Path (open O_WRONLY|O_TRUNC) | rlimit_fsize Off |
//	ringopen Mnt (connect, share a 1 MiB arena of 'R': before
//	rlimit_fsize, which would stop the memfd's ftruncate) |
//	ringwrite Path Off Len (zero-copy Pwrite of Len bytes from the arena
//	to Path opened O_RDWR and attached; the session is opened on Mnt
//	first if no ringopen came before)
type step struct {
	Op    string
	Path  string `json:",omitempty"`
	Mnt   string `json:",omitempty"`
	Mode  uint32 `json:",omitempty"`
	Flags int    `json:",omitempty"`
	Off   int64  `json:",omitempty"`
	Len   int    `json:",omitempty"`
	To    string `json:",omitempty"` // rename: the new name; symlink, swapstat, capswap: the target
	From  string `json:",omitempty"` // swapstat, capswap: the backing directory replaced
}

type stepResult struct {
	Op, Path string
	Errno    int
	N        int
	Msg      string `json:",omitempty"`
	// Stat is what fstat said of the file a tmpfile step made.
	Stat *statResult `json:",omitempty"`
}

type statResult struct{ Perm, Uid, Gid uint32 }

type attackOut struct {
	Err    string `json:",omitempty"`
	Ioctls []ioctlResult
	Steps  []stepResult
}

func attackMain(js string) int {
	var spec attackSpec
	var out attackOut
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		out.Err = "spec: " + err.Error()
	} else {
		switch spec.Kind {
		case "ioctls":
			out.Ioctls, out.Err = attackIoctls(spec)
		case "leak":
			return attackLeak(spec) // speaks a line protocol of its own
		case "steps":
			out.Steps, out.Err = attackSteps(spec.Steps)
		case "race":
			out.Steps, out.Err = attackRace(spec)
		case "bait":
			out.Steps, out.Err = attackBait(spec)
		case "setcap": // inside the user namespace: fd 3 is the file
			if err := unix.Fsetxattr(3, "security.capability", capBlob(), 0); err != nil {
				return int(errnoOf(err))
			}
			return 0
		default:
			out.Err = "unknown kind " + spec.Kind
		}
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	return 0
}

func errnoOf(err error) int {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1 // not an errno
}

// ioctlBuf issues ioctl req on fd with buf as the argument (nil: 0).
func ioctlBuf(fd int, req uint32, buf []byte) int {
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	runtime.KeepAlive(buf)
	return int(e)
}

func filled(n int, b byte) []byte {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = b
	}
	return buf
}

// attackIoctls opens every target and tries the privileged ioctls on it;
// with spec.Shutdown, only EXT4_IOC_SHUTDOWN.
func attackIoctls(spec attackSpec) ([]ioctlResult, string) {
	var res []ioctlResult
	fds := make([]int, len(spec.Targets)) // all open before the first ioctl
	for i, tg := range spec.Targets {
		fd, err := unix.Open(tg.Path, tg.Flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Sprintf("open %s: %v", tg.Path, err)
		}
		fds[i] = fd
	}
	for i, tg := range spec.Targets {
		fd := fds[i]
		add := func(name string, errno int, out []byte, note string) {
			res = append(res, ioctlResult{Target: tg.Path, Name: name, Errno: errno, Out: out, Note: note})
		}
		if spec.Shutdown {
			arg := []byte{2, 0, 0, 0} // EXT4_GOING_FLAGS_NOLOGFLUSH
			add("EXT4_IOC_SHUTDOWN", ioctlBuf(fd, ioctlExt4Shutdown, arg), arg, "")
			unix.Close(fd)
			continue
		}
		for _, x := range []struct {
			name string
			req  uint32
			in   []byte
		}{
			{"FS_IOC_GETFLAGS", ioctlGetFlags, filled(8, 0xEE)},
			{"FS_IOC_FSGETXATTR", ioctlFSGetXattr, filled(28, 0xEE)},
			{"FS_IOC_GETFSLABEL", ioctlGetFSLabel, filled(256, 0xEE)},
			{"FS_IOC_GETVERSION", ioctlGetVersion, filled(8, 0xEE)},
			{"FS_IOC_SETFLAGS", ioctlSetFlags, []byte{0x10, 0, 0, 0, 0, 0, 0, 0}}, // FS_IMMUTABLE_FL
			{"FS_IOC_SETFSLABEL", ioctlSetFSLabel, append([]byte("pwned"), make([]byte, 251)...)},
			{"FITRIM", ioctlFitrim, fstrimRange()},
			{"EXT4_IOC_CHECKPOINT", ioctlExt4Checkpoint, make([]byte, 4)},
		} {
			add(x.name, ioctlBuf(fd, x.req, x.in), x.in, "")
		}
		// EXT4_IOC_MOVE_EXT: the donor fd is a number in the server's
		// table; try them all and stop at the first that works.
		errnos := map[int]int{}
		moved := -1
		for donor := spec.Donors[0]; donor <= spec.Donors[1] && moved < 0; donor++ {
			me := make([]byte, 40) // reserved u32, donor_fd u32, orig_start, donor_start, len, moved_len u64
			binary.LittleEndian.PutUint32(me[4:], uint32(donor))
			binary.LittleEndian.PutUint64(me[24:], spec.MoveLen)
			e := ioctlBuf(fd, ioctlExt4MoveExt, me)
			errnos[e]++
			if e == 0 {
				moved = donor
			}
		}
		if moved >= 0 {
			add("EXT4_IOC_MOVE_EXT", 0, nil, fmt.Sprintf("with donor fd %d (errnos before: %v)", moved, errnos))
		} else {
			worst := 0 // an errno other than the acceptable ones, if any came
			for e := range errnos {
				if worst == 0 || !acceptableRefusal(e) {
					worst = e
				}
			}
			add("EXT4_IOC_MOVE_EXT", worst, nil, fmt.Sprintf("(errnos over donor fds %d..%d: %v)", spec.Donors[0], spec.Donors[1], errnos))
		}
		// Last: it would empty a file it works on.
		add("EXT4_IOC_SWAP_BOOT", ioctlBuf(fd, ioctlExt4SwapBoot, nil), nil, "")
		unix.Close(fd)
	}
	return res, ""
}

func fstrimRange() []byte {
	b := make([]byte, 24) // start 0, len ~0, minlen 0
	for i := 8; i < 16; i++ {
		b[i] = 0xff
	}
	return b
}

// acceptableRefusal: the server's ENOTTY, or the kernel's own EPERM or
// EACCES before the request reaches the server.
func acceptableRefusal(errno int) bool {
	return errno == int(unix.ENOTTY) || errno == int(unix.EPERM) || errno == int(unix.EACCES)
}

// leakIoctls are the read ioctls of the leak test, with their buffer sizes.
var leakIoctls = []struct {
	name string
	req  uint32
	size int
}{
	{"FS_IOC_GETFSLABEL", ioctlGetFSLabel, 256},
	{"FS_IOC_GETFLAGS", ioctlGetFlags, 8},
	{"FS_IOC_FSGETXATTR", ioctlFSGetXattr, 28},
	{"_IOR('Z',0x77,4096)", ioctlMadeUpRead, 4096},
}

// attackLeak opens spec.Path, then for every CPU number read from stdin
// pins itself there, issues leakIoctls on buffers prefilled with 0xEE and
// prints their results as one JSON line.
func attackLeak(spec attackSpec) int {
	runtime.LockOSThread()
	enc := json.NewEncoder(os.Stdout)
	fd, err := unix.Open(spec.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		enc.Encode(attackOut{Err: fmt.Sprintf("open %s: %v", spec.Path, err)})
		return 0
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cpu, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			enc.Encode(attackOut{Err: "bad cpu " + sc.Text()})
			return 0
		}
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			enc.Encode(attackOut{Err: fmt.Sprintf("sched_setaffinity %d: %v", cpu, err)})
			return 0
		}
		var out attackOut
		for _, x := range leakIoctls {
			buf := filled(x.size, 0xEE)
			out.Ioctls = append(out.Ioctls, ioctlResult{Target: spec.Path, Name: x.name, Errno: ioctlBuf(fd, x.req, buf), Out: buf})
		}
		enc.Encode(out)
	}
	return 0
}

// attackSteps runs steps in order; a step's failure is its result, not
// the end of the run.
func attackSteps(steps []step) ([]stepResult, string) {
	var res []stepResult
	var sess *zc.Session
	var ar *arena.Arena
	for _, s := range steps {
		r := stepResult{Op: s.Op, Path: s.Path}
		var err error
		withFd := func(flags int, fn func(fd int) error) error {
			fd, err := unix.Open(s.Path, flags|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return fn(fd)
		}
		switch s.Op {
		case "umask":
			unix.Umask(int(s.Mode))
		case "create":
			var fd int
			if fd, err = unix.Open(s.Path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, s.Mode); err == nil {
				unix.Close(fd)
			}
		case "mkdir":
			err = unix.Mkdir(s.Path, s.Mode)
		case "mkfifo":
			err = unix.Mknod(s.Path, unix.S_IFIFO|s.Mode, 0)
		case "open":
			err = withFd(s.Flags, func(int) error { return nil })
		case "write":
			err = withFd(unix.O_WRONLY, func(fd int) (err error) {
				r.N, err = unix.Pwrite(fd, filled(s.Len, 'W'), s.Off)
				return err
			})
		case "ftruncate":
			err = withFd(unix.O_WRONLY, func(fd int) error { return unix.Ftruncate(fd, s.Off) })
		case "truncate":
			err = unix.Truncate(s.Path, s.Off)
		case "swapstat":
			// Hold an O_PATH fd of Path (on the mount), replace directory
			// From on the backing fs by a symlink to To, wait out the
			// attribute timeout, then fstat the fd: the server must not
			// answer with what lies behind the symlink.
			var fd int
			if fd, err = unix.Open(s.Path, unix.O_PATH|unix.O_CLOEXEC, 0); err == nil {
				if err = swapDir(s.From, s.To); err == nil {
					time.Sleep(1200 * time.Millisecond)
					var st unix.Stat_t
					if err = unix.Fstat(fd, &st); err == nil {
						r.Stat = &statResult{Perm: st.Mode & 0o7777, Uid: st.Uid, Gid: st.Gid}
					}
				}
				unix.Close(fd)
			}
		case "capswap":
			// Open Path (on the mount), replace directory From on the
			// backing fs by a symlink to To, then, as root of a user
			// namespace of one's own (which may set file capabilities on
			// its own files), fsetxattr security.capability on the fd.
			var fd int
			if fd, err = unix.Open(s.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				if err = swapDir(s.From, s.To); err == nil {
					err = setcapInUserns(fd)
				}
				unix.Close(fd)
			}
		case "dropfsetid":
			// From here on this goroutine's steps run on this thread,
			// which no longer has CAP_FSETID (a root caller without it).
			runtime.LockOSThread()
			err = dropCap(capFsetid)
		case "setacl":
			err = unix.Setxattr(s.Path, "system.posix_acl_access", posixACL(nobody), 0)
		case "touch":
			err = unix.UtimesNanoAt(unix.AT_FDCWD, s.Path, []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}, 0)
		case "settime":
			err = unix.UtimesNanoAt(unix.AT_FDCWD, s.Path, []unix.Timespec{{Sec: 1000}, {Sec: 1000}}, 0)
		case "tree":
			// Len directories of Off files each under Path; N counts them.
			for d := 0; d < s.Len && err == nil; d++ {
				dir := fmt.Sprintf("%s/d%03d", s.Path, d)
				if err = unix.Mkdir(dir, 0o755); err != nil {
					break
				}
				for i := 0; i < int(s.Off); i++ {
					var fd int
					if fd, err = unix.Open(fmt.Sprintf("%s/f%05d", dir, i), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644); err != nil {
						break
					}
					unix.Close(fd)
					r.N++
				}
			}
		case "rmtree":
			err = os.RemoveAll(s.Path)
		case "rename":
			err = unix.Rename(s.Path, s.To)
		case "symlink":
			err = unix.Symlink(s.To, s.Path)
		case "unlink":
			err = unix.Unlink(s.Path)
		case "stat":
			var st unix.Stat_t
			err = unix.Stat(s.Path, &st)
		case "fallocate":
			err = withFd(unix.O_WRONLY, func(fd int) error { return unix.Fallocate(fd, 0, 0, 8192) })
		case "copyrange":
			// One byte of the file onto another place of it.
			err = withFd(unix.O_RDWR, func(fd int) (err error) {
				in, out := int64(0), int64(8)
				r.N, err = unix.CopyFileRange(fd, &in, fd, &out, 1, 0)
				return err
			})
		case "orphanwrite":
			// A setuid file of one's own, written after its last name is
			// gone: the write clears setuid as on any file.
			var fd int
			if fd, err = unix.Open(s.Path, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, s.Mode); err == nil {
				if err = unix.Unlink(s.Path); err == nil {
					if r.N, err = unix.Pwrite(fd, []byte("hi"), 0); err == nil {
						var st unix.Stat_t
						if err = unix.Fstat(fd, &st); err == nil {
							r.Stat = &statResult{Perm: st.Mode & 0o7777, Uid: st.Uid, Gid: st.Gid}
						}
					}
				}
				unix.Close(fd)
			}
		case "tmpfile":
			var fd int
			if fd, err = unix.Open(s.Path, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, s.Mode); err == nil {
				var st unix.Stat_t
				if err = unix.Fstat(fd, &st); err == nil {
					r.Stat = &statResult{Perm: st.Mode & 0o7777, Uid: st.Uid, Gid: st.Gid}
				}
				unix.Close(fd)
			}
		case "opentrunc":
			err = withFd(unix.O_WRONLY|unix.O_TRUNC, func(int) error { return nil })
		case "rlimit_fsize":
			err = unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: uint64(s.Off), Max: uint64(s.Off)})
		case "ringopen", "ringwrite":
			if sess == nil {
				if sess, err = zc.Connect(s.Mnt); err != nil {
					return res, fmt.Sprintf("connect %s: %v", s.Mnt, err)
				}
				defer sess.Close()
				if ar, err = arena.Create(1<<20, arena.Options{}); err != nil {
					return res, fmt.Sprintf("arena: %v", err)
				}
				defer ar.Close()
				copy(ar.Bytes(), filled(1<<20, 'R'))
				if _, _, err = sess.Share(ar); err != nil {
					return res, fmt.Sprintf("share: %v", err)
				}
			}
			if s.Op == "ringopen" {
				break
			}
			err = withFd(unix.O_RDWR, func(fd int) error {
				id, err := sess.Attach(fd)
				if err != nil {
					return fmt.Errorf("attach: %w", err)
				}
				r.N, err = sess.Pwrite(id, ar.Bytes()[:s.Len], s.Off, zc.RequireZC)
				return err
			})
		default:
			return res, "unknown step " + s.Op
		}
		r.Errno = errnoOf(err)
		if err != nil {
			r.Msg = err.Error()
		}
		res = append(res, r)
	}
	return res, ""
}

// attackRace runs the rename-exchange race (attackSpec.Dir) and reports
// how many creates and unlinks succeeded, as two step results.
func attackRace(spec attackSpec) ([]stepResult, string) {
	d, l := spec.Dir+"/d", spec.Dir+"/l"
	if err := unix.Mkdir(d, 0o755); err != nil && err != unix.EEXIST {
		return nil, "mkdir: " + err.Error()
	}
	unix.Unlink(l)
	if err := unix.Symlink(spec.Target, l); err != nil {
		return nil, "symlink: " + err.Error()
	}
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for {
			select {
			case <-stop:
				return
			default:
				unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, l, unix.RENAME_EXCHANGE)
			}
		}
	}()
	created, unlinked := stepResult{Op: "create", Path: d}, stepResult{Op: "unlink", Path: d + "/victim"}
	deadline := time.Now().Add(time.Duration(spec.Secs * float64(time.Second)))
	for i := 0; time.Now().Before(deadline); i++ {
		if fd, err := unix.Open(fmt.Sprintf("%s/x%d", d, i), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644); err == nil {
			unix.Close(fd)
			created.N++
		}
		if unix.Unlink(d+"/victim") == nil {
			unlinked.N++
		}
	}
	close(stop)
	<-swapped
	return []stepResult{created, unlinked}, ""
}

// attackBait, on the backing directory spec.Dir (its own), keeps putting a
// file of its own, "bait\n" in it, where root is making and removing "t"
// through the mount: moved aside whatever root made, bait renamed to t.
func attackBait(spec attackSpec) ([]stepResult, string) {
	swaps := stepResult{Op: "swap", Path: spec.Dir + "/t"}
	deadline := time.Now().Add(time.Duration(spec.Secs * float64(time.Second)))
	for i := 0; time.Now().Before(deadline); i++ {
		bait := fmt.Sprintf("%s/bait%d", spec.Dir, i)
		fd, err := unix.Open(bait, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o777)
		if err != nil {
			return nil, "bait: " + err.Error()
		}
		unix.Write(fd, []byte("bait\n"))
		unix.Close(fd)
		moved := fmt.Sprintf("%s/moved%d", spec.Dir, i)
		if unix.Rename(spec.Dir+"/t", moved) == nil {
			// Kept only if it is a bait given to root (the evidence);
			// root's own objects go, so the image does not fill up.
			var st unix.Stat_t
			if unix.Lstat(moved, &st) == nil && !(st.Mode&unix.S_IFMT == unix.S_IFREG && st.Uid == 0 && st.Size > 0) {
				if unix.Unlink(moved) != nil {
					unix.Rmdir(moved)
				}
			}
		}
		if unix.Rename(bait, spec.Dir+"/t") == nil {
			swaps.N++
		} else {
			unix.Unlink(bait)
		}
	}
	return []stepResult{swaps}, ""
}

// swapDir renames directory dir aside and puts a symlink to target in
// its place (on the backing file system, not through the mount).
func swapDir(dir, target string) error {
	if err := unix.Rename(dir, dir+".old"); err != nil {
		return err
	}
	return unix.Symlink(target, dir)
}

// capBlob is a VFS_CAP_REVISION_2 security.capability value granting
// CAP_SYS_ADMIN.
func capBlob() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x02000000)
	b = binary.LittleEndian.AppendUint32(b, 1<<21)
	return append(b, make([]byte, 12)...)
}

// setcapInUserns runs this binary again in a new user namespace whose
// root is the caller, with fd as its fd 3, to set a file capability on
// it; the child's exit status is the errno.
func setcapInUserns(fd int) error {
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), attackEnv+`={"Kind":"setcap"}`)
	dup, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "victim")
	defer f.Close()
	cmd.ExtraFiles = []*os.File{f}
	uid, gid := os.Getuid(), os.Getgid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return unix.Errno(ee.ExitCode())
	}
	return err
}

// capFsetid is CAP_FSETID's number.
const capFsetid = 4

// dropCap removes capability c from the calling thread's effective set.
func dropCap(c uint) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[c/32].Effective &^= 1 << (c % 32)
	return unix.Capset(&hdr, &data[0])
}
