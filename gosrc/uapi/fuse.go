package uapi

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

// Offsets in struct fuse_uring_req_header (288 bytes): in_out holds the
// fuse_in_header of a request and the fuse_out_header of its reply, op_in
// the first op-specific argument, and ring_ent_in_out the commit id and
// the payload size.
const (
	FuseURingInOutOff     = 0
	FuseURingOpInOff      = 128
	FuseURingEntOff       = 256
	FuseURingCommitIDOff  = 264
	FuseURingPayloadSzOff = 272
	FuseURingHeaderSize   = 288
)

// Sizes of the classic FUSE headers.
const (
	FuseInHeaderSize  = 40
	FuseOutHeaderSize = 16
)

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
