package server

import (
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	zfs "github.com/zcfuse/zcfuse/gosrc/fs"
	"github.com/zcfuse/zcfuse/gosrc/passthrough"
)

// threadInit prepares a request thread (fusering.Config.ThreadInit): a
// root server's thread gives up CAP_SYS_RESOURCE for good, so no request,
// a WRITE on an open descriptor included, overrides a disk quota with the
// server's privilege (root callers lose that override through the mount
// too).
func (s *Server) threadInit() error {
	if s.root {
		return passthrough.DropResourceOverride()
	}
	return nil
}

// oldLayer is go-fuse's loopback node tree over the backing directory,
// with the root's stats and control attributes (Options.TestRootRequests).
func (s *Server) oldLayer() fuse.RawFileSystem {
	root, err := fs.NewLoopbackRoot(s.backing)
	if err != nil {
		panic(err)
	}
	raw := fs.NewNodeFS(root, &fs.Options{EntryTimeout: timeout(s.opts.EntryTimeout), AttrTimeout: timeout(s.opts.AttrTimeout)})
	return &oldRoot{RawFileSystem: raw, s: s}
}

type oldRoot struct {
	fuse.RawFileSystem
	s *Server
}

func (o *oldRoot) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if h.NodeId == fuse.FUSE_ROOT_ID {
		if v, ok, errno := o.s.rootXattr(attr, &h.Caller); ok || errno != 0 {
			return zfs.XattrReply(v, dest, errno)
		}
	}
	return o.RawFileSystem.GetXAttr(cancel, h, attr, dest)
}
