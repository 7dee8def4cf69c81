package tests

// The caller's rights (issue 11's first part): a root server runs every
// request that looks up, creates, opens, changes or removes something as
// its caller. Each attack here runs as a separate uid-65534 process on a
// loop-mounted ext4 image, against the server as it is and against the
// layer the project had before its own, go-fuse's loopback node tree
// running every request as root (`zcfuse mount --test-root-requests`,
// server.Options.TestRootRequests), which must
// show the attack biting within the same time.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	zfs "github.com/zcfuse/zcfuse/gosrc/fs"
	"golang.org/x/sys/unix"
)

// rootOnly makes FS/rootonly (0700, root's) holding a root 0600 "victim",
// outside the backing directory, and returns it.
func (f *hfix) rootOnly(t *testing.T) string {
	t.Helper()
	d := mkdir(t, filepath.Join(f.fs, "rootonly"))
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	putFile(t, filepath.Join(d, "victim"), []byte("root's\n"), 0o600, 0, 0)
	return d
}

// escaped lists what an attack changed in the root-only directory: any
// name but victim, and victim gone or changed.
func escaped(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := false
	for _, e := range ents {
		if e.Name() == "victim" {
			seen = true
			continue
		}
		out = append(out, "made "+e.Name())
	}
	if !seen {
		out = append(out, "victim deleted")
	} else if b, _ := os.ReadFile(filepath.Join(dir, "victim")); string(b) != "root's\n" {
		out = append(out, fmt.Sprintf("victim changed to %q", b))
	}
	return out
}

// servePub serves the fixture with a 1777 pub/ in the backing directory;
// asRoot runs the control (the old layer, as root).
func (f *hfix) servePub(t *testing.T, tr string, asRoot bool) string {
	t.Helper()
	pub := mkdir(t, filepath.Join(f.backing, "pub"))
	if err := os.Chmod(pub, 0o1777); err != nil {
		t.Fatal(err)
	}
	var env []string
	args := []string{"--allow-other"}
	if asRoot {
		args = append(args, "--test-root-requests")
	}
	if tr == "uring" && os.Getenv("ZCFUSE_REQUIRE_URING") == "1" {
		env = append(env, "ZCFUSE_REQUIRE_URING=1")
	}
	f.s = startMount(t, mountOpts{transport: tr, backing: f.backing, mountpoint: f.mnt, args: args, env: env})
	return filepath.Join(f.mnt, "pub")
}

// withControl runs fn on both transports, first as the control (the
// server told to serve the old layer as root), then as the server is.
func withControl(t *testing.T, fn func(t *testing.T, tr string, control bool)) {
	forTransports(t, func(t *testing.T, tr string) {
		for _, control := range []bool{true, false} {
			name := "as the caller"
			if control {
				name = "control: old layer as root"
			}
			t.Run(name, func(t *testing.T) { fn(t, tr, control) })
		}
	})
}

// TestCallerRightsRace: uid 65534 swaps a directory of its own with a
// symlink to a root-only directory (renameat2 RENAME_EXCHANGE, through
// the mount only) while creating and unlinking names inside it. As root
// the server follows the symlink and deletes root's file; as the caller
// it cannot.
func TestCallerRightsRace(t *testing.T) {
	withControl(t, func(t *testing.T, tr string, control bool) {
		f := ext4Fixture(t)
		target := f.rootOnly(t)
		pub := f.servePub(t, tr, control)
		var got []string
		for try := 0; try < 3 && len(got) == 0; try++ {
			out := f.attack(t, nobody, attackSpec{Kind: "race", Dir: pub, Target: target, Secs: 2})
			if out.Err != "" {
				t.Fatalf("attacker: %s", out.Err)
			}
			got = escaped(t, target)
			if !control {
				break // one run, as long as the control needs at most
			}
		}
		switch {
		case control && len(got) == 0:
			t.Errorf("the control (old layer as root) did not escape in 3 × 2 s: the race does not bite, so the test proves nothing")
		case !control && len(got) > 0:
			t.Errorf("uid %d escaped the backing directory: %v", nobody, got)
		}
	})
}

// TestCallerRightsDeterministic: uid 65534 may also write its own
// subdirectory of the backing tree directly (a shared home, a container
// volume). It looks a directory up through the mount, replaces it
// directly with a symlink to a root-only directory, then unlinks and
// creates through the mount, where the kernel still has the directory's
// entry: no race needed.
func TestCallerRightsDeterministic(t *testing.T) {
	withControl(t, func(t *testing.T, tr string, control bool) {
		f := ext4Fixture(t)
		target := f.rootOnly(t)
		pub := f.servePub(t, tr, control)
		direct := filepath.Join(f.backing, "pub")
		out := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{
			{Op: "mkdir", Path: pub + "/d", Mode: 0o755},
			{Op: "stat", Path: pub + "/d"},
			{Op: "rename", Path: direct + "/d", To: direct + "/d.old"},
			{Op: "symlink", Path: direct + "/d", To: target},
			{Op: "unlink", Path: pub + "/d/victim"},
			{Op: "create", Path: pub + "/d/made", Mode: 0o644},
		}})
		if out.Err != "" {
			t.Fatalf("attacker: %s", out.Err)
		}
		for _, r := range out.Steps[:4] {
			if r.Errno != 0 {
				t.Fatalf("set-up step %s %s: %s %s", r.Op, r.Path, errnoStr(r.Errno), r.Msg)
			}
		}
		got := escaped(t, target)
		switch {
		case control && len(got) == 0:
			t.Errorf("the control (old layer as root) did not escape: unlink %s, create %s", errnoStr(out.Steps[4].Errno), errnoStr(out.Steps[5].Errno))
		case !control && len(got) > 0:
			t.Errorf("uid %d escaped the backing directory: %v (unlink: %s, create: %s)", nobody, got, errnoStr(out.Steps[4].Errno), errnoStr(out.Steps[5].Errno))
		}
	})
}

// aclEntry is one entry of a POSIX ACL xattr value.
type aclEntry struct {
	tag, perm uint16
	id        uint32
}

const aclNoID = ^uint32(0)

// aclBlob encodes a system.posix_acl_* value (POSIX_ACL_XATTR_VERSION 2).
func aclBlob(entries ...aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// posixACL is a system.posix_acl_access value: owner rw, user uid ---,
// group r, mask r, other r.
func posixACL(uid uint32) []byte {
	return aclBlob(aclEntry{0x01, 6, aclNoID}, aclEntry{0x02, 0, uid}, aclEntry{0x04, 4, aclNoID},
		aclEntry{0x10, 4, aclNoID}, aclEntry{0x20, 4, aclNoID})
}

// TestCallerRightsACLAndOwners: an ACL that denies uid 65534 a 0644 file
// holds through the mount as it does on ext4; two users creating files
// at once through the mount each own exactly their own (no request runs
// with the other's identity); the backing directory's parents need not
// be searchable by the caller.
func TestCallerRightsACLAndOwners(t *testing.T) {
	const other = 65533
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		denied := filepath.Join(f.backing, "denied")
		putFile(t, denied, []byte("no\n"), 0o644, 0, 0)
		if err := unix.Setxattr(denied, "system.posix_acl_access", posixACL(nobody), 0); err != nil {
			t.Skipf("ext4 image without POSIX ACLs: %v", err)
		}
		ctlDenied := filepath.Join(f.ctl, "denied")
		putFile(t, ctlDenied, []byte("no\n"), 0o644, 0, 0)
		if err := unix.Setxattr(ctlDenied, "system.posix_acl_access", posixACL(nobody), 0); err != nil {
			t.Fatal(err)
		}
		// The image's root, above the backing directory, shut to others.
		if err := os.Chmod(f.fs, 0o711); err != nil {
			t.Fatal(err)
		}
		pub := f.servePub(t, tr, false)
		mnt := filepath.Dir(pub)
		out := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{
			{Op: "open", Path: filepath.Join(mnt, "denied"), Flags: unix.O_RDONLY},
			{Op: "open", Path: ctlDenied, Flags: unix.O_RDONLY},
		}})
		if out.Err != "" {
			t.Fatalf("attacker: %s", out.Err)
		}
		if m, c := out.Steps[0].Errno, out.Steps[1].Errno; m != int(unix.EACCES) || c != int(unix.EACCES) {
			t.Errorf("uid %d opening a 0644 file whose ACL denies it: %s through the mount, %s on ext4; want EACCES for both", nobody, errnoStr(m), errnoStr(c))
		}

		// Two users at once, each making 200 files and directories.
		var wg sync.WaitGroup
		outs := map[int]attackOut{}
		var mu sync.Mutex
		for _, uid := range []int{nobody, other} {
			var steps []step
			for i := 0; i < 100; i++ {
				steps = append(steps,
					step{Op: "create", Path: fmt.Sprintf("%s/u%d-f%d", pub, uid, i), Mode: 0o644},
					step{Op: "mkdir", Path: fmt.Sprintf("%s/u%d-d%d", pub, uid, i), Mode: 0o755})
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := f.tryAttack(t, uid, attackSpec{Kind: "steps", Steps: steps})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				outs[uid] = o
				mu.Unlock()
			}()
		}
		wg.Wait()
		for uid, o := range outs {
			if o.Err != "" {
				t.Fatalf("uid %d: %s", uid, o.Err)
			}
			for _, r := range o.Steps {
				if r.Errno != 0 {
					t.Errorf("uid %d: %s %s: %s", uid, r.Op, r.Path, errnoStr(r.Errno))
				}
			}
		}
		ents, err := os.ReadDir(filepath.Join(f.backing, "pub"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			var uid int
			var kind string
			if _, err := fmt.Sscanf(e.Name(), "u%d-%s", &uid, &kind); err != nil {
				continue
			}
			n++
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(f.backing, "pub", e.Name()), &st); err != nil {
				t.Fatal(err)
			}
			if int(st.Uid) != uid || int(st.Gid) != uid {
				t.Errorf("%s, made by uid %d, belongs to %d:%d", e.Name(), uid, st.Uid, st.Gid)
			}
		}
		if n != 400 {
			t.Errorf("%d objects made by the two users; want 400", n)
		}
	})
}

// TestCallerRightsBehindSymlinks: what still runs as the server (GETATTR
// and friends, file capabilities) never follows a directory of the
// caller's that was replaced by a symlink on the backing file system:
// the attributes of root's file behind it are not shown, and a file
// capability set from a user namespace of the caller's own lands on no
// file behind it. And "touch" works for whoever may write the file, an
// explicit time only for its owner, as on ext4.
func TestCallerRightsBehindSymlinks(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		target := f.rootOnly(t)
		pub := f.servePub(t, tr, false)
		direct := filepath.Join(f.backing, "pub")
		for _, d := range []string{direct, f.ctl} {
			putFile(t, filepath.Join(d, "theirs"), []byte("x"), 0o666, 65533, 65533)
		}
		out := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{
			{Op: "mkdir", Path: pub + "/s", Mode: 0o755},
			{Op: "create", Path: pub + "/s/victim", Mode: 0o644},
			{Op: "swapstat", Path: pub + "/s/victim", From: direct + "/s", To: target},
			{Op: "mkdir", Path: pub + "/c", Mode: 0o755},
			{Op: "create", Path: pub + "/c/victim", Mode: 0o644},
			{Op: "capswap", Path: pub + "/c/victim", From: direct + "/c", To: target},
			{Op: "touch", Path: pub + "/theirs"},
			{Op: "touch", Path: f.ctl + "/theirs"},
			{Op: "settime", Path: pub + "/theirs"},
			{Op: "settime", Path: f.ctl + "/theirs"},
		}})
		if out.Err != "" {
			t.Fatalf("attacker: %s", out.Err)
		}
		st := out.Steps
		if r := st[2]; r.Stat != nil && r.Stat.Uid == 0 {
			t.Errorf("fstat through the mount showed root's file behind the swapped directory: %+v", *r.Stat)
		}
		if _, err := unix.Getxattr(filepath.Join(target, "victim"), "security.capability", make([]byte, 64)); err != unix.ENODATA {
			t.Errorf("root's file behind the swapped directory got security.capability (getxattr: %v; the attacker's fsetxattr: %s)", err, errnoStr(st[5].Errno))
		}
		if st[6].Errno != 0 || st[7].Errno != 0 {
			t.Errorf("touch of a 0666 file of another user: %s through the mount, %s on ext4; want both to work", errnoStr(st[6].Errno), errnoStr(st[7].Errno))
		}
		if st[8].Errno != int(unix.EPERM) || st[9].Errno != int(unix.EPERM) {
			t.Errorf("an explicit time on another user's file: %s through the mount, %s on ext4; want EPERM for both", errnoStr(st[8].Errno), errnoStr(st[9].Errno))
		}
		if escaped(t, target) != nil {
			t.Errorf("the root-only directory changed: %v", escaped(t, target))
		}
	})
}

// TestCallerRightsDefaultACL: POSIX ACLs are negotiated, and the caller's
// umask reaches the backing file system with the create: in a directory
// with a default ACL, new files and directories get the mode and ACLs
// ext4 gives them (the default ACL, not the umask, shapes the mode); in
// one without, the umask applies. Compared with the same creates
// directly on ext4.
func TestCallerRightsDefaultACL(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		def := aclBlob(aclEntry{0x01, 7, aclNoID}, aclEntry{0x02, 7, 65533}, aclEntry{0x04, 5, aclNoID},
			aclEntry{0x10, 7, aclNoID}, aclEntry{0x20, 0, aclNoID})
		pubBacking := filepath.Join(f.backing, "pub")
		for _, d := range []string{filepath.Join(f.backing, "pub", "acl"), filepath.Join(f.ctl, "acl")} {
			os.MkdirAll(d, 0o755)
			os.Chmod(filepath.Dir(d), 0o1777)
			os.Chmod(d, 0o777)
			if err := unix.Setxattr(d, "system.posix_acl_default", def, 0); err != nil {
				t.Skipf("ext4 image without POSIX ACLs: %v", err)
			}
		}
		pub := f.servePub(t, tr, false)
		var steps []step
		for _, d := range []string{pub, f.ctl} {
			steps = append(steps,
				step{Op: "umask", Mode: 0o027},
				step{Op: "create", Path: d + "/acl/f", Mode: 0o666},
				step{Op: "mkdir", Path: d + "/acl/d", Mode: 0o777},
				step{Op: "create", Path: d + "/plain", Mode: 0o666})
		}
		out := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: steps})
		if out.Err != "" {
			t.Fatalf("attacker: %s", out.Err)
		}
		for _, r := range out.Steps {
			if r.Errno != 0 {
				t.Fatalf("%s %s: %s", r.Op, r.Path, errnoStr(r.Errno))
			}
		}
		xattr := func(p, name string) string {
			buf := make([]byte, 256)
			n, err := unix.Getxattr(p, name, buf)
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("% x", buf[:n])
		}
		for _, name := range []string{"acl/f", "acl/d", "plain"} {
			mine, ctl := filepath.Join(pubBacking, name), filepath.Join(f.ctl, name)
			if m, c := modeOf(mine), modeOf(ctl); m != c {
				t.Errorf("%s made through the mount is %v; on ext4 %v", name, m, c)
			}
			for _, x := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
				if m, c := xattr(mine, x), xattr(ctl, x); m != c {
					t.Errorf("%s made through the mount has %s %s; on ext4 %s", name, x, m, c)
				}
			}
		}
		if m := modeOf(filepath.Join(pubBacking, "plain")); m.perm != 0o640 {
			t.Errorf("a 0666 create under umask 027 outside the ACL directory gave %v; want 0640", m)
		}
	})
}

// TestCallerRightsTree: a tree of 100,000 files made through the mount
// by uid 65534; with the kernel's caches dropped, every file is stat'ed
// and the tree walked (find) while uid 65533 writes files of its own
// beside it; then it is removed. Nothing fails with EMFILE or otherwise,
// and the server holds no descriptor per file: the kernel remembers tens
// of thousands of inodes, the server keeps at most its bounded cache of
// fds for them (fs.DefaultMaxFds).
func TestCallerRightsTree(t *testing.T) {
	const dirs, per = 100, 1000
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t, "-N", "110000", "-I", "128")
		pub := f.servePub(t, tr, false)
		fds := func() int {
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", f.s.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			return len(ents)
		}
		base := fds()
		out := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: []step{{Op: "tree", Path: pub, Len: dirs, Off: per}}, Timeout: 240})
		if out.Err != "" || out.Steps[0].Errno != 0 || out.Steps[0].N != dirs*per {
			t.Fatalf("uid %d made %d of %d files: %s %s", nobody, out.Steps[0].N, dirs*per, errnoStr(out.Steps[0].Errno), out.Err)
		}
		dropCaches(t)
		var writer sync.WaitGroup
		writer.Add(1)
		var wout attackOut
		go func() {
			defer writer.Done()
			var steps []step
			for i := 0; i < 200; i++ {
				steps = append(steps, step{Op: "create", Path: fmt.Sprintf("%s/w%03d", pub, i), Mode: 0o644}, step{Op: "write", Path: fmt.Sprintf("%s/w%03d", pub, i), Len: 4096})
			}
			var err error
			if wout, err = f.tryAttack(t, 65533, attackSpec{Kind: "steps", Steps: steps}); err != nil {
				t.Error(err)
			}
		}()
		n := 0
		err := filepath.WalkDir(pub, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), "f") {
				n++
			}
			return nil
		})
		writer.Wait()
		if err != nil || n != dirs*per {
			t.Errorf("walking the tree while another user writes: %d files seen, %v; want %d, no error", n, err, dirs*per)
		}
		for _, r := range wout.Steps {
			if r.Errno != 0 {
				t.Errorf("uid 65533 %s %s: %s", r.Op, r.Path, errnoStr(r.Errno))
				break
			}
		}
		st := f.s.stats()
		if got := fds(); got > base+zfs.DefaultMaxFds+16 || st.FS.InodeFds > zfs.DefaultMaxFds || st.FS.Inodes < 10*zfs.DefaultMaxFds {
			t.Errorf("the server holds %d fds after the walk (%d before), %d for the %d inodes the kernel remembers: want at most %d",
				got, base, st.FS.InodeFds, st.FS.Inodes, zfs.DefaultMaxFds)
		}
		t.Logf("after the walk: the kernel remembers %d inodes, the server holds %d fds for them (file handles: %v)", st.FS.Inodes, st.FS.InodeFds, st.FS.FileHandles)
		var rm []step
		for d := 0; d < dirs; d++ {
			rm = append(rm, step{Op: "rmtree", Path: fmt.Sprintf("%s/d%03d", pub, d)})
		}
		out = f.attack(t, nobody, attackSpec{Kind: "steps", Steps: rm, Timeout: 240})
		if out.Err != "" {
			t.Fatalf("attacker: %s", out.Err)
		}
		for _, r := range out.Steps {
			if r.Errno != 0 {
				t.Errorf("removing %s: %s", r.Path, errnoStr(r.Errno))
			}
		}
		if ents, err := os.ReadDir(filepath.Join(f.backing, "pub")); err != nil || len(ents) != 200 {
			t.Errorf("after the removal the backing pub/ holds %d entries (%v); want uid 65533's 200 files", len(ents), err)
		}
	})
}

// TestNonOwnerDirRename: uid 65534 renames root's 0755 directory within a
// 0777 directory (allowed: only the parent changes) and then into another
// 0777 directory (EACCES on ext4: its ".." would change, which needs
// write permission on the directory itself). Through the mount it gets
// what it gets on the ext4 image directly, step by step.
func TestNonOwnerDirRename(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		steps := func(top string) []step {
			return []step{
				{Op: "rename", Path: top + "/open/d", To: top + "/open/d2"},
				{Op: "rename", Path: top + "/open/d2", To: top + "/open/other/d"},
				{Op: "rename", Path: top + "/open/d2", To: top + "/open/d3"},
			}
		}
		for _, top := range []string{f.backing, f.ctl} {
			open := mkdir(t, filepath.Join(top, "open"))
			mkdir(t, filepath.Join(open, "d"))
			mkdir(t, filepath.Join(open, "other"))
			for _, d := range []string{open, filepath.Join(open, "other")} {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
		}
		f.servePub(t, tr, false)
		viaMount := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: steps(f.mnt)})
		direct := f.attack(t, nobody, attackSpec{Kind: "steps", Steps: steps(f.ctl)})
		if viaMount.Err != "" || direct.Err != "" {
			t.Fatalf("attacker: %s %s", viaMount.Err, direct.Err)
		}
		var got, want []string
		for i := range viaMount.Steps {
			got = append(got, errnoStr(viaMount.Steps[i].Errno))
			want = append(want, errnoStr(direct.Steps[i].Errno))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("uid %d renaming root's directory: %v through the mount, %v on ext4", nobody, got, want)
		}
		if direct.Steps[1].Errno != int(unix.EACCES) {
			t.Logf("note: ext4 answered %v (expected EACCES for the move across directories)", want)
		}
	})
}

// TestACLKillSgid: a root caller without CAP_FSETID, outside a setgid
// file's group, sets an access ACL on it: the file loses setgid, through
// the mount as on ext4 (the kernel leaves that to the server:
// FUSE_SETXATTR_ACL_KILL_SGID), though the server itself keeps
// CAP_FSETID.
func TestACLKillSgid(t *testing.T) {
	forTransports(t, func(t *testing.T, tr string) {
		f := ext4Fixture(t)
		for _, dir := range []string{f.backing, f.ctl} {
			p := filepath.Join(dir, "sgid")
			putFile(t, p, []byte("x\n"), 0o2755, 0, nobody)
			if err := unix.Chmod(p, 0o2755); err != nil { // putFile's chown cleared it
				t.Fatal(err)
			}
		}
		f.servePub(t, tr, false)
		steps := func(dir string) []step {
			return []step{{Op: "dropfsetid"}, {Op: "setacl", Path: filepath.Join(dir, "sgid")}}
		}
		for _, dir := range []string{f.mnt, f.ctl} {
			out := f.attack(t, 0, attackSpec{Kind: "steps", Steps: steps(dir)})
			if out.Err != "" || out.Steps[0].Errno != 0 || out.Steps[1].Errno != 0 {
				t.Fatalf("root without CAP_FSETID setting an ACL in %s: %+v %s", dir, out.Steps, out.Err)
			}
		}
		for _, dir := range []string{f.backing, f.ctl} {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(dir, "sgid"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&unix.S_ISGID != 0 {
				t.Errorf("%s/sgid kept setgid (mode %o) after an ACL change by a caller outside its group without CAP_FSETID", dir, st.Mode&0o7777)
			}
		}
	})
}

// TestRootCreateBait: root makes and removes "t" through the mount (mkdir,
// and mknod of a 04755 file) in a directory uid 65534 owns, while 65534,
// writing that directory directly, keeps swapping a file of its own in as
// "t". A layer that chowns a root caller's new object by its name after
// making it (the old layer: lchown by path) gives 65534's file to root,
// with setuid put back a setuid-root binary; the layer makes root's
// objects with root's identity from the start and chowns nothing.
func TestRootCreateBait(t *testing.T) {
	withControl(t, func(t *testing.T, tr string, control bool) {
		f := ext4Fixture(t)
		pub := f.servePub(t, tr, control)
		race := filepath.Join(f.backing, "pub", "race")
		mkdir(t, race)
		if err := os.Chown(race, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		var given []string
		for try := 0; try < 3 && len(given) == 0; try++ {
			stop := make(chan struct{})
			var rootOps sync.WaitGroup
			rootOps.Add(1)
			go func() {
				defer rootOps.Done()
				tp := filepath.Join(pub, "race", "t")
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if i%2 == 0 {
						unix.Mkdir(tp, 0o755)
						unix.Rmdir(tp)
					} else {
						unix.Mknod(tp, unix.S_IFREG|0o4755, 0)
						unix.Unlink(tp)
					}
				}
			}()
			out := f.attack(t, nobody, attackSpec{Kind: "bait", Dir: race, Secs: 2})
			close(stop)
			rootOps.Wait()
			if out.Err != "" {
				t.Fatalf("attacker: %s", out.Err)
			}
			ents, err := os.ReadDir(race)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				var st unix.Stat_t
				p := filepath.Join(race, e.Name())
				if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Uid == 0 && st.Size > 0 {
					given = append(given, fmt.Sprintf("%s (mode %o)", e.Name(), st.Mode&0o7777))
				}
			}
			if !control {
				break
			}
		}
		switch {
		case control && len(given) == 0:
			t.Errorf("the control (old layer as root) gave no file of uid %d to root in 3 × 2 s: the race does not bite, so the test proves nothing", nobody)
		case !control && len(given) > 0:
			t.Errorf("files of uid %d were given to root: %v", nobody, given)
		}
	})
}
