package passthrough

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// Caller is whom a kill-priv check is for: a writer without CAP_FSETID,
// with a primary group and supplementary groups (known, or found through
// a GroupCache when first needed).
type Caller struct {
	Uid, Gid, Pid uint32
	Groups        []uint32 // nil: ask Cache
	Cache         *GroupCache
	// FixedGid: judge membership of FileGid, whatever the file's group is
	// now (a chown judges the group the file had before it).
	FileGid  uint32
	FixedGid bool
}

// InGroup reports whether the caller is in group gid. Only a setgid file
// without group execute asks, so the groups are looked up only then.
func (c Caller) InGroup(gid uint32) bool {
	if c.FixedGid {
		gid = c.FileGid
	}
	if gid == c.Gid {
		return true
	}
	groups := c.Groups
	if groups == nil && c.Cache != nil {
		groups = c.Cache.Groups(c.Pid, c.Uid, c.Gid)
	}
	return slices.Contains(groups, gid)
}

// Capability bits in a capability set.
const (
	capFsetid   = 1 << 4
	CapSysAdmin = 1 << 21
)

// capEff reads process pid's effective capabilities from
// /proc/PID/status (pid in this pid namespace). ok is false for a pid of
// 0 (a caller in another pid namespace) or one that cannot be read (it
// has exited).
func capEff(pid uint32) (caps uint64, ok bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "CapEff:"); found {
			caps, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps, err == nil
		}
	}
	return 0, false
}

// CallerHasFsetid reports whether a caller may keep setuid/setgid when it
// writes: only root, and only with CAP_FSETID in its effective set (from
// /proc/PID/status). A non-root caller never counts as having it, even
// with the capability (the bits then go, the safe side): its /proc entry
// could show a setuid-root binary it exec'd after making the request. A
// root caller that cannot be read counts as not having it either.
func CallerHasFsetid(uid, pid uint32) bool { return CallerHasCap(uid, pid, capFsetid) }

// CallerHasCap reports whether a root caller has every capability in bits
// (CapSysAdmin, ...) in its effective set; a non-root caller, or one that
// cannot be read, never does.
func CallerHasCap(uid, pid uint32, bits uint64) bool {
	if uid != 0 {
		return false
	}
	caps, ok := capEff(pid)
	return ok && caps&bits == bits
}
