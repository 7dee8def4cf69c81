#!/usr/bin/env bash
# Runs zcfuse's test suites one after another, prints each suite's wall time
# and a summary, and exits non-zero if any suite failed. `make test` calls
# it after deps, build and uring-on; run it from the repository root.
# The summary also gives each suite's skipped tests, by name and why: Go
# tests that called t.Skip (from go test -json), Python tests skipped
# (unittest), C tests that exited 77 (ctest "Skipped") and ignored Rust
# tests; "-" where a suite has no such notion. Each suite's skips are in
# build/suites/NAME.skips (name TAB reason), the C and Rust logs beside.
#
#   GO            the go command (default: go from PATH, else /usr/local/go/bin/go)
#   GOTESTFLAGS   extra flags for both go test suites (e.g. -v)
#   CTESTFLAGS    extra flags for ctest in the c suite (e.g. -V, -R server_io)
#   PYTHON        the python3 for the python suite (default /usr/bin/python3)
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
read -r -a testflags <<<"${GOTESTFLAGS:-}"

# Debian's python3 (/usr/bin), which sees the python3-numpy that make deps
# installs; a python3 earlier on PATH (pyenv) may not. It also reads the Go
# suites' go test -json (gotest below).
PYTHON=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)}
SKIPDIR=build/suites
mkdir -p "$SKIPDIR"

names=() results=() times=() skipcounts=()
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
	local skips=-
	if [ -f "$SKIPDIR/$name.skips" ]; then
		skips=$(grep -c . "$SKIPDIR/$name.skips")
	fi
	echo "<== [$name] $res in ${secs}s, skipped: $skips"
	names+=("$name") results+=("$res") times+=("${secs}s") skipcounts+=("$skips")
}

# GOTEST_FILTER reads go test -json on stdin and prints what plain go test
# prints (everything with -v in GOTESTFLAGS): the ok/FAIL line of each
# package and the output of failed tests. It writes every skipped test,
# subtests included, to argv[1] as "package.Test<TAB>first line it logged".
GOTEST_FILTER='
import json, sys
skips_path, verbose, module = sys.argv[1], sys.argv[2] == "1", sys.argv[3] + "/"
noise = ("=== RUN", "=== PAUSE", "=== CONT", "=== NAME")
tests, pkgs, skipped = {}, {}, []
def emit(text):
    sys.stdout.write(text)
    sys.stdout.flush()
for line in sys.stdin:
    try:
        ev = json.loads(line)
        if not isinstance(ev, dict):
            raise ValueError
    except ValueError:
        emit(line)
        continue
    act, text, test = ev.get("Action"), ev.get("Output") or "", ev.get("Test")
    pkg = ev.get("Package") or ev.get("ImportPath") or ""
    if act == "build-output":
        emit(text)
        continue
    if verbose and act == "output":
        emit(text)
    if test:
        key = (pkg, test)
        if act == "output":
            tests.setdefault(key, []).append(text)
        elif act in ("pass", "fail", "skip"):
            lines = tests.pop(key, [])
            if act == "fail" and not verbose:  # its --- FAIL line first, as go test does
                lines = [l for l in lines if not l.startswith(noise)]
                head = [l for l in lines if l.lstrip().startswith("--- FAIL")]
                emit("".join(head + [l for l in lines if l not in head]))
            if act == "skip":
                why = [l.strip() for l in lines if l.strip() and not l.lstrip().startswith(("---",) + noise)]
                name = pkg[len(module):] if pkg.startswith(module) else pkg
                skipped.append(name + "." + test + "\t" + (why[0] if why else "") + "\n")
        continue
    if act == "output":
        pkgs.setdefault(pkg, []).append(text)
    elif act in ("pass", "fail", "skip"):
        lines = pkgs.pop(pkg, [])
        if not verbose:
            emit("".join(l for l in lines if act == "fail" or l.startswith(("ok", "?"))))
with open(skips_path, "w") as f:
    f.writelines(skipped)
'
GO_MODULE=$(sed -n 's/^module //p' go.mod)
go_verbose=0
for f in "${testflags[@]}"; do case $f in -v | -v=true | -test.v | -test.v=true) go_verbose=1 ;; esac; done

# gotest NAME ARGS... runs go test -json ARGS through GOTEST_FILTER; its
# exit status is go test's (pipefail; the filter exits 0).
gotest() {
	local name=$1
	shift
	"$GO" test -json "$@" | "$PYTHON" -c "$GOTEST_FILTER" "$SKIPDIR/$name.skips" "$go_verbose" "$GO_MODULE"
}

rm -f "$SKIPDIR"/*.skips "$SKIPDIR"/*.log
suite vet "$GO" vet ./...
suite gosrc gotest gosrc -race -count=1 "${testflags[@]}" ./gosrc/...
suite tests gotest tests -count=1 "${testflags[@]}" ./tests/...

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
		cmake --build build/cmake --parallel "$(nproc)" || return
	ctest --test-dir build/cmake --output-on-failure "${ctestflags[@]}" | tee "$SKIPDIR/c.log"
	local rc=${PIPESTATUS[0]}
	# The tests that exited 77, with the last line each printed (its reason).
	sed -nE 's/.*Test +#[0-9]+: ([^ ]+) .*\*\*\*Skipped.*/\1/p' "$SKIPDIR/c.log" | while read -r t; do
		why=$(awk -v t="$t" '$0 ~ "^[0-9]+/[0-9]+ Test: " t "$" { on = 1; next }
			on && /^<end of output>$/ { exit } on && NF { last = $0 } END { print last }' \
			build/cmake/Testing/Temporary/LastTest.log 2>/dev/null)
		printf '%s\t%s\n' "$t" "$why"
	done >"$SKIPDIR/c.skips"
	return "$rc"
)
suite c c_tests
# python -m unittest discover -s bindings/python/tests -t bindings/python,
# as unittest.main runs it (same output, same exit status), that also
# writes the skipped tests to argv[1].
PY_UNITTEST='
import sys, unittest
tests = unittest.TestLoader().discover("bindings/python/tests", top_level_dir="bindings/python")
result = unittest.TextTestRunner(warnings=None if sys.warnoptions else "default").run(tests)
with open(sys.argv[1], "w") as f:
    for test, why in result.skipped:
        f.write(test.id() + "\t" + " ".join(str(why).split()) + "\n")
if sys.version_info >= (3, 12) and result.testsRun == 0 and not result.skipped:
    sys.exit(5)
sys.exit(not result.wasSuccessful())
'
# python -m unittest discover, writing its skips (a function, so that the
# suite's command line stays one line).
python_tests() { "$PYTHON" -c "$PY_UNITTEST" "$SKIPDIR/python.skips"; }
suite python python_tests
# Both crates against the library make lib built (only std: no registry).
# libtest's quiet output counts ignored tests; --list --ignored names them.
rust_tests() {
	local cargo=(env ZCFUSE_LIB_DIR="$PWD/build" cargo test --quiet --manifest-path bindings/rust/Cargo.toml)
	"${cargo[@]}" 2>&1 | tee "$SKIPDIR/rust.log"
	local rc=${PIPESTATUS[0]}
	: >"$SKIPDIR/rust.skips"
	if grep -qE '[1-9][0-9]* ignored' "$SKIPDIR/rust.log"; then
		"${cargo[@]}" -- --list --ignored 2>/dev/null | sed -n 's/: test$/\t#[ignore]/p' >"$SKIPDIR/rust.skips"
	fi
	return "$rc"
}
suite rust rust_tests
# The README's client blocks (C via pkg-config, Python, Rust), pasted into
# a fresh clone.
suite readme scripts/readme-test.sh
suite fuzz make --no-print-directory fuzz

echo
echo "suite     result          wall time  skipped"
for i in "${!names[@]}"; do
	printf '%-9s %-15s %-10s %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}" "${skipcounts[$i]}"
done
for i in "${!names[@]}"; do
	f=$SKIPDIR/${names[$i]}.skips
	[ -s "$f" ] || continue
	echo "skipped in ${names[$i]}:"
	while IFS=$'\t' read -r t why; do
		[ ${#why} -le 110 ] || why="${why:0:107}..."
		echo "  $t${why:+: $why}"
	done <"$f"
done
npass=0 nfail=0
for r in "${results[@]}"; do
	if [ "$r" = PASS ]; then npass=$((npass + 1)); else nfail=$((nfail + 1)); fi
done
echo "suites: $npass passed, $nfail failed"
exit "$failed"
