// Package ring is io_uring for Go on golang.org/x/sys/unix: ring setup
// (SQE128, CQE32, SINGLE_ISSUER|DEFER_TASKRUN), the mapped submission and
// completion queues, submit and wait with a timeout, the preparation of
// NOP, READ/WRITE, READ_FIXED/WRITE_FIXED and URING_CMD entries, sparse
// registered buffer and file tables with slot updates, and an eventfd
// Waker that lets other goroutines wake the ring's owner thread.
//
// # Lifetimes
//
// A Ring owns its fd and its three mappings; Close unmaps them after the
// fd is closed, which cancels whatever the kernel still had in flight.
// Memory the kernel keeps the address of across a submission (I/O
// buffers, iovec arrays, registered buffers) must not be Go heap memory:
// allocate it with Alloc (anonymous mmap) or map it yourself, and free it
// only after the Ring is closed or the operation completed.
//
// # Threads
//
// A Ring is not safe for concurrent use. A ring created with
// SingleIssuer belongs to the OS thread that created it: call
// runtime.LockOSThread before New and never unlock; every later call
// (submit, wait, register) must come from that thread. Other goroutines
// reach the owner only through a Waker.
//
// # Errors
//
// Functions return syscall.Errno values from the kernel unchanged
// (wrapped with the operation's name where it helps), so callers can use
// errors.Is(err, unix.EINVAL). A completion's negative Res is -errno.
package ring
