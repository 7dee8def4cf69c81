package fs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/zcfuse/zcfuse/gosrc/passthrough"
)

// TestKillPrivGeneration: a kill-priv check that raced with an attribute
// change is not remembered as clean.
func TestKillPrivGeneration(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys := &FS{attrTTL: 1 << 40}
	in := &inode{}
	fd := int(f.Fd())
	fsys.killPriv(in, fd, false, passthrough.Caller{})
	if in.killPriv.until.Load() == 0 {
		t.Fatalf("a clean file's check was not remembered")
	}
	in.killPriv.changed()
	if in.killPriv.until.Load() != 0 {
		t.Fatalf("changed kept the remembered check")
	}
	// A check that began before a change and ends after it.
	gen := in.killPriv.gen.Load()
	in.killPriv.changed()
	if in.killPriv.gen.Load() == gen {
		t.Fatalf("changed did not advance the generation")
	}
}

// TestTableKeys: an evicted entry is found again by its file handle; a
// new inode that arrives under an evicted entry's dev/ino (its number
// reused) gets an entry of its own.
func TestTableKeys(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH")
	}
	dir := t.TempDir()
	mountFd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mountFd)
	tb := newTable(8, mountFd)
	open := func(name string) (int, unix.Stat_t) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		fd, err := unix.Open(p, unix.O_PATH, 0)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		return fd, st
	}
	fdA, stA := open("a")
	a := tb.ref(fdA, true, &stA)
	tb.cache.mu.Lock()
	tb.cache.closeLocked(a) // evicted: takes the handle
	tb.cache.unlock()
	if a.fd >= 0 || a.handle == nil {
		t.Fatalf("eviction left fd %d, handle %v", a.fd, a.handle)
	}
	fdA2, stA2 := open("a")
	if again := tb.ref(fdA2, true, &stA2); again != a || a.nlookup != 2 {
		t.Fatalf("the same inode looked up again got entry %d (nlookup %d), want %d", again.id, a.nlookup, a.id)
	}
	fd, errno := tb.cache.acquire(a)
	if errno != 0 || fd < 0 {
		t.Fatalf("acquire: %v", errno)
	}
	tb.cache.release(a)
	tb.cache.mu.Lock()
	tb.cache.closeLocked(a)
	tb.cache.unlock()
	fdB, stB := open("b")
	stB.Ino = stA.Ino // as if b had a's inode number, a being gone
	if b := tb.ref(fdB, true, &stB); b == a {
		t.Fatalf("another inode under an evicted entry's dev/ino was taken for it")
	}
}
