package fusering

import "sync/atomic"

// Channel names where a request arrived.
const (
	ChannelRing = "ring" // FUSE-over-io_uring entries
	ChannelDev  = "dev"  // read(2) from /dev/fuse
)

// Stats is a snapshot of a connection's counters.
type Stats struct {
	Transport      string                       `json:"transport"`
	FallbackReason string                       `json:"fallback_reason,omitempty"`
	Queues         int                          `json:"queues"`
	QueueDepth     int                          `json:"queue_depth"`
	Requests       map[string]map[string]uint64 `json:"requests"`
	BytesRead      uint64                       `json:"bytes_read"`
	BytesWritten   uint64                       `json:"bytes_written"`
	// Errors counts error replies other than ENOENT, ENODATA and ENOSYS,
	// which answer ordinary questions (no such name, attribute or
	// operation).
	Errors uint64 `json:"errors"`
	// FastReads counts READs a ring thread served with a plain pread on
	// the backing fd, without the ProtocolServer (included in Requests).
	FastReads uint64 `json:"fast_reads"`
	// RingOps and DevOps are the per-opcode counts behind Requests,
	// indexed by FUSE opcode (slot 0: opcodes >= 64).
	RingOps [numOps]uint64 `json:"-"`
	DevOps  [numOps]uint64 `json:"-"`
}

// NumOps is the number of per-opcode counters (RingOps, DevOps).
const NumOps = numOps

// counters are updated on the request path: atomics only.
type counters struct {
	ops          [2][numOps]atomic.Uint64 // [channel][opcode]
	bytesRead    atomic.Uint64
	bytesWritten atomic.Uint64
	errors       atomic.Uint64
	fastReads    atomic.Uint64
}

const (
	chanRing = 0
	chanDev  = 1
)

func (c *counters) snapshot(s *Stats) {
	s.Requests = map[string]map[string]uint64{ChannelRing: {}, ChannelDev: {}}
	for ch, name := range []string{ChannelRing, ChannelDev} {
		raw := &s.RingOps
		if ch == chanDev {
			raw = &s.DevOps
		}
		for op := range numOps {
			if v := c.ops[ch][op].Load(); v != 0 {
				raw[op] = v
				s.Requests[name][OpName(uint32(op))] += v
			}
		}
	}
	s.BytesRead = c.bytesRead.Load()
	s.BytesWritten = c.bytesWritten.Load()
	s.Errors = c.errors.Load()
	s.FastReads = c.fastReads.Load()
}
