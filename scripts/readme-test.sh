#!/usr/bin/env bash
# Runs the README's code blocks between <!-- readme-test:begin --> and
# <!-- readme-test:end --> in a fresh clone of this repository's HEAD, in
# one bash (set -e), as a reader would paste them. The blocks use /tmp/zc;
# it is cleaned before and after (the mount taken down even on failure).
#
#   KEEP=1   leave the clone (its path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "readme-test: needs root (the blocks mount a file system)"; exit 1; }

clone=$(mktemp -d /tmp/zcfuse-readme.XXXXXX)
cleanup() {
	local rc=$?
	if [ -f /tmp/zc/server.pid ]; then kill "$(cat /tmp/zc/server.pid)" 2>/dev/null || true; fi
	for _ in $(seq 50); do grep -qs " /tmp/zc/mnt " /proc/self/mountinfo || break; sleep 0.1; done
	grep -qs " /tmp/zc/mnt " /proc/self/mountinfo && umount -l /tmp/zc/mnt
	rm -rf /tmp/zc
	if [ -z "${KEEP:-}" ]; then rm -rf "$clone"; else echo "readme-test: clone kept in $clone"; fi
	exit "$rc"
}
trap cleanup EXIT
if grep -qs " /tmp/zc/mnt " /proc/self/mountinfo; then umount -l /tmp/zc/mnt; fi
rm -rf /tmp/zc

git clone -q . "$clone"
# The blocks from the README as committed: uncommitted edits are not tested.
awk '/<!-- readme-test:begin -->/ { on = 1; next }
     /<!-- readme-test:end -->/ { on = 0 }
     on && /^```sh$/ { code = 1; next }
     on && /^```$/ { code = 0; next }
     on && code { print }' "$clone/README.md" >"$clone/.readme-blocks.sh"
lines=$(wc -l <"$clone/.readme-blocks.sh")
[ "$lines" -gt 5 ] || { echo "readme-test: found only $lines lines of code blocks"; exit 1; }
echo "readme-test: running $lines lines from README.md in $clone"
cd "$clone"
PATH="$PATH:/usr/local/go/bin" bash -euo pipefail -x .readme-blocks.sh
echo "readme-test: every block ran"
