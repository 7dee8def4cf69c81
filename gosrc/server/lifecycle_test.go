package server

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zcfuse/zcfuse/gosrc/arena"
	"github.com/zcfuse/zcfuse/gosrc/client"
	"github.com/zcfuse/zcfuse/gosrc/fusering"
	"golang.org/x/sys/unix"
)

// clientModeEnv makes the test binary a client process (see TestMain):
// it connects to the mount named, shares a 1 MiB and a 64 MiB arena,
// attaches a file, says "ready" and waits to be killed.
const clientModeEnv = "ZCFUSE_TEST_CLIENT_MOUNT"

func clientMode(mnt string) int {
	fail := func(err error) int { fmt.Println("client:", err); return 1 }
	s, err := client.Connect(mnt)
	if err != nil {
		return fail(err)
	}
	for _, size := range []int64{1 << 20, 64 << 20} {
		a, err := arena.Create(size, arena.Options{})
		if err != nil {
			return fail(err)
		}
		if _, _, err := s.Share(a); err != nil {
			return fail(err)
		}
	}
	fd, err := unix.Open(mnt+"/f", unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return fail(err)
	}
	if _, err := s.Attach(fd); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	select {}
}

// A client SIGKILLed while it holds arenas and an attached file: the
// server frees its session, arenas, fixed-buffer slots, attachment and
// fds once the socket closes (bounded at 5 s; the time is logged).
func TestClientKilled(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(string(tr), func(t *testing.T) {
			srv, _, mnt := mount(t, tr, Options{})
			time.Sleep(50 * time.Millisecond)
			base := measure(t, srv)

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), clientModeEnv+"="+mnt)
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			line, err := bufio.NewReader(out).ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "ready", strings.TrimSpace(line))

			st := srv.Stats()
			require.Equal(t, []uint64{1, 2, 65 << 20, 1}, []uint64{st.Sessions, st.Arenas, st.RegisteredBytes, st.AttachedFiles})
			// The attach registers the file in the workers' tables on a
			// goroutine of its own: wait for it to end.
			var held resources // what the measure sees of a live session
			require.Eventually(t, func() bool {
				held = measure(t, srv)
				return srv.Stats().RegisteredFiles == 1 && held.goroutines == base.goroutines+1
			}, 5*time.Second, time.Millisecond, "the attached file registered, and only the session's goroutine left")
			require.Greater(t, held.fds, base.fds)
			require.Equal(t, base.maps+3, held.maps, "two arena mappings and the op queue's")
			require.Equal(t, base.goroutines+1, held.goroutines, "the session's goroutine")
			require.Equal(t, base.slots+2, held.slots)
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed := time.Now()
			cmd.Wait()
			settle(t, srv, base, "client SIGKILLed")
			t.Logf("everything freed %v after SIGKILL", time.Since(killed))
		})
	}
}

// A server whose executor runs as an unprivileged user under an 8 MiB
// RLIMIT_MEMLOCK: io_uring cannot pin a 64 MiB arena, so the server
// accepts it unregistered (served from its mapping), says so, registers a
// small one within budget, and keeps serving.
func TestMemlockBudget(t *testing.T) {
	var old unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old))
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 8 << 20, Max: old.Max}))
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old) })
	srv, _, mnt := mount(t, fusering.TransportURing, Options{workerUser: &unix.Ucred{Uid: 65534, Gid: 65534}})
	s, err := client.Connect(mnt)
	require.NoError(t, err)
	defer s.Close()
	big, err := arena.Create(64<<20, arena.Options{})
	require.NoError(t, err)
	defer big.Close()
	_, registered, err := s.Share(big)
	require.NoError(t, err, "over the memlock budget the arena is still accepted")
	require.False(t, registered, "64 MiB cannot be pinned under an 8 MiB memlock limit")
	small, err := arena.Create(1<<20, arena.Options{})
	require.NoError(t, err)
	defer small.Close()
	_, registered, err = s.Share(small)
	require.NoError(t, err)
	require.True(t, registered, "1 MiB fits the budget")

	st := srv.Stats()
	require.Equal(t, []uint64{2, 1 << 20, 1}, []uint64{st.Arenas, st.RegisteredBytes, st.FixedSlotsUsed})
	writeFile(t, join(mnt, "f"), []byte("still serving"))
	b, err := os.ReadFile(join(mnt, "f"))
	require.NoError(t, err)
	require.Equal(t, "still serving", string(b))
}
