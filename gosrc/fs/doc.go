// Package fs is the server's file-system layer: a passthrough of one
// backing directory, implementing go-fuse's fuse.RawFileSystem directly
// (go-fuse carries the protocol; its node tree, which builds path strings
// and runs them as root, is not used). It owns the inode table (FUSE node
// ids, file handles and O_PATH fds of backing inodes), the open-file table
// (FUSE file handles and their backing fds), and the identity each
// request runs with. It may not touch sessions, arenas or the data plane:
// the embedding server reaches an open file through Handle (its fd, node
// id, access mode, kill-priv) and extends the layer through Hooks (the
// attach ioctl, the root's virtual attributes, read and write hooks).
//
// # Handles, never paths
//
// Every inode is reached through an fd on the inode itself (an O_PATH fd,
// kept or reopened from a file handle: inodes_linux.go), and every
// operation is relative to such an fd with the single name the kernel
// sent: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV, mkdirat, mknodat, symlinkat,
// unlinkat, renameat2, fstat, fchownat(AT_EMPTY_PATH), fchmodat2
// (AT_EMPTY_PATH). Where a call takes no O_PATH fd it names the inode by
// its /proc/self/fd name, which leads to the inode itself and resolves
// nothing in the backing tree (on this kernel utimensat and faccessat2
// refuse O_PATH fds with AT_EMPTY_PATH: EBADF):
//
//	LOOKUP, READDIRPLUS  openat2(parent, name, O_PATH|O_NOFOLLOW)  server
//	GETATTR, STATX       fstat/statx on the handle's or inode's fd  server
//	READLINK             readlinkat(fd, "")                         server
//	STATFS               fstatfs(fd)                                server
//	OPEN, OPENDIR        openat(/proc/self/fd, "N", flags)          caller
//	CREATE               openat2(parent, name, O_CREAT|O_EXCL)      caller
//	TMPFILE              openat(parent, ".", O_TMPFILE)             caller
//	MKDIR, MKNOD, SYMLINK, UNLINK, RMDIR, RENAME   *at(parent, name) caller
//	LINK                 linkat(/proc name, AT_SYMLINK_FOLLOW)      caller
//	SETATTR              fchmodat2, fchownat (AT_EMPTY_PATH),
//	                     ftruncate(handle) or truncate(/proc name),
//	                     utimensat(/proc name)                      caller
//	ACCESS               faccessat2(/proc name, AT_EACCESS)         caller
//	GETXATTR of an ACL   getxattr(/proc name)                       server
//	GET/LIST/SET/REMOVEXATTR  *xattr(/proc name)                    caller
//	  (security.capability set/remove: server)
//	READ, WRITE, FSYNC, FALLOCATE, COPY_FILE_RANGE, LSEEK, IOCTL,
//	FLUSH, READDIR       the open handle's fd                       -
//
// A root server serves a detached clone of the backing directory's mount
// (open_tree(OPEN_TREE_CLONE)): nothing mounted below the backing
// directory, now or later, is crossed, the server's own mount included.
// A server that is not root opens the directory itself and refuses to
// cross mounts (RESOLVE_NO_XDEV: such a name answers EXDEV).
//
// # The caller's rights
//
// A root server runs every operation marked "caller" above with the
// requester's uid, gid and supplementary groups (passthrough.Become on
// the locked request thread, undone before it serves anything else), so
// the backing file system decides as it would for the caller itself:
// modes, ACLs, sticky directories, protected hard links, quotas, and the
// ownership of what is made. Groups come from /proc/TID/status of the
// requesting thread (passthrough.GroupCache); a caller the server cannot
// see (tid 0: another pid namespace; or a thread that has exited) gets no
// supplementary groups: never more rights, sometimes fewer. Requests from
// uid 0 keep the server's identity but for their group (the thread's
// fsgid is the caller's gid, so new objects are its group's from the
// start; nothing is chowned after the fact, when a name may lead
// elsewhere); a server that is not root keeps its own for every request,
// as it cannot switch. A root caller has the server's capabilities on the
// backing file system: on an --allow-other mount the kernel's
// default_permissions checks still bound it (and its listxattr shows
// trusted.* names only when it has CAP_SYS_ADMIN itself); a mount without
// --allow-other, which only root reaches, has no default_permissions, so a
// root process whose capabilities were dropped gets the server's rights
// through it. A switched thread keeps real, effective and saved ids 0
// (passthrough.Become): the caller can neither signal it nor change its
// scheduling. The operations marked "server" need no right beyond
// the lookup the kernel checked (default_permissions, which every mount
// other users can reach has): a lookup as the server opens an O_PATH fd,
// which needs no right on the child, and reveals nothing the kernel's
// check of the parent did not allow. Reopening an inode from its file
// handle needs CAP_DAC_READ_SEARCH, so every request pins its inodes'
// fds before it switches.
//
// Reserved blocks: WRITEs run on the open fd with the server's fsuid, so
// ext4's blocks reserved for root can be filled through the mount
// (switching per write costs about 8 µs); request threads drop
// CAP_SYS_RESOURCE, so quotas hold.
//
// # Limits
//
// The inode table holds an entry per inode the kernel remembers. With file
// handles (a root server, a backing file system that exports them: ext4,
// xfs, btrfs, tmpfs) an entry costs its handle and the layer keeps at
// most Options.MaxFds O_PATH fds open (least recently used evicted, and
// any left unused for IdleFdTTL, so that a file deleted directly on the
// backing file system gives its space back within about twice that);
// without them, one O_PATH fd per entry, so the kernel may remember at
// most RLIMIT_NOFILE inodes at once, and lookups past that fail EMFILE.
//
// Every open file or directory (OPEN, CREATE, TMPFILE, OPENDIR) holds a
// server fd until its RELEASE (or, when an embedder borrowed it with
// Handle.LendFd, until the last loan is back: the control plane's
// attachments and the ops in flight on them share the handle's own fd,
// whose number is never reused under them), and the server's fds are
// one budget shared by every user, the inode table, the control plane and
// the data plane.
// Options.OpenFilesPerUser bounds the handles one uid (the request's)
// holds at once: at the limit, an open by that uid answers EMFILE before
// anything is opened or made, and every other uid goes on as before. Each
// handle is charged before it is opened and given back exactly once: at
// once when the open fails, else when it leaves the open-file table on
// RELEASE or RELEASEDIR (over either transport) or Close (an unmount with
// files still open). Every uid has the same limit, root and the server's
// owner included, each on a count of its own, so no other user can use
// theirs up: there is no server-wide limit on open files for them to be
// spared from, and a runaway process of theirs (a backup or an indexer
// walking the mount) must not take the server to EMFILE for everybody
// either; an embedder that trusts them with more raises the limit. Stats
// reports the most one uid holds and the opens refused; OpenFilesOf and
// OpenFilesByUser give the counts.
//
// File locks are not forwarded: the kernel keeps POSIX and flock locks
// for the mount itself (they do not conflict with locks taken directly on
// the backing files), and no request thread ever waits on a lock.
package fs
