package server

import (
	"testing"
	"time"

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
