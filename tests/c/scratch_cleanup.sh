#!/bin/sh
# scratch_cleanup.sh - ctest's cleanup fixture: removes the scratch
# directories (/dev/shm/zcfuse-ctest-PID-*) of test processes that no
# longer run, after lazily unmounting anything they left mounted, and
# says what it swept. A test that crashed or was killed by its timeout
# has already failed; this keeps it from leaving mounts behind. Fails only
# when it cannot clean up.
. "$(dirname "$0")/common.sh"
rc=0
for d in /dev/shm/zcfuse-ctest-*; do
	[ -d "$d" ] || continue
	pid=${d#/dev/shm/zcfuse-ctest-}
	pid=${pid%%-*}
	[ -d "/proc/$pid" ] && continue # still running: not ours to touch
	echo "sweeping $d (process $pid is gone)"
	cleanup_scratch "$d" || true
	[ -e "$d" ] && { echo "cannot remove $d"; rc=1; }
done
exit $rc
