package server

import (
	"encoding/json"
	"log"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// The stats attribute is answered by the server: it is valid JSON with
// the transport, it is not listed, it cannot be set or removed, and it
// never reaches the backing directory.
func TestStatsXattr(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, mnt := mount(t, tr, Options{})
			writeFile(t, join(mnt, "f"), []byte("0123456789"))
			got, _, err := ReadStats(mnt)
			require.NoError(t, err)
			require.Equal(t, ViewFull, got.View, "root's view")
			require.Nil(t, got.User)
			require.Equal(t, string(tr), got.Transport)
			require.Equal(t, os.Getpid(), got.PID)
			require.Equal(t, srv.Stats().Mountpoint, got.Mountpoint)
			require.GreaterOrEqual(t, got.BytesWritten, uint64(10))

			buf := make([]byte, 4096)
			n, err := syscall.Listxattr(mnt, buf)
			require.NoError(t, err)
			require.NotContains(t, string(buf[:n]), StatsXattr)
			require.ErrorIs(t, syscall.Setxattr(mnt, StatsXattr, []byte("x"), 0), syscall.EPERM)
			require.ErrorIs(t, syscall.Removexattr(mnt, StatsXattr), syscall.EPERM)
			_, err = syscall.Getxattr(backing, StatsXattr, buf)
			require.Error(t, err, "the backing directory must not carry the attribute")
		})
	}
}

// The stats attribute answers each caller in its view: a user who is
// neither root nor the mount owner reads its own usage against its
// limits (open files through the mount, sessions) and the transport, and
// nothing of the server's paths, pid or other users; root reads
// everything, every user's usage included. The control socket's
// attribute answers everybody.
func TestStatsViews(t *testing.T) {
	const nobody = 65534
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			ctlDir := shmDir(t, "ctl") // 0755: uid 65534 may reach the socket
			srv, backing, mnt := mount(t, tr, Options{AllowOther: true, ControlDir: ctlDir, Limits: Limits{OpenFilesPerUser: 100}})
			writeFile(t, join(backing, "f"), []byte("x"))
			as := uidThread(t, nobody)
			var (
				raw              []byte
				fds              []int
				sess             *client.Session
				sock             string
				read             Stats
				openErr, connErr error
				getErr, sockErr  error
				readErr          error
			)
			as(func() {
				fds, openErr = openUntil(join(mnt, "f"), unix.O_RDONLY, 3)
				sess, connErr = client.Connect(mnt)
				buf := make([]byte, 64<<10)
				var n int
				n, getErr = unix.Getxattr(mnt, StatsXattr, buf)
				raw = buf[:max(n, 0)]
				sock, sockErr = client.SocketPath(mnt)
				read, _, readErr = ReadStats(mnt)
			})
			t.Cleanup(func() {
				as(func() { closeAll(fds) })
				if sess != nil {
					sess.Close()
				}
			})
			require.NoError(t, openErr)
			require.NoError(t, connErr, "uid %d connects", nobody)
			require.NoError(t, getErr)
			require.NoError(t, sockErr, "uid %d reads the control socket's attribute", nobody)
			require.NoError(t, readErr)
			full := srv.Stats()
			require.Equal(t, full.ControlSocket, sock)

			// uid 65534's view: these keys and no others.
			var keys map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(raw, &keys))
			require.Equal(t, []string{"passthrough", "read_only", "transport", "user", "view"}, slices.Sorted(maps.Keys(keys)), "%s", raw)
			for _, secret := range []string{backing, mnt, ctlDir, full.ControlSocket, `"pid"`, `"backing"`, `"mountpoint"`, `"users"`} {
				require.NotContains(t, string(raw), secret)
			}
			var uv UserView
			require.NoError(t, json.Unmarshal(raw, &uv))
			require.Equal(t, ViewUser, uv.View)
			require.Equal(t, string(tr), uv.Transport)
			require.EqualValues(t, nobody, uv.User.UID)
			require.EqualValues(t, 3, uv.User.OpenFiles)
			require.EqualValues(t, 100, uv.User.OpenFilesLimit)
			require.Equal(t, srv.lastCtl.Load().UsageOf(nobody), uv.User.UserUsage, "the control plane's usage (its session)")
			require.EqualValues(t, DefaultLimits.SessionsPerUser, uv.User.SessionsLimit)
			require.EqualValues(t, DefaultLimits.AttachedFilesPerUser, uv.User.AttachedFilesLimit)
			// ReadStats says which view it read.
			require.Equal(t, ViewUser, read.View)
			require.NotNil(t, read.User)
			require.Equal(t, uv.User, *read.User)
			require.Equal(t, string(tr), read.Transport)
			require.Zero(t, read.PID)
			require.Empty(t, read.Backing)

			// Root's view: everything, and every user's usage.
			got, raw, err := ReadStats(mnt)
			require.NoError(t, err)
			require.Equal(t, ViewFull, got.View)
			require.Equal(t, os.Getpid(), got.PID)
			require.Equal(t, full.Backing, got.Backing)
			require.Equal(t, full.ControlSocket, got.ControlSocket)
			require.Contains(t, string(raw), `"users":[`)
			var mine *UserStats
			for i := range got.Users {
				if got.Users[i].UID == nobody {
					mine = &got.Users[i]
				}
			}
			require.NotNil(t, mine, "uid %d among %+v", nobody, got.Users)
			require.Equal(t, uv.User, *mine)
		})
	}
}

// The mount owner sees the full view like root; everybody else, its own.
func TestStatsViewOwner(t *testing.T) {
	requireTransport(t, fusering.TransportClassic)
	const owner, other = 65533, 65534
	backing, mnt := shmDir(t, "backing"), shmDir(t, "mnt")
	srv, err := New(backing, mnt, Options{Transport: fusering.TransportClassic, AllowOther: true,
		ControlDir: shmDir(t, "ctl"), Logger: log.New(testWriter{t}, "zcfuse: ", 0)})
	require.NoError(t, err)
	srv.owner = owner // as if uid 65533 ran it (before Start: no request reads it yet)
	require.NoError(t, srv.Start())
	t.Cleanup(func() { srv.Stop() })
	for uid, want := range map[uint32]string{owner: ViewFull, other: ViewUser, 0: ViewFull} {
		var st Stats
		var err error
		read := func() { st, _, err = ReadStats(mnt) }
		if uid == 0 {
			read()
		} else {
			uidThread(t, uid)(read)
		}
		require.NoError(t, err, "uid %d", uid)
		require.Equal(t, want, st.View, "uid %d", uid)
		if want == ViewFull {
			require.Equal(t, srv.Stats().Backing, st.Backing, "uid %d", uid)
		} else {
			require.EqualValues(t, uid, st.User.UID)
		}
	}
}

// The full view stays within what getxattr returns (64 KiB) when very
// many users hold something: it lists the biggest holders and says how
// many it left out.
func TestStatsXattrManyUsers(t *testing.T) {
	srv, _, mnt := mount(t, fusering.TransportClassic, Options{AllowOther: true})
	writeFile(t, join(mnt, "f"), nil)
	const users = 300
	var fds []int
	t.Cleanup(func() { closeAll(fds) })
	for uid := uint32(1000); uid < 1000+users; uid++ {
		var held []int
		var err error
		uidThread(t, uid)(func() { held, err = openUntil(join(mnt, "f"), unix.O_RDONLY, 1+int(uid%3)) })
		fds = append(fds, held...)
		require.NoError(t, err, "uid %d", uid)
	}
	st, raw, err := ReadStats(mnt)
	require.NoError(t, err)
	require.LessOrEqual(t, len(raw), maxStatsXattr)
	require.Positive(t, st.UsersOmitted)
	t.Logf("%d of %d users listed in %d bytes", len(st.Users), users, len(raw))
	require.Equal(t, users, len(st.Users)+st.UsersOmitted)
	listed := map[uint32]bool{}
	least := uint64(3)
	for _, u := range st.Users {
		listed[u.UID] = true
		require.EqualValues(t, 1+u.UID%3, u.OpenFiles, "uid %d", u.UID)
		least = min(least, u.OpenFiles)
	}
	for uid := uint32(1000); uid < 1000+users; uid++ {
		if !listed[uid] {
			require.LessOrEqual(t, uint64(1+uid%3), least, "uid %d holds more than a listed user, and is left out", uid)
		}
	}
	require.Len(t, srv.Stats().Users, users, "Stats itself lists everybody")
}

// New refuses bad directories with errors that name the problem.
func TestNewErrors(t *testing.T) {
	dir := shmDir(t, "new")
	file := join(dir, "file")
	writeFile(t, file, nil)
	for _, c := range []struct{ backing, mnt, want string }{
		{join(dir, "missing"), dir, "no such file"},
		{file, dir, "not a directory"},
		{dir, join(dir, "missing"), "no such file"},
		{dir, file, "not a directory"},
		{dir, dir, "same"},
	} {
		_, err := New(c.backing, c.mnt, Options{})
		require.Error(t, err, "%s on %s", c.backing, c.mnt)
		require.True(t, strings.Contains(err.Error(), c.want), "%v should say %q", err, c.want)
	}
}

// A second server on a busy mountpoint fails before mounting anything.
func TestBusyMountpoint(t *testing.T) {
	_, _, mnt := mount(t, fusering.TransportClassic, Options{})
	_, err := New(shmDir(t, "b2"), mnt, Options{})
	require.ErrorContains(t, err, "busy")
}
