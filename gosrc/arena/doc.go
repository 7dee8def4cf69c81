// Package arena holds zcfuse's shared arenas: sealed memfds that a
// client fills and a server maps, so data moves between them by
// reference instead of by copy.
//
// A client makes one with Create (memfd_create with MFD_ALLOW_SEALING,
// sized, sealed against shrinking, growing and further sealing, mapped
// MAP_SHARED) or adopts a memfd it already has with Import. A server
// receives the fd over the back channel and calls Import too: Validate
// checks what the server relies on before it maps a byte, because memory
// the server touches must never fault. A memfd that could shrink would
// let a client truncate it under the server and turn the server's next
// read into SIGBUS, so F_SEAL_SHRINK is required.
//
// # Limits
//
// Sizes are whole pages (4 KiB; 2 MiB for huge-page arenas) from one
// page to MaxSize (1 GiB, the largest buffer io_uring registers as one
// fixed buffer).
//
// # Lifetimes
//
// An Arena owns its fd and its mapping; Close releases both. Import
// duplicates the fd it is given, so the caller keeps (and closes) its own.
// Bytes stays valid until Close; using it afterwards faults.
//
// # Errors
//
// Errors wrap the errno that the C API returns: EINVAL for a size that
// is zero, unaligned or over MaxSize, for an fd that is not a memfd (a
// pipe, a socket, a regular file) and for a memfd smaller than declared;
// EPERM for a memfd without F_SEAL_SHRINK; ENOMEM for a huge-page arena
// when no huge pages are reserved (the message says how to reserve them).
package arena
