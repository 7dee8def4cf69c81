#!/usr/bin/env bash
# run.sh - the Python and Rust bindings' overhead over C for 4 KiB
# zero-copy ops (zcfuse_pwrite / zcfuse_pread with ZCFUSE_F_REQUIRE_ZC).
#
#   bindings/bench/run.sh            # as root, from anywhere in the checkout
#
# Builds the library and CLI (make lib bin/zcfuse), overhead.c, and the
# Rust example overhead.rs (release); mounts a fresh backing directory
# with `zcfuse mount --transport uring`, with one 64 MiB file in it; runs
# each program ROUNDS times per wait mode (sleep, then poll with
# SPIN_US), the languages in a rotating order, every client pinned to
# CPU $CPU with taskset; prints the medians over rounds as a table, and
# unmounts and removes everything it made.
#
# Settings (environment): N ops timed per op kind (default 50000), WARMUP
# (2000), ROUNDS (5), SEED (42), SPIN_US (100), CPU (0), SKIP_BUILD=1 to
# use the existing build/ and bin/, BACKING_PARENT (where the backing
# directory goes; default /dev/shm, a tmpfs, so that no disk writeback
# adds noise), KEEP_RAW=FILE to keep every program's output lines.
set -euo pipefail

N=${N:-50000}
WARMUP=${WARMUP:-2000}
ROUNDS=${ROUNDS:-5}
SEED=${SEED:-42}
SPIN_US=${SPIN_US:-100}
CPU=${CPU:-0}
PY=${PY:-/usr/bin/python3}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

BACKING_PARENT=${BACKING_PARENT:-/dev/shm}
[ -d "$BACKING_PARENT" ] || BACKING_PARENT=${TMPDIR:-/tmp}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zcfuse-overhead.XXXXXX")
BACKING=$(mktemp -d "$BACKING_PARENT/zcfuse-overhead-backing.XXXXXX")
MNT="$WORK/mnt"
mkdir -p "$MNT"
SERVER_PID=

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SERVER_PID" 2>/dev/null && { log "server $SERVER_PID did not stop: SIGKILL"; kill -KILL "$SERVER_PID"; }
        wait "$SERVER_PID" 2>/dev/null
    fi
    if mountpoint -q "$MNT" 2>/dev/null || grep -qs " $MNT " /proc/self/mounts; then
        umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
    fi
    rm -rf "$BACKING"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- is the machine quiet? ------------------------------------------------
busy=$(ps -eo pid=,comm=,args= | awk '$3 ~ /zcfuse/ && $0 ~ / bench( |$)/ {print $1" "$3}' || true)
if [ -n "$busy" ]; then
    log "warning: another benchmark is running: $busy (results will be noisy)"
fi
log "load: $(cut -d' ' -f1-3 /proc/loadavg); busiest now: $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{printf "%s %s%%; ", $2, $1}')"

# --- build ----------------------------------------------------------------
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building: make lib bin/zcfuse"
    make --no-print-directory lib bin/zcfuse >"$WORK/make.log" 2>&1 || { cat "$WORK/make.log" >&2; exit 1; }
fi
log "building: overhead.c"
cc -O2 -Wall -Wextra -I"$ROOT/include" -o "$WORK/overhead-c" "$HERE/overhead.c" \
    -L"$ROOT/build" -lzcfuse -Wl,-rpath,"$ROOT/build"
log "building: cargo --release --example overhead"
(cd bindings/rust && ZCFUSE_LIB_DIR="$ROOT/build" CARGO_TARGET_DIR="$WORK/target" \
    cargo build -q --release --offline --example overhead)
RUST_BIN="$WORK/target/release/examples/overhead"

# --- server ---------------------------------------------------------------
dd if=/dev/zero of="$BACKING/data" bs=1M count=64 status=none
log "mounting $BACKING on $MNT (uring)"
bin/zcfuse mount --transport uring "$BACKING" "$MNT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 100); do
    bin/zcfuse stats "$MNT" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; log "server died"; exit 1; }
    [ "$i" = 100 ] && { log "server did not come up"; exit 1; }
    sleep 0.1
done
FILE="$MNT/data"

# --- matrix ---------------------------------------------------------------
RAW="$WORK/results.txt"
: >"$RAW"
run_one() { # lang mode
    local lang=$1 mode=$2 spin=0 out
    [ "$mode" = poll ] && spin=$SPIN_US
    local args=("$MNT" "$FILE" "$N" "$WARMUP" "$SEED" "$mode" "$spin")
    case $lang in
    c) out=$(taskset -c "$CPU" "$WORK/overhead-c" "${args[@]}") ;;
    rust) out=$(taskset -c "$CPU" "$RUST_BIN" "${args[@]}") ;;
    py) out=$(PYTHONPATH="$ROOT/bindings/python" taskset -c "$CPU" "$PY" "$HERE/overhead.py" "${args[@]}") ;;
    esac
    printf '%s\n' "$out" | sed "s/^/round=$round /" >>"$RAW"
    printf '%s\n' "$out" | awk '$1 == "R" {sub("lang=", "", $2); sub("op=", "", $4); sub("mean_us=", "", $6)
        printf "%s %s %sus  ", $2, $4, $6} END {print ""}' >&2
}
langs=(c rust py)
total=$((ROUNDS * 2 * ${#langs[@]}))
k=0
for round in $(seq "$ROUNDS"); do
    for mode in sleep poll; do
        # Rotate the order each round, so that no language always runs first.
        for j in 0 1 2; do
            shift_=0
            [ "$mode" = poll ] && shift_=1
            lang=${langs[$(((j + round + shift_) % 3))]}
            k=$((k + 1))
            printf '[%(%H:%M:%S)T] %2d/%d round %d %-5s %-4s  ' -1 "$k" "$total" "$round" "$mode" "$lang" >&2
            run_one "$lang" "$mode"
        done
    done
done
[ -z "${KEEP_RAW:-}" ] || cp "$RAW" "$KEEP_RAW"

bin/zcfuse stats "$MNT" 2>/dev/null | grep -iE 'transport|zc_ops|zero_copy|copied|zc_errors' >&2 || true

# --- table ----------------------------------------------------------------
"$PY" - "$RAW" "$N" "$ROUNDS" "$CPU" "$SPIN_US" <<'EOF'
import statistics, sys
from collections import defaultdict

raw, n, rounds, cpu, spin = sys.argv[1:]
R = defaultdict(lambda: defaultdict(list))  # (lang, mode, op) -> field -> values
X = defaultdict(list)                       # (lang, what) -> ns values
for line in open(raw):
    f = line.split()
    kv = dict(x.split("=", 1) for x in f[2:])
    if f[1] == "R":
        key = (kv["lang"], kv["mode"], kv["op"])
        for k in ("mean_us", "p50_us", "p99_us", "ops_s"):
            R[key][k].append(float(kv[k]))
    elif f[1] == "X":
        X[(kv["lang"], kv["what"])].append(float(kv["ns"]))

med = statistics.median
order = ["c", "rust", "py-raw", "py", "py-readinto"]
names = {"c": "C", "rust": "Rust", "py-raw": "Py raw ctypes", "py": "Py binding",
         "py-readinto": "Py readinto"}
print(f"\nMedians of {rounds} runs, {n} ops each, 4 KiB, REQUIRE_ZC, client on CPU {cpu}; "
      f"poll spin {spin} us.\nLatency in us; over C = mean - C's mean (us, %); dp50 = p50 - C's p50.")
hdr = (f"{'mode':5} {'op':5} {'language':14} {'mean':>8} {'p50':>8} {'p99':>8} {'ops/s':>9} "
       f"{'over C us':>10} {'over C %':>9} {'dp50':>8}")
print(hdr)
print("-" * len(hdr))
for mode in ("sleep", "poll"):
    for op in ("write", "read"):
        c = R.get(("c", mode, op))
        cmean = med(c["mean_us"]) if c else None
        cp50 = med(c["p50_us"]) if c else None
        for lang in order:
            v = R.get((lang, mode, op))
            if not v:
                continue
            m = med(v["mean_us"])
            p50 = med(v["p50_us"])
            over = (f"{m - cmean:+10.3f} {100 * (m - cmean) / cmean:+8.1f}% {p50 - cp50:+8.3f}"
                    if cmean else "")
            print(f"{mode:5} {op:5} {names[lang]:14} {m:8.3f} {p50:8.3f} "
                  f"{med(v['p99_us']):8.3f} {med(v['ops_s']):9.0f} {over}")
    print()
print("Per-call parts, ns (medians over all runs; no server involved):")
for (lang, what) in sorted(X, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[1])):
    label = {"c": "C", "rust": "Rust", "py": "Python"}.get(lang, lang)
    print(f"  {label:7} {what:13} {med(X[(lang, what)]):8.1f}")
EOF
