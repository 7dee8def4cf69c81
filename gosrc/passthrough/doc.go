// Package passthrough holds the rules by which the server touches the
// backing file system on a client's behalf: whose identity a request
// thread takes (Become, Restore, GroupCache, DropResourceOverride), which
// ioctls reach a backing file, and how setuid, setgid and file
// capabilities are cleared when the kernel says a write, truncate or
// chown must clear them (KillPriv, for a Caller; CallerHasFsetid). The
// file-system layer (package fs) applies them. It owns no file descriptors: callers pass the
// backing fd they hold, and it opens nothing but /proc. Its only state is
// a GroupCache a caller owns. It may not touch the FUSE protocol,
// sessions or the data plane.
//
// # Credentials
//
// Become switches one locked OS thread to a caller's fsuid, fsgid and
// supplementary groups and empties its effective capability set (raw
// setgroups/setfsgid/setfsuid/capset); its real, effective and saved ids
// stay 0, so the caller can neither signal the thread nor change its
// scheduling while it serves the caller's request. Restore brings it back
// or panics. GroupCache finds a caller's groups in /proc/TID/status, only
// while that thread's fsuid and fsgid are still the request's. On this
// machine class a Become+Restore pair costs about 15 µs (eight credential
// changes, each an RCU-replaced struct cred).
//
// # The ioctl allow-list
//
// An ioctl sent through the mount arrives at a root server as a FUSE_IOCTL
// with the caller's command number and, for commands that carry data,
// _IOC_SIZE(cmd) bytes in and out; the kernel checks no capability on the
// way. Forwarded as it is, it would run as the server on the backing file
// system: EXT4_IOC_SHUTDOWN, FS_IOC_SETFSLABEL, FITRIM, EXT4_IOC_MOVE_EXT
// (whose donor is an fd number, which the backing kernel resolves in the
// server's fd table) and any other root-only command. So Ioctl answers
// only the commands below and -ENOTTY to everything else:
//
//	FS_IOC_GETFLAGS     the file's inode flags (lsattr): a property of
//	                    this file, readable by anyone who can open it.
//	                    The kernel sends it itself (fileattr_get) for
//	                    lsattr and statx on the mount, on files and
//	                    directories, with a 4-byte out buffer.
//	FS_IOC_FSGETXATTR   struct fsxattr (flags, extent size, project id,
//	                    CoW extent size) of this file, likewise sent by
//	                    the kernel's fileattr_get.
//
// Left out on purpose: every setter (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR:
// chattr through the mount fails with ENOTTY rather than running as
// root), every command about the file system rather than the file
// (FS_IOC_GETFSLABEL, FS_IOC_GETFSUUID, FITRIM, FIFREEZE), commands that
// reveal more than the file's contents and attributes (FS_IOC_GETVERSION:
// the inode generation, half of an NFS file handle; FS_IOC_FIEMAP: the
// physical layout), and everything that carries a pointer or an fd
// number. FIONREAD, FIGETBSZ and FIOQSIZE never arrive: the VFS answers
// them for regular files before FUSE is asked, and a command number
// without a size cannot carry an answer through FUSE anyway.
//
// Out buffers: the backing call writes into a zeroed scratch buffer large
// enough for anything an allowed command writes, and the caller's out
// buffer gets that buffer's prefix with the rest zeroed. A reply therefore
// never carries bytes the backing call did not write: on the io_uring
// transport the out buffer is the ring entry's payload, which still holds
// the previous request's data (another user's READ reply, say).
//
// # Kill-priv
//
// With FUSE_HANDLE_KILLPRIV_V2 negotiated the kernel no longer clears
// setuid and setgid itself (and no longer asks for security.capability
// before each write); it tells the server instead, with
// FUSE_WRITE_KILL_SUIDGID on a WRITE, FATTR_KILL_SUIDGID on a SETATTR
// (truncate, and chown of a non-directory) and FUSE_OPEN_KILL_SUIDGID on
// an OPEN with O_TRUNC, whenever the caller lacks CAP_FSETID. A root
// server has CAP_FSETID, so the backing file system would keep the bits:
// KillPriv clears them as a local file system does for an unprivileged
// writer: setuid always, setgid when group execute is set or, without
// it (mandatory locking), when the writer is not in the file's group, and
// the security.capability attribute.
//
// # Errors
//
// Functions return syscall.Errno values ready for a FUSE reply.
package passthrough
