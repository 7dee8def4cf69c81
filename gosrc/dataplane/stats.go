package dataplane

import "sync/atomic"

// RingStats are the data plane's counters: its tables, and the ring path
// (zero-copy ops from sessions' op queues; not to be confused with the
// FUSE ring transport). The JSON names are part of the server's stats.
type RingStats struct {
	// FixedSlotsUsed are the occupied slots of the fixed-buffer table.
	FixedSlotsUsed uint64 `json:"fixed_slots_used"`
	// RegisteredFiles are attached files in the workers' registered-file
	// tables (the rest are served by their fds).
	RegisteredFiles uint64 `json:"registered_files"`
	// ZCOps are the ops completed, ZCErrors those that failed.
	ZCOps    uint64 `json:"zc_ops"`
	ZCErrors uint64 `json:"zc_errors"`
	// ZCReadBytes and ZCWriteBytes are the bytes ops moved between arenas
	// and backing files.
	ZCReadBytes  uint64 `json:"zc_read_bytes"`
	ZCWriteBytes uint64 `json:"zc_write_bytes"`
	// ZeroCopyBytes moved without a copy in user space; CopiedBytes were
	// copied by the server (a source's private copy for its hooks).
	ZeroCopyBytes uint64 `json:"zero_copy_bytes"`
	CopiedBytes   uint64 `json:"copied_bytes"`
	// QueueHighWater is the most ops one queue had in flight.
	QueueHighWater uint64 `json:"queue_high_water"`
	// HandedOffInvalidations are ring writes whose cache invalidation and
	// completion a busy worker left to the invalidation goroutine.
	HandedOffInvalidations uint64 `json:"handed_off_invalidations"`
	// QueueBackoffs counts the times a queue was throttled for waking
	// its workers with nothing to do: for doorbells that brought nothing
	// (such doorbells then wait for the back-off's end), or for poll-mode
	// spins past its allowance that found nothing. Meanwhile its
	// poll-mode requests are ignored.
	QueueBackoffs uint64 `json:"queue_backoffs"`
	// Workers are the data-plane threads.
	Workers int `json:"workers"`
}

// counters are updated by the workers: atomics only.
type counters struct {
	ops, errors           atomic.Uint64
	readBytes, writeBytes atomic.Uint64
	zeroCopyBytes         atomic.Uint64
	copiedBytes           atomic.Uint64
	highWater             atomic.Uint64
	handedOff             atomic.Uint64
	backoffs              atomic.Uint64
}

// Stats returns a snapshot of the counters; it works after Close too.
func (e *Executor) Stats() RingStats {
	c := &e.stats
	return RingStats{
		FixedSlotsUsed:         uint64(e.bufs.used()),
		RegisteredFiles:        uint64(e.files.used()),
		ZCOps:                  c.ops.Load(),
		ZCErrors:               c.errors.Load(),
		ZCReadBytes:            c.readBytes.Load(),
		ZCWriteBytes:           c.writeBytes.Load(),
		ZeroCopyBytes:          c.zeroCopyBytes.Load(),
		CopiedBytes:            c.copiedBytes.Load(),
		QueueHighWater:         c.highWater.Load(),
		HandedOffInvalidations: c.handedOff.Load(),
		QueueBackoffs:          c.backoffs.Load(),
		Workers:                len(e.workers),
	}
}
