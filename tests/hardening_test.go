package tests

// Hardening of an --allow-other mount against an unprivileged local user
// (uid/gid 65534, a separate process: see attacker_test.go): ioctls that
// would run with the server's privileges, stale bytes in ioctl replies,
// file modes at creation, and the kernel's kill-priv rules (setuid,
// setgid and security.capability dropped on a write by a non-owner) on
// the FUSE path and on the zero-copy ring path, plus RLIMIT_FSIZE on ring
// writes. The backing directory lives on a loop-mounted ext4 image made
// per test, so the privileged ext4 ioctls have something to hit and a
// directory on the same image, not served, is the control.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/mountproc"
	"golang.org/x/sys/unix"
)

const ext4Label = "zctest"

// hfix is a test's ext4 image and, once served, its mount.
type hfix struct {
	s       *server
	dev     string // the loop device
	fs      string // where the ext4 is mounted
	backing string // served by zcfuse (on the ext4)
	ctl     string // the control: a directory on the same ext4, not served
	mnt     string
	bin     string // this test binary, where uid 65534 may execute it
}

// ext4Fixture makes a 64 MiB ext4 image (mkfs.ext4 mkfsArgs, e.g. more
// inodes) under a scratch directory, attaches
// it to a loop device, mounts it and makes backing/ and ctl/ (0755) on it.
// Cleanup unmounts it, detaches the loop device and removes the image.
func ext4Fixture(t *testing.T, mkfsArgs ...string) *hfix {
	t.Helper()
	requireTool(t, "mkfs.ext4", "apt-get install e2fsprogs")
	requireTool(t, "e2label", "apt-get install e2fsprogs")
	requireTool(t, "losetup", "apt-get install util-linux")
	dir := scratchDir(t)
	f := &hfix{fs: mkdir(t, filepath.Join(dir, "ext4")), mnt: mkdir(t, filepath.Join(dir, "mnt"))}
	img := filepath.Join(dir, "ext4.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device for the ext4 image: losetup --find --show: %v: %s", err, out)
	}
	f.dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", f.dev).CombinedOutput(); err != nil {
			t.Errorf("cleanup: losetup --detach %s: %v: %s", f.dev, err, out)
		}
		os.Remove(img)
	})
	if out, err := exec.Command("mkfs.ext4", append(append([]string{"-q", "-F", "-L", ext4Label}, mkfsArgs...), f.dev)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", f.dev, err, out)
	}
	if out, err := exec.Command("mount", "-t", "ext4", f.dev, f.fs).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", f.dev, err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(f.fs, 0); err != nil {
			t.Errorf("cleanup: umount %s: %v; lazy unmount", f.fs, err)
			mountproc.Detach(f.fs)
		}
	})
	f.backing = mkdir(t, filepath.Join(f.fs, "backing"))
	f.ctl = mkdir(t, filepath.Join(f.fs, "ctl"))
	// go test's binary sits in a 0700 directory: copy it out for uid 65534.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	f.bin = filepath.Join(dir, "attacker.test")
	writeFile(t, f.bin, self, 0o755)
	return f
}

// serve starts `zcfuse mount --allow-other [extra...] BACKING MNT`.
func (f *hfix) serve(t *testing.T, tr string, extra ...string) {
	t.Helper()
	f.s = startMount(t, mountOpts{transport: tr, backing: f.backing, mountpoint: f.mnt, args: append([]string{"--allow-other"}, extra...)})
}

// attacker starts this test binary as uid (nobody: 65534:65534 with no
// supplementary groups; 0: root) doing spec.
func (f *hfix) attacker(t *testing.T, uid int, spec attackSpec) *exec.Cmd {
	t.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(f.bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), attackEnv+"="+string(js))
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
	}
	return cmd
}

// attack runs spec as uid to completion (spec.Timeout, else 30 s, at
// most) and returns its result; a failure ends the test.
func (f *hfix) attack(t *testing.T, uid int, spec attackSpec) attackOut {
	t.Helper()
	out, err := f.tryAttack(t, uid, spec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryAttack is attack for goroutines other than the test's: it reports
// a failure instead of ending the test.
func (f *hfix) tryAttack(t *testing.T, uid int, spec attackSpec) (attackOut, error) {
	var out attackOut
	cmd := f.attacker(t, uid, spec)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		return out, fmt.Errorf("start the attacker: %v", err)
	}
	limit := 30 * time.Second
	if spec.Timeout > 0 {
		limit = time.Duration(spec.Timeout * float64(time.Second))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out, fmt.Errorf("attacker (uid %d, %s): %v\nstdout: %s\nstderr: %s", uid, spec.Kind, err, so.String(), se.String())
		}
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		return out, fmt.Errorf("attacker (uid %d, %s) still running after %v (a request hangs in the server?)\nstderr: %s", uid, spec.Kind, limit, se.String())
	}
	if err := json.Unmarshal(so.Bytes(), &out); err != nil {
		return out, fmt.Errorf("attacker output: %v\nstdout: %s\nstderr: %s", err, so.String(), se.String())
	}
	if out.Err != "" {
		return out, fmt.Errorf("attacker (uid %d) could not carry out its attack: %s", uid, out.Err)
	}
	return out, nil
}

func errnoStr(e int) string {
	if e == 0 {
		return "success"
	}
	return fmt.Sprintf("%s (%v)", unix.ErrnoName(unix.Errno(e)), unix.Errno(e))
}

// putFile writes data to path, syncs it, and sets owner uid:gid and mode
// (after the chown, which would clear setuid and setgid).
func putFile(t *testing.T, path string, data []byte, mode uint32, uid, gid int) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, data); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fsync(fd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		t.Fatal(err)
	}
}

// fileMode is what the tests compare: permission bits and owner.
type fileMode struct {
	perm     uint32
	uid, gid uint32
	err      error
}

func (m fileMode) String() string {
	if m.err != nil {
		return m.err.Error()
	}
	return fmt.Sprintf("%04o %d:%d", m.perm, m.uid, m.gid)
}

func modeOf(path string) fileMode {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileMode{err: err}
	}
	return fileMode{perm: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
}

// rootIoctl issues a read ioctl on path as root, directly (the expected
// answer for the attacker through the mount).
func rootIoctl(t *testing.T, path string, req uint32, size int) []byte {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := filled(size, 0xEE)
	if e := ioctlBuf(fd, req, buf); e != 0 {
		t.Fatalf("ioctl %#x on %s as root: %s", req, path, errnoStr(e))
	}
	return buf
}

// TestHardeningIoctls: uid 65534 opens files and a directory through the
// mount and tries ext4's privileged ioctls (shutdown, set label, FITRIM,
// checkpoint, swap boot, move extents with every plausible donor fd of
// the server), and the information leaks FS_IOC_GETFSLABEL and
// FS_IOC_GETVERSION, and the flag change FS_IOC_SETFLAGS: each must fail
// with ENOTTY (or EPERM/EACCES from the kernel). Afterwards the image is
// not shut down, its label is the same, and the root-only file `victim`
// (held open for writing through the mount by root during the attack, so
// the server has an fd to it) and the attacked files hold their bytes;
// then, in a second run, EXT4_IOC_SHUTDOWN on each, after which a write
// and fsync directly on the ext4 still work and root still reads through
// the mount. FS_IOC_GETFLAGS and FS_IOC_FSGETXATTR stay allowed and
// answer what the backing file says (flags nodump and noatime set there).
func TestHardeningIoctls(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		files := map[string][]byte{
			"pub":    bytes.Repeat([]byte("PUBLIC.."), 1<<17), // 1 MiB each
			"pubw":   bytes.Repeat([]byte("PUBWRITE"), 1<<17),
			"victim": bytes.Repeat([]byte("VICTIM!!"), 1<<17),
		}
		putFile(t, filepath.Join(f.backing, "pub"), files["pub"], 0o644, 0, 0)
		putFile(t, filepath.Join(f.backing, "pubw"), files["pubw"], 0o666, 0, 0)
		putFile(t, filepath.Join(f.backing, "victim"), files["victim"], 0o600, 0, 0)
		mkdir(t, filepath.Join(f.backing, "sub"))
		// Flags for the allowed ioctls to report: nodump and noatime.
		want := map[string]map[string][]byte{}
		for _, n := range []string{"pub", "pubw", "sub"} {
			p := filepath.Join(f.backing, n)
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			flags := rootIoctl(t, p, ioctlGetFlags, 8)
			v := binary.LittleEndian.Uint32(flags) | 0x40 | 0x80 // FS_NODUMP_FL, FS_NOATIME_FL
			e := ioctlBuf(fd, ioctlSetFlags, binary.LittleEndian.AppendUint32(nil, v))
			unix.Close(fd)
			if e != 0 {
				t.Fatalf("FS_IOC_SETFLAGS on %s as root: %s", p, errnoStr(e))
			}
			want[n] = map[string][]byte{
				"FS_IOC_GETFLAGS":   rootIoctl(t, p, ioctlGetFlags, 8)[:4],
				"FS_IOC_FSGETXATTR": rootIoctl(t, p, ioctlFSGetXattr, 28),
			}
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(f.backing, &sfs); err != nil {
			t.Fatal(err)
		}
		f.serve(t, tr)

		vfd, err := unix.Open(filepath.Join(f.mnt, "victim"), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		targets := []ioTarget{
			{filepath.Join(f.mnt, "pubw"), unix.O_RDWR},
			{filepath.Join(f.mnt, "pub"), unix.O_RDONLY},
			{filepath.Join(f.mnt, "sub"), unix.O_RDONLY | unix.O_DIRECTORY},
		}
		// An attacker would try every fd number; the test spares it the
		// ones past the server's highest.
		donors := [2]int{3, maxFd(t, f.s.cmd.Process.Pid) + 8}
		out := f.attack(t, nobody, attackSpec{Kind: "ioctls", Targets: targets, Donors: donors, MoveLen: uint64(1<<20) / uint64(sfs.Bsize)})
		unix.Close(vfd)
		check := func(out attackOut) {
			t.Helper()
			for _, r := range out.Ioctls {
				n := filepath.Base(r.Target)
				w, allowed := want[n][r.Name]
				switch {
				default:
					t.Logf("uid %d: %-20s on MNT/%-4s: %s %s", nobody, r.Name, n, errnoStr(r.Errno), r.Note)
				case allowed && r.Errno != 0:
					t.Errorf("uid %d: %s on MNT/%s: %s; want success (an allowed ioctl) equal to the backing's %x", nobody, r.Name, n, errnoStr(r.Errno), w)
				case allowed && !bytes.Equal(r.Out[:len(w)], w):
					t.Errorf("uid %d: %s on MNT/%s returned %x; want %x, what the backing %s says", nobody, r.Name, n, r.Out[:len(w)], w, n)
				case allowed && r.Name == "FS_IOC_GETFLAGS" && !bytes.Equal(r.Out[4:], filled(4, 0xEE)) && !bytes.Equal(r.Out[4:], make([]byte, 4)):
					t.Errorf("uid %d: FS_IOC_GETFLAGS on MNT/%s wrote %x past its int; want those 4 bytes untouched (eeeeeeee) or zero", nobody, n, r.Out[4:])
				case !allowed && !acceptableRefusal(r.Errno):
					t.Errorf("uid %d: %s on MNT/%s: %s %s; want ENOTTY (or EPERM/EACCES from the kernel)", nobody, r.Name, n, errnoStr(r.Errno), r.Note)
				}
			}
		}
		check(out)

		// The damage, seen by root directly on the ext4.
		if lb, err := exec.Command("e2label", f.dev).Output(); err != nil || strings.TrimSpace(string(lb)) != ext4Label {
			t.Errorf("e2label %s after the attack: %q, %v; want %q", f.dev, strings.TrimSpace(string(lb)), err, ext4Label)
		}
		unix.Sync()
		dropCaches(t)
		for _, n := range []string{"victim", "pub", "pubw"} {
			got, err := os.ReadFile(filepath.Join(f.backing, n))
			if err != nil || !bytes.Equal(got, files[n]) {
				t.Errorf("backing %s after the attack: %d bytes (%.16q...), %v; want its %d bytes of %.8q unchanged", n, len(got), got, err, len(files[n]), files[n])
			}
		}

		// Then the shutdown, on each target.
		check(f.attack(t, nobody, attackSpec{Kind: "ioctls", Targets: targets, Shutdown: true}))
		if err := os.WriteFile(filepath.Join(f.ctl, "alive"), []byte("alive"), 0o644); err != nil {
			t.Errorf("write on the ext4 after the attack: %v; want success (is the image shut down?)", err)
		} else if fd, err := unix.Open(filepath.Join(f.ctl, "alive"), unix.O_WRONLY|unix.O_CLOEXEC, 0); err != nil {
			t.Errorf("open on the ext4 after the attack: %v", err)
		} else {
			if err := unix.Fsync(fd); err != nil {
				t.Errorf("fsync on the ext4 after the attack: %v; want success (is the image shut down?)", err)
			}
			unix.Close(fd)
		}
		select {
		case <-f.s.exited:
			t.Fatalf("the server exited during the attack: %v", f.s.proc.Err())
		default:
		}
		if got, err := os.ReadFile(filepath.Join(f.mnt, "pub")); err != nil || !bytes.Equal(got, files["pub"]) {
			t.Errorf("root reading MNT/pub after the attack: %d bytes, %v; want the server still serving its %d bytes", len(got), err, len(files["pub"]))
		}
	})
}

// maxFd is the highest fd number open in process pid.
func maxFd(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	hi := 0
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscan(e.Name(), &n); err == nil && n > hi {
			hi = n
		}
	}
	return hi
}

// TestHardeningIoctlNoStaleBytes: the reply buffer of an ioctl must not
// carry bytes of an earlier request. Root reads a 0600 file of
// "ZCSECRET" through the mount (page cache dropped first, so the READ
// reaches the server and fills its buffers), then uid 65534, pinned to the
// same CPU (so the same ring queue serves both; the first two CPUs allowed,
// in turn), issues read ioctls with 0xEE-filled buffers on a 0644 file: no
// 8 bytes of the secret may come back, a refused ioctl leaves the buffer as
// it was, and FS_IOC_GETFLAGS (an int) leaves bytes 4..7 of an 8-byte
// buffer untouched or zero.
func TestHardeningIoctlNoStaleBytes(t *testing.T) {
	const rounds = 200
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		secret := bytes.Repeat([]byte("ZCSECRET"), 1<<17) // 1 MiB
		putFile(t, filepath.Join(f.backing, "secret"), secret, 0o600, 0, 0)
		putFile(t, filepath.Join(f.backing, "pub"), bytes.Repeat([]byte("p"), 4096), 0o644, 0, 0)
		f.serve(t, tr)

		cmd := f.attacker(t, nobody, attackSpec{Kind: "leak", Path: filepath.Join(f.mnt, "pub")})
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var se bytes.Buffer
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		lines := bufio.NewReader(stdout)

		fd, err := unix.Open(filepath.Join(f.mnt, "secret"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		buf := make([]byte, len(secret))
		cpus := allowedCPUs(t, 2)
		var rots [][]byte // every 8 bytes of the pattern
		for i := range 8 {
			rots = append(rots, secret[i:i+8])
		}
		type finding struct {
			n     int
			first string
		}
		found := map[string]*finding{}
		note := func(kind, msg string) {
			if found[kind] == nil {
				found[kind] = &finding{first: msg}
			}
			found[kind].n++
		}
		before := f.s.stats()
		for round := range rounds {
			cpu := cpus[round%len(cpus)]
			if err := <-onCPU(cpu, func() error {
				if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
					return err
				}
				for off := 0; off < len(buf); {
					n, err := unix.Pread(fd, buf[off:], int64(off))
					if err != nil || n == 0 {
						return fmt.Errorf("read MNT/secret at %d: %d, %v", off, n, err)
					}
					off += n
				}
				if !bytes.Equal(buf, secret) {
					return fmt.Errorf("root read MNT/secret wrong")
				}
				return nil
			}); err != nil {
				t.Fatalf("round %d, cpu %d: %v", round, cpu, err)
			}
			fmt.Fprintf(stdin, "%d\n", cpu)
			line, err := lines.ReadBytes('\n')
			if err != nil {
				t.Fatalf("round %d: the attacker: %v\nstderr: %s", round, err, se.String())
			}
			var out attackOut
			if err := json.Unmarshal(line, &out); err != nil || out.Err != "" {
				t.Fatalf("round %d: the attacker: %v %s", round, err, out.Err)
			}
			for _, r := range out.Ioctls {
				where := fmt.Sprintf("round %d, cpu %d: %s on MNT/pub (%s)", round, cpu, r.Name, errnoStr(r.Errno))
				for _, rot := range rots {
					if i := bytes.Index(r.Out, rot); i >= 0 {
						note(r.Name+": secret", fmt.Sprintf("%s: returned the secret's bytes %q at offset %d of its %d-byte buffer; want none", where, r.Out[i:i+8], i, len(r.Out)))
						break
					}
				}
				switch {
				case r.Errno != 0 && !bytes.Equal(r.Out, filled(len(r.Out), 0xEE)):
					note(r.Name+": refused but wrote", fmt.Sprintf("%s: failed yet changed its buffer (%x...); want it untouched", where, r.Out[:min(len(r.Out), 32)]))
				case r.Name == "FS_IOC_GETFLAGS" && r.Errno != 0:
					note(r.Name+": refused", fmt.Sprintf("%s: want success (allowed)", where))
				case r.Name == "FS_IOC_GETFLAGS" && !bytes.Equal(r.Out[4:], filled(4, 0xEE)) && !bytes.Equal(r.Out[4:], make([]byte, 4)):
					note(r.Name+": past its int", fmt.Sprintf("%s: bytes 4..7 of the 8-byte buffer are %x; want eeeeeeee (untouched) or zero", where, r.Out[4:]))
				case r.Name == "FS_IOC_FSGETXATTR" && r.Errno != 0:
					note(r.Name+": refused", fmt.Sprintf("%s: want success (allowed)", where))
				}
			}
		}
		d := diffStats(before, f.s.stats())
		if reads := d.ring["READ"] + d.dev["READ"]; reads < rounds {
			t.Errorf("the server saw %d READs over %d rounds (%v); want one per round at least, or the test proves nothing", reads, rounds, d)
		}
		for kind, fd := range found {
			t.Errorf("%s: %d times; the first: %s", kind, fd.n, fd.first)
		}
	})
}

// allowedCPUs returns up to n CPUs this process may run on.
func allowedCPUs(t *testing.T, n int) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < runtime.NumCPU()*4 && len(cpus) < n; c++ { // CPU numbers may have holes
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		t.Fatal("sched_getaffinity: no CPU")
	}
	return cpus
}

// TestHardeningModes: the modes asked for at creation through the mount
// land on the backing file system unchanged by the server's own umask
// (the server runs with umask 077 here), and the mount reports them right
// after: files 0666 and 04777, a sticky 01777 directory, a setuid FIFO,
// mode 0000 (which uid 65534 then cannot open), and uid 65534's own files
// (umask 0, then 022; owned by it). uid 65534 may open root's 04777 file
// for writing. mkdir(2) on Linux drops S_ISGID from the mode it is given
// (02775 gives 0775); a directory gets setgid, and files and directories
// get their group, from a setgid parent: checked in a root-owned 02777
// directory. The same steps in the control directory directly on the
// ext4 check every expectation.
func TestHardeningModes(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		for _, d := range []string{f.backing, f.ctl} {
			for n, mode := range map[string]os.FileMode{"tmp": os.ModeSticky | 0o777, "sgid": os.ModeSetgid | 0o777} {
				if err := os.Chmod(mkdir(t, filepath.Join(d, n)), mode); err != nil {
					t.Fatal(err)
				}
			}
		}
		old := syscall.Umask(0o077)
		f.serve(t, tr)
		syscall.Umask(old)

		wants := []struct {
			name string
			want fileMode
		}{
			{"f0666", fileMode{perm: 0o666}},
			{"f4777", fileMode{perm: 0o4777}},
			{"d1777", fileMode{perm: 0o1777}},
			{"d2775", fileMode{perm: 0o775}}, // mkdir(2) drops S_ISGID
			{"p4755", fileMode{perm: 0o4755}},
			{"f0000", fileMode{perm: 0}},
			{"sgid/d2775", fileMode{perm: 0o2775}}, // setgid from the parent
			{"tmp/a0666", fileMode{perm: 0o666, uid: nobody, gid: nobody}},
			{"tmp/a0644", fileMode{perm: 0o644, uid: nobody, gid: nobody}},
			{"sgid/ad0777", fileMode{perm: 0o2777, uid: nobody, gid: 0}}, // setgid and group from the parent
			{"sgid/af0666", fileMode{perm: 0o666, uid: nobody, gid: 0}},  // group from the parent
		}
		for _, where := range []struct{ name, dir, stdir string }{{"through the mount", f.mnt, f.backing}, {"control, directly on ext4", f.ctl, f.ctl}} {
			p := func(n string) string { return filepath.Join(where.dir, n) }
			root := f.attack(t, 0, attackSpec{Kind: "steps", Steps: []step{
				{Op: "umask", Mode: 0},
				{Op: "create", Path: p("f0666"), Mode: 0o666},
				{Op: "create", Path: p("f4777"), Mode: 0o4777},
				{Op: "mkdir", Path: p("d1777"), Mode: 0o1777},
				{Op: "mkdir", Path: p("d2775"), Mode: 0o2775},
				{Op: "mkfifo", Path: p("p4755"), Mode: 0o4755},
				{Op: "create", Path: p("f0000"), Mode: 0},
				{Op: "mkdir", Path: p("sgid/d2775"), Mode: 0o2775},
			}})
			att := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{
				{Op: "umask", Mode: 0},
				{Op: "tmpfile", Path: p("tmp"), Mode: 0o4755},
				{Op: "orphanwrite", Path: p("tmp/orphan"), Mode: 0o4755},
				{Op: "create", Path: p("tmp/a0666"), Mode: 0o666},
				{Op: "mkdir", Path: p("sgid/ad0777"), Mode: 0o777},
				{Op: "create", Path: p("sgid/af0666"), Mode: 0o666},
				{Op: "umask", Mode: 0o022},
				{Op: "create", Path: p("tmp/a0644"), Mode: 0o666},
				{Op: "open", Path: p("f0000"), Flags: unix.O_RDONLY},
				{Op: "open", Path: p("f4777"), Flags: unix.O_WRONLY},
			}})
			for i, r := range append(root.Steps, att.Steps...) {
				who := "root (umask 0)"
				if i >= len(root.Steps) {
					who = fmt.Sprintf("uid %d", nobody)
				}
				wantErr := 0
				if r.Op == "open" && strings.HasSuffix(r.Path, "f0000") {
					wantErr = int(unix.EACCES)
				}
				if r.Errno != wantErr {
					t.Errorf("%s: %s %s as %s: %s %s; want %s", where.name, r.Op, r.Path, who, errnoStr(r.Errno), r.Msg, errnoStr(wantErr))
				}
				// O_TMPFILE: the unnamed file is the caller's, with the mode
				// asked (go-fuse's loopback made it root's).
				if want := (statResult{Perm: 0o4755, Uid: nobody, Gid: nobody}); r.Op == "tmpfile" && (r.Stat == nil || *r.Stat != want) {
					t.Errorf("%s: O_TMPFILE in %s as %s: fstat says %+v; want %+v", where.name, r.Path, who, r.Stat, want)
				}
				// Its own 04755 file, written after unlink: setuid goes
				// (the kernel asks with a SETATTR that names no field, and
				// the file has no path left).
				if want := (statResult{Perm: 0o755, Uid: nobody, Gid: nobody}); r.Op == "orphanwrite" && (r.Stat == nil || *r.Stat != want) {
					t.Errorf("%s: write to an unlinked 04755 file as %s: fstat says %+v; want %+v", where.name, who, r.Stat, want)
				}
			}
			for _, w := range wants {
				paths := []string{filepath.Join(where.stdir, w.name)}
				if where.dir == f.mnt {
					paths = append(paths, p(w.name)) // and as the mount says, right after
				}
				for _, path := range paths {
					if got := modeOf(path); got != w.want {
						t.Errorf("%s: %s is %v; want %v", where.name, path, got, w.want)
					}
				}
			}
		}
	})
}

// capV2 is a valid VFS_CAP_REVISION_2 security.capability value:
// permitted = CAP_NET_BIND_SERVICE, nothing inheritable.
func capV2() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x02000000)
	b = binary.LittleEndian.AppendUint32(b, 1<<10)
	return append(b, make([]byte, 12)...)
}

// TestHardeningKillPriv: what a write, ftruncate, truncate or O_TRUNC open
// by a non-owner (uid 65534, on root's world-writable 06777, 04777, 02777
// and 02767 files), a write by a member of the file's group, a write by
// the owner (uid 65534 on its own file), a write by root (CAP_FSETID) and
// a chown by root do to the setuid and setgid bits and to
// security.capability through the mount is what the same operation does
// directly on ext4 (a control directory on the same image): the modes on
// the backing file and as the mount reports them equal the control's, and
// security.capability is gone after uid 65534's write. (The kernel's
// setattr_should_drop_sgid also drops setgid without group exec, 02767,
// on a write by a non-member without CAP_FSETID; FUSE's own kill-priv,
// without handle_killpriv, drops it only with group exec.)
//
// With --passthrough the kernel writes to the backing file itself, with
// the server's credentials, so the server must not hand a write-open of a
// file carrying setuid/setgid/capability by such a caller to passthrough.
func TestHardeningKillPriv(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) { killPrivCompare(t, tr) })
	t.Run("uring-passthrough", func(t *testing.T) {
		requireUring(t)
		killPrivCompare(t, "uring", "--passthrough")
	})
}

func killPrivCompare(t *testing.T, tr string, extra ...string) {
	{
		f := ext4Fixture(t)
		modes := []uint32{0o6777, 0o4777, 0o2777, 0o2767}
		// grpwrite: the file's group is uid 65534's own (setgid without
		// group exec then stays).
		attackerOps := []string{"write", "ftruncate", "truncate", "opentrunc", "fallocate", "copyrange", "grpwrite", "ownwrite", "capwrite"}
		rootOps := []string{"rootwrite", "chown"}
		data := []byte("0123456789abcdef")
		var names []string
		for _, op := range append(attackerOps, rootOps...) {
			for _, m := range modes {
				n := fmt.Sprintf("%s-%04o", op, m)
				names = append(names, n)
				for _, d := range []string{f.backing, f.ctl} {
					uid, gid := 0, 0
					switch op {
					case "ownwrite":
						uid, gid = nobody, nobody
					case "grpwrite":
						gid = nobody
					}
					putFile(t, filepath.Join(d, n), data, m, uid, gid)
					if op == "capwrite" {
						if err := unix.Setxattr(filepath.Join(d, n), "security.capability", capV2(), 0); err != nil {
							t.Fatalf("setxattr security.capability on %s: %v", n, err)
						}
					}
				}
			}
		}
		f.serve(t, tr, extra...)

		var steps []step
		for _, d := range []string{f.mnt, f.ctl} {
			for _, op := range attackerOps {
				for _, m := range modes {
					s := step{Op: op, Path: filepath.Join(d, fmt.Sprintf("%s-%04o", op, m)), Off: 0, Len: 1}
					switch op {
					case "grpwrite", "ownwrite", "capwrite":
						s.Op = "write"
					case "ftruncate", "truncate":
						s.Off = 1
					}
					steps = append(steps, s)
				}
			}
		}
		for _, r := range f.attack(t, nobody, attackSpec{Kind: "steps", Steps: steps}).Steps {
			if r.Errno != 0 {
				t.Errorf("uid %d: %s %s: %s %s; want success (the file is world-writable or its own)", nobody, r.Op, r.Path, errnoStr(r.Errno), r.Msg)
			}
		}
		for _, d := range []string{f.mnt, f.ctl} {
			for _, m := range modes {
				p := filepath.Join(d, fmt.Sprintf("rootwrite-%04o", m))
				if err := os.WriteFile(p, []byte("R"), 0); err != nil { // O_TRUNC too, as root
					t.Errorf("root writing %s: %v", p, err)
				}
				p = filepath.Join(d, fmt.Sprintf("chown-%04o", m))
				if err := os.Chown(p, nobody, nobody); err != nil {
					t.Errorf("root: chown %d:%d %s: %v", nobody, nobody, p, err)
				}
			}
		}

		for _, n := range names {
			ctl := modeOf(filepath.Join(f.ctl, n))
			var m uint32
			if _, err := fmt.Sscanf(n, "rootwrite-%o", &m); err == nil && ctl.perm != m {
				t.Errorf("%s: the control on ext4 is %v after root's write; want %04o kept (CAP_FSETID)", n, ctl, m)
			}
			if bk := modeOf(filepath.Join(f.backing, n)); bk != ctl {
				t.Errorf("%s: the backing file is %v after the operation through the mount; the control on ext4 is %v", n, bk, ctl)
			}
			if mt := modeOf(filepath.Join(f.mnt, n)); mt != ctl {
				t.Errorf("%s: the mount says %v after the operation; the control on ext4 is %v", n, mt, ctl)
			}
			if !strings.HasPrefix(n, "capwrite") {
				continue
			}
			_, ce := unix.Getxattr(filepath.Join(f.ctl, n), "security.capability", make([]byte, 64))
			_, be := unix.Getxattr(filepath.Join(f.backing, n), "security.capability", make([]byte, 64))
			if ce != unix.ENODATA {
				t.Errorf("%s: the control kept security.capability after uid %d's write (getxattr: %v); expected ENODATA", n, nobody, ce)
			}
			if be != unix.ENODATA {
				t.Errorf("%s: security.capability of the backing file after uid %d's write through the mount: getxattr says %v; want ENODATA (removed, as on the control)", n, nobody, be)
			}
		}
	}
}

// TestHardeningRingWrites: the zero-copy path obeys the same rules as
// write(2). uid 65534's ring Pwrite on root's world-writable 04777, 02777
// and 02767 files clears the bits as its write(2) does directly on ext4, and
// the server's zero_copy_bytes proves the path. Under RLIMIT_FSIZE 64 KiB
// a ring write at 1 MiB fails with EFBIG and one at 62 KiB either fails
// with EFBIG or writes only up to the limit, as write(2) does; the file is
// left as that allows; a write within the limit works; write(2) through
// the mount behaves as write(2) on ext4.
func TestHardeningRingWrites(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		orig := bytes.Repeat([]byte("A"), 16<<10)
		for _, d := range []string{f.backing, f.ctl} {
			putFile(t, filepath.Join(d, "r4777"), orig, 0o4777, 0, 0)
			putFile(t, filepath.Join(d, "r2777"), orig, 0o2777, 0, 0)
			putFile(t, filepath.Join(d, "r2767"), orig, 0o2767, 0, 0)
			putFile(t, filepath.Join(d, "fsz-posix"), orig, 0o666, 0, 0)
		}
		putFile(t, filepath.Join(f.backing, "fsz-ring"), orig, 0o666, 0, 0)
		putFile(t, filepath.Join(f.backing, "fsz-ok"), orig, 0o666, 0, 0)
		f.serve(t, tr)
		m := func(n string) string { return filepath.Join(f.mnt, n) }
		c := func(n string) string { return filepath.Join(f.ctl, n) }
		checkSteps := func(res []stepResult, want map[int][2]int) {
			t.Helper()
			for i, r := range res {
				w, ok := want[i]
				if !ok {
					w = [2]int{0, 4096}
				}
				if r.Errno != w[0] || r.N != w[1] {
					t.Errorf("uid %d: %s %s (step %d): %s, %d bytes %s; want %s, %d bytes", nobody, r.Op, r.Path, i, errnoStr(r.Errno), r.N, r.Msg, errnoStr(w[0]), w[1])
				}
			}
		}

		// Kill-priv on the ring path.
		before := f.s.stats()
		res := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{
			{Op: "ringwrite", Mnt: f.mnt, Path: m("r4777"), Len: 4096},
			{Op: "ringwrite", Mnt: f.mnt, Path: m("r2777"), Len: 4096},
			{Op: "ringwrite", Mnt: f.mnt, Path: m("r2767"), Len: 4096},
			{Op: "write", Path: c("r4777"), Len: 4096},
			{Op: "write", Path: c("r2777"), Len: 4096},
			{Op: "write", Path: c("r2767"), Len: 4096},
		}}).Steps
		after := f.s.stats()
		checkSteps(res, nil)
		if zc := after.ZeroCopyBytes - before.ZeroCopyBytes; zc < 3*4096 {
			t.Errorf("zero_copy_bytes grew by %d over uid %d's three ring writes of 4 KiB; want ≥ 12288 (the ring path)", zc, nobody)
		}
		for _, n := range []string{"r4777", "r2777", "r2767"} {
			ctl := modeOf(c(n))
			if bk := modeOf(filepath.Join(f.backing, n)); bk != ctl {
				t.Errorf("%s: after uid %d's ring write the backing file is %v; after its write(2) on ext4 the control is %v", n, nobody, bk, ctl)
			}
			if mt := modeOf(m(n)); mt != ctl {
				t.Errorf("%s: after uid %d's ring write the mount says %v; after its write(2) on ext4 the control is %v", n, nobody, mt, ctl)
			}
			if got, err := os.ReadFile(filepath.Join(f.backing, n)); err != nil || !bytes.Equal(got[:4096], bytes.Repeat([]byte("R"), 4096)) {
				t.Errorf("%s: the ring write's 4 KiB of R did not land in the backing file (%.8q..., %v)", n, got, err)
			}
		}

		// RLIMIT_FSIZE.
		const limit = 64 << 10
		before = f.s.stats()
		res = f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{
			{Op: "ringopen", Mnt: f.mnt},
			{Op: "rlimit_fsize", Off: limit},
			{Op: "ringwrite", Mnt: f.mnt, Path: m("fsz-ring"), Off: 62 << 10, Len: 4096},
			{Op: "ringwrite", Mnt: f.mnt, Path: m("fsz-ring"), Off: 1 << 20, Len: 4096},
			{Op: "ringwrite", Mnt: f.mnt, Path: m("fsz-ok"), Off: 0, Len: 4096},
			{Op: "write", Path: m("fsz-posix"), Off: 62 << 10, Len: 4096},
			{Op: "write", Path: m("fsz-posix"), Off: 1 << 20, Len: 4096},
			{Op: "write", Path: c("fsz-posix"), Off: 62 << 10, Len: 4096},
			{Op: "write", Path: c("fsz-posix"), Off: 1 << 20, Len: 4096},
		}}).Steps
		after = f.s.stats()
		if len(res) != 9 {
			t.Fatalf("attacker ran %d steps, want 9", len(res))
		}
		for _, r := range res[:2] {
			if r.Errno != 0 {
				t.Fatalf("uid %d: %s: %s %s", nobody, r.Op, errnoStr(r.Errno), r.Msg)
			}
		}
		ring62, ring1M, ringOK, mnt62, mnt1M, ctl62, ctl1M := res[2], res[3], res[4], res[5], res[6], res[7], res[8]
		efbig := int(unix.EFBIG)
		// write(2) on ext4 is the reference: through the mount, the same.
		for at, p := range map[string][2]stepResult{"62 KiB": {mnt62, ctl62}, "1 MiB": {mnt1M, ctl1M}} {
			if a, b := p[0], p[1]; a.Errno != b.Errno || a.N != b.N {
				t.Errorf("uid %d under RLIMIT_FSIZE 64 KiB: pwrite(2) of 4 KiB at %s through the mount: %s, %d bytes; on ext4: %s, %d bytes; want the same", nobody, at, errnoStr(a.Errno), a.N, errnoStr(b.Errno), b.N)
			}
		}
		if mnt1M.Errno != efbig {
			t.Errorf("uid %d under RLIMIT_FSIZE 64 KiB: pwrite(2) of 4 KiB at 1 MiB through the mount: %s, %d bytes; want EFBIG", nobody, errnoStr(mnt1M.Errno), mnt1M.N)
		}
		if ring1M.Errno != efbig {
			t.Errorf("uid %d under RLIMIT_FSIZE 64 KiB: ring write of 4 KiB at 1 MiB: %s, %d bytes %s; want EFBIG", nobody, errnoStr(ring1M.Errno), ring1M.N, ring1M.Msg)
		}
		short := ring62.Errno == 0 && ring62.N == limit-62<<10 // up to the limit, as write(2)
		if ring62.Errno != efbig && !short {
			t.Errorf("uid %d under RLIMIT_FSIZE 64 KiB: ring write of 4 KiB at 62 KiB: %s, %d bytes %s; want EFBIG (or %d bytes, up to the limit, as write(2) on ext4 does: %s, %d bytes)",
				nobody, errnoStr(ring62.Errno), ring62.N, ring62.Msg, limit-62<<10, errnoStr(ctl62.Errno), ctl62.N)
		}
		if ringOK.Errno != 0 || ringOK.N != 4096 {
			t.Errorf("uid %d under RLIMIT_FSIZE 64 KiB: ring write of 4 KiB at 0: %s, %d bytes %s; want 4096 bytes written", nobody, errnoStr(ringOK.Errno), ringOK.N, ringOK.Msg)
		}
		if zc := after.ZeroCopyBytes - before.ZeroCopyBytes; zc < 4096 {
			t.Errorf("zero_copy_bytes grew by %d over uid %d's ring write of 4 KiB within the limit; want ≥ 4096 (the ring path)", zc, nobody)
		}
		unix.Sync()
		dropCaches(t)
		wantRing := orig
		if short {
			wantRing = append(append(bytes.Clone(orig), make([]byte, 62<<10-len(orig))...), bytes.Repeat([]byte("R"), limit-62<<10)...)
		}
		if got, err := os.ReadFile(filepath.Join(f.backing, "fsz-ring")); err != nil || !bytes.Equal(got, wantRing) {
			t.Errorf("backing fsz-ring after ring writes past RLIMIT_FSIZE: %d bytes, %v; want %d bytes (%s)", len(got), err, len(wantRing),
				map[bool]string{false: "unchanged", true: "written up to the limit and no further"}[short])
		}
		wantOK := append(bytes.Repeat([]byte("R"), 4096), orig[4096:]...)
		if got, err := os.ReadFile(filepath.Join(f.backing, "fsz-ok")); err != nil || !bytes.Equal(got, wantOK) {
			t.Errorf("backing fsz-ok after a ring write within RLIMIT_FSIZE: %d bytes (%.8q...), %v; want 4 KiB of R then the rest unchanged", len(got), got, err)
		}
		gb, _ := os.ReadFile(filepath.Join(f.backing, "fsz-posix"))
		gc, _ := os.ReadFile(c("fsz-posix"))
		if !bytes.Equal(gb, gc) {
			t.Errorf("fsz-posix: %d bytes on the backing after write(2) through the mount, %d bytes on the control; want the same bytes", len(gb), len(gc))
		}
	})
}
