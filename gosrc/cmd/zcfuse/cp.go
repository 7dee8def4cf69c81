package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/server"
	"golang.org/x/sys/unix"
)

// cmdCp copies SRC to DST, both on one zcfuse mount, over the zero-copy
// ring path: the bytes go from SRC's backing file into a shared arena and
// from there into DST's, moved by the server's io_uring, never through
// FUSE READ or WRITE requests. It prints the rate and the server's own
// count of zero-copied bytes as proof.
func cmdCp(args []string, stdout io.Writer) error {
	fl := newFlags("cp")
	chunkMiB := fl.Int("chunk", 8, "MiB per op")
	depth := fl.Int("depth", 4, "ops in flight")
	rest, err := parse(fl, args, 2, "SRC DST")
	if err != nil {
		return err
	}
	if *chunkMiB < 1 || *chunkMiB > 64 || *depth < 1 || *depth > 16 {
		return fmt.Errorf("%w: --chunk must be 1..64 MiB and --depth 1..16", errUsage)
	}
	src, dst := rest[0], rest[1]
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	defer out.Close()
	s, err := client.Connect(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer s.Close()
	chunk := *chunkMiB << 20
	a, err := arena.Create(int64(chunk**depth), arena.Options{Name: "zcfuse-cp"})
	if err != nil {
		return err
	}
	defer a.Close()
	if _, _, err := s.Share(a); err != nil {
		return err
	}
	srcID, err := s.Attach(int(in.Fd()))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	dstID, err := s.Attach(int(out.Fd()))
	if err != nil {
		return fmt.Errorf("%s: %w", dst, err)
	}
	mnt := mountRoot(dst)
	before, _, _ := server.ReadStats(mnt)
	start := time.Now()
	var total int64
	cqes := make([]client.Completion, *depth)
	for total < fi.Size() {
		// Read up to depth chunks at once, then write them at once.
		var ops []client.Op
		for i := 0; i < *depth && total+int64(i*chunk) < fi.Size(); i++ {
			buf := a.Bytes()[i*chunk : (i+1)*chunk]
			ops = append(ops, client.Op{Opcode: client.OpRead, Flags: client.RequireZC, File: srcID, Buf: buf, Off: total + int64(i*chunk), UserData: uint64(i)})
		}
		lens, err := runBatch(s, ops, cqes)
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		var writes []client.Op
		var got int64
		for i, n := range lens {
			if n == 0 {
				break
			}
			writes = append(writes, client.Op{Opcode: client.OpWrite, Flags: client.RequireZC, File: dstID, Buf: ops[i].Buf[:n], Off: ops[i].Off, UserData: uint64(i)})
			got += n
		}
		if got == 0 {
			break // the file shrank under us
		}
		if _, err := runBatch(s, writes, cqes); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		total += got
	}
	if err := s.Fsync(dstID, 0); err != nil {
		return fmt.Errorf("fsync %s: %w", dst, err)
	}
	took := time.Since(start)
	after, _, _ := server.ReadStats(mnt)
	fmt.Fprintf(stdout, "copied %d bytes in %v: %.2f GB/s; the server moved %d bytes zero-copy and copied %d\n",
		total, took.Round(time.Microsecond), float64(total)/took.Seconds()/1e9,
		after.ZeroCopyBytes-before.ZeroCopyBytes, after.CopiedBytes-before.CopiedBytes)
	return nil
}

// runBatch submits ops and waits for all of them; it returns each op's
// byte count in submission order.
func runBatch(s *client.Session, ops []client.Op, cqes []client.Completion) ([]int64, error) {
	if _, err := s.Submit(ops); err != nil {
		return nil, err
	}
	lens := make([]int64, len(ops))
	for got := 0; got < len(ops); {
		n, err := s.Wait(cqes, len(ops)-got, -1)
		if err != nil {
			return nil, err
		}
		for _, c := range cqes[:n] {
			if c.Res < 0 {
				return nil, unix.Errno(-c.Res)
			}
			lens[c.UserData] = c.Res
		}
		got += n
	}
	return lens, nil
}

// mountRoot finds the mount root above path (the directory that answers
// the stats attribute).
func mountRoot(path string) string {
	p, _ := filepath.Abs(filepath.Dir(path))
	for {
		if _, _, err := server.ReadStats(p); err == nil || p == "/" {
			return p
		}
		p = filepath.Dir(p)
	}
}
