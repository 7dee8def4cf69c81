#!/bin/sh
# example_minimal_server.sh MINIMAL_SERVER - runs examples/c/minimal_server,
# as built here: it serves BACKING on MOUNTPOINT, a file written through
# the mount lands in BACKING and reads back, and SIGTERM unmounts and
# makes it exit 0.
. "$(dirname "$0")/common.sh"
server=$1
require_mount
dir=$(scratch)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "cleanup: minimal_server ($pid) still running; SIGKILL"
		kill -KILL "$pid"
		wait "$pid"
	fi
	cleanup_scratch "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir "$dir/backing" "$dir/mnt"
"$server" "$dir/backing" "$dir/mnt" >"$dir/out" 2>&1 &
pid=$!
i=0
until grep -q '^serving' "$dir/out"; do
	kill -0 "$pid" 2>/dev/null || { cat "$dir/out"; fail "minimal_server exited before serving"; }
	i=$((i + 1))
	[ $i -lt 200 ] || fail "minimal_server not serving after 20 s"
	sleep 0.1
done
is_mounted "$dir/mnt" || fail "$dir/mnt not mounted while minimal_server runs"
head -c 1048577 /dev/urandom >"$dir/data" || fail "make the data"
cp "$dir/data" "$dir/mnt/f" || fail "write through the mount"
cmp "$dir/data" "$dir/backing/f" || fail "the backing file differs from what was written"
cmp "$dir/data" "$dir/mnt/f" || fail "reading back through the mount differs"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
cat "$dir/out"
[ $rc = 0 ] || fail "minimal_server exited $rc after SIGTERM, want 0"
! is_mounted "$dir/mnt" || fail "$dir/mnt still mounted after minimal_server exited"
echo "PASS $name"
