package passthrough

import (
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CapabilityXattr is the attribute that carries file capabilities.
const CapabilityXattr = "security.capability"

// sysFchmodat2 is fchmodat2(2) (Linux 6.6), the only chmod that works on
// an O_PATH fd (AT_EMPTY_PATH) and never follows a symlink.
const sysFchmodat2 = 452

// emptyPath is the "" that AT_EMPTY_PATH calls take.
var emptyPath = [1]byte{}

// Fchmod sets the permission bits (07777) of the inode fd refers to; fd
// may be an O_PATH fd.
func Fchmod(fd int, mode uint32) syscall.Errno {
	_, _, e := unix.Syscall6(sysFchmodat2, uintptr(fd), uintptr(unsafe.Pointer(&emptyPath[0])), uintptr(mode&07777), unix.AT_EMPTY_PATH, 0, 0)
	return e
}

// privBits returns the bits of mode that a write by a caller without
// CAP_FSETID clears (the kernel's setattr_should_drop_suidgid): setuid
// always; setgid when group execute is set, and without it (mandatory
// locking) when the caller is not in the file's group gid.
func privBits(mode, gid uint32, inGroup func(gid uint32) bool) uint32 {
	kill := mode & unix.S_ISUID
	if mode&unix.S_ISGID != 0 && (mode&unix.S_IXGRP != 0 || inGroup == nil || !inGroup(gid)) {
		kill |= unix.S_ISGID
	}
	return kill
}

// KillPriv clears, on the regular file fd refers to (an O_PATH fd will
// do), what a local file system clears when a caller without CAP_FSETID
// writes, truncates or chowns it: setuid, setgid (privBits; inGroup tells
// whether the caller is in a group, nil: in none), and
// security.capability. It reports whether it changed anything, and
// whether the file is now clean: no setuid, setgid or capability left
// for any caller to clear.
func KillPriv(fd int, inGroup func(gid uint32) bool) (changed, clean bool, errno syscall.Errno) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, false, err.(syscall.Errno)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, true, 0
	}
	if kill := privBits(st.Mode, st.Gid, inGroup); kill != 0 {
		if e := Fchmod(fd, st.Mode&^kill); e != 0 {
			return false, false, e
		}
		st.Mode &^= kill
		changed = true
	}
	err := unix.Fremovexattr(fd, CapabilityXattr)
	if err == unix.EBADF { // an O_PATH fd: name the inode through /proc
		err = unix.Removexattr("/proc/self/fd/"+strconv.Itoa(fd), CapabilityXattr)
	}
	switch err {
	case nil:
		changed = true
	case unix.ENODATA, unix.EOPNOTSUPP:
	default:
		return changed, false, err.(syscall.Errno)
	}
	return changed, st.Mode&(unix.S_ISUID|unix.S_ISGID) == 0, 0
}

// HasPriv reports whether the file fd refers to carries anything that
// KillPriv may clear: setuid, setgid or security.capability. An error
// counts as yes.
func HasPriv(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	if st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		return true
	}
	_, err := unix.Fgetxattr(fd, CapabilityXattr, nil)
	return err != unix.ENODATA && err != unix.EOPNOTSUPP
}
