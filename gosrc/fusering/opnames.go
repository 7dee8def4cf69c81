package fusering

import "github.com/zcfuse/zcfuse/gosrc/uapi"

// numOps bounds the per-opcode counters; larger opcodes count as OTHER
// (slot 0, which no FUSE opcode uses).
const numOps = 64

// OpName returns the kernel's name of a FUSE opcode without FUSE_
// ("READ"), as the stats name it: "OTHER" for 0 and for opcodes from
// NumOps up (they share counter slot 0), "OP_<n>" for a number below
// NumOps the kernel does not define. The table is uapi.FuseOpcode's.
func OpName(op uint32) string {
	if op == 0 || op >= numOps {
		return "OTHER"
	}
	return uapi.FuseOpcode(op).String()
}

// opSlot is op's per-opcode counter.
func opSlot(op uapi.FuseOpcode) uapi.FuseOpcode {
	if op >= numOps {
		return 0
	}
	return op
}
