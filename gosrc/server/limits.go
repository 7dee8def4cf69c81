package server

import (
	"fmt"
	"syscall"

	"github.com/zcfuse/zcfuse/gosrc/control"
	zfs "github.com/zcfuse/zcfuse/gosrc/fs"
)

// LimitNames are the names SetLimit takes (control.LimitNames: every
// field of Limits in snake case, durations in milliseconds with "_ms").
func LimitNames() []string { return control.LimitNames() }

// SetLimit sets one of Options.Limits by name before Start (0: the
// default). ENOENT for an unknown name, ERANGE for a value out of range,
// EALREADY once started.
func (s *Server) SetLimit(name string, v uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("limit %s: set limits before the server starts: %w", name, syscall.EALREADY)
	}
	return s.opts.Limits.Set(name, v)
}

// Limit returns the limit called name as the server uses it (defaults
// filled in).
func (s *Server) Limit(name string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Limits.WithDefaults().Get(name)
}

// The file-system layer's handles lend their own fd to the control plane:
// an attached file costs the server no fd of its own.
var _ control.FdLender = (*zfs.Handle)(nil)
