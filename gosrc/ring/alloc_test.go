package ring

import (
	"os"
	"strings"
	"testing"
	"unsafe"
)

func countMaps(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// AllocHuge returns huge-page-aligned memory of the asked length that
// Free gives back whole: no mapping is left behind, trimmed ends included.
func TestAllocHuge(t *testing.T) {
	before := countMaps(t)
	for _, size := range []int{4096, 1 << 20, HugePageSize, HugePageSize + 1} {
		b, err := AllocHuge(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size {
			t.Errorf("len %d, want %d", len(b), size)
		}
		if p := uintptr(unsafe.Pointer(&b[0])); p%HugePageSize != 0 {
			t.Errorf("size %d: address %#x not huge-page aligned", size, p)
		}
		b[0], b[size-1] = 1, 2
		if err := Free(b); err != nil {
			t.Fatal(err)
		}
	}
	a, err := Alloc(8192)
	if err != nil {
		t.Fatal(err)
	}
	if err := Free(a); err != nil {
		t.Fatal(err)
	}
	// Neighbouring anonymous mappings may merge or split; allow one.
	if after := countMaps(t); after > before+1 {
		t.Errorf("mappings: %d before, %d after", before, after)
	}
}
