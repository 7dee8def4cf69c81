# common.sh - what the C tests' shell scripts share; sourced, not run.
# Exit codes as in the C tests: 0 pass, 1 fail, 77 skip (reason printed).

name=$(basename "$0" .sh)

fail() {
	echo "FAIL $name: $*"
	exit 1
}

# skip WHY: a missing prerequisite; with CI set, a failure (as in the Go tests).
skip() {
	echo "SKIP $name: $*"
	if [ -n "${CI:-}" ]; then
		echo "FAIL $name: CI is set, so a missing prerequisite is a failure"
		exit 1
	fi
	exit 77
}

need_tool() {
	command -v "$1" >/dev/null 2>&1 || skip "$1 not found ($2)"
}

require_mount() {
	[ "$(id -u)" = 0 ] || skip "not root: mounting a FUSE file system needs mount(2) on /dev/fuse"
	[ -c /dev/fuse ] || skip "no /dev/fuse"
}

# is_mounted PATH: whether PATH is a mount point (mountinfo field 5).
is_mounted() {
	awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# scratch: a fresh 0755 directory in /dev/shm named like the C tests' ones,
# so scratch_cleanup.sh sweeps it should this script die; remove it with
# cleanup_scratch.
scratch() {
	d=$(mktemp -d "/dev/shm/zcfuse-ctest-$$-XXXXXX") || fail "mktemp"
	chmod 0755 "$d"
	echo "$d"
}

# cleanup_scratch DIR: lazily unmount whatever is mounted under DIR (a
# failure: the test should have stopped its server), then remove DIR.
cleanup_scratch() {
	[ -n "$1" ] && [ -d "$1" ] || return 0
	left=$(awk -v p="$1/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo)
	for m in $left; do
		echo "cleanup: $m is still mounted; umount -l"
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$1"
	[ -z "$left" ]
}
