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
//
// Everything that can be checked is checked before DST is touched: SRC is
// a regular file, DST is not SRC (by device and inode, so not through
// another name or hard link either), both lie on one zcfuse mount, and
// both can be attached to a session. An existing DST is then overwritten
// in place, as cp does: it keeps its inode, owner, mode, ACLs and hard
// links. A failure while the bytes move (an I/O error, the server gone)
// leaves it partly written, and the error says so.
func cmdCp(args []string, stdout io.Writer) error {
	fl := newFlags("cp", "[flags] SRC DST",
		"Copies SRC to DST within one zcfuse mount over the zero-copy ring path and prints the\n"+
			"server's count of bytes moved zero-copy. Nothing in DST changes until every check has\n"+
			"passed (SRC a regular file, DST not the same file, both on one mount, both attachable);\n"+
			"an existing DST is then overwritten in place, as cp does (it keeps its owner, mode, ACLs\n"+
			"and hard links); a failure while copying leaves it partly written, and says so.", stdout)
	chunkMiB := fl.Int("chunk", 8, "MiB per op, 1..64")
	depth := fl.Int("depth", 4, "ops in flight, 1..16")
	rest, err := fl.parse(args, 2)
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
	var sst unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &sst); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if sst.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file", src)
	}
	var dstExists bool
	var dst0 unix.Stat_t
	switch err := unix.Stat(dst, &dst0); {
	case err == nil:
		dstExists = true
		if dst0.Dev == sst.Dev && dst0.Ino == sst.Ino {
			return fmt.Errorf("%s and %s are the same file", src, dst)
		}
		if dst0.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("%s: not a regular file (name the file to write, not a directory)", dst)
		}
	case err != unix.ENOENT:
		return fmt.Errorf("%s: %w", dst, err)
	}
	srcRoot, _, _, err := statsAt(src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	mnt, before, _, err := statsAt(filepath.Dir(dst))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if srcRoot != mnt {
		return fmt.Errorf("%s is on the zcfuse mount %s and %s on %s: zcfuse cp copies within one mount", src, srcRoot, dst, mnt)
	}
	s, err := client.Connect(mnt)
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
	out, created, err := openDst(dst, dstExists, sst.Mode&0o7777)
	if err != nil {
		return err
	}
	defer out.Close()
	undo := func(err error) error {
		if created {
			os.Remove(dst)
		}
		return err
	}
	var dst1 unix.Stat_t
	if err := unix.Fstat(int(out.Fd()), &dst1); err != nil {
		return undo(fmt.Errorf("%s: %w", dst, err))
	}
	if dst1.Dev == sst.Dev && dst1.Ino == sst.Ino { // swapped in meanwhile
		return undo(fmt.Errorf("%s and %s are the same file", src, dst))
	}
	dstID, err := s.Attach(int(out.Fd()))
	if err != nil {
		return undo(fmt.Errorf("%s: %w", dst, err))
	}
	// Every check has passed: from here on DST is written.
	if err := out.Truncate(0); err != nil {
		return fmt.Errorf("%s: %w (unchanged)", dst, err)
	}
	start := time.Now()
	total, err := copyZC(s, a, srcID, dstID, chunk, *depth, sst.Size)
	if err == nil {
		err = s.Fsync(dstID, 0)
	}
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w; %s is partly written (%d of %d bytes copied)", src, dst, err, dst, total, sst.Size)
	}
	took := time.Since(start)
	after, _, _ := server.ReadStats(mnt)
	fmt.Fprintf(stdout, "copied %d bytes in %v: %.2f GB/s", total, took.Round(time.Microsecond), float64(total)/took.Seconds()/1e9)
	if after.View == server.ViewUser {
		// Only root and the mount owner see the server's counters; every
		// op was still required to stay zero-copy (RequireZC).
		_, err := fmt.Fprintf(stdout, "; every op zero-copy (the server's counters are for root and the mount owner)\n")
		return err
	}
	_, err = fmt.Fprintf(stdout, "; the server moved %d bytes zero-copy and copied %d\n",
		after.ZeroCopyBytes-before.ZeroCopyBytes, after.CopiedBytes-before.CopiedBytes)
	return err
}

// openDst opens the destination for writing without changing it: an
// existing file as it is (no O_TRUNC), a new one with O_EXCL and mode;
// created says which.
func openDst(dst string, exists bool, mode uint32) (f *os.File, created bool, err error) {
	if exists {
		f, err = os.OpenFile(dst, os.O_WRONLY, 0)
		return f, false, err
	}
	f, err = os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(mode&0o777))
	return f, err == nil, err
}

// copyZC copies size bytes of file srcID to dstID through the arena a,
// depth chunks at a time; it returns the bytes written.
func copyZC(s *client.Session, a *arena.Arena, srcID, dstID uint32, chunk, depth int, size int64) (int64, error) {
	var total int64
	cqes := make([]client.Completion, depth)
	for total < size {
		// Read up to depth chunks at once, then write them at once.
		var ops []client.Op
		for i := 0; i < depth && total+int64(i*chunk) < size; i++ {
			buf := a.Bytes()[i*chunk : (i+1)*chunk]
			ops = append(ops, client.Op{Opcode: client.OpRead, Flags: client.RequireZC, File: srcID, Buf: buf, Off: total + int64(i*chunk), UserData: uint64(i)})
		}
		lens, err := runBatch(s, ops, cqes)
		if err != nil {
			return total, fmt.Errorf("read: %w", err)
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
			return total, fmt.Errorf("write: %w", err)
		}
		total += got
	}
	return total, nil
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
