#!/bin/sh
# example_serve.sh once|signal SERVE - runs examples/c/serve as built here.
#  once:   `serve --once` with no directories: it makes and removes its
#          own under /dev/shm, does I/O through the mount, prints the
#          stats and exits 0.
#  signal: `serve BACKING MOUNTPOINT` serves until SIGTERM: files written
#          through the mount land in BACKING, and SIGTERM unmounts and
#          exits 0 with the stats printed.
. "$(dirname "$0")/common.sh"
mode=$1 serve=$2
require_mount
dir=$(scratch)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "cleanup: serve ($pid) still running; SIGKILL"
		kill -KILL "$pid"
		wait "$pid"
	fi
	# serve --once's own directories, if it died before removing them
	own=$(sed -n 's/^serving .* on \(.*\), transport.*/\1/p' "$dir/out" 2>/dev/null)
	case $own in
	/dev/shm/zcfuse-serve-*/mnt)
		if is_mounted "$own"; then
			echo "cleanup: $own is still mounted; umount -l"
			umount -l "$own"
		fi
		rm -rf "${own%/mnt}"
		;;
	esac
	cleanup_scratch "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

case $mode in
once)
	timeout 60 "$serve" --once >"$dir/out" 2>&1
	rc=$?
	cat "$dir/out"
	[ $rc = 0 ] || fail "serve --once exited $rc"
	grep -q '^wrote and read [0-9]* bytes' "$dir/out" || fail "no I/O reported"
	grep -q '^stats: READ [1-9]' "$dir/out" || fail "no READ in the stats"
	own=$(sed -n 's/^serving .* on \(.*\), transport.*/\1/p' "$dir/out")
	[ -n "$own" ] || fail "no 'serving ... on MOUNTPOINT' line"
	[ ! -e "$(dirname "$own")" ] || fail "serve left $(dirname "$own") behind"
	;;
signal)
	mkdir "$dir/backing" "$dir/mnt"
	"$serve" "$dir/backing" "$dir/mnt" >"$dir/out" 2>&1 &
	pid=$!
	i=0
	until grep -q '^serving' "$dir/out"; do
		kill -0 "$pid" 2>/dev/null || { cat "$dir/out"; fail "serve exited before serving"; }
		i=$((i + 1))
		[ $i -lt 200 ] || fail "serve not serving after 20 s"
		sleep 0.1
	done
	is_mounted "$dir/mnt" || fail "$dir/mnt not mounted while serve runs"
	echo "through the mount" >"$dir/mnt/f" || fail "write through the mount"
	[ "$(cat "$dir/backing/f")" = "through the mount" ] || fail "backing file differs"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	cat "$dir/out"
	[ $rc = 0 ] || fail "serve exited $rc after SIGTERM, want 0"
	grep -q '^stats: ' "$dir/out" || fail "no stats printed after SIGTERM"
	! is_mounted "$dir/mnt" || fail "$dir/mnt still mounted after serve exited"
	;;
*)
	fail "usage: example_serve.sh once|signal SERVE"
	;;
esac
echo "PASS $name $mode"
