#!/bin/sh
# lib_soname.sh LIBRARY - the library has the SONAME libzcfuse.so.MAJOR
# (MAJOR from its file name libzcfuse.so.MAJOR.MINOR.PATCH); Go sets none
# by itself, so this guards the Makefile's -soname.
. "$(dirname "$0")/common.sh"
lib=$1
need_tool readelf "binutils"
file=$(basename "$lib")
want=$(echo "$file" | sed -n 's/^\(libzcfuse\.so\.[0-9]*\)\.[0-9]*\.[0-9]*$/\1/p')
[ -n "$want" ] || fail "$file is not named libzcfuse.so.MAJOR.MINOR.PATCH"
got=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$got" = "$want" ] || fail "SONAME of $lib is '$got', want '$want'"
link=$(dirname "$lib")/$want
[ "$(readlink "$link")" = "$file" ] || fail "$link does not link to $file"
echo "PASS $name: $file has SONAME $got"
