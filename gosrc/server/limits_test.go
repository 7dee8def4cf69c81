package server

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/control"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
)

// Limits by name: set before Start, defaults where unset, refused after.
func TestSetLimit(t *testing.T) {
	srv, err := New(shmDir(t, "backing"), shmDir(t, "mnt"), Options{})
	require.NoError(t, err)
	require.NoError(t, srv.SetLimit("sessions_per_user", 3))
	v, ok := srv.Limit("sessions_per_user")
	require.True(t, ok)
	require.EqualValues(t, 3, v)
	v, _ = srv.Limit("attached_files")
	require.EqualValues(t, control.DefaultLimits.AttachedFiles, v, "unset: the default")
	require.ErrorIs(t, srv.SetLimit("no_such_limit", 1), syscall.ENOENT)
	require.Equal(t, control.LimitNames(), LimitNames())

	started, _, _ := mount(t, fusering.TransportURing, Options{})
	require.ErrorIs(t, started.SetLimit("sessions_per_user", 1), syscall.EALREADY)
}
