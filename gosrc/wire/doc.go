// Package wire is the back-channel message format between a zcfuse client
// and server: a fixed header, a fixed-size little-endian body per type,
// and fds passed as SCM_RIGHTS, over a SOCK_SEQPACKET Unix socket.
//
// Why SOCK_SEQPACKET: each sendmsg is one message and each recvmsg reads
// exactly one, so the kernel keeps message boundaries (no reassembly, no
// partial reads, no state carried between messages to get out of sync),
// a message bigger than the reader's buffer is reported (MSG_TRUNC)
// instead of bleeding into the next one, and SCM_RIGHTS fds arrive with
// the very message they were sent with. SOCK_STREAM would need a framing
// layer and leave fds attached to whichever read happens to cross the
// byte they were sent with. The socket stays connection-oriented, so the
// peer's death is seen (EOF) and SO_PEERCRED works.
//
// # Messages
//
// Header (16 bytes): magic uint32 0x5746435a ("ZCFW"), version uint16 (1),
// type uint16, length uint32 (of the body), reserved uint32 (0). A whole
// message is at most MaxMsgSize (4096) bytes. Bodies are packed, with
// fields in the order of the Go struct:
//
//	type  message          body bytes   fds  answered by
//	 1    Hello                10        0   HelloReply
//	 2    HelloReply           50        0
//	 3    ShareArena           12        1   ShareArenaReply
//	 4    ShareArenaReply       5        0
//	 5    ReleaseArena          4        0   Ok
//	 6    Detach                4        0   Ok
//	 7    Stats                 0        0   StatsReply
//	 8    StatsReply           32        0
//	 9    Bye                   0        0   Ok
//	10    Ok                    0        0
//	11    Error             4-260        0   (errno int32, then the message)
//	12    OpQueue               8        2   (server → client after HelloReply)
//	13    Doorbell              4        1   (server → client, one per CPU)
//
// Every request is answered by its reply type or by Error. The layouts of
// Hello, HelloReply and Error never change, so a client can negotiate a
// newer protocol in Hello.Version with any server. Attaching a file is
// not a message: it travels as a FUSE ioctl on the file's fd (AttachIoctl,
// AttachArg), so the kernel names the file and the caller's uid and gid.
//
// # Lifetimes
//
// Send never takes ownership: the fds it attaches stay the caller's (the
// kernel duplicates them into the message). The fds that Recv returns
// were opened with close-on-exec and belong to the caller, who must close
// them (or hand them on, e.g. to arena.Import). Whenever Recv returns an
// error it has already closed every fd that came with the message — a
// wrong fd count, a truncated message, a decoding error — so a caller
// never closes anything on the error path. Decode and Encode never touch
// fds; decoded messages do not alias the input buffer.
//
// Send, Recv and Call take a raw, blocking socket fd and block their OS
// thread: a client's way. A server holds each connection as a Conn, on
// Go's netpoller: its Send and Recv park the goroutine, not a thread,
// take deadlines, and wake when the socket is shut down or the Conn
// closed. Several goroutines may call Send on one socket (each message
// is atomic); Recv and Call assume one reader with one request in
// flight.
//
// # Errors
//
// Errors read "wire: ..." and wrap a syscall.Errno, so a caller maps them
// with errors.As to -errno: EPROTO for bad framing (shorter than a header,
// bad magic, reserved ≠ 0, length field not the body's length),
// EPROTONOSUPPORT for another wire version, EMSGSIZE for a message over
// MaxMsgSize (or truncated by the receive buffer), EBADMSG for an unknown
// type, a body of the wrong size, a field out of range (version 0, a bool
// that is not 0 or 1, an Error errno outside [1, 4095] or a message longer
// than 256 bytes, not UTF-8, or holding NUL), and for missing or extra
// fds. Encoding or sending an invalid message is EINVAL. A closed peer is
// io.EOF and ENOTCONN at once (a zero-length message reads the same). An
// Error reply returned by Call is an *Error, which unwraps to its errno;
// so is an Error the peer sent before closing when Call's send then
// fails (a server refusing a connection). A Conn past its deadline is
// os.ErrDeadlineExceeded and ETIMEDOUT; a closed Conn os.ErrClosed and
// EBADF.
// Nothing in this package panics on any input.
package wire
