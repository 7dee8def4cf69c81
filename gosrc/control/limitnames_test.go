package control

import (
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every field of Limits has a name, Set and Get round-trip it, and a
// limit added to Limits gets a name with no other edit.
func TestLimitNames(t *testing.T) {
	names := LimitNames()
	require.Len(t, names, reflect.TypeOf(Limits{}).NumField())
	require.Contains(t, names, "sessions_per_user")
	require.Contains(t, names, "hello_timeout_ms")
	require.Contains(t, names, "open_files_per_user")
	var l Limits
	for i, n := range names {
		require.NoError(t, l.Set(n, uint64(i+7)), n)
	}
	for i, n := range names {
		v, ok := l.Get(n)
		require.True(t, ok, n)
		require.EqualValues(t, i+7, v, n)
	}
	require.Equal(t, 7+2, l.HalfOpen, "fields in order")
	require.NoError(t, l.Set("hello_timeout_ms", 1500))
	require.Equal(t, 1500*time.Millisecond, l.HelloTimeout)
	require.ErrorIs(t, l.Set("no_such_limit", 1), syscall.ENOENT)
	require.ErrorIs(t, l.Set("fixed_slots", 1<<40), syscall.ERANGE, "uint32 field")
	require.ErrorIs(t, l.Set("sessions", 1<<63), syscall.ERANGE)
	_, ok := l.Get("nope")
	require.False(t, ok)
}
