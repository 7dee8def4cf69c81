#!/usr/bin/env bash
# Unlinks N files through a zcfuse mount, one unlink(2) at a time, for each
# of two zcfuse binaries, interleaved, REPS times, and prints the median
# µs per unlink of each. The files are made directly in the backing
# directory, so each unlink is a LOOKUP, an UNLINK and a FORGET for the
# server. Needs root and FUSE-over-io_uring.
#
#   scripts/bench-unlink-loop.sh OLD_ZCFUSE NEW_ZCFUSE [N] [REPS]
set -euo pipefail
old=$1 new=$2 n=${3:-20000} reps=${4:-6}
dir=$(mktemp -d /dev/shm/zcfuse-unlink.XXXXXX)
trap 'umount -l "$dir/mnt" 2>/dev/null || true; rm -rf "$dir"' EXIT
one() { # BIN -> µs per unlink
	local bin=$1 b=$dir/backing m=$dir/mnt pid
	rm -rf "$b" && mkdir -p "$b" "$m"
	python3 -c "
for i in range($n): open('$b/f.%d' % i, 'w').close()"
	rm -f "$dir/log"
	"$bin" mount --transport uring "$b" "$m" >/dev/null 2>"$dir/log" &
	pid=$!
	for _ in $(seq 100); do grep -q ready "$dir/log" 2>/dev/null && break; sleep 0.1; done
	grep -q ready "$dir/log" || { cat "$dir/log" >&2; kill "$pid"; exit 1; }
	python3 -c "
import os, time
t = time.perf_counter()
for i in range($n): os.unlink('$m/f.%d' % i)
print('%.1f' % ((time.perf_counter() - t) / $n * 1e6))" || { kill "$pid"; wait "$pid"; exit 1; }
	kill "$pid"
	wait "$pid" || true
}
declare -a a b
for r in $(seq "$reps"); do
	a+=("$(one "$old")")
	b+=("$(one "$new")")
	echo "rep $r/$reps: old ${a[-1]} µs, new ${b[-1]} µs per unlink" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
echo "old $old: median $(median "${a[@]}") µs per unlink (${a[*]})"
echo "new $new: median $(median "${b[@]}") µs per unlink (${b[*]})"
