#!/usr/bin/env bash
# zcfuse demo: mount a temporary /dev/shm directory through zcfuse, use it,
# show the server's counters, unmount. Run it with `make demo` (as root).
#
#   ZCFUSE_BIN   the zcfuse binary (default: build bin/zcfuse)
#   TRANSPORT    auto (default), uring or classic
#
# The mount is taken down and the temporary directories removed on every
# exit path, including errors and Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "the demo mounts a file system (mount(2) on /dev/fuse) and needs root: sudo make demo"
[ -c /dev/fuse ] || modprobe fuse 2>/dev/null || true
[ -c /dev/fuse ] || die "/dev/fuse is missing (no FUSE in this kernel?)"

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
BIN=${ZCFUSE_BIN:-}
if [ -z "$BIN" ]; then
	"$GO" build -o bin/zcfuse ./gosrc/cmd/zcfuse
	BIN=bin/zcfuse
fi
BIN=$(realpath "$BIN")
TRANSPORT=${TRANSPORT:-auto}

TMP=$(mktemp -d /dev/shm/zcfuse-demo.XXXXXX)
BACKING=$TMP/backing
MNT=$TMP/mnt
LOG=$TMP/server.log
mkdir -p "$BACKING" "$MNT"
PID=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$PID" 2>/dev/null; then
			echo "demo: server $PID did not stop within 10s; SIGKILL" >&2
			kill -KILL "$PID" 2>/dev/null || true
		fi
		wait "$PID" 2>/dev/null || true
	fi
	if grep -qs " $MNT " /proc/self/mountinfo; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" || true
	fi
	if grep -qs " $TMP" /proc/self/mountinfo; then
		echo "demo: leaving $TMP in place, something is still mounted under it" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "zcfuse mount --transport $TRANSPORT $BACKING $MNT"
URING=/sys/module/fuse/parameters/enable_uring
if [ "$(cat $URING 2>/dev/null)" != Y ]; then
	echo "note: $URING is $(cat $URING 2>/dev/null || echo 'absent'): the kernel will not offer"
	echo "      FUSE-over-io_uring, so zcfuse uses the classic /dev/fuse transport."
	echo "      To use io_uring: echo Y > $URING (kernel 6.14+), then run the demo again."
fi
"$BIN" mount --transport "$TRANSPORT" "$BACKING" "$MNT" 2>"$LOG" &
PID=$!
for _ in $(seq 200); do
	grep -q '^zcfuse: ready' "$LOG" && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
cat "$LOG"
grep -q '^zcfuse: ready' "$LOG" || die "the mount did not become ready"
case $(grep '^zcfuse: ready' "$LOG") in
*transport=uring*) echo "-> requests travel over FUSE-over-io_uring (one queue per CPU)" ;;
*transport=classic*) echo "-> requests travel over the classic /dev/fuse transport (reason above)" ;;
esac

say "write and read files through the mount"
echo "hello from zcfuse" >"$MNT/hello.txt"
mkdir "$MNT/dir"
seq 1 100000 >"$MNT/dir/numbers.txt"
echo "\$ cat $MNT/hello.txt"
cat "$MNT/hello.txt"
echo "\$ wc -l $MNT/dir/numbers.txt"
wc -l "$MNT/dir/numbers.txt"
echo "\$ ls -lR $BACKING   # the same files, in the backing directory"
ls -lR "$BACKING"
cmp "$MNT/dir/numbers.txt" "$BACKING/dir/numbers.txt" && echo "backing copy matches"

say "throughput (O_DIRECT, 1 MiB blocks, 512 MiB, tmpfs backing)"
echo "\$ dd if=/dev/zero of=$MNT/big bs=1M count=512 oflag=direct"
dd if=/dev/zero of="$MNT/big" bs=1M count=512 oflag=direct 2>&1 | tail -n 1
echo "\$ dd if=$MNT/big of=/dev/null bs=1M iflag=direct"
dd if="$MNT/big" of=/dev/null bs=1M iflag=direct 2>&1 | tail -n 1
if command -v fio >/dev/null 2>&1; then
	echo "\$ fio 4 KiB random reads, O_DIRECT, queue depth 1, 3 s"
	fio --name=randread --filename="$MNT/big" --rw=randread --bs=4k --direct=1 \
		--ioengine=psync --runtime=3 --time_based --size=512m 2>&1 |
		grep -E '^\s+read: IOPS|clat \(usec\): min' | sed 's/^ */  /'
else
	echo "(fio not installed: make deps installs it; skipping the 4 KiB random-read run)"
fi

say "the zero-copy path: a client shares an arena and moves data by reference"
echo "A 256 MiB file copied within the mount, first by dd (every byte through FUSE"
echo "READ and WRITE requests; cp would ask the server for one copy_file_range"
echo "instead), then by zcfuse cp (a zero-copy client: the server"
echo "moves the bytes between the backing files and the client's shared arena"
echo "with io_uring; no FUSE request carries them)."
head -c $((256 << 20)) /dev/urandom >"$BACKING/random.bin"
echo "\$ dd if=$MNT/random.bin of=$MNT/copy-posix.bin bs=1M"
start=$(date +%s%N)
dd if="$MNT/random.bin" of="$MNT/copy-posix.bin" bs=1M status=none
end=$(date +%s%N)
awk -v ns=$((end - start)) 'BEGIN { printf "copied 268435456 bytes in %.1f ms: %.2f GB/s\n", ns / 1e6, 268435456 / ns }'
echo "\$ zcfuse cp $MNT/random.bin $MNT/copy-zc.bin"
"$BIN" cp "$MNT/random.bin" "$MNT/copy-zc.bin"
cmp "$BACKING/random.bin" "$BACKING/copy-zc.bin" && echo "the zero-copy copy matches the original"

say "zcfuse stats $MNT"
"$BIN" stats "$MNT"

say "unmount (SIGTERM to the server)"
kill -TERM "$PID"
wait "$PID"
echo "server exited with status $?"
tail -n 1 "$LOG"
PID=
grep -qs " $MNT " /proc/self/mountinfo && die "$MNT is still mounted"
echo "done; removing $TMP"
