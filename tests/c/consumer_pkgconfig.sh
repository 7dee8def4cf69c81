#!/bin/sh
# consumer_pkgconfig.sh PREFIX SERVE_C - examples/c/serve.c builds with
# nothing but `pkg-config --cflags --libs zcfuse` from the installed
# PREFIX (plus the warnings every example passes), links the library by
# its SONAME, and with LD_LIBRARY_PATH pointing at PREFIX mounts, serves
# and stops (serve --once).
. "$(dirname "$0")/common.sh"
prefix=$1 serve_c=$2
need_tool pkg-config "apt-get install pkg-config"
need_tool cc "a C compiler"
require_mount
dir=$(scratch)
trap 'cleanup_scratch "$dir"' EXIT
trap 'exit 1' INT TERM
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs zcfuse) || fail "pkg-config --cflags --libs zcfuse"
echo "cc -Wall -Wextra -Werror serve.c $flags"
# shellcheck disable=SC2086 # $flags is a list of words
cc -Wall -Wextra -Werror "$serve_c" $flags -o "$dir/serve" || fail "build with pkg-config flags failed"
needed=$(readelf -d "$dir/serve" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(libzcfuse.*\)\]/\1/p')
[ "$needed" = libzcfuse.so.0 ] || fail "serve needs '$needed', want the SONAME libzcfuse.so.0"
mkdir "$dir/backing" "$dir/mnt"
LD_LIBRARY_PATH="$prefix/lib" ldd "$dir/serve" | grep -q "=> $prefix/lib/libzcfuse.so.0 " ||
	fail "serve does not resolve libzcfuse from $prefix: $(LD_LIBRARY_PATH="$prefix/lib" ldd "$dir/serve")"
LD_LIBRARY_PATH="$prefix/lib" timeout 60 "$dir/serve" --once "$dir/backing" "$dir/mnt"
rc=$?
[ $rc = 0 ] || fail "serve --once exited $rc"
! is_mounted "$dir/mnt" || fail "$dir/mnt still mounted after serve exited"
echo "PASS $name"
