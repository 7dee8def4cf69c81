// Command gofuse-loopback is the reference server for zcfuse's
// benchmarks: go-fuse v2.12.1's own server (fuse.NewServer over
// /dev/fuse read/write) serving its own loopback node tree
// (fs.NewLoopbackRoot), configured as zcfuse is, so that a benchmark
// compares transports and servers rather than settings.
//
//	gofuse-loopback [-d] BACKING_DIR MOUNTPOINT
//
// It mounts with mount(2) itself (MountOptions.DirectMountStrict), uses 1 s
// entry and attribute timeouts like zcfuse, and turns kernel FUSE
// passthrough OFF: go-fuse enables it by itself when run as root, and the
// kernel would then serve READ and WRITE from the backing file without the
// server seeing them, which would measure the backing directory, not
// go-fuse.
//
// It runs in the foreground, prints "gofuse-loopback: ready: ..." on
// stderr once the mount answers, and unmounts on SIGINT or SIGTERM. It
// counts READ requests (one atomic add each) and prints the count on
// SIGUSR1 and on exit, as "gofuse-loopback: reads=N bytes=B", so a
// benchmark can prove that the reads went through the server.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// countingFS is the loopback bridge with a READ counter in front.
type countingFS struct {
	fuse.RawFileSystem
	reads, bytes atomic.Uint64
}

func (c *countingFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c.reads.Add(1)
	r, st := c.RawFileSystem.Read(cancel, in, buf)
	if st.Ok() && r != nil {
		c.bytes.Add(uint64(r.Size()))
	}
	return r, st
}

func (c *countingFS) report(logger *log.Logger) {
	logger.Printf("reads=%d bytes=%d", c.reads.Load(), c.bytes.Load())
}

func main() {
	logger := log.New(os.Stderr, "gofuse-loopback: ", 0)
	debug := flag.Bool("d", false, "log every request")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: gofuse-loopback [-d] BACKING_DIR MOUNTPOINT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	backing, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		logger.Fatal(err)
	}
	mnt, err := filepath.Abs(flag.Arg(1))
	if err != nil {
		logger.Fatal(err)
	}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		logger.Fatalf("backing directory: %v", err)
	}

	sec := time.Second
	opts := &fs.Options{
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NullPermissions: true,
		Logger:          logger,
		MountOptions: fuse.MountOptions{
			Debug:                *debug,
			Logger:               logger,
			DirectMountStrict:    true,
			FsName:               backing,
			Name:                 "gofuse-loopback",
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		},
	}
	// What fs.Mount does, with the counter between bridge and server.
	rawFS := &countingFS{RawFileSystem: fs.NewNodeFS(root, opts)}
	srv, err := fuse.NewServer(rawFS, mnt, &opts.MountOptions)
	if err != nil {
		logger.Fatalf("mount %s: %v", mnt, err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		logger.Fatalf("mount %s: %v", mnt, err)
	}
	if k := srv.KernelSettings(); k != nil && k.Flags64()&fuse.CAP_PASSTHROUGH != 0 {
		logger.Printf("kernel offers passthrough; declined (DisabledCapabilities)")
	}
	logger.Printf("ready: %s on %s passthrough=off pid=%d", backing, mnt, os.Getpid())

	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				rawFS.report(logger)
				continue
			}
			logger.Printf("%v: unmounting %s", sig, mnt)
			if err := srv.Unmount(); err != nil {
				logger.Printf("unmount %s: %v", mnt, err)
				rawFS.report(logger)
				os.Exit(1)
			}
			<-done
		case <-done:
			logger.Printf("%s was unmounted", mnt)
		}
		rawFS.report(logger)
		return
	}
}
