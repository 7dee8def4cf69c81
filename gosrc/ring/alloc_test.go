package ring

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
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
		if mapped(b) {
			t.Errorf("size %d: still mapped after Free", size)
		}
	}
	a, err := Alloc(8192)
	if err != nil {
		t.Fatal(err)
	}
	if err := Free(a); err != nil {
		t.Fatal(err)
	}
	// The Go runtime maps memory of its own meanwhile (more so under
	// -race); a leak of the trimmed ends would add two per allocation.
	if after := countMaps(t); after > before+4 {
		t.Errorf("mappings: %d before, %d after", before, after)
	}
}

// mapped reports whether any page of b is still mapped (mincore fails
// with ENOMEM on unmapped memory).
func mapped(b []byte) bool {
	vec := make([]byte, (cap(b)+4095)/4096)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(cap(b)), uintptr(unsafe.Pointer(&vec[0])))
	return !errors.Is(errno, unix.ENOMEM)
}
