// Package tests holds zcfuse's CLI-level integration tests: they build the
// zcfuse binary once, mount backing directories on /dev/shm through it with
// both transports (FUSE-over-io_uring and classic /dev/fuse), and check data
// integrity (fio --verify=crc32c), liveness while a request blocks, faults
// (a killed server, a stop with requests in flight, bad options) and
// allow-other permissions. The server's own per-opcode counters, read with
// `zcfuse stats --json`, are the oracle that the chosen transport carried
// the data.
//
// The tests need root (mount(2) on /dev/fuse). Variants that need
// FUSE-over-io_uring skip when /sys/module/fuse/parameters/enable_uring is
// not Y, and fail instead when ZCFUSE_REQUIRE_URING=1 (as .ci/run sets).
// fio tests skip when fio is missing, and fail instead when CI is set.
// Set ZCFUSE_BIN to test a prebuilt binary instead of building one.
//
// Only TestUringDisabled flips the global enable_uring parameter (and
// restores it); nothing in this package runs in parallel.
package tests
