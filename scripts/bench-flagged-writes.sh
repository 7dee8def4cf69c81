#!/usr/bin/env bash
# Flagged writes, before and after: 4 KiB QD1 random writes (fio, psync,
# O_DIRECT, pinned to CPU 0) through an --allow-other uring mount by uid
# 65534, which the kernel marks FUSE_WRITE_KILL_SUIDGID on every WRITE
# (`zcfuse-bench` writes as root, which it does not). Alternates NEW and
# OLD builds REPS times and prints IOPS and GETXATTR per WRITE for each run.
#
#   scripts/bench-flagged-writes.sh NEW_ZCFUSE OLD_ZCFUSE [REPS]
#
# Needs root, fio and setpriv; uses /dev/shm/zcfuse-flagged-$$.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 NEW_ZCFUSE OLD_ZCFUSE [REPS]" >&2; exit 2; }
new=$1 old=$2 reps=${3:-5}
base=/dev/shm/zcfuse-flagged-$$
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	mountpoint -q "$base/m" && umount "$base/m"
	rm -rf "$base"
}
trap cleanup EXIT
mkdir -p "$base/b" "$base/m"
chmod 777 "$base/b"
head -c 64M /dev/urandom >"$base/b/f"
chown 65534:65534 "$base/b/f"
printf '%-4s %-8s %10s %18s\n' rep build write_iops getxattr_per_write
for rep in $(seq "$reps"); do
	for which in new old; do
		bin=$new
		[ $which = old ] && bin=$old
		"$bin" mount --transport uring --allow-other "$base/b" "$base/m" 2>"$base/log" &
		pid=$!
		for _ in $(seq 100); do grep -q ready "$base/log" && break; sleep 0.1; done
		iops=$(setpriv --reuid=65534 --regid=65534 --clear-groups fio --name=w --filename="$base/m/f" \
			--rw=randwrite --bs=4k --direct=1 --ioengine=psync --size=64M --runtime=3 --time_based \
			--cpus_allowed=0 --output-format=terse | awk -F';' '{print $49}')
		gx=$("$new" stats --json "$base/m" | python3 -c '
import json, sys
r = json.load(sys.stdin)["requests"]
g = sum(c.get("GETXATTR", 0) for c in r.values())
w = sum(c.get("WRITE", 0) for c in r.values())
print(f"{g / max(w, 1):.3f}")')
		printf '%-4s %-8s %10s %18s\n' "$rep" "$which" "$iops" "$gx"
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		pid=
	done
done
