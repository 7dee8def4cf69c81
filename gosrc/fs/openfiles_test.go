package fs

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// caller is a request header from uid (its own group).
func caller(node uint64, uid uint32) fuse.InHeader {
	return fuse.InHeader{NodeId: node, Caller: fuse.Caller{Owner: fuse.Owner{Uid: uid, Gid: uid}}}
}

// TestOpenFilesPerUser: each uid holds at most OpenFilesPerUser open files
// and directories; past it CREATE, OPEN and OPENDIR answer EMFILE to that
// uid alone (a CREATE makes nothing); a failed open gives its count back;
// RELEASE gives it back once; Close gives back what the kernel never
// released.
func TestOpenFilesPerUser(t *testing.T) {
	dir := t.TempDir()
	f, err := New(dir, Options{OpenFilesPerUser: 2, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Requests off a request thread: every uid runs as the server here
	// (switching needs a locked request thread); failures are made below.
	f.switching = false
	const root, nobody = 0, 65534
	create := func(uid uint32, name string) (fuse.CreateOut, fuse.Status) {
		var out fuse.CreateOut
		in := &fuse.CreateIn{InHeader: caller(rootID, uid), Flags: syscall.O_RDWR, Mode: 0o644}
		return out, f.Create(nil, in, name, &out)
	}
	open := func(uid uint32, node uint64) (uint64, fuse.Status) {
		var out fuse.OpenOut
		st := f.Open(nil, &fuse.OpenIn{InHeader: caller(node, uid), Flags: syscall.O_RDONLY}, &out)
		return out.Fh, st
	}
	opendir := func(uid uint32) (uint64, fuse.Status) {
		var out fuse.OpenOut
		st := f.OpenDir(nil, &fuse.OpenIn{InHeader: caller(rootID, uid)}, &out)
		return out.Fh, st
	}
	release := func(fh uint64) { f.Release(nil, &fuse.ReleaseIn{Fh: fh}) }
	want := func(uid uint32, n int) {
		t.Helper()
		if got := f.OpenFilesOf(uid); got != n {
			t.Fatalf("uid %d holds %d open files, want %d (all: %v)", uid, got, n, f.OpenFilesByUser())
		}
	}

	a, st := create(nobody, "a")
	if !st.Ok() {
		t.Fatalf("create a: %v", st)
	}
	node := a.NodeId
	if _, st := open(nobody, node); !st.Ok() {
		t.Fatalf("open a: %v", st)
	}
	want(nobody, 2)
	if _, st := create(nobody, "b"); st != fuse.Status(syscall.EMFILE) {
		t.Fatalf("create over the limit: %v, want EMFILE", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Fatalf("a refused create made the file: %v", err)
	}
	if _, st := open(nobody, node); st != fuse.Status(syscall.EMFILE) {
		t.Fatalf("open over the limit: %v, want EMFILE", st)
	}
	if _, st := opendir(nobody); st != fuse.Status(syscall.EMFILE) {
		t.Fatalf("opendir over the limit: %v, want EMFILE", st)
	}
	want(nobody, 2)

	// Root's count is its own: uid 65534 at its limit takes nothing of it.
	r1, st := open(root, node)
	if !st.Ok() {
		t.Fatalf("root's open: %v", st)
	}
	r2, st := opendir(root)
	if !st.Ok() {
		t.Fatalf("root's opendir: %v", st)
	}
	if _, st := open(root, node); st != fuse.Status(syscall.EMFILE) {
		t.Fatalf("root over its own limit: %v, want EMFILE", st)
	}
	want(root, 2)
	if s := f.Stats(); s.OpenFiles != 4 || s.OpenFilesMaxUser != 2 || s.OpenFilesRefused != 4 {
		t.Fatalf("stats: %+v, want 4 open, at most 2 per uid, 4 refused", s)
	}
	release(r1)
	release(r1) // a second RELEASE of the same handle gives nothing back
	want(root, 1)
	release(r2)
	want(root, 0)

	// Failed opens give back what they took.
	release(a.Fh)
	want(nobody, 1)
	if _, st := create(nobody, "a"); st != fuse.Status(syscall.EEXIST) {
		t.Fatalf("create of an existing name: %v, want EEXIST", st)
	}
	f.switching = true // a root server: a switched request off a request thread is refused EIO
	if os.Geteuid() == 0 {
		if _, st := open(nobody, node); st != fuse.EIO {
			t.Fatalf("open as another uid off a request thread: %v, want EIO", st)
		}
		if _, st := opendir(nobody); st != fuse.EIO {
			t.Fatalf("opendir as another uid off a request thread: %v, want EIO", st)
		}
	}
	if _, st := open(root, 1<<40); st != fuse.Status(syscall.ESTALE) {
		t.Fatalf("open of an unknown node: %v, want ESTALE", st)
	}
	want(nobody, 1)
	f.switching = false
	if _, st := open(nobody, node); !st.Ok() {
		t.Fatalf("open under the limit again: %v", st)
	}
	want(nobody, 2)

	// Close (an unmount with files the kernel never released) gives
	// back every count.
	f.Close()
	if m := f.OpenFilesByUser(); len(m) != 0 {
		t.Fatalf("after Close: %v, want no open files", m)
	}
}

// TestRootXattrCaller: the root's own attributes are answered for the
// caller that asks.
func TestRootXattrCaller(t *testing.T) {
	var asked []uint32
	f, err := New(t.TempDir(), Options{Hooks: Hooks{
		Reserved: func(name string) bool { return name == "user.x" },
		RootXattr: func(name string, c *fuse.Caller) ([]byte, bool, syscall.Errno) {
			asked = append(asked, c.Uid)
			return []byte{byte(c.Uid)}, true, 0
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8)
	for _, uid := range []uint32{0, 65534} {
		h := caller(rootID, uid)
		n, st := f.GetXAttr(nil, &h, "user.x", buf)
		if !st.Ok() || n != 1 || buf[0] != byte(uid) {
			t.Fatalf("uid %d: %v %d %v", uid, st, n, buf[:n])
		}
	}
	if len(asked) != 2 || asked[0] != 0 || asked[1] != 65534 {
		t.Fatalf("the hook saw callers %v, want [0 65534]", asked)
	}
}
