package server

import (
	"testing"

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
