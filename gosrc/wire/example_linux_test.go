package wire_test

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/zcfuse/zcfuse/gosrc/wire"
	"golang.org/x/sys/unix"
)

// Example_session shows a client and a server on the two ends of a
// SOCK_SEQPACKET socketpair: a Hello, an arena memfd shared with
// ShareArena, and an Error reply.
func Example_session() {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	client, server := sp[0], sp[1]
	defer unix.Close(client)

	go func() { // the server: one reply per request
		defer unix.Close(server)
		for {
			m, fds, err := wire.Recv(server, nil)
			if err != nil {
				if !errors.Is(err, syscall.ENOTCONN) {
					wire.Send(server, wire.ErrorFrom(err)) // fds are closed already
					continue
				}
				return
			}
			var reply wire.Msg
			switch m.(type) {
			case *wire.Hello:
				reply = &wire.HelloReply{Version: 1, SessionID: 1, MaxArenas: 4}
			case *wire.ShareArena:
				unix.Close(fds[0]) // a real server imports and maps it
				reply = &wire.ShareArenaReply{ArenaID: 1}
			case *wire.Detach:
				reply = &wire.Error{Errno: syscall.EBADF, Message: "no such file id"}
			default:
				reply = &wire.Ok{}
			}
			wire.Send(server, reply)
		}
	}()

	r, err := wire.Call(client, &wire.Hello{Version: 1, PID: 1})
	fmt.Printf("%+v %v\n", r, err)

	memfd, _ := unix.MemfdCreate("arena", unix.MFD_CLOEXEC)
	unix.Ftruncate(memfd, 4096)
	r, err = wire.Call(client, &wire.ShareArena{Size: 4096}, memfd)
	unix.Close(memfd) // Send does not take the caller's fd
	fmt.Printf("%+v %v\n", r, err)

	_, err = wire.Call(client, &wire.Detach{FileID: 9})
	fmt.Println(err, errors.Is(err, syscall.EBADF))

	r, err = wire.Call(client, &wire.Bye{})
	fmt.Printf("%+v %v\n", r, err)
	// Output:
	// &{Version:1 SessionID:1 Token:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0] MaxArenas:4 MaxArenaSize:0 MaxArenaBytes:0 MaxAttachedFiles:0} <nil>
	// &{ArenaID:1 Registered:false} <nil>
	// zcfuse server: no such file id: bad file descriptor true
	// &{} <nil>
}
