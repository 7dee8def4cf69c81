package server

import (
	"hash/crc32"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
)

type seen struct {
	path string
	off  int64
	ring bool
	crc  uint32
}

// Hooks see every byte written and read, on the posix path and the ring
// path alike; with CopyForHooks the ring bytes are copied (and counted).
func TestHooks(t *testing.T) {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, copyForHooks := range []bool{false, true} {
		var mu sync.Mutex
		var writes, reads []seen
		rec := func(list *[]seen) func(HookInfo, []byte) {
			return func(info HookInfo, data []byte) {
				mu.Lock()
				*list = append(*list, seen{info.Path, info.Off, info.Ring, crc32.Checksum(data, castagnoli)})
				mu.Unlock()
			}
		}
		hooks := &Hooks{OnWrite: rec(&writes), OnRead: rec(&reads), CopyForHooks: copyForHooks}
		srv, _, s, a, f, _ := zcSetup(t, fusering.TransportURing, Options{Hooks: hooks}, 1<<20)
		mem := a.Bytes()
		for i := range 8192 {
			mem[i] = byte(i * 13)
		}
		mu.Lock()
		writes, reads = nil, nil // the setup's own posix write
		mu.Unlock()
		before := srv.Stats()
		_, err := s.Pwrite(f, mem[:8192], 4096, client.RequireZC)
		require.NoError(t, err)
		posix := []byte("written through the mount")
		require.NoError(t, os.WriteFile(join(srv.Mountpoint(), "g"), posix, 0o644))
		_, err = s.Pread(f, mem[16384:16384+8192], 4096, client.RequireZC)
		require.NoError(t, err)
		got, err := os.ReadFile(join(srv.Mountpoint(), "g"))
		require.NoError(t, err)
		require.Equal(t, posix, got)

		mu.Lock()
		require.Contains(t, writes, seen{"f", 4096, true, crc32.Checksum(mem[:8192], castagnoli)}, "the ring write")
		require.Contains(t, writes, seen{"g", 0, false, crc32.Checksum(posix, castagnoli)}, "the posix write")
		require.Contains(t, reads, seen{"f", 4096, true, crc32.Checksum(mem[:8192], castagnoli)}, "the ring read")
		require.Contains(t, reads, seen{"g", 0, false, crc32.Checksum(posix, castagnoli)}, "the posix read")
		mu.Unlock()
		after := srv.Stats()
		if copyForHooks {
			require.Equal(t, before.CopiedBytes+8192, after.CopiedBytes, "the ring write was copied for the hook")
			require.Equal(t, before.ZeroCopyBytes+8192, after.ZeroCopyBytes, "only the read went zero-copy")
		} else {
			require.Equal(t, before.CopiedBytes, after.CopiedBytes)
			require.Equal(t, before.ZeroCopyBytes+16384, after.ZeroCopyBytes)
		}
	}
}
