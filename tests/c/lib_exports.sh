#!/bin/sh
# lib_exports.sh LIBRARY HEADER - the library exports exactly the
# functions HEADER declares, all zcfuse_* in the version node ZCFUSE_0,
# and nothing else: no Go runtime, no _cgo_* or crosscall helpers, none of
# the internal zcfusego_* exports or zcfusei_* helpers.
. "$(dirname "$0")/common.sh"
lib=$1 header=$2
need_tool nm "binutils"
syms=$(nm -D --defined-only "$lib" | awk '{ print $3 }') || fail "nm -D $lib"
stray=$(echo "$syms" | grep -v -e '^zcfuse_[a-z_]*@@ZCFUSE_0$' -e '^ZCFUSE_0$')
[ -z "$stray" ] || fail "exported beyond zcfuse_*@@ZCFUSE_0: $(echo $stray)"
exported=$(echo "$syms" | sed -n 's/@@ZCFUSE_0$//p' | sort)
# Declarations start at the beginning of a line; comments do not.
declared=$(grep -E '^[a-z]' "$header" | grep -oE 'zcfuse_[a-z_]+\(' | tr -d '(' | sort -u)
tmp=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
echo "$declared" >"$tmp/declared"
echo "$exported" >"$tmp/exported"
cmp -s "$tmp/declared" "$tmp/exported" ||
	fail "exports differ from the functions in $header (< declared only, > exported only):
$(diff "$tmp/declared" "$tmp/exported" | grep '^[<>]')"
echo "PASS $name: $(echo "$exported" | wc -l) functions, all in $header, nothing else exported"
