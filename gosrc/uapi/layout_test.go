package uapi

import (
	"fmt"
	"testing"
	"unsafe"
)

// eq reports a mismatch between the kernel's value want and ours; msg
// is an optional format string and its arguments naming the value.
func eq[T comparable](t *testing.T, want, got T, msg ...any) {
	t.Helper()
	if got != want {
		what := "value"
		if len(msg) > 0 {
			what = fmt.Sprintf(msg[0].(string), msg[1:]...)
		}
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// The numbers below are the kernel's: sizeof and offsetof from
// include/uapi/linux/io_uring.h and include/uapi/linux/fuse.h, checked
// with a C compiler against the installed headers.

func TestStructSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"io_uring_params", unsafe.Sizeof(Params{}), 120},
		{"io_sqring_offsets", unsafe.Sizeof(SQRingOffsets{}), 40},
		{"io_cqring_offsets", unsafe.Sizeof(CQRingOffsets{}), 40},
		{"io_uring_sqe", unsafe.Sizeof(SQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(CQE{}), 16},
		{"io_uring_rsrc_register", unsafe.Sizeof(RsrcRegister{}), 32},
		{"io_uring_rsrc_update2", unsafe.Sizeof(RsrcUpdate2{}), 32},
		{"io_uring_getevents_arg", unsafe.Sizeof(GeteventsArg{}), 24},
		{"__kernel_timespec", unsafe.Sizeof(Timespec{}), 16},
		{"fuse_uring_cmd_req", unsafe.Sizeof(FuseURingCmdReq{}), 24},
		{"fuse_backing_map", unsafe.Sizeof(FuseBackingMap{}), 16},
	} {
		eq(t, c.want, c.got, "sizeof(struct %s)", c.name)
	}
}

func TestSQEOffsets(t *testing.T) {
	var s SQE
	for _, c := range []struct {
		field string
		got   uintptr
		want  uintptr
	}{
		{"opcode", unsafe.Offsetof(s.Opcode), 0},
		{"flags", unsafe.Offsetof(s.Flags), 1},
		{"ioprio", unsafe.Offsetof(s.IOPrio), 2},
		{"fd", unsafe.Offsetof(s.Fd), 4},
		{"off", unsafe.Offsetof(s.Off), 8},
		{"addr", unsafe.Offsetof(s.Addr), 16},
		{"len", unsafe.Offsetof(s.Len), 24},
		{"rw_flags", unsafe.Offsetof(s.OpFlags), 28},
		{"user_data", unsafe.Offsetof(s.UserData), 32},
		{"buf_index", unsafe.Offsetof(s.BufIndex), 40},
		{"personality", unsafe.Offsetof(s.Personality), 42},
		{"file_index", unsafe.Offsetof(s.FileIndex), 44},
		{"addr3", unsafe.Offsetof(s.Addr3), 48},
		{"__pad2", unsafe.Offsetof(s.Pad2), 56},
	} {
		eq(t, c.want, c.got, "offsetof(io_uring_sqe, %s)", c.field)
	}
	eq(t, unsafe.Offsetof(s.Addr3), uintptr(SQECmdOffset), "the URING_CMD area starts at addr3")
}

func TestParamsOffsets(t *testing.T) {
	var p Params
	eq(t, uintptr(20), unsafe.Offsetof(p.Features))
	eq(t, uintptr(24), unsafe.Offsetof(p.WQFd))
	eq(t, uintptr(40), unsafe.Offsetof(p.SQOff), "offsetof(io_uring_params, sq_off)")
	eq(t, uintptr(80), unsafe.Offsetof(p.CQOff), "offsetof(io_uring_params, cq_off)")

	var sq SQRingOffsets
	eq(t, uintptr(24), unsafe.Offsetof(sq.Array))
	eq(t, uintptr(32), unsafe.Offsetof(sq.UserAddr))
	var cq CQRingOffsets
	eq(t, uintptr(20), unsafe.Offsetof(cq.CQEs))
	eq(t, uintptr(32), unsafe.Offsetof(cq.UserAddr))
}

func TestOtherOffsets(t *testing.T) {
	var c CQE
	eq(t, uintptr(8), unsafe.Offsetof(c.Res))
	eq(t, uintptr(12), unsafe.Offsetof(c.Flags))

	var rr RsrcRegister
	eq(t, uintptr(16), unsafe.Offsetof(rr.Data))
	eq(t, uintptr(24), unsafe.Offsetof(rr.Tags))

	var up RsrcUpdate2
	eq(t, uintptr(8), unsafe.Offsetof(up.Data))
	eq(t, uintptr(16), unsafe.Offsetof(up.Tags))
	eq(t, uintptr(24), unsafe.Offsetof(up.Nr))

	var ga GeteventsArg
	eq(t, uintptr(8), unsafe.Offsetof(ga.SigmaskSz))
	eq(t, uintptr(12), unsafe.Offsetof(ga.MinWaitUsec))
	eq(t, uintptr(16), unsafe.Offsetof(ga.Ts))

	var fr FuseURingCmdReq
	eq(t, uintptr(8), unsafe.Offsetof(fr.CommitID))
	eq(t, uintptr(16), unsafe.Offsetof(fr.QID))

	var bm FuseBackingMap
	eq(t, uintptr(4), unsafe.Offsetof(bm.Flags))
	eq(t, uintptr(8), unsafe.Offsetof(bm.Padding))

	// fuse_uring_req_header: in_out[128], op_in[128], then
	// fuse_uring_ent_in_out {flags, commit_id, payload_sz, padding, reserved}.
	eq(t, FuseURingOpInOff, FuseURingInOutOff+128)
	eq(t, FuseURingEntOff, FuseURingOpInOff+128)
	eq(t, FuseURingCommitIDOff, FuseURingEntOff+8)
	eq(t, FuseURingPayloadSzOff, FuseURingEntOff+16)
	eq(t, FuseURingHeaderSize, FuseURingEntOff+32)
}

// iow is the kernel's _IOW(type, nr, size) on x86, arm64 and riscv:
// direction write (1) in bits 30-31, size in 16-29, type in 8-15, nr in 0-7.
func iow(typ, nr, size uintptr) uintptr {
	const iocWrite = 1
	return iocWrite<<30 | size<<16 | typ<<8 | nr
}

func TestFuseIoctlNumbers(t *testing.T) {
	const fuseDevIocMagic = 229
	eq(t, iow(fuseDevIocMagic, 1, unsafe.Sizeof(FuseBackingMap{})), uintptr(FuseDevIocBackingOpen),
		"FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1, struct fuse_backing_map)")
	eq(t, iow(fuseDevIocMagic, 2, unsafe.Sizeof(uint32(0))), uintptr(FuseDevIocBackingClose),
		"FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t)")
}

func TestConstants(t *testing.T) {
	// Spot checks of values whose drift would silently break a ring.
	eq(t, 46, OpUringCmd)
	eq(t, 22, OpRead)
	eq(t, 23, OpWrite)
	eq(t, 4, OpReadFixed)
	eq(t, 5, OpWriteFixed)
	eq(t, 15, RegisterBuffers2)
	eq(t, 16, RegisterBuffersUpdate)
	eq(t, 13, RegisterFiles2)
	eq(t, 14, RegisterFilesUpdate2)
	eq(t, 0x8000000, OffCQRing)
	eq(t, 0x10000000, OffSQEs)
	eq(t, 4096, SetupSingleIssuer)
	eq(t, 8192, SetupDeferTaskrun)
	eq(t, 256, FeatExtArg)
	eq(t, uint64(1)<<41, uint64(CapOverIOURing))
}
