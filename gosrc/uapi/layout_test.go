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
		{"fuse_uring_req_header", unsafe.Sizeof(FuseURingReqHeader{}), 288},
		{"fuse_uring_ent_in_out", unsafe.Sizeof(FuseURingEntInOut{}), 32},
		{"fuse_in_header", unsafe.Sizeof(FuseInHeader{}), 40},
		{"fuse_out_header", unsafe.Sizeof(FuseOutHeader{}), 16},
		{"fuse_init_in", unsafe.Sizeof(FuseInitIn{}), 64},
		{"fuse_read_in", unsafe.Sizeof(FuseReadIn{}), 40},
		{"fuse_write_out", unsafe.Sizeof(FuseWriteOut{}), 8},
		{"fuse_notify_inval_inode_out", unsafe.Sizeof(FuseNotifyInvalInodeOut{}), 24},
		{"fuse_notify_inval_entry_out", unsafe.Sizeof(FuseNotifyInvalEntryOut{}), 16},
		{"fuse_notify_delete_out", unsafe.Sizeof(FuseNotifyDeleteOut{}), 24},
		{"fuse_notify_store_out", unsafe.Sizeof(FuseNotifyStoreOut{}), 24},
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

}

// off is one field's offset: ours and the kernel's.
type off struct {
	field string
	got   uintptr
	want  uintptr
}

func offsets(t *testing.T, strct string, offs ...off) {
	t.Helper()
	for _, o := range offs {
		eq(t, o.want, o.got, "offsetof(%s, %s)", strct, o.field)
	}
}

func TestFuseOffsets(t *testing.T) {
	// fuse_uring_req_header: in_out[128], op_in[128], then
	// fuse_uring_ent_in_out {flags, commit_id, payload_sz, padding, reserved}
	// (include/uapi/linux/fuse.h since 6.14, protocol 7.42).
	var rh FuseURingReqHeader
	offsets(t, "fuse_uring_req_header",
		off{"in_out", unsafe.Offsetof(rh.InOut), 0},
		off{"op_in", unsafe.Offsetof(rh.OpIn), 128},
		off{"ring_ent_in_out", unsafe.Offsetof(rh.Ent), 256})
	var ent FuseURingEntInOut
	offsets(t, "fuse_uring_ent_in_out",
		off{"commit_id", unsafe.Offsetof(ent.CommitID), 8},
		off{"payload_sz", unsafe.Offsetof(ent.PayloadSz), 16},
		off{"padding", unsafe.Offsetof(ent.Padding), 20},
		off{"reserved", unsafe.Offsetof(ent.Reserved), 24})
	eq(t, unsafe.Offsetof(rh.InOut), uintptr(FuseURingInOutOff), "FuseURingInOutOff")
	eq(t, unsafe.Offsetof(rh.OpIn), uintptr(FuseURingOpInOff), "FuseURingOpInOff")
	eq(t, unsafe.Offsetof(rh.Ent), uintptr(FuseURingEntOff), "FuseURingEntOff")
	eq(t, unsafe.Offsetof(rh.Ent)+unsafe.Offsetof(ent.CommitID), uintptr(FuseURingCommitIDOff), "FuseURingCommitIDOff")
	eq(t, unsafe.Offsetof(rh.Ent)+unsafe.Offsetof(ent.PayloadSz), uintptr(FuseURingPayloadSzOff), "FuseURingPayloadSzOff")
	eq(t, unsafe.Sizeof(rh), uintptr(FuseURingHeaderSize), "FuseURingHeaderSize")
	// Both headers fit in in_out; the widest first argument the transport
	// reads in place (fuse_read_in) fits in op_in.
	eq(t, true, unsafe.Sizeof(FuseInHeader{}) <= unsafe.Sizeof(rh.InOut), "fuse_in_header fits in_out")
	eq(t, true, unsafe.Sizeof(FuseReadIn{}) <= unsafe.Sizeof(rh.OpIn), "fuse_read_in fits op_in")

	var in FuseInHeader
	offsets(t, "fuse_in_header",
		off{"opcode", unsafe.Offsetof(in.Opcode), 4},
		off{"unique", unsafe.Offsetof(in.Unique), 8},
		off{"nodeid", unsafe.Offsetof(in.NodeID), 16},
		off{"uid", unsafe.Offsetof(in.UID), 24},
		off{"gid", unsafe.Offsetof(in.GID), 28},
		off{"pid", unsafe.Offsetof(in.PID), 32},
		off{"total_extlen", unsafe.Offsetof(in.TotalExtlen), 36},
		off{"padding", unsafe.Offsetof(in.Padding), 38})
	eq(t, unsafe.Sizeof(in), uintptr(FuseInHeaderSize), "FuseInHeaderSize")
	var out FuseOutHeader
	offsets(t, "fuse_out_header",
		off{"error", unsafe.Offsetof(out.Error), 4},
		off{"unique", unsafe.Offsetof(out.Unique), 8})
	eq(t, unsafe.Sizeof(out), uintptr(FuseOutHeaderSize), "FuseOutHeaderSize")

	var ii FuseInitIn
	offsets(t, "fuse_init_in",
		off{"minor", unsafe.Offsetof(ii.Minor), 4},
		off{"max_readahead", unsafe.Offsetof(ii.MaxReadahead), 8},
		off{"flags", unsafe.Offsetof(ii.Flags), 12},
		off{"flags2", unsafe.Offsetof(ii.Flags2), 16},
		off{"unused", unsafe.Offsetof(ii.Unused), 20})
	var ri FuseReadIn
	offsets(t, "fuse_read_in",
		off{"offset", unsafe.Offsetof(ri.Offset), 8},
		off{"size", unsafe.Offsetof(ri.Size), 16},
		off{"read_flags", unsafe.Offsetof(ri.ReadFlags), 20},
		off{"lock_owner", unsafe.Offsetof(ri.LockOwner), 24},
		off{"flags", unsafe.Offsetof(ri.Flags), 32},
		off{"padding", unsafe.Offsetof(ri.Padding), 36})
	var wo FuseWriteOut
	offsets(t, "fuse_write_out", off{"padding", unsafe.Offsetof(wo.Padding), 4})

	var ino FuseNotifyInvalInodeOut
	offsets(t, "fuse_notify_inval_inode_out",
		off{"off", unsafe.Offsetof(ino.Off), 8},
		off{"len", unsafe.Offsetof(ino.Len), 16})
	var ent2 FuseNotifyInvalEntryOut
	offsets(t, "fuse_notify_inval_entry_out",
		off{"namelen", unsafe.Offsetof(ent2.Namelen), 8},
		off{"flags", unsafe.Offsetof(ent2.Flags), 12})
	var del FuseNotifyDeleteOut
	offsets(t, "fuse_notify_delete_out",
		off{"child", unsafe.Offsetof(del.Child), 8},
		off{"namelen", unsafe.Offsetof(del.Namelen), 16},
		off{"padding", unsafe.Offsetof(del.Padding), 20})
	var st FuseNotifyStoreOut
	offsets(t, "fuse_notify_store_out",
		off{"offset", unsafe.Offsetof(st.Offset), 8},
		off{"size", unsafe.Offsetof(st.Size), 16},
		off{"padding", unsafe.Offsetof(st.Padding), 20})
}

func TestFuseOpcodes(t *testing.T) {
	// enum fuse_opcode: every value, and its name without FUSE_. STATX
	// (7.39) and COPY_FILE_RANGE_64 (7.45) are newer than some installed
	// headers; go-fuse v2.12.1 has them too.
	want := map[FuseOpcode]string{
		1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK",
		6: "SYMLINK", 8: "MKNOD", 9: "MKDIR", 10: "UNLINK", 11: "RMDIR",
		12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ", 16: "WRITE",
		17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR",
		22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH",
		26: "INIT", 27: "OPENDIR", 28: "READDIR", 29: "RELEASEDIR",
		30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW", 34: "ACCESS",
		35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL",
		40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE",
		44: "READDIRPLUS", 45: "RENAME2", 46: "LSEEK", 47: "COPY_FILE_RANGE",
		48: "SETUPMAPPING", 49: "REMOVEMAPPING", 50: "SYNCFS", 51: "TMPFILE",
		52: "STATX", 53: "COPY_FILE_RANGE_64", 4096: "CUSE_INIT",
	}
	for op := range FuseOpcode(5000) {
		name, ok := want[op]
		eq(t, ok, op.Known(), "Known(%d)", op)
		if !ok {
			name = fmt.Sprintf("OP_%d", op)
		}
		eq(t, name, op.String(), "opcode %d", op)
	}
	for op, name := range map[FuseOpcode]string{
		FuseOpLookup: "LOOKUP", FuseOpRead: "READ", FuseOpWrite: "WRITE", FuseOpInit: "INIT",
		FuseOpInterrupt: "INTERRUPT", FuseOpGetxattr: "GETXATTR", FuseOpBatchForget: "BATCH_FORGET",
		FuseOpCopyFileRange64: "COPY_FILE_RANGE_64", FuseOpCuseInit: "CUSE_INIT",
	} {
		eq(t, name, op.String(), "constant %d", op)
	}
	eq(t, "OP_4294967295", FuseOpcode(1<<32-1).String())
	if n := testing.AllocsPerRun(100, func() { _ = FuseOpRead.String() }); n != 0 {
		t.Errorf("the name of a known opcode allocates (%v)", n)
	}
}

func TestFuseNotifyCodes(t *testing.T) {
	// enum fuse_notify_code.
	eq(t, FuseNotifyCode(1), FuseNotifyPoll)
	eq(t, FuseNotifyCode(2), FuseNotifyInvalInode)
	eq(t, FuseNotifyCode(3), FuseNotifyInvalEntry)
	eq(t, FuseNotifyCode(4), FuseNotifyStore)
	eq(t, FuseNotifyCode(5), FuseNotifyRetrieve)
	eq(t, FuseNotifyCode(6), FuseNotifyDelete)
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
