package fusering

// opNames are the kernel's FUSE opcode names without the FUSE_ prefix,
// indexed by opcode (include/uapi/linux/fuse.h).
var opNames = [...]string{
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
	52: "STATX", 53: "COPY_FILE_RANGE_64",
}

// numOps bounds the per-opcode counters; larger opcodes count as OTHER
// (slot 0, which no FUSE opcode uses).
const numOps = 64

// OpName returns the name of a FUSE opcode ("OP_<n>" when unknown).
func OpName(op uint32) string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	if op == 0 || op >= numOps {
		return "OTHER"
	}
	return "OP_" + itoa(int(op))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

const (
	opRead      = 15
	opWrite     = 16
	opInit      = 26
	opInterrupt = 36
)
