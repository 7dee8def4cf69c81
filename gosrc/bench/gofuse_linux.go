package bench

import (
	"fmt"
	"io"
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

// ServeGofuse is `zcfuse-bench serve-gofuse BACKING MOUNTPOINT`, the
// reference server the gofuse target mounts: go-fuse's own server
// (fuse.NewServer, /dev/fuse read/write) over its loopback node tree
// (fs.NewLoopbackRoot), mounted with mount(2) directly, configured as
// zcfuse's server is: 1 s entry and attribute timeouts, 1 MiB MaxWrite,
// MaxBackground 64, locks on, and kernel passthrough OFF
// (fuse.CAP_PASSTHROUGH in DisabledCapabilities), since go-fuse turns it
// on by itself as root and the kernel would then serve READ and WRITE
// without the server. It writes "zcfuse-bench-gofuse: ready: ..." on
// stderr once mounted, a counts line ("... counts reads=N writes=M") on
// SIGUSR1 and at exit, and unmounts on SIGTERM or SIGINT. The harness
// runs it; it is a subcommand so that it can be run by hand too.
func ServeGofuse(args []string, stderr io.Writer) error {
	if len(args) != 2 {
		return fmt.Errorf("%w: %s needs BACKING MOUNTPOINT", ErrUsage, CmdServeGofuse)
	}
	logger := log.New(stderr, "zcfuse-bench-gofuse: ", 0)
	backing, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	mnt, err := filepath.Abs(args[1])
	if err != nil {
		return err
	}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return fmt.Errorf("backing directory: %w", err)
	}
	sec := time.Second
	opts := &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		Logger:       logger,
		MountOptions: fuse.MountOptions{
			DirectMountStrict:    true,
			FsName:               backing,
			Name:                 "gofuse-bench",
			MaxWrite:             1 << 20,
			MaxBackground:        64,
			EnableLocks:          true,
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			Logger:               logger,
		},
	}
	// fs.Mount, with the counters between the node tree and the server.
	raw := &countingFS{RawFileSystem: fs.NewNodeFS(root, opts)}
	srv, err := fuse.NewServer(raw, mnt, &opts.MountOptions)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	signal.Ignore(syscall.SIGPIPE)
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	logger.Printf("ready: %s on %s passthrough=off max_write=%d pid=%d", backing, mnt, opts.MaxWrite, os.Getpid())
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				raw.report(logger)
				continue
			}
			if err := srv.Unmount(); err != nil {
				return fmt.Errorf("unmount %s: %w", mnt, err)
			}
			<-done
			raw.report(logger)
			return nil
		case <-done:
			logger.Printf("%s was unmounted", mnt)
			raw.report(logger)
			return nil
		}
	}
}

// countingFS counts READ, WRITE, CREATE and UNLINK in front of the loopback bridge: one
// atomic add each.
type countingFS struct {
	fuse.RawFileSystem
	reads, writes, creates, unlinks atomic.Uint64
}

// Create and Unlink are counted for the meta rows (create, unlink).
func (c *countingFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	c.creates.Add(1)
	return c.RawFileSystem.Create(cancel, in, name, out)
}

func (c *countingFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	c.unlinks.Add(1)
	return c.RawFileSystem.Unlink(cancel, header, name)
}

func (c *countingFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c.reads.Add(1)
	return c.RawFileSystem.Read(cancel, in, buf)
}

// Writev is what go-fuse calls for every WRITE (Write only after ENOSYS
// from it), so WRITEs are counted here.
func (c *countingFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	c.writes.Add(1)
	return c.RawFileSystem.Writev(cancel, in, data)
}

func (c *countingFS) report(logger *log.Logger) {
	logger.Printf("counts reads=%d writes=%d creates=%d unlinks=%d", c.reads.Load(), c.writes.Load(), c.creates.Load(), c.unlinks.Load())
}
