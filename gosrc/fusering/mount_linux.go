package fusering

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountParams are what mount(2) needs besides the /dev/fuse fd.
type mountParams struct {
	mountpoint  string
	source      string
	subtype     string
	allowOther  bool
	readOnly    bool
	defaultPerm bool
}

func openDevFuse() (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w", err)
	}
	return fd, nil
}

// doMount mounts the FUSE connection of devFd on p.mountpoint.
func doMount(devFd int, p mountParams) error {
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d", devFd, os.Geteuid(), os.Getegid())
	if p.allowOther {
		data += ",allow_other"
	}
	if p.defaultPerm {
		data += ",default_permissions"
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if p.readOnly {
		flags |= unix.MS_RDONLY
	}
	fstype := "fuse"
	if p.subtype != "" {
		fstype += "." + p.subtype
	}
	if err := unix.Mount(p.source, p.mountpoint, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, p.mountpoint, err)
	}
	return nil
}

// CheckMountpoint returns a clear error when mnt cannot take a mount: it
// does not exist, is not a directory, is already a mount point, or is a
// dead FUSE mount.
func CheckMountpoint(mnt string) error {
	// statfs is never answered from the kernel's caches, so it sees a
	// dead FUSE mount at once; stat may still answer from the attribute
	// cache for a while after the server died. In the first milliseconds
	// after a FUSE-over-io_uring server died, while the kernel tears its
	// rings down, requests fail with ECANCELED or ECONNABORTED instead.
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.ECANCELED) {
		return fmt.Errorf("mountpoint %s: %w (a dead FUSE mount? unmount it first: umount %s)", mnt, unix.ENOTCONN, mnt)
	}
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("mountpoint %s: %w (a dead FUSE mount? unmount it first: umount %s)", mnt, err, mnt)
		}
		return fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("mountpoint %s: %w", mnt, unix.ENOTDIR)
	}
	if _, ok, err := mountID(mnt); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("mountpoint %s is busy: something is already mounted there: %w", mnt, unix.EBUSY)
	}
	return nil
}

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	// Minor is the device's minor number; for a FUSE mount it names the
	// connection in /sys/fs/fuse/connections.
	Minor      uint32
	Mountpoint string // unescaped
	FSType     string // e.g. fuse.zcfuse
}

// Mounts lists this process's mounts, oldest first. Reading it sends no
// request to any file system.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := Mount{Mountpoint: unescapeMountinfo(fields[4])}
		if majmin := strings.SplitN(fields[2], ":", 2); len(majmin) == 2 {
			v, _ := strconv.ParseUint(majmin[1], 10, 32)
			m.Minor = uint32(v)
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				m.FSType = fields[i+1]
				break
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// mountID finds the newest mount on mnt and returns its minor number.
func mountID(mnt string) (minor uint32, ok bool, err error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return 0, false, err
	}
	abs = filepath.Clean(abs)
	if real, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(real, filepath.Base(abs))
	}
	mounts, err := Mounts()
	for _, m := range mounts {
		if m.Mountpoint == abs {
			minor, ok = m.Minor, true
		}
	}
	return minor, ok, err
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

const fusectlDir = "/sys/fs/fuse/connections"

// abortConnection aborts FUSE connection minor through fusectl,
// mounting fusectl first when needed: every request in flight then fails
// with ENOTCONN, ring entries complete, and /dev/fuse reads return ENODEV.
func abortConnection(minor uint32) error {
	path := filepath.Join(fusectlDir, strconv.FormatUint(uint64(minor), 10), "abort")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount fusectl: %w", err)
		}
	}
	if err := os.WriteFile(path, []byte("1"), 0); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // the connection is already gone
		}
		return fmt.Errorf("abort fuse connection %d: %w", minor, err)
	}
	return nil
}

// PossibleCPUs returns the number of possible CPUs: the kernel makes one
// FUSE queue for each (/sys/devices/system/cpu/possible, not the online
// count).
func PossibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

// parseCPUList returns highest CPU + 1 of a list like "0-3,8-11".
func parseCPUList(s string) (int, error) {
	n := 0
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		hi := part
		if i := strings.IndexByte(part, '-'); i >= 0 {
			hi = part[i+1:]
		}
		v, err := strconv.Atoi(hi)
		if err != nil {
			return 0, fmt.Errorf("bad cpu list %q", s)
		}
		n = max(n, v+1)
	}
	if n == 0 {
		return 0, fmt.Errorf("empty cpu list")
	}
	return n, nil
}

// RequireURingEnv is the environment variable with which the programs
// built on the library (the zcfuse CLI, the C ABI) set
// Config.RequireURing for TransportAuto: "1" turns a fallback to
// /dev/fuse into a failure (CI sets it).
const RequireURingEnv = "ZCFUSE_REQUIRE_URING"

// URingEnabledPath is the module parameter that switches the kernel's
// FUSE-over-io_uring on.
const URingEnabledPath = "/sys/module/fuse/parameters/enable_uring"

// URingEnabled reports whether the kernel parameter is on.
func URingEnabled() bool {
	b, err := os.ReadFile(URingEnabledPath)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}
