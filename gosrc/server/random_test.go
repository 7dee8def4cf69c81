package server

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"golang.org/x/sys/unix"
)

// The random-ops test: clients × ops in all, on files of files×stripe×clients
// bytes; client c owns stripe c of every file, so the outcome of every op
// is known although the clients run at once.
const (
	rndClients = 4
	rndOps     = 10000
	rndFiles   = 3
	rndStripe  = 24 << 20
	rndMaxOp   = 8 << 20
	rndArena   = 32 << 20
)

// TestRandomOps runs 10,000 random reads and writes — sizes log-uniform
// from 1 B to 8 MiB, random offsets, buffers inside an arena, outside
// every arena, or straddling an arena's end — from 4 concurrent sessions
// on several files, over both transports, and checks every result and
// finally the backing files against a reference model.
func TestRandomOps(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the random-ops test moves gigabytes")
	}
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, mnt := mount(t, tr, Options{})
			for f := range rndFiles {
				writeFile(t, join(mnt, fmt.Sprintf("r%d", f)), nil)
				if err := os.Truncate(join(mnt, fmt.Sprintf("r%d", f)), rndClients*rndStripe); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			models := make([][][]byte, rndClients) // client → file → its stripe
			var wg sync.WaitGroup
			errs := make(chan error, rndClients)
			var zc, moved [rndClients]uint64
			for c := range rndClients {
				models[c] = make([][]byte, rndFiles)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					zc[c], moved[c], err = randomClient(mnt, c, models[c])
					if err != nil {
						errs <- fmt.Errorf("client %d: %w", c, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var zcSum, movedSum uint64
			for c := range rndClients {
				zcSum += zc[c]
				movedSum += moved[c]
			}
			st := srv.Stats()
			t.Logf("%d ops from %d sessions in %v: %d MiB moved, %d MiB of it zero-copy (server counted %d MiB)",
				rndOps, rndClients, time.Since(start).Round(time.Millisecond), movedSum>>20, zcSum>>20, st.ZeroCopyBytes>>20)
			if st.ZeroCopyBytes != zcSum {
				t.Errorf("server's zero-copy bytes %d, the clients' arena ops moved %d", st.ZeroCopyBytes, zcSum)
			}
			for f := range rndFiles {
				b, err := os.ReadFile(join(backing, fmt.Sprintf("r%d", f)))
				if err != nil {
					t.Fatal(err)
				}
				if len(b) != rndClients*rndStripe {
					t.Fatalf("file %d: %d bytes, want %d", f, len(b), rndClients*rndStripe)
				}
				for c := range rndClients {
					want := make([]byte, rndStripe)
					copy(want, models[c][f])
					if got := b[c*rndStripe : (c+1)*rndStripe]; !bytes.Equal(got, want) {
						t.Errorf("file %d, client %d's stripe: backing file differs from the model at byte %d", f, c, firstDiff(got, want))
					}
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// randomClient runs one session's share of the ops; model[f] grows to
// hold what it wrote to its stripe of file f. It returns the bytes moved
// through its arena (zero-copy) and in all.
func randomClient(mnt string, c int, model [][]byte) (zc, moved uint64, err error) {
	rng := rand.New(rand.NewPCG(uint64(c), 0x7a63))
	s, err := client.Connect(mnt)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	a, err := arena.Create(rndArena, arena.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer a.Close()
	if _, _, err := s.Share(a); err != nil {
		return 0, 0, err
	}
	files := make([]uint32, rndFiles)
	for f := range rndFiles {
		fd, err := unix.Open(join(mnt, fmt.Sprintf("r%d", f)), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, 0, err
		}
		defer unix.Close(fd)
		if files[f], err = s.Attach(fd); err != nil {
			return 0, 0, err
		}
	}
	heap := make([]byte, rndMaxOp)
	mem := a.Bytes()
	// Written bytes come from a random pool at random offsets: one copy
	// per op, cheap even under the race detector.
	pool := make([]byte, 2*rndMaxOp)
	fillRandom(rng, pool)
	for i := range rndOps / rndClients {
		f := rng.IntN(rndFiles)
		size := int(math.Exp(rng.Float64() * math.Log(rndMaxOp))) // log-uniform 1 B – 8 MiB
		size = max(1, min(size, rndMaxOp))
		off := rng.IntN(rndStripe - size + 1)
		fileOff := int64(c*rndStripe + off)
		write := rng.IntN(2) == 0
		var buf []byte
		where := rng.IntN(10)
		switch {
		case where < 6: // inside the arena
			at := rng.IntN(len(mem) - size + 1)
			buf = mem[at : at+size]
		case where < 9: // outside every arena
			buf = heap[:size]
		default: // over the arena's end
			buf = unsafeExtend(mem[len(mem)-1:], size+1)
		}
		straddles := where == 9
		if write && !straddles { // a straddling buffer runs past the mapping: never touched
			at := rng.IntN(len(pool) - len(buf) + 1)
			copy(buf, pool[at:])
		}
		var n int
		var opErr error
		if write {
			n, opErr = s.Pwrite(files[f], buf, fileOff, 0)
		} else {
			n, opErr = s.Pread(files[f], buf, fileOff, 0)
		}
		what := fmt.Sprintf("op %d: %s of %d bytes at %d of file %d (buffer %s)", i, map[bool]string{true: "write", false: "read"}[write], len(buf), fileOff, f, []string{"arena", "arena", "arena", "arena", "arena", "arena", "heap", "heap", "heap", "straddling"}[where])
		if straddles {
			if opErr == nil || !errors.Is(opErr, unix.EFAULT) {
				return zc, moved, fmt.Errorf("%s: got %d, %v; want EFAULT", what, n, opErr)
			}
			continue
		}
		if opErr != nil || n != len(buf) {
			return zc, moved, fmt.Errorf("%s: got %d, %v", what, n, opErr)
		}
		moved += uint64(n)
		if where < 6 {
			zc += uint64(n)
		}
		m := model[f]
		if write {
			if end := off + size; end > len(m) {
				m = append(m, make([]byte, end-len(m))...)
			}
			copy(m[off:], buf)
			model[f] = m
			continue
		}
		want := make([]byte, size)
		if off < len(m) {
			copy(want, m[off:])
		}
		if !bytes.Equal(buf, want) {
			return zc, moved, fmt.Errorf("%s: read differs from the model at byte %d", what, firstDiff(buf, want))
		}
	}
	return zc, moved, nil
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
}
