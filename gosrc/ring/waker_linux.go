package ring

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Waker lets any goroutine wake a ring's owner thread while it waits in
// the kernel: the owner keeps a READ of an eventfd pending in its ring,
// and Wake writes to the eventfd, which completes that READ.
//
// Wake is safe from any goroutine; Arm must be called on the owner thread
// (after New and after each wake completion it consumes).
type Waker struct {
	fd       int
	buf      []byte // mmap'd 8 bytes the pending READ fills
	userData uint64
}

// NewWaker makes an eventfd waker whose completions carry userData.
func NewWaker(userData uint64) (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	buf, err := Alloc(4096)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Waker{fd: fd, buf: buf[:8], userData: userData}, nil
}

// UserData is the completion tag of the waker's READ.
func (w *Waker) UserData() uint64 { return w.userData }

// Arm queues the eventfd READ on r (owner thread only). It is not
// submitted until the next Submit or wait.
func (w *Waker) Arm(r *Ring) error {
	sqe := r.GetSQE()
	if sqe == nil {
		return fmt.Errorf("arm waker: submission queue full")
	}
	PrepRead(sqe, w.fd, w.buf, ^uint64(0), w.userData)
	return nil
}

// Wake wakes the owner. Several wakes before the owner runs collapse
// into one completion.
func (w *Waker) Wake() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, err := unix.Write(w.fd, one[:])
	if err == unix.EAGAIN { // counter saturated: a wake is pending anyway
		return nil
	}
	return err
}

// Close releases the eventfd and buffer. Close the ring first (or make
// sure no READ is pending) so the kernel no longer writes the buffer.
func (w *Waker) Close() error {
	err := unix.Close(w.fd)
	Free(w.buf[:cap(w.buf)])
	return err
}
