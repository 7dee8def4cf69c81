package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// openUntil opens path (flags) until an open fails or n succeeded; it
// returns the fds and the error that stopped it.
func openUntil(path string, flags, n int) ([]int, error) {
	var fds []int
	for len(fds) < n {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return fds, err
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// openFilesOf is what the server counts for uid: its layer's count and
// its stats' entry for uid.
func openFilesOf(srv *Server, uid uint32) (int, uint64) {
	var listed uint64
	for _, u := range srv.Stats().Users {
		if u.UID == uid {
			listed = u.OpenFiles
		}
	}
	return srv.fsys.OpenFilesOf(uid), listed
}

// A uid that opens files and directories through the mount until the
// server refuses it gets EMFILE at its own limit, before the server runs
// out of fds; root (here the server's owner too) and another user keep
// opening as before, each against a count of its own; every count is
// back to zero once the files are closed (RELEASE over either transport),
// and the refused uid may open again.
func TestOpenFilesPerUser(t *testing.T) {
	const limit = 16
	const nobody, other = 65534, 65533
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, backing, mnt := mount(t, tr, Options{AllowOther: true, Limits: Limits{OpenFilesPerUser: limit}})
			writeFile(t, join(backing, "f"), []byte("data"))
			require.NoError(t, unix.Mkdir(join(backing, "d"), 0o755))
			attacker, bystander := uidThread(t, nobody), uidThread(t, other)

			// The attacker opens until it is refused, files and a directory.
			var held []int
			var stopped, dirErr error
			attacker(func() {
				held, stopped = openUntil(join(mnt, "f"), unix.O_RDONLY, 10*limit)
				if stopped == nil {
					return
				}
				var fd int
				if fd, dirErr = unix.Open(join(mnt, "d"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); dirErr == nil {
					unix.Close(fd)
				}
			})
			t.Cleanup(func() { attacker(func() { closeAll(held) }) })
			require.ErrorIs(t, stopped, unix.EMFILE, "uid %d after %d opens", nobody, len(held))
			require.Len(t, held, limit)
			require.ErrorIs(t, dirErr, unix.EMFILE, "an OPENDIR over the limit")
			got, listed := openFilesOf(srv, nobody)
			require.Equal(t, limit, got)
			require.EqualValues(t, limit, listed, "the stats' users")

			// Root and another user are not affected.
			mine, err := openUntil(join(mnt, "f"), unix.O_RDWR, limit)
			require.NoError(t, err, "root's opens while uid %d is at its limit", nobody)
			dir, err := unix.Open(join(mnt, "d"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			require.ErrorIs(t, err, unix.EMFILE, "root is at its own limit of %d", limit)
			if err == nil {
				unix.Close(dir)
			}
			var theirs []int
			bystander(func() { theirs, err = openUntil(join(mnt, "f"), unix.O_RDONLY, limit/2) })
			require.NoError(t, err, "uid %d's opens while uid %d is at its limit", other, nobody)
			st := srv.Stats()
			require.Equal(t, limit, st.FS.OpenFilesMaxUser)
			require.EqualValues(t, 3, st.FS.OpenFilesRefused)
			require.Equal(t, 2*limit+limit/2, st.FS.OpenFiles)

			// Every count goes back to zero once the files are closed.
			closeAll(mine)
			bystander(func() { closeAll(theirs) })
			attacker(func() { closeAll(held); held = nil })
			require.Eventually(t, func() bool {
				st := srv.Stats()
				return st.FS.OpenFiles == 0 && st.FS.OpenFilesMaxUser == 0 && len(srv.fsys.OpenFilesByUser()) == 0
			}, 5*time.Second, time.Millisecond, "counts after every close: %+v", srv.fsys.OpenFilesByUser())
			for _, u := range srv.Stats().Users {
				require.Zero(t, u.OpenFiles, "uid %d", u.UID)
			}

			// The refused uid opens again.
			attacker(func() { held, err = openUntil(join(mnt, "f"), unix.O_RDONLY, limit) })
			require.NoError(t, err)
			attacker(func() { closeAll(held); held = nil })
			require.Eventually(t, func() bool { n, _ := openFilesOf(srv, nobody); return n == 0 },
				5*time.Second, time.Millisecond)
		})
	}
}

// The open-file limit defaults to DefaultLimits' and a negative one means
// none.
func TestOpenFilesLimitDefault(t *testing.T) {
	srv, _, _ := mount(t, fusering.TransportClassic, Options{})
	require.Equal(t, DefaultLimits.OpenFilesPerUser, srv.fsys.OpenFilesLimit())
	srv, _, mnt := mount(t, fusering.TransportClassic, Options{Limits: Limits{OpenFilesPerUser: -1}})
	require.Zero(t, srv.fsys.OpenFilesLimit())
	writeFile(t, join(mnt, "f"), nil)
	fds, err := openUntil(join(mnt, "f"), unix.O_RDONLY, 64)
	defer closeAll(fds)
	require.NoError(t, err)
}
