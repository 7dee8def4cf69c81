package passthrough

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIoctlAllowList: commands off the list never reach the backing call
// and leave a zeroed out buffer; allowed ones get exactly what the backing
// call wrote, the rest of the out buffer zeroed, whatever it held before.
func TestIoctlAllowList(t *testing.T) {
	called := 0
	write3 := func(cmd uint32, buf []byte) syscall.Errno {
		called++
		for i, b := range buf {
			if b != 0 {
				t.Fatalf("scratch byte %d is %#x before the backing call; want zeroed", i, b)
			}
		}
		copy(buf, []byte{1, 2, 3})
		return 0
	}
	for _, cmd := range []uint32{0x8004587d /* EXT4_IOC_SHUTDOWN */, 0x41009432 /* FS_IOC_SETFSLABEL */, 0x81009431, /* FS_IOC_GETFSLABEL */
		0xc028660f /* EXT4_IOC_MOVE_EXT */, 0xc0185879 /* FITRIM */, 0x40086602 /* FS_IOC_SETFLAGS */, 0x80087601 /* FS_IOC_GETVERSION */, 0} {
		out := bytes.Repeat([]byte{0xee}, 256)
		if _, errno := Ioctl(cmd, out, write3); errno != syscall.ENOTTY {
			t.Errorf("cmd %#x: errno %v; want ENOTTY", cmd, errno)
		}
		if !bytes.Equal(out, make([]byte, 256)) {
			t.Errorf("cmd %#x: refused, but the out buffer is not zeroed: % x", cmd, out[:16])
		}
	}
	if called != 0 {
		t.Fatalf("refused commands reached the backing call %d times", called)
	}
	for _, cmd := range []uint32{FSIocGetFlags, FSIocFSGetXattr} {
		out := bytes.Repeat([]byte{0xee}, 28)
		if _, errno := Ioctl(cmd, out, write3); errno != 0 {
			t.Fatalf("cmd %#x: %v", cmd, errno)
		}
		if want := append([]byte{1, 2, 3}, make([]byte, 25)...); !bytes.Equal(out, want) {
			t.Errorf("cmd %#x: out % x; want the 3 written bytes, then zeros", cmd, out)
		}
	}
	out := bytes.Repeat([]byte{0xee}, 8)
	if _, errno := Ioctl(FSIocGetFlags, out, func(uint32, []byte) syscall.Errno { return syscall.EOPNOTSUPP }); errno != syscall.EOPNOTSUPP || !bytes.Equal(out, make([]byte, 8)) {
		t.Errorf("a failing backing call: errno %v, out % x; want its errno and a zeroed buffer", errno, out)
	}
}

// TestIoctlOnFile runs the allowed commands on a real file and compares
// with the same ioctl made directly.
func TestIoctlOnFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	direct, err := unix.IoctlGetUint32(fd, FSIocGetFlags)
	if err != nil {
		t.Skipf("FS_IOC_GETFLAGS not supported by %s: %v", os.TempDir(), err)
	}
	out := bytes.Repeat([]byte{0xee}, 8)
	if _, errno := Ioctl(FSIocGetFlags, out, FdIoctl(fd)); errno != 0 {
		t.Fatal(errno)
	}
	if got := binary.NativeEndian.Uint32(out); got != direct || !bytes.Equal(out[4:], make([]byte, 4)) {
		t.Errorf("FS_IOC_GETFLAGS: % x; want %#x then 4 zero bytes", out, direct)
	}
}

func statMode(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 07777
}

// capV2 is a valid VFS_CAP_REVISION_2 security.capability value granting
// CAP_NET_BIND_SERVICE.
func capV2() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return b
}

// TestKillPriv: setuid always goes, setgid with group execute, or
// without it for a caller outside the file's group, the capability
// attribute goes, through a plain fd and an O_PATH fd alike; other files
// and other bits are untouched.
func TestKillPriv(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chmod to setuid/setgid of a file of any owner, security.capability")
	}
	dir := t.TempDir()
	member := func(uint32) bool { return true }
	cases := []struct {
		mode, want uint32
		inGroup    func(uint32) bool
	}{
		{06777, 00777, nil},
		{04755, 00755, member},
		{02777, 00777, member},
		{02767, 00767, nil},    // setgid without group execute, caller not in the group
		{02767, 02767, member}, // ... and in it: mandatory locking, kept
		{01777, 01777, nil},
		{00644, 00644, nil},
	}
	for _, opath := range []bool{false, true} {
		for _, c := range cases {
			p := filepath.Join(dir, "f")
			os.Remove(p)
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			hasCap := unix.Setxattr(p, CapabilityXattr, capV2(), 0) == nil
			flags := unix.O_RDONLY
			if opath {
				flags = unix.O_PATH
			}
			fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			changed, clean, errno := KillPriv(fd, c.inGroup)
			unix.Close(fd)
			if errno != 0 {
				t.Fatalf("O_PATH %v, mode %o: %v", opath, c.mode, errno)
			}
			if got := statMode(t, p); got != c.want {
				t.Errorf("O_PATH %v: mode %o became %o; want %o", opath, c.mode, got, c.want)
			}
			if hasCap {
				if _, err := unix.Getxattr(p, CapabilityXattr, make([]byte, 64)); err != unix.ENODATA {
					t.Errorf("O_PATH %v, mode %o: security.capability still there (%v)", opath, c.mode, err)
				}
			}
			if want := c.mode != c.want || hasCap; changed != want {
				t.Errorf("O_PATH %v, mode %o (capability %v): changed %v; want %v", opath, c.mode, hasCap, changed, want)
			}
			if want := c.want&(unix.S_ISUID|unix.S_ISGID) == 0; clean != want {
				t.Errorf("O_PATH %v, mode %o: clean %v; want %v", opath, c.mode, clean, want)
			}
		}
	}
	// Directories and FIFOs keep their bits.
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	unix.Chmod(d, 02775)
	fd, _ := unix.Open(d, unix.O_PATH|unix.O_CLOEXEC, 0)
	if changed, _, errno := KillPriv(fd, nil); changed || errno != 0 || statMode(t, d) != 02775 {
		t.Errorf("directory 2775: changed %v, errno %v, mode %o; want untouched", changed, errno, statMode(t, d))
	}
	unix.Close(fd)
}

// TestFchmodOPath: Fchmod works on an O_PATH fd and never follows a
// symlink.
func TestFchmodOPath(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	fd, err := unix.Open(link, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if errno := Fchmod(fd, 0o777); errno == 0 {
		t.Errorf("Fchmod on a symlink's O_PATH fd succeeded")
	}
	if got := statMode(t, target); got != 0o600 {
		t.Errorf("the symlink's target changed mode to %o", got)
	}
	tfd, _ := unix.Open(target, unix.O_PATH|unix.O_CLOEXEC, 0)
	defer unix.Close(tfd)
	if errno := Fchmod(tfd, 04711); errno != 0 || statMode(t, target) != 04711 {
		t.Errorf("Fchmod(O_PATH, 4711): %v, mode %o", errno, statMode(t, target))
	}
}
