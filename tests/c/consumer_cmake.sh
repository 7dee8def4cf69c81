#!/bin/sh
# consumer_cmake.sh PREFIX PROJECT CMAKE SERVE_C - a CMake project using
# find_package(zcfuse 0.1 REQUIRED) and zcfuse::zcfuse (tests/c/cmake-
# consumer) configures against the installed PREFIX, builds serve.c and
# runs it (serve --once; CMake's build RPATH finds the library). Also
# checks that the package's version file refuses another major version.
. "$(dirname "$0")/common.sh"
prefix=$1 project=$2 cmake=$3 serve_c=$4
require_mount
dir=$(scratch)
trap 'cleanup_scratch "$dir"' EXIT
trap 'exit 1' INT TERM
"$cmake" -S "$project" -B "$dir/build" -DCMAKE_PREFIX_PATH="$prefix" \
	-DZCFUSE_SERVE_C="$serve_c" >"$dir/configure.log" 2>&1 ||
	{ cat "$dir/configure.log"; fail "configure with CMAKE_PREFIX_PATH=$prefix failed"; }
grep 'zcfuse ' "$dir/configure.log"
"$cmake" --build "$dir/build" >"$dir/build.log" 2>&1 ||
	{ cat "$dir/build.log"; fail "build failed"; }
mkdir "$dir/backing" "$dir/mnt"
timeout 60 "$dir/build/serve" --once "$dir/backing" "$dir/mnt"
rc=$?
[ $rc = 0 ] || fail "serve --once (CMake build) exited $rc"
! is_mounted "$dir/mnt" || fail "$dir/mnt still mounted after serve exited"

# The version file: 0.1 and 0.1.0 fit, 1.0 and a newer minor do not.
for want in 0.1:TRUE 0.1.0:TRUE 1.0:FALSE 0.99:FALSE; do
	cat >"$dir/version.cmake" <<EOV
set(PACKAGE_FIND_VERSION ${want%%:*})
string(REGEX MATCH "^[0-9]+" PACKAGE_FIND_VERSION_MAJOR \${PACKAGE_FIND_VERSION})
include("$prefix/lib/cmake/zcfuse/zcfuseConfigVersion.cmake")
message("\${PACKAGE_VERSION_COMPATIBLE}")
EOV
	got=$("$cmake" -P "$dir/version.cmake" 2>&1)
	[ "$got" = "${want#*:}" ] || fail "find_package(zcfuse ${want%%:*}): compatible '$got', want ${want#*:}"
done
echo "PASS $name"
