package uapi

// Setup flags (io_uring_params.flags).
const (
	SetupIOPoll       = 1 << 0
	SetupSQPoll       = 1 << 1
	SetupSQAff        = 1 << 2
	SetupCQSize       = 1 << 3
	SetupClamp        = 1 << 4
	SetupSubmitAll    = 1 << 7
	SetupCoopTaskrun  = 1 << 8
	SetupTaskrunFlag  = 1 << 9
	SetupSQE128       = 1 << 10
	SetupCQE32        = 1 << 11
	SetupSingleIssuer = 1 << 12
	SetupDeferTaskrun = 1 << 13
)

// Feature flags (io_uring_params.features).
const (
	FeatSingleMmap = 1 << 0
	FeatNoDrop     = 1 << 1
	FeatExtArg     = 1 << 8
)

// Offsets for mmap(2) of the ring fd.
const (
	OffSQRing = 0
	OffCQRing = 0x8000000
	OffSQEs   = 0x10000000
)

// io_uring_enter(2) flags.
const (
	EnterGetEvents = 1 << 0
	EnterSQWakeup  = 1 << 1
	EnterSQWait    = 1 << 2
	EnterExtArg    = 1 << 3
)

// SQ ring flags (the kernel writes them in the SQ ring header).
const (
	SQNeedWakeup = 1 << 0
	SQCQOverflow = 1 << 1
	SQTaskrun    = 1 << 2
)

// Opcodes (io_uring_sqe.opcode).
const (
	OpNop         = 0
	OpReadv       = 1
	OpWritev      = 2
	OpFsync       = 3
	OpReadFixed   = 4
	OpWriteFixed  = 5
	OpPollAdd     = 6
	OpPollRemove  = 7
	OpTimeout     = 11
	OpAsyncCancel = 14
	OpRead        = 22
	OpWrite       = 23
	OpUringCmd    = 46
)

// SQE flags (io_uring_sqe.flags).
const (
	SQEFixedFile      = 1 << 0
	SQEIODrain        = 1 << 1
	SQEIOLink         = 1 << 2
	SQEIOHardlink     = 1 << 3
	SQEAsync          = 1 << 4
	SQECQESkipSuccess = 1 << 6
)

// io_uring_register(2) opcodes.
const (
	RegisterBuffers       = 0
	UnregisterBuffers     = 1
	RegisterFiles         = 2
	UnregisterFiles       = 3
	RegisterFilesUpdate   = 6
	RegisterProbe         = 8
	RegisterFiles2        = 13
	RegisterFilesUpdate2  = 14
	RegisterBuffers2      = 15
	RegisterBuffersUpdate = 16
)

// RsrcRegisterSparse asks RegisterBuffers2/RegisterFiles2 for an empty table.
const RsrcRegisterSparse = 1 << 0

// SQRingOffsets is struct io_sqring_offsets.
type SQRingOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Flags       uint32
	Dropped     uint32
	Array       uint32
	Resv1       uint32
	UserAddr    uint64
}

// CQRingOffsets is struct io_cqring_offsets.
type CQRingOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Overflow    uint32
	CQEs        uint32
	Flags       uint32
	Resv1       uint32
	UserAddr    uint64
}

// Params is struct io_uring_params.
type Params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFd         uint32
	Resv         [3]uint32
	SQOff        SQRingOffsets
	CQOff        CQRingOffsets
}

// SQE is the 64-byte struct io_uring_sqe. With SetupSQE128 each entry is
// followed by 64 more bytes that extend the URING_CMD command area.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	Off         uint64 // also addr2; for URING_CMD: cmd_op (low 32 bits)
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, poll32_events, fsync_flags, ...
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	FileIndex   uint32 // also splice_fd_in
	Addr3       uint64 // URING_CMD: the command area starts here
	Pad2        uint64
}

// SQECmdOffset is where the URING_CMD command area starts in an SQE.
const SQECmdOffset = 48

// CQE is the 16-byte struct io_uring_cqe (CQE32 rings add 16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// RsrcRegister is struct io_uring_rsrc_register.
type RsrcRegister struct {
	Nr    uint32
	Flags uint32
	Resv2 uint64
	Data  uint64
	Tags  uint64
}

// RsrcUpdate2 is struct io_uring_rsrc_update2.
type RsrcUpdate2 struct {
	Offset uint32
	Resv   uint32
	Data   uint64
	Tags   uint64
	Nr     uint32
	Resv2  uint32
}

// GeteventsArg is struct io_uring_getevents_arg (EnterExtArg).
type GeteventsArg struct {
	Sigmask     uint64
	SigmaskSz   uint32
	MinWaitUsec uint32
	Ts          uint64
}

// Timespec is struct __kernel_timespec.
type Timespec struct {
	Sec  int64
	Nsec int64
}
