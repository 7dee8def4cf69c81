package mountproc

import (
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"github.com/zcfuse/zcfuse/gosrc/fusering"
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
	ms, _ := fusering.Mounts()
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}
