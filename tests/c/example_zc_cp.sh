#!/bin/sh
# example_zc_cp.sh SERVE ZC_CP - runs examples/c/zc_cp, as built here,
# against a mount served by examples/c/serve. The sources are made in the
# backing directory, so that the only I/O through the mount is zc_cp's:
#  - a 20 MiB random file, 3 MiB + 1234 bytes (a short last chunk) and an
#    empty one, each copied from a subdirectory (zc_cp walks up to the
#    mount root itself) to the root, with 64 KiB and the default 1 MiB
#    chunks; the copies equal their sources (cmp on the backing files);
#  - DST outside the mount: refused, nothing created;
#  - after SIGTERM serve reports no FUSE READ or WRITE at all: the data
#    moved through the zero-copy path only.
. "$(dirname "$0")/common.sh"
serve=$1 zc_cp=$2
require_mount
dir=$(scratch)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "cleanup: serve ($pid) still running; SIGTERM"
		kill -TERM "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		wait "$pid"
	fi
	cleanup_scratch "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$dir/backing/a/b" "$dir/mnt"
head -c 20971520 /dev/urandom >"$dir/backing/a/b/big" || fail "make the source"
head -c 3146962 /dev/urandom >"$dir/backing/a/b/odd" || fail "make the source"
: >"$dir/backing/a/b/empty"
"$serve" "$dir/backing" "$dir/mnt" >"$dir/out" 2>&1 &
pid=$!
i=0
until grep -q '^serving' "$dir/out"; do
	kill -0 "$pid" 2>/dev/null || { cat "$dir/out"; fail "serve exited before serving"; }
	i=$((i + 1))
	[ $i -lt 200 ] || fail "serve not serving after 20 s"
	sleep 0.1
done

for f in big:1024 big:64 odd:1024 odd:64 empty:1024; do
	src=${f%:*} kib=${f#*:}
	timeout 60 "$zc_cp" -c "$kib" "$dir/mnt/a/b/$src" "$dir/mnt/$src.$kib" >"$dir/cp.out" 2>&1
	rc=$?
	cat "$dir/cp.out"
	[ $rc = 0 ] || fail "zc_cp $src (-c $kib) exited $rc"
	size=$(stat -c %s "$dir/backing/a/b/$src")
	grep -q "^zc_cp: copied $size bytes in .* MB/s)$" "$dir/cp.out" || fail "zc_cp did not report $size bytes"
	cmp "$dir/backing/a/b/$src" "$dir/backing/$src.$kib" || fail "the copy of $src (-c $kib) differs"
done

"$zc_cp" "$dir/mnt/a/b/odd" "$dir/outside" >"$dir/cp.out" 2>&1 && fail "zc_cp to outside the mount succeeded"
cat "$dir/cp.out"
grep -q 'is not on the zcfuse mount' "$dir/cp.out" || fail "no reason given for refusing DST"
[ ! -e "$dir/outside" ] || fail "a refused DST was created"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
cat "$dir/out"
[ $rc = 0 ] || fail "serve exited $rc after SIGTERM, want 0"
grep -q '^stats: READ 0 (0 bytes), WRITE 0 (0 bytes)' "$dir/out" ||
	fail "FUSE READ or WRITE requests served: the copies did not go zero-copy only"
! is_mounted "$dir/mnt" || fail "$dir/mnt still mounted after serve exited"
echo "PASS $name"
