#!/usr/bin/env bash
# Runs zcfuse's test suites one after another, prints each suite's wall time
# and a summary, and exits non-zero if any suite failed. `make test` calls
# it after deps, build and uring-on; run it from the repository root.
#
#   GO            the go command (default: go from PATH, else /usr/local/go/bin/go)
#   GOTESTFLAGS   extra flags for both go test suites (e.g. -v)
#   CTESTFLAGS    extra flags for ctest in the c suite (e.g. -V, -R server_io)
#   PYTHON        the python3 for the python suite (default /usr/bin/python3)
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
read -r -a testflags <<<"${GOTESTFLAGS:-}"

names=() results=() times=()
failed=0

# suite NAME CMD... runs one suite and records its result and time.
suite() {
	local name=$1
	shift
	echo
	echo "==> [$name] $*"
	local start end rc
	start=$(date +%s.%N)
	"$@"
	rc=$?
	end=$(date +%s.%N)
	local secs
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
	local res=PASS
	if [ "$rc" -ne 0 ]; then
		res="FAIL (exit $rc)"
		failed=1
	fi
	echo "<== [$name] $res in ${secs}s"
	names+=("$name") results+=("$res") times+=("${secs}s")
}

suite vet "$GO" vet ./...
suite gosrc "$GO" test -race -count=1 "${testflags[@]}" ./gosrc/...
suite tests "$GO" test -count=1 "${testflags[@]}" ./tests/...

# c_tests configures and builds the C tests and examples (CMakeLists.txt,
# against the library `make lib` built) in build/cmake and runs them. A
# subshell, so that what it unsets stays here.
c_tests() (
	command -v cmake >/dev/null || { echo "c: cmake not found (make deps installs it)"; return 1; }
	local ctestflags
	read -r -a ctestflags <<<"${CTESTFLAGS:-}"
	# not a sub-make of `make test`: no "Entering directory" noise
	unset MAKEFLAGS MFLAGS MAKELEVEL
	cmake -S . -B build/cmake --log-level=WARNING &&
		cmake --build build/cmake --parallel "$(nproc)" &&
		ctest --test-dir build/cmake --output-on-failure "${ctestflags[@]}"
)
suite c c_tests
# Debian's python3 (/usr/bin), which sees the python3-numpy that make deps
# installs; a python3 earlier on PATH (pyenv) may not.
PYTHON=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)}
suite python "$PYTHON" -m unittest discover -s bindings/python/tests -t bindings/python
# Both crates against the library make lib built (only std: no registry).
suite rust env ZCFUSE_LIB_DIR="$PWD/build" cargo test --quiet --manifest-path bindings/rust/Cargo.toml
# The README's client blocks (C via pkg-config, Python, Rust), pasted into
# a fresh clone.
suite readme scripts/readme-test.sh
suite fuzz make --no-print-directory fuzz

echo
echo "suite     result          wall time"
for i in "${!names[@]}"; do
	printf '%-9s %-15s %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
npass=0 nfail=0
for r in "${results[@]}"; do
	if [ "$r" = PASS ]; then npass=$((npass + 1)); else nfail=$((nfail + 1)); fi
done
echo "suites: $npass passed, $nfail failed"
exit "$failed"
