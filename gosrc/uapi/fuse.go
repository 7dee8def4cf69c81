package uapi

import "strconv"

// FUSE-over-io_uring commands (sqe cmd_op on the /dev/fuse fd).
const (
	FuseURingCmdRegister       = 1
	FuseURingCmdCommitAndFetch = 2
)

// FuseURingCmdReq is struct fuse_uring_cmd_req, the URING_CMD command area.
type FuseURingCmdReq struct {
	Flags    uint64
	CommitID uint64
	QID      uint16
	Pad      [6]uint8
}

// FuseURingReqHeader is struct fuse_uring_req_header (288 bytes), the
// first iovec of a ring entry. InOut holds the fuse_in_header of a
// request (FuseInHeader) and the fuse_out_header of its reply
// (FuseOutHeader); OpIn the first op-specific argument (e.g.
// fuse_read_in); Ent the commit id and the payload size.
type FuseURingReqHeader struct {
	InOut [128]byte
	OpIn  [128]byte
	Ent   FuseURingEntInOut
}

// FuseURingEntInOut is struct fuse_uring_ent_in_out: the kernel sets
// CommitID and PayloadSz (bytes of the request in the payload buffer);
// the server sets PayloadSz to the bytes of its reply there.
type FuseURingEntInOut struct {
	Flags     uint64
	CommitID  uint64
	PayloadSz uint32
	Padding   uint32
	Reserved  uint64
}

// Offsets in struct fuse_uring_req_header (FuseURingReqHeader).
const (
	FuseURingInOutOff     = 0
	FuseURingOpInOff      = 128
	FuseURingEntOff       = 256
	FuseURingCommitIDOff  = 264
	FuseURingPayloadSzOff = 272
	FuseURingHeaderSize   = 288
)

// FuseInHeader is struct fuse_in_header, the start of every request.
type FuseInHeader struct {
	Len         uint32 // the whole request, this header included
	Opcode      uint32 // a FuseOpcode
	Unique      uint64
	NodeID      uint64
	UID         uint32
	GID         uint32
	PID         uint32
	TotalExtlen uint16 // length of extensions in 8-byte units
	Padding     uint16
}

// FuseOutHeader is struct fuse_out_header, the start of every reply and
// notification. Error is 0 or -errno in a reply, the notification code
// (FuseNotifyCode) in a notification, whose Unique is 0.
type FuseOutHeader struct {
	Len    uint32 // the whole reply, this header included
	Error  int32
	Unique uint64
}

// Sizes of the classic FUSE headers.
const (
	FuseInHeaderSize  = 40
	FuseOutHeaderSize = 16
)

// FuseInitIn is struct fuse_init_in, INIT's argument. Kernels before
// protocol 7.36 send only its first 16 bytes (up to Flags).
type FuseInitIn struct {
	Major        uint32
	Minor        uint32
	MaxReadahead uint32
	Flags        uint32 // bits 0-31 of the capabilities
	Flags2       uint32 // bits 32-63, with FUSE_INIT_EXT
	Unused       [11]uint32
}

// FuseReadIn is struct fuse_read_in, READ's argument.
type FuseReadIn struct {
	Fh        uint64
	Offset    uint64
	Size      uint32
	ReadFlags uint32
	LockOwner uint64
	Flags     uint32
	Padding   uint32
}

// FuseWriteOut is struct fuse_write_out, WRITE's reply.
type FuseWriteOut struct {
	Size    uint32
	Padding uint32
}

// FuseNotifyCode is enum fuse_notify_code: the Error field of the out
// header of a notification the server writes to /dev/fuse.
type FuseNotifyCode int32

// Notification codes.
const (
	FuseNotifyPoll       FuseNotifyCode = 1
	FuseNotifyInvalInode FuseNotifyCode = 2 // FuseNotifyInvalInodeOut
	FuseNotifyInvalEntry FuseNotifyCode = 3 // FuseNotifyInvalEntryOut, name, NUL
	FuseNotifyStore      FuseNotifyCode = 4 // FuseNotifyStoreOut, data
	FuseNotifyRetrieve   FuseNotifyCode = 5
	FuseNotifyDelete     FuseNotifyCode = 6 // FuseNotifyDeleteOut, name, NUL
)

// FuseNotifyInvalInodeOut is struct fuse_notify_inval_inode_out: drop
// the attributes of Ino and its cached data [Off, Off+Len) (Len <= 0: to
// the end; Off < 0: attributes only).
type FuseNotifyInvalInodeOut struct {
	Ino uint64
	Off int64
	Len int64
}

// FuseNotifyInvalEntryOut is struct fuse_notify_inval_entry_out; the
// name (Namelen bytes) and a NUL follow it.
type FuseNotifyInvalEntryOut struct {
	Parent  uint64
	Namelen uint32
	Flags   uint32
}

// FuseNotifyDeleteOut is struct fuse_notify_delete_out; the name
// (Namelen bytes) and a NUL follow it.
type FuseNotifyDeleteOut struct {
	Parent  uint64
	Child   uint64
	Namelen uint32
	Padding uint32
}

// FuseNotifyStoreOut is struct fuse_notify_store_out; Size bytes of data
// follow it.
type FuseNotifyStoreOut struct {
	NodeID  uint64
	Offset  uint64
	Size    uint32
	Padding uint32
}

// FuseMinPayload is the smallest ring payload buffer the kernel accepts:
// max(FUSE_MIN_READ_BUFFER, max_write, max_pages*PAGE_SIZE) is checked at
// REGISTER; this is the FUSE_MIN_READ_BUFFER part.
const FuseMinPayload = 8192

// CapOverIOURing is FUSE_OVER_IO_URING, bit 41 of the 64-bit INIT flags
// (bit 9 of flags2).
const CapOverIOURing = 1 << 41

// FUSE ioctls on the /dev/fuse fd for kernel passthrough (CAP_SYS_ADMIN).
const (
	FuseDevIocBackingOpen  = 0x4010e501 // _IOW(229, 1, struct fuse_backing_map)
	FuseDevIocBackingClose = 0x4004e502 // _IOW(229, 2, uint32_t)
)

// FuseBackingMap is struct fuse_backing_map.
type FuseBackingMap struct {
	Fd      int32
	Flags   uint32
	Padding uint64
}

// FuseOpcode is enum fuse_opcode, the opcode of a FUSE request
// (FuseInHeader.Opcode). Its String is the kernel's name without the
// FUSE_ prefix ("READ"), or "OP_<n>" for a number the kernel does not
// define.
type FuseOpcode uint32

// FUSE opcodes (include/uapi/linux/fuse.h, protocol 7.45). They carry a
// FuseOp prefix because Op* are the io_uring opcodes.
const (
	FuseOpLookup          FuseOpcode = 1
	FuseOpForget          FuseOpcode = 2 // no reply
	FuseOpGetattr         FuseOpcode = 3
	FuseOpSetattr         FuseOpcode = 4
	FuseOpReadlink        FuseOpcode = 5
	FuseOpSymlink         FuseOpcode = 6
	FuseOpMknod           FuseOpcode = 8
	FuseOpMkdir           FuseOpcode = 9
	FuseOpUnlink          FuseOpcode = 10
	FuseOpRmdir           FuseOpcode = 11
	FuseOpRename          FuseOpcode = 12
	FuseOpLink            FuseOpcode = 13
	FuseOpOpen            FuseOpcode = 14
	FuseOpRead            FuseOpcode = 15
	FuseOpWrite           FuseOpcode = 16
	FuseOpStatfs          FuseOpcode = 17
	FuseOpRelease         FuseOpcode = 18
	FuseOpFsync           FuseOpcode = 20
	FuseOpSetxattr        FuseOpcode = 21
	FuseOpGetxattr        FuseOpcode = 22
	FuseOpListxattr       FuseOpcode = 23
	FuseOpRemovexattr     FuseOpcode = 24
	FuseOpFlush           FuseOpcode = 25
	FuseOpInit            FuseOpcode = 26
	FuseOpOpendir         FuseOpcode = 27
	FuseOpReaddir         FuseOpcode = 28
	FuseOpReleasedir      FuseOpcode = 29
	FuseOpFsyncdir        FuseOpcode = 30
	FuseOpGetlk           FuseOpcode = 31
	FuseOpSetlk           FuseOpcode = 32
	FuseOpSetlkw          FuseOpcode = 33
	FuseOpAccess          FuseOpcode = 34
	FuseOpCreate          FuseOpcode = 35
	FuseOpInterrupt       FuseOpcode = 36
	FuseOpBmap            FuseOpcode = 37
	FuseOpDestroy         FuseOpcode = 38
	FuseOpIoctl           FuseOpcode = 39
	FuseOpPoll            FuseOpcode = 40
	FuseOpNotifyReply     FuseOpcode = 41
	FuseOpBatchForget     FuseOpcode = 42 // no reply
	FuseOpFallocate       FuseOpcode = 43
	FuseOpReaddirplus     FuseOpcode = 44
	FuseOpRename2         FuseOpcode = 45
	FuseOpLseek           FuseOpcode = 46
	FuseOpCopyFileRange   FuseOpcode = 47
	FuseOpSetupmapping    FuseOpcode = 48
	FuseOpRemovemapping   FuseOpcode = 49
	FuseOpSyncfs          FuseOpcode = 50
	FuseOpTmpfile         FuseOpcode = 51
	FuseOpStatx           FuseOpcode = 52
	FuseOpCopyFileRange64 FuseOpcode = 53

	// CUSE_INIT, the INIT of a CUSE device, not of a file system.
	FuseOpCuseInit FuseOpcode = 4096
)

// fuseOpNames are the kernel's opcode names without FUSE_, by opcode.
var fuseOpNames = [...]string{
	FuseOpLookup: "LOOKUP", FuseOpForget: "FORGET", FuseOpGetattr: "GETATTR",
	FuseOpSetattr: "SETATTR", FuseOpReadlink: "READLINK", FuseOpSymlink: "SYMLINK",
	FuseOpMknod: "MKNOD", FuseOpMkdir: "MKDIR", FuseOpUnlink: "UNLINK",
	FuseOpRmdir: "RMDIR", FuseOpRename: "RENAME", FuseOpLink: "LINK",
	FuseOpOpen: "OPEN", FuseOpRead: "READ", FuseOpWrite: "WRITE",
	FuseOpStatfs: "STATFS", FuseOpRelease: "RELEASE", FuseOpFsync: "FSYNC",
	FuseOpSetxattr: "SETXATTR", FuseOpGetxattr: "GETXATTR", FuseOpListxattr: "LISTXATTR",
	FuseOpRemovexattr: "REMOVEXATTR", FuseOpFlush: "FLUSH", FuseOpInit: "INIT",
	FuseOpOpendir: "OPENDIR", FuseOpReaddir: "READDIR", FuseOpReleasedir: "RELEASEDIR",
	FuseOpFsyncdir: "FSYNCDIR", FuseOpGetlk: "GETLK", FuseOpSetlk: "SETLK",
	FuseOpSetlkw: "SETLKW", FuseOpAccess: "ACCESS", FuseOpCreate: "CREATE",
	FuseOpInterrupt: "INTERRUPT", FuseOpBmap: "BMAP", FuseOpDestroy: "DESTROY",
	FuseOpIoctl: "IOCTL", FuseOpPoll: "POLL", FuseOpNotifyReply: "NOTIFY_REPLY",
	FuseOpBatchForget: "BATCH_FORGET", FuseOpFallocate: "FALLOCATE",
	FuseOpReaddirplus: "READDIRPLUS", FuseOpRename2: "RENAME2", FuseOpLseek: "LSEEK",
	FuseOpCopyFileRange: "COPY_FILE_RANGE", FuseOpSetupmapping: "SETUPMAPPING",
	FuseOpRemovemapping: "REMOVEMAPPING", FuseOpSyncfs: "SYNCFS", FuseOpTmpfile: "TMPFILE",
	FuseOpStatx: "STATX", FuseOpCopyFileRange64: "COPY_FILE_RANGE_64",
}

// Known reports whether the kernel defines op.
func (op FuseOpcode) Known() bool {
	return op == FuseOpCuseInit || int(op) < len(fuseOpNames) && fuseOpNames[op] != ""
}

// String returns the kernel's name of op without FUSE_ ("READ"), or
// "OP_<n>" when the kernel defines no opcode n. Known opcodes cost no
// allocation.
func (op FuseOpcode) String() string {
	switch {
	case int(op) < len(fuseOpNames) && fuseOpNames[op] != "":
		return fuseOpNames[op]
	case op == FuseOpCuseInit:
		return "CUSE_INIT"
	}
	return "OP_" + strconv.FormatUint(uint64(op), 10)
}
