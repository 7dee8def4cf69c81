package server

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/posixtest"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
)

// TestPosix runs go-fuse's posixtest suite against a zcfuse mount over
// each transport, a fresh mount per case, and checks from the server's
// counters that the transport itself carried READ and WRITE (so neither
// kernel passthrough nor a silent fallback can make it pass).
func TestPosix(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			requireTransport(t, tr)
			carried := map[string]map[string]uint64{}
			for name, fn := range posixtest.All {
				t.Run(name, func(t *testing.T) {
					if name == "FcntlFlockLocksFile" {
						// It expects two fcntl locks of one process to
						// conflict, which POSIX (and ext4, and tmpfs) say
						// they do not; go-fuse's loopback made them OFD
						// locks on the backing file. The kernel keeps the
						// mount's locks itself now: TestLocksKeptByKernel.
						t.Skip("asserts a non-POSIX lock conflict within one process")
					}
					srv, _, mnt := mount(t, tr, Options{})
					fn(t, mnt)
					for ch, ops := range srv.Stats().Requests {
						if carried[ch] == nil {
							carried[ch] = map[string]uint64{}
						}
						for op, n := range ops {
							carried[ch][op] += n
						}
					}
				})
			}
			want, other := fusering.ChannelDev, fusering.ChannelRing
			if tr == fusering.TransportURing {
				want, other = other, want
			}
			for _, op := range []string{"READ", "WRITE"} {
				if carried[want][op] == 0 {
					t.Errorf("%s: no %s request came over %s", tr, op, want)
				}
				if carried[other][op] != 0 {
					t.Errorf("%s: %d %s requests came over %s", tr, carried[other][op], op, other)
				}
			}
			t.Logf("%s: READ %d, WRITE %d over %s", tr, carried[want]["READ"], carried[want]["WRITE"], want)
		})
	}
}

// TestPosixGoFuseBaseline runs the same suite on go-fuse's own server
// over the same loopback tree (kernel passthrough off, the same caches),
// so a case that fails on zcfuse can be told apart from one the node
// tree or the kernel fails anyway.
func TestPosixGoFuseBaseline(t *testing.T) {
	requireTransport(t, fusering.TransportClassic)
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			backing, mnt := shmDir(t, "gfbacking"), shmDir(t, "gfmnt")
			root, err := fs.NewLoopbackRoot(backing)
			if err != nil {
				t.Fatal(err)
			}
			sec := time.Second
			srv, err := fs.Mount(mnt, root, &fs.Options{
				EntryTimeout: &sec,
				AttrTimeout:  &sec,
				MountOptions: fuse.MountOptions{
					DirectMountStrict:    true,
					EnableLocks:          true,
					DisabledCapabilities: fuse.CAP_PASSTHROUGH,
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := srv.Unmount(); err != nil {
					t.Errorf("unmount: %v", err)
				}
			})
			fn(t, mnt)
		})
	}
}

// TestLocksKeptByKernel: the server does not take file locks (no request
// thread ever waits in F_SETLKW for a client); the kernel keeps them for
// the mount, with POSIX semantics: OFD locks on two open files conflict,
// process-associated locks of one process do not, and a blocked F_SETLKW
// waits in the kernel while the server goes on serving.
func TestLocksKeptByKernel(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, _, mnt := mount(t, tr, Options{})
			p := mnt + "/locked"
			f1, err := os.Create(p)
			require.NoError(t, err)
			defer f1.Close()
			f2, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f2.Close()
			wr := unix.Flock_t{Type: unix.F_WRLCK, Len: 10}
			require.NoError(t, unix.FcntlFlock(f1.Fd(), unix.F_OFD_SETLK, &wr))
			require.ErrorIs(t, unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLK, &wr), unix.EAGAIN, "OFD locks on two open files conflict")
			posix := unix.Flock_t{Type: unix.F_WRLCK, Start: 100, Len: 10}
			require.NoError(t, unix.FcntlFlock(f1.Fd(), unix.F_SETLK, &posix))
			require.NoError(t, unix.FcntlFlock(f2.Fd(), unix.F_SETLK, &posix), "one process's POSIX locks do not conflict")
			done := make(chan error, 1)
			go func() { done <- unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLKW, &wr) }()
			// While that waits, the server serves everyone else.
			for i := range 20 {
				require.NoError(t, os.WriteFile(fmt.Sprintf("%s/other%d", mnt, i), []byte("x"), 0o644))
			}
			select {
			case err := <-done:
				t.Fatalf("F_OFD_SETLKW returned %v while the lock was held", err)
			default:
			}
			un := unix.Flock_t{Type: unix.F_UNLCK, Len: 10}
			require.NoError(t, unix.FcntlFlock(f1.Fd(), unix.F_OFD_SETLK, &un))
			require.NoError(t, <-done)
			for _, op := range []string{"GETLK", "SETLK", "SETLKW"} {
				require.Zero(t, srv.Stats().Requests[fusering.ChannelRing][op]+srv.Stats().Requests[fusering.ChannelDev][op], "%s reached the server", op)
			}
		})
	}
}

// TestLongPaths: a path of 4095 bytes relative to the mount (PATH_MAX less
// its NUL) works for every operation that takes one, as on a local file
// system: the server is sent single names, never the backing prefix.
func TestLongPaths(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			_, backing, mnt := mount(t, tr, Options{})
			// Directories of 250-byte names, then a last name that brings
			// the relative path to 4095 bytes.
			const plen = 4095
			dir := ""
			for plen-len(dir) > 255 {
				dir += strings.Repeat("d", 249) + fmt.Sprint(len(dir)/251%10) + "/"
			}
			require.NoError(t, os.MkdirAll(join(backing, dir), 0o755))
			leaf := func(c byte) string { return dir + strings.Repeat(string(c), plen-len(dir)) }
			done := make(chan error, 1)
			go func() {
				// A thread of its own whose working directory is the mount.
				runtime.LockOSThread()
				if err := unix.Unshare(unix.CLONE_FS); err != nil {
					done <- err
					return
				}
				if err := unix.Chdir(mnt); err != nil {
					done <- err
					return
				}
				steps := []struct {
					what string
					fn   func() error
				}{
					{"create", func() error {
						fd, err := unix.Open(leaf('a'), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
						if err == nil {
							unix.Close(fd)
						}
						return err
					}},
					{"truncate", func() error { return unix.Truncate(leaf('a'), 4096) }},
					{"chmod", func() error { return unix.Chmod(leaf('a'), 0o600) }},
					{"chown", func() error { return unix.Chown(leaf('a'), 65534, 65534) }},
					{"link", func() error { return unix.Link(leaf('a'), leaf('b')) }},
					{"rename", func() error { return unix.Rename(leaf('b'), leaf('c')) }},
					{"unlink", func() error { return unix.Unlink(leaf('c')) }},
					{"symlink", func() error { return unix.Symlink("target", leaf('s')) }},
					{"mkdir", func() error { return unix.Mkdir(leaf('m'), 0o755) }},
					{"rmdir", func() error { return unix.Rmdir(leaf('m')) }},
					{"mknod", func() error { return unix.Mknod(leaf('f'), unix.S_IFIFO|0o644, 0) }},
				}
				for _, s := range steps {
					if len(leaf('a')) != plen {
						done <- fmt.Errorf("path is %d bytes", len(leaf('a')))
						return
					}
					if err := s.fn(); err != nil {
						done <- fmt.Errorf("%s of a %d-byte relative path: %w", s.what, plen, err)
						return
					}
				}
				done <- nil // the thread ends with its goroutine (still locked)
			}()
			require.NoError(t, <-done)
			// Checked relative to the backing directory's fd: the absolute
			// backing path is past PATH_MAX.
			bfd, err := unix.Open(backing, unix.O_PATH|unix.O_DIRECTORY, 0)
			require.NoError(t, err)
			defer unix.Close(bfd)
			var st unix.Stat_t
			require.NoError(t, unix.Fstatat(bfd, leaf('a'), &st, unix.AT_SYMLINK_NOFOLLOW))
			require.Equal(t, []uint64{4096, 0o600, 65534}, []uint64{uint64(st.Size), uint64(st.Mode & 0o7777), uint64(st.Uid)})
			require.NoError(t, unix.Fstatat(bfd, leaf('s'), &st, unix.AT_SYMLINK_NOFOLLOW))
			require.Equal(t, uint32(unix.S_IFLNK), st.Mode&unix.S_IFMT)
			require.NoError(t, unix.Fstatat(bfd, leaf('f'), &st, unix.AT_SYMLINK_NOFOLLOW))
			require.Equal(t, uint32(unix.S_IFIFO), st.Mode&unix.S_IFMT)
		})
	}
}
