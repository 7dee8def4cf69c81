package arena

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	// PageSize is the granule of ordinary arenas.
	PageSize = 4096
	// HugePageSize is the granule of huge-page (MFD_HUGETLB) arenas.
	HugePageSize = 2 << 20
	// MaxSize is the largest arena: io_uring registers at most 1 GiB as
	// one fixed buffer.
	MaxSize = 1 << 30
)

// RequiredSeals are the seals Create sets.
const RequiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Options tune Create.
type Options struct {
	// Name shows up in /proc/PID/maps and fdinfo (memfd:NAME); default
	// "zcfuse-arena".
	Name string
	// Huge backs the arena with huge pages (MFD_HUGETLB): fewer TLB misses
	// and faster io_uring registration, but the pages must be reserved
	// beforehand (/proc/sys/vm/nr_hugepages).
	Huge bool
}

// Arena is a sealed, mapped memfd.
type Arena struct {
	fd   int
	mem  []byte
	huge bool

	mu      sync.Mutex
	onClose []func()
}

// OnClose runs fn when the arena is closed, before it is unmapped (a
// session forgets the arena's address range then).
func (a *Arena) OnClose(fn func()) {
	a.mu.Lock()
	a.onClose = append(a.onClose, fn)
	a.mu.Unlock()
}

// Create makes a sealed memfd of size bytes and maps it read-write.
func Create(size int64, opts Options) (*Arena, error) {
	granule := int64(PageSize)
	if opts.Huge {
		granule = HugePageSize
	}
	if err := checkSize(size, granule); err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = "zcfuse-arena"
	}
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	if opts.Huge {
		flags |= unix.MFD_HUGETLB
	}
	fd, err := unix.MemfdCreate(name, flags)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	a := &Arena{fd: fd, huge: opts.Huge}
	if err := a.create(size); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Arena) create(size int64) error {
	if err := unix.Ftruncate(a.fd, size); err != nil {
		return fmt.Errorf("size arena to %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(a.fd), unix.F_ADD_SEALS, RequiredSeals); err != nil {
		return fmt.Errorf("seal arena: %w", err)
	}
	return a.mmap(size)
}

func (a *Arena) mmap(size int64) error {
	mem, err := unix.Mmap(a.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		if a.huge && errors.Is(err, unix.ENOMEM) {
			return fmt.Errorf("map huge-page arena of %d bytes: no huge pages free (HugePages_Free in /proc/meminfo: %s; reserve some: echo N > /proc/sys/vm/nr_hugepages): %w",
				size, hugePagesFree(), unix.ENOMEM)
		}
		return fmt.Errorf("map arena of %d bytes: %w", size, err)
	}
	a.mem = mem
	return nil
}

func hugePagesFree() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "HugePages_Free:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func checkSize(size, granule int64) error {
	switch {
	case size <= 0:
		return fmt.Errorf("arena size %d: must be positive: %w", size, unix.EINVAL)
	case size > MaxSize:
		return fmt.Errorf("arena size %d: over the limit of %d bytes: %w", size, MaxSize, unix.EINVAL)
	case size%granule != 0:
		return fmt.Errorf("arena size %d: not a multiple of %d bytes: %w", size, granule, unix.EINVAL)
	}
	return nil
}

// Validate checks that fd can serve as an arena of size bytes: a memfd
// sealed at least against shrinking, at least size bytes long, with size
// a whole number of its pages and at most MaxSize. It reports whether
// the memfd is huge-page backed.
func Validate(fd int, size int64) (huge bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, fmt.Errorf("arena fd: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("arena fd is not a memfd (file type %#o): %w", st.Mode&unix.S_IFMT, unix.EINVAL)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		// Only memfds (and other shmem/hugetlbfs files) support seals.
		return false, fmt.Errorf("arena fd is not a memfd (F_GET_SEALS: %v): %w", err, unix.EINVAL)
	}
	if seals&unix.F_SEAL_SHRINK == 0 {
		return false, fmt.Errorf("arena memfd is not sealed against shrinking (F_SEAL_SHRINK): it could be truncated under the server: %w", unix.EPERM)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return false, fmt.Errorf("arena fd: %w", err)
	}
	huge = fs.Type == unix.HUGETLBFS_MAGIC
	granule := int64(PageSize)
	if huge {
		granule = HugePageSize
	}
	if err := checkSize(size, granule); err != nil {
		return huge, err
	}
	if st.Size < size {
		return huge, fmt.Errorf("arena memfd holds %d bytes, less than the %d declared: %w", st.Size, size, unix.EINVAL)
	}
	return huge, nil
}

// Import validates fd (see Validate) and maps size bytes of it. The
// arena works on a duplicate: the caller keeps its fd.
func Import(fd int, size int64) (*Arena, error) {
	huge, err := Validate(fd, size)
	if err != nil {
		return nil, err
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup arena fd: %w", err)
	}
	a := &Arena{fd: dup, huge: huge}
	if err := a.mmap(size); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Fd is the arena's memfd, to send to a server. It stays owned by the
// Arena.
func (a *Arena) Fd() int { return a.fd }

// Bytes is the arena's mapping; valid until Close.
func (a *Arena) Bytes() []byte { return a.mem }

// Size is the arena's length in bytes.
func (a *Arena) Size() int64 { return int64(len(a.mem)) }

// Huge reports whether the arena is backed by huge pages.
func (a *Arena) Huge() bool { return a.huge }

// Contains reports whether p[:n] lies wholly inside the arena, and at
// which offset it starts; n == 0 never does.
func (a *Arena) Contains(p uintptr, n int) (off int64, ok bool) {
	if n <= 0 || len(a.mem) == 0 {
		return 0, false
	}
	base := uintptr(unsafePointer(a.mem))
	if p < base || p-base >= uintptr(len(a.mem)) || uintptr(n) > uintptr(len(a.mem))-(p-base) {
		return 0, false
	}
	return int64(p - base), true
}

// Close unmaps the arena and closes its fd. Safe to call twice.
func (a *Arena) Close() error {
	a.mu.Lock()
	fns := a.onClose
	a.onClose = nil
	a.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	var errs []error
	if a.mem != nil {
		errs = append(errs, unix.Munmap(a.mem))
		a.mem = nil
	}
	if a.fd >= 0 {
		errs = append(errs, unix.Close(a.fd))
		a.fd = -1
	}
	return errors.Join(errs...)
}
