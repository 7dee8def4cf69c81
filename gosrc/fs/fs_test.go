package fs

import (
	"os"
	"testing"

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
