#!/bin/sh
# lib_deps.sh LIBRARY - the library needs nothing beyond the C library:
# its NEEDED entries are libc, libpthread and the dynamic loader only,
# every symbol it imports comes from glibc (versioned GLIBC_*), and ldd
# resolves them all.
. "$(dirname "$0")/common.sh"
lib=$1
need_tool readelf "binutils"
need_tool nm "binutils"
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for n in $needed; do
	case $n in
	libc.so.* | libpthread.so.* | ld-linux*.so.*) ;;
	*) fail "$lib needs $n (only libc, libpthread and the loader are allowed)" ;;
	esac
done
foreign=$(nm -D --undefined-only "$lib" | awk '$1 == "U" && $2 !~ /@GLIBC_/ { print $2 }')
[ -z "$foreign" ] || fail "undefined symbols not from glibc: $(echo $foreign)"
if command -v ldd >/dev/null 2>&1; then
	missing=$(ldd "$lib" | grep 'not found')
	[ -z "$missing" ] || fail "ldd: $missing"
fi
echo "PASS $name: needs only $(echo $needed)"
