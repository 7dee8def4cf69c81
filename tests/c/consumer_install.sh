#!/bin/sh
# consumer_install.sh SOURCE_DIR PREFIX - `make install PREFIX=...` into
# an empty prefix (ctest's fixture for the consumer tests) puts there the
# library with its SONAME links, the header, zcfuse.pc and the CMake
# package config, and pkg-config reports the header's version.
. "$(dirname "$0")/common.sh"
src=$1 prefix=$2
need_tool make "make install"
rm -rf "$prefix"
make --no-print-directory -C "$src" install PREFIX="$prefix" >"$prefix.log" 2>&1 ||
	{ cat "$prefix.log"; fail "make install PREFIX=$prefix failed"; }
v() { sed -n "s/^#define ZCFUSE_VERSION_$1 \([0-9]*\)/\1/p" "$src/include/zcfuse.h"; }
version=$(v MAJOR).$(v MINOR).$(v PATCH)
lib=$prefix/lib
[ -f "$lib/libzcfuse.so.$version" ] || fail "no $lib/libzcfuse.so.$version"
[ "$(readlink "$lib/libzcfuse.so.$(v MAJOR)")" = "libzcfuse.so.$version" ] || fail "bad libzcfuse.so.$(v MAJOR) link"
[ "$(readlink "$lib/libzcfuse.so")" = "libzcfuse.so.$(v MAJOR)" ] || fail "bad libzcfuse.so link"
cmp -s "$src/include/zcfuse.h" "$prefix/include/zcfuse.h" || fail "installed header differs"
for f in pkgconfig/zcfuse.pc cmake/zcfuse/zcfuseConfig.cmake cmake/zcfuse/zcfuseConfigVersion.cmake; do
	[ -f "$lib/$f" ] || fail "no $lib/$f"
done
if command -v pkg-config >/dev/null 2>&1; then
	got=$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --modversion zcfuse)
	[ "$got" = "$version" ] || fail "pkg-config --modversion zcfuse is '$got', want $version"
	cflags=$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --cflags zcfuse | sed 's/ *$//')
	[ "$cflags" = "-I$prefix/include" ] || fail "pkg-config --cflags zcfuse is '$cflags'"
fi
echo "PASS $name: zcfuse $version installed in $prefix"
