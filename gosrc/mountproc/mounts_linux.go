package mountproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounts lists the mount points at or under dir, deepest first; mounts
// stacked on one path come newest first.
func Mounts(dir string) []string {
	var out []string
	all := mountPoints()
	for i := len(all) - 1; i >= 0; i-- {
		if mp := all[i]; mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// IsMounted says whether something is mounted at path.
func IsMounted(path string) bool {
	for _, mp := range mountPoints() {
		if mp == path {
			return true
		}
	}
	return false
}

// Detach lazily unmounts everything stacked on path (umount -l), the
// last resort for a mount whose server is gone or stuck.
func Detach(path string) {
	for i := 0; i < 8 && IsMounted(path); i++ {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			_ = exec.Command("umount", "-l", path).Run()
		}
	}
}

// Unmount takes down what is mounted at path: a plain unmount, else a
// lazy one. It fails only when path is still mounted afterwards.
func Unmount(path string) error {
	err := unix.Unmount(path, 0)
	if !IsMounted(path) {
		return nil
	}
	Detach(path)
	if IsMounted(path) {
		return fmt.Errorf("umount -l %s: still mounted (umount: %v)", path, err)
	}
	return nil
}

// UnmountAll takes down every mount at or under dir, deepest first, as
// Unmount does.
func UnmountAll(dir string) error {
	var errs []error
	for _, mp := range Mounts(dir) {
		if err := Unmount(mp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountPoints are the mount points in /proc/self/mountinfo, in its order
// (oldest first).
func mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo reads the mount points (the fifth field, with its octal
// escapes undone) of a mountinfo file.
func parseMountinfo(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		if f := strings.Fields(sc.Text()); len(f) >= 5 {
			out = append(out, unescape(f[4]))
		}
	}
	return out
}

// unescape undoes mountinfo's \ooo escapes (space, tab, newline, \).
func unescape(s string) string {
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
