package server

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
	"github.com/zcfuse/zcfuse/gosrc/wire"
)

var _ fs.NodeIoctler = (*node)(nil)

// Ioctl is the one place every FUSE_IOCTL arrives, for files and
// directories alike (go-fuse asks the node before the handle): the attach
// ioctl on an open file, then passthrough's allow-list; everything else
// is ENOTTY, and no other ioctl ever reaches a backing file.
func (n *node) Ioctl(ctx context.Context, fh fs.FileHandle, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	if f, ok := fh.(*file); ok && cmd == wire.AttachIoctl {
		return f.attachIoctl(ctx, input, output)
	}
	backing, ok := fh.(fs.FileIoctler) // a loopback file or directory stream
	if !ok || !passthrough.Allowed(cmd) {
		clear(output)
		return 0, syscall.ENOTTY
	}
	return passthrough.Ioctl(cmd, output, func(cmd uint32, buf []byte) syscall.Errno {
		_, errno := backing.Ioctl(ctx, cmd, 0, nil, buf)
		return errno
	})
}
