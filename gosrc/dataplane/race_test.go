//go:build race

package dataplane

// raceEnabled: under -race a client's loop stalls for milliseconds at a
// time (its goroutine waits for a P the race runtime's GC holds), so the
// poll-mode timing checks only log.
const raceEnabled = true
