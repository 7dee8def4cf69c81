package control

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLimitsWithDefaults(t *testing.T) {
	l := Limits{SessionsPerUser: 3}.WithDefaults()
	require.Equal(t, 3, l.SessionsPerUser)
	require.Equal(t, DefaultLimits.Sessions, l.Sessions)
	require.Equal(t, DefaultLimits.HelloTimeout, l.HelloTimeout)
	require.Equal(t, DefaultLimits, Limits{}.WithDefaults())
	require.Equal(t, 64*256, Limits{SessionsPerUser: 64}.WithDefaults().QueueDepthPerUser,
		"room for every session the user may open, unless set")
	require.Equal(t, 100, Limits{SessionsPerUser: 64, QueueDepthPerUser: 100}.WithDefaults().QueueDepthPerUser)
}

// Per-user limits refuse the user over them with their errno and nobody
// else; the server-wide limits count unprivileged users only, so they
// never refuse root or the owner; give returns what take charged.
func TestUsersAccounting(t *testing.T) {
	const owner, other, third = 1000, 65534, 4242
	u := newUsers(Limits{Sessions: 3, SessionsPerUser: 2, ArenaBytesPerUser: 100, AttachedFilesPerUser: 1}.WithDefaults(), owner)
	require.NoError(t, u.take(other, resSessions, 1))
	require.NoError(t, u.take(other, resSessions, 1))
	require.ErrorIs(t, u.take(other, resSessions, 1), syscall.EAGAIN, "over the per-user limit")
	require.NoError(t, u.take(third, resSessions, 1))
	require.ErrorIs(t, u.take(third, resSessions, 1), syscall.EAGAIN, "over the server-wide limit of unprivileged users")
	for _, priv := range []uint32{0, owner} {
		require.NoError(t, u.take(priv, resSessions, 2), "privileged users have their own budget")
		require.ErrorIs(t, u.take(priv, resSessions, 1), syscall.EAGAIN, "but their per-user limit still holds")
	}
	require.NoError(t, u.take(other, resArenaBytes, 100))
	require.ErrorIs(t, u.take(other, resArenaBytes, 1), syscall.EDQUOT)
	require.NoError(t, u.take(other, resAttached, 1))
	require.ErrorIs(t, u.take(other, resAttached, 1), syscall.EMFILE)
	require.Equal(t, UserUsage{UID: other, Sessions: 2, ArenaBytes: 100, AttachedFiles: 1, SessionsLimit: 2,
		ArenasLimit: uint64(DefaultLimits.ArenasPerUser), ArenaBytesLimit: 100,
		RegisteredBytesLimit: DefaultLimits.RegisteredBytesPerUser, AttachedFilesLimit: 1,
		QueueEntriesLimit: 2 * 256}, u.usageOf(other))
	u.give(other, resSessions, 2)
	u.give(other, resArenaBytes, 100)
	u.give(other, resAttached, 1)
	require.NotContains(t, u.by, uint32(other), "a uid holding nothing is forgotten")
	require.NoError(t, u.take(other, resSessions, 1), "given back: room again")
	var reported []string
	u.report = func(msg string) { reported = append(reported, msg) }
	u.give(third, resArenas, 1)
	require.EqualValues(t, 1, u.bugs.Load(), "giving back what was never taken is a bug, counted")
	require.Len(t, reported, 1, "and reported")
	require.NoError(t, u.take(third, resAttached, 1))
	u.give(third, resAttached, 5)
	require.EqualValues(t, 2, u.bugs.Load())
	require.Zero(t, u.usageOf(third).AttachedFiles, "clamped at zero, never wrapped around")
	require.Zero(t, u.others[resAttached], "nor the server-wide count")
}

// The queue depth a session gets: a power of two, at most the queue's
// own maximum, at least 1.
func TestQueueDepth(t *testing.T) {
	for in, want := range map[int]uint32{0: 256, 1: 1, 3: 2, 100: 64, 256: 256, 1000: 256} {
		l := Limits{QueueDepth: in}.WithDefaults()
		require.Equal(t, want, l.queueDepth(), "QueueDepth %d", in)
	}
}
