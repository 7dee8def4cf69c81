package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The client child's sync paths need no mount: they run here against a
// file in a temporary directory, every shape of row.
func TestRunZCNative(t *testing.T) {
	file := filepath.Join(t.TempDir(), testFile)
	if err := writeRandomFile(file, 32); err != nil {
		t.Fatal(err)
	}
	row := func(id string) ZCRow {
		for _, r := range ZCRows {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("no row %s", id)
		return ZCRow{}
	}
	for _, path := range []string{"native", "native-arena"} {
		for _, id := range []string{"zc-randread-4k-qd1-unpinned", "zc-randwrite-4k-qd1-unpinned", "zc-randread-4k-qd32", "zc-seqwrite-16m", "zc-seqread-64k"} {
			sp := zcSpec{Path: path, Row: row(id), File: file, FileSize: 32 << 20, Runtime: 30 * time.Millisecond, Ramp: 5 * time.Millisecond, Seed: 1}
			m, err := runZC(sp)
			if err != nil {
				t.Errorf("%s %s: %v", path, id, err)
				continue
			}
			r := sp.Row
			if m.Ops == 0 || m.IOPS <= 0 || m.GBps <= 0 || m.MeanUs <= 0 || m.P50Us <= 0 || m.P99Us < m.P50Us || m.MaxUs < m.P99Us ||
				m.TotalOps < m.Ops || m.TotalBytes != m.TotalOps*uint64(r.BS) || m.Ops%uint64(r.QD) != 0 || m.WallMs < 30 || m.ClientCPUs == "" {
				t.Errorf("%s %s: %+v", path, id, m)
			}
			if m.Registered != nil {
				t.Errorf("%s %s: a sync path reports an arena registration", path, id)
			}
		}
	}
	if st, err := os.Stat(file); err != nil || st.Size() != 32<<20 {
		t.Errorf("the writes changed the file's size: %v %v", st.Size(), err)
	}
	if _, err := runZC(zcSpec{Path: "native", Row: row("zc-seqread-16m"), File: file, FileSize: 8 << 20, Runtime: time.Millisecond}); err == nil {
		t.Error("a 16 MiB row on an 8 MiB file ran")
	}
	if _, err := runZC(zcSpec{Path: "nfs", Row: row("zc-seqread-64k"), File: file, FileSize: 32 << 20}); err == nil {
		t.Error("an unknown path ran")
	}
}
