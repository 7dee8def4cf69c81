#!/usr/bin/env bash
# bench-first: zcfuse's first measurement (issue 2), in one run.
#
# fio 4 KiB QD1 O_DIRECT random read pinned to one CPU, and 1 MiB sequential
# read (O_DIRECT, and buffered), on a /dev/shm backing directory, for four
# targets side by side:
#
#   dir             the backing directory itself (tmpfs)
#   zcfuse-classic  bin/zcfuse mount --transport classic (/dev/fuse read/write)
#   zcfuse-uring    bin/zcfuse mount --transport uring (FUSE-over-io_uring)
#   gofuse          go-fuse v2.12.1's own server + loopback, passthrough off
#                   (zcfuse-bench serve-gofuse, gosrc/bench)
#
# Repetitions are interleaved (rep 1 of every target, then rep 2, ...), each
# on a fresh mount; the table shows medians. Afterwards the servers' own
# counters must show that the READ requests reached them over the expected
# channel (ring for uring, /dev/fuse for classic); otherwise the run fails.
#
# usage: scripts/bench-first.sh [--quick] [--reps N] [--runtime S]
#          [--seq-runtime S] [--size MIB] [--cpu N] [--targets LIST]
#          [--zcfuse-args "ARGS"] [--no-buffered] [--json FILE] [--label TEXT]
#          [--plot FILE | --no-plot]
#
#   --quick        smoke run: 1 repetition, 2 s per test
#   --reps N       repetitions (default 3)
#   --runtime S    seconds per 4 KiB random-read test (default 10)
#   --seq-runtime S  seconds per 1 MiB sequential test (default 5)
#   --size MIB     test file size (default 256)
#   --cpu N        CPU that fio is pinned to with taskset (default 0);
#                  "none" runs fio unpinned (for comparison only)
#   --targets L    comma list out of dir,zcfuse-classic,zcfuse-uring,gofuse
#   --zcfuse-args  extra `zcfuse mount` arguments, e.g. "--queue-depth 1"
#   --no-buffered  skip the buffered 1 MiB sequential test
#   --json FILE    raw results (default docs/bench-first.json)
#   --label TEXT   free text stored in the JSON (what this run is for)
#   --plot FILE    IOPS bar chart (default: the JSON path with .png), drawn
#                  when a python3 with matplotlib is found; --no-plot skips it
#
# Needs root, fio, python3, go, and enable_uring on (it is switched on for
# the run if it is off, and restored afterwards). Every mount is taken down
# and the temporary directory removed on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "bench-first: $*" >&2; exit 1; }
say() { echo "bench-first: $*"; }

CMDLINE="scripts/bench-first.sh$(printf ' %q' "$@")"
REPS=3 RUNTIME=10 SEQ_RUNTIME=5 SIZE_MIB=256 CPU=0 BUFFERED=1 RAMP=1
TARGETS=dir,zcfuse-classic,zcfuse-uring,gofuse
ZARGS="" JSON=docs/bench-first.json LABEL="" QUICK=0 PLOT=""
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 REPS=1 RUNTIME=2 SEQ_RUNTIME=2 RAMP=0 ;;
	--reps) REPS=$2; shift ;;
	--runtime) RUNTIME=$2; shift ;;
	--seq-runtime) SEQ_RUNTIME=$2; shift ;;
	--size) SIZE_MIB=$2; shift ;;
	--cpu) CPU=$2; shift ;;
	--targets) TARGETS=$2; shift ;;
	--zcfuse-args) ZARGS=$2; shift ;;
	--no-buffered) BUFFERED=0 ;;
	--json) JSON=$2; shift ;;
	--label) LABEL=$2; shift ;;
	--plot) PLOT=$2; shift ;;
	--no-plot) PLOT=none ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
for t in ${TARGETS//,/ }; do
	case $t in dir | zcfuse-classic | zcfuse-uring | gofuse) ;; *) die "unknown target $t" ;; esac
done
[ "$(id -u)" = 0 ] || die "needs root (mount(2) on /dev/fuse)"
command -v fio >/dev/null || die "fio is missing (apt-get install fio)"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
PY=$(command -v python3) || die "python3 is missing"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -c /dev/fuse ] || die "/dev/fuse is missing"
URING_PARAM=/sys/module/fuse/parameters/enable_uring
[ -e $URING_PARAM ] || die "$URING_PARAM is missing: the kernel lacks FUSE-over-io_uring"
case $JSON in /*) ;; *) JSON=$ROOT/$JSON ;; esac
[ -n "$PLOT" ] || PLOT=${JSON%.json}.png
case $PLOT in none | /*) ;; *) PLOT=$ROOT/$PLOT ;; esac
case $CPU in none | [0-9]*) ;; *) die "--cpu takes a CPU number or none" ;; esac

TMP=$(mktemp -d /dev/shm/zcfuse-bench.XXXXXX)
BACKING=$TMP/backing RES=$TMP/results BIN=$TMP/bin
mkdir -p "$BACKING" "$RES" "$BIN"
PID="" URING_WAS=""

stop_server() { # stop $PID (a server this script started), then its mountpoint $1
	local mnt=$1
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$PID" 2>/dev/null; then
			echo "bench-first: server $PID did not stop within 10 s; SIGKILL" >&2
			kill -KILL "$PID" 2>/dev/null || true
		fi
	fi
	[ -n "$PID" ] && { wait "$PID" 2>/dev/null || true; }
	PID=""
	if [ -n "$mnt" ] && grep -qs " $mnt " /proc/self/mountinfo; then
		umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	stop_server "${MNT:-}"
	# Anything this script mounted lives under $TMP.
	local m
	for m in $(awk -v t="$TMP/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	if grep -qs " $TMP" /proc/self/mountinfo; then
		echo "bench-first: leaving $TMP, something is still mounted under it" >&2
	else
		rm -rf "$TMP"
	fi
	if [ -n "$URING_WAS" ]; then echo "$URING_WAS" >$URING_PARAM || true; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(cat $URING_PARAM)" != Y ]; then
	URING_WAS=$(cat $URING_PARAM)
	echo Y >$URING_PARAM
	say "switched $URING_PARAM on for this run"
fi

say "building zcfuse and zcfuse-bench into $BIN"
"$GO" build -o "$BIN/zcfuse" ./gosrc/cmd/zcfuse
"$GO" build -o "$BIN/zcfuse-bench" ./gosrc/cmd/zcfuse-bench

FILE=bench.dat
say "writing a ${SIZE_MIB} MiB test file to $BACKING (tmpfs)"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$BACKING/$FILE"

LOAD_START=$(cat /proc/loadavg)
say "load at start: $LOAD_START"

# mount_target TARGET MNT: start the server, wait for its ready line.
mount_target() {
	local target=$1 mnt=$2 log=$3
	mkdir -p "$mnt"
	case $target in
	zcfuse-classic) "$BIN/zcfuse" mount --transport classic $ZARGS "$BACKING" "$mnt" 2>"$log" & ;;
	zcfuse-uring) "$BIN/zcfuse" mount --transport uring $ZARGS "$BACKING" "$mnt" 2>"$log" & ;;
	gofuse) "$BIN/zcfuse-bench" serve-gofuse "$BACKING" "$mnt" 2>"$log" & ;;
	esac
	PID=$!
	for _ in $(seq 300); do
		grep -q ': ready' "$log" && return 0
		kill -0 "$PID" 2>/dev/null || { cat "$log" >&2; die "$target server exited before it was ready"; }
		sleep 0.1
	done
	cat "$log" >&2
	die "$target server not ready within 30 s"
}

# threads PID: one line per thread: tid comm last-cpu utime+stime(ticks) allowed-cpus
threads() {
	local t
	for t in /proc/"$1"/task/*; do
		awk -v tid="${t##*/}" -v allowed="$(awk '/^Cpus_allowed_list/{print $2}' "$t/status" 2>/dev/null)" \
			'{ sub(/^.*\) /, ""); print tid, $37, $12 + $13, allowed }' "$t/stat" 2>/dev/null || true
	done
}

# run_fio NAME OUTFILE FIO-ARGS...: pinned fio with JSON output.
run_fio() {
	local name=$1 out=$2
	shift 2
	local pin=(taskset -c "$CPU")
	[ "$CPU" = none ] && pin=()
	"${pin[@]}" fio --name="$name" --filename="$DATA" --ioengine=psync --iodepth=1 \
		--time_based --output-format=json --output="$out" "$@" >/dev/null
}

ORDER=(${TARGETS//,/ })
NT=${#ORDER[@]}
for rep in $(seq "$REPS"); do
	for i in $(seq 0 $((NT - 1))); do
		# Rotate the order each repetition so no target always runs first.
		target=${ORDER[$(((i + rep - 1) % NT))]}
		base=$RES/$target.$rep
		MNT=""
		if [ "$target" = dir ]; then
			DATA=$BACKING/$FILE
		else
			MNT=$TMP/mnt.$target.$rep
			mount_target "$target" "$MNT" "$base.server.log"
			DATA=$MNT/$FILE
		fi
		[ -n "$PID" ] && threads "$PID" >"$base.threads0"
		run_fio randread "$base.randread.json" --rw=randread --bs=4k --direct=1 \
			--ramp_time="$RAMP" --runtime="$RUNTIME"
		[ -n "$PID" ] && threads "$PID" >"$base.threads1"
		run_fio seqread "$base.seq.json" --rw=read --bs=1M --direct=1 \
			--ramp_time="$RAMP" --runtime="$SEQ_RUNTIME"
		if [ "$BUFFERED" = 1 ]; then
			run_fio seqbuf "$base.seqbuf.json" --rw=read --bs=1M --direct=0 --invalidate=1 \
				--ramp_time="$RAMP" --runtime="$SEQ_RUNTIME"
		fi
		case $target in
		zcfuse-*) "$BIN/zcfuse" stats --json "$MNT" >"$base.stats.json" ;;
		esac
		stop_server "$MNT"
		if [ "$target" = gofuse ]; then
			grep -o 'reads=[0-9]* writes=[0-9]*' "$base.server.log" | tail -1 >"$base.gofuse-reads" || true
		fi
		"$PY" - "$base" "$target" "$rep" <<-'EOF'
			import json, sys
			base, target, rep = sys.argv[1:]
			r = json.load(open(base + ".randread.json"))["jobs"][0]["read"]
			s = json.load(open(base + ".seq.json"))["jobs"][0]["read"]
			line = "[rep %s] %-15s 4k randread %8.0f IOPS  mean %6.1f us  p99 %6.1f us | 1M seq %5.2f GB/s" % (
			    rep, target, r["iops"], r["clat_ns"]["mean"] / 1e3,
			    r["clat_ns"]["percentile"]["99.000000"] / 1e3, s["bw_bytes"] / 1e9)
			try:
			    b = json.load(open(base + ".seqbuf.json"))["jobs"][0]["read"]
			    line += "  buffered %5.2f GB/s" % (b["bw_bytes"] / 1e9)
			except FileNotFoundError:
			    pass
			print(line, flush=True)
		EOF
	done
done

LOAD_END=$(cat /proc/loadavg)
say "load at end: $LOAD_END"

mkdir -p "$(dirname "$JSON")"
export RES JSON REPS RUNTIME SEQ_RUNTIME SIZE_MIB CPU TARGETS ZARGS LABEL QUICK LOAD_START LOAD_END RAMP
export CMDLINE
export GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- gosrc 2>/dev/null || echo -dirty)"
export GO_VERSION="$("$GO" version)" FIO_VERSION="$(fio --version)"
AGG_RC=0
"$PY" - <<'EOF' || AGG_RC=$?
import glob, json, os, statistics, sys, time

res = os.environ["RES"]
targets = os.environ["TARGETS"].split(",")
reps = int(os.environ["REPS"])
names = {"dir": "directory (tmpfs)", "zcfuse-classic": "zcfuse classic",
         "zcfuse-uring": "zcfuse uring", "gofuse": "go-fuse loopback"}

def fio(path):
    try:
        j = json.load(open(path))["jobs"][0]
    except FileNotFoundError:
        return None
    r = j["read"]
    pct = r["clat_ns"].get("percentile", {})
    return {"iops": r["iops"], "bw_GBps": r["bw_bytes"] / 1e9, "ios": r["total_ios"],
            "mean_us": r["clat_ns"]["mean"] / 1e3,
            "p50_us": pct.get("50.000000", 0) / 1e3, "p99_us": pct.get("99.000000", 0) / 1e3,
            "p999_us": pct.get("99.900000", 0) / 1e3,
            "usr_cpu": j["usr_cpu"], "sys_cpu": j["sys_cpu"], "ctx": j["ctx"]}

def threads(path):
    out = {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) >= 4:
                out[f[0]] = {"cpu": int(f[1]), "ticks": int(f[2]), "allowed": f[3]}
    except FileNotFoundError:
        pass
    return out

runs, failures = [], []
for t in targets:
    for rep in range(1, reps + 1):
        base = "%s/%s.%d" % (res, t, rep)
        run = {"target": t, "rep": rep, "randread": fio(base + ".randread.json"),
               "seq_direct": fio(base + ".seq.json"), "seq_buffered": fio(base + ".seqbuf.json")}
        ios = run["randread"]["ios"]
        if t.startswith("zcfuse"):
            st = json.load(open(base + ".stats.json"))
            req = st.get("requests", {})
            ring, dev = req.get("ring", {}) or {}, req.get("dev", {}) or {}
            run["server"] = {"transport": st.get("transport"), "queues": st.get("queues"),
                             "queue_depth": st.get("queue_depth"),
                             "read_ring": ring.get("READ", 0), "read_dev": dev.get("READ", 0),
                             "getattr": ring.get("GETATTR", 0) + dev.get("GETATTR", 0),
                             "bytes_read": st.get("bytes_read"), "requests": req}
            want = "ring" if t == "zcfuse-uring" else "dev"
            got = run["server"]["read_" + want]
            other = run["server"]["read_" + ("dev" if want == "ring" else "ring")]
            ok = got >= ios and other == 0
            run["server"]["reads_ok"] = ok
            if not ok:
                failures.append("%s rep %d: READ ring=%d dev=%d, fio randread ios=%d (want all on %s)"
                                % (t, rep, run["server"]["read_ring"], run["server"]["read_dev"], ios, want))
        elif t == "gofuse":
            try:
                kv = dict(x.split("=") for x in open(base + ".gofuse-reads").read().split())
                n = int(kv["reads"])
            except (FileNotFoundError, KeyError, ValueError):
                n = -1
            run["server"] = {"reads": n, "reads_ok": n >= ios}
            if n < ios:
                failures.append("gofuse rep %d: server counted %d READs, fio randread ios=%d" % (rep, n, ios))
        t0, t1 = threads(base + ".threads0"), threads(base + ".threads1")
        if t1:
            busy = []
            for tid, v in t1.items():
                d = v["ticks"] - t0.get(tid, {"ticks": 0})["ticks"]
                if d > 0:
                    busy.append({"tid": int(tid), "ticks": d, "last_cpu": v["cpu"], "allowed": v["allowed"]})
            busy.sort(key=lambda b: -b["ticks"])
            run["server_threads_randread"] = busy
        runs.append(run)

def med(t, test, key):
    v = [r[test][key] for r in runs if r["target"] == t and r[test]]
    return statistics.median(v) if v else None

summary = {}
for t in targets:
    summary[t] = {k: med(t, "randread", k) for k in ("iops", "mean_us", "p50_us", "p99_us", "p999_us")}
    summary[t]["seq_direct_GBps"] = med(t, "seq_direct", "bw_GBps")
    summary[t]["seq_buffered_GBps"] = med(t, "seq_buffered", "bw_GBps")
ref = summary.get("dir")
for t in targets:
    s = summary[t]
    s["iops_vs_dir"] = s["iops"] / ref["iops"] if ref else None
    s["seq_vs_dir"] = s["seq_direct_GBps"] / ref["seq_direct_GBps"] if ref else None

def cpumodel():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()

out = {
    "what": "fio 4 KiB QD1 O_DIRECT randread (psync) pinned with taskset; 1 MiB sequential read; medians",
    "label": os.environ["LABEL"], "command": os.environ["CMDLINE"],
    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "machine": {"nproc": os.cpu_count(), "kernel": os.uname().release, "cpu": cpumodel(),
                "possible_cpus": open("/sys/devices/system/cpu/possible").read().strip()},
    "load_start": os.environ["LOAD_START"], "load_end": os.environ["LOAD_END"],
    "git": os.environ["GIT_REV"], "go": os.environ["GO_VERSION"], "fio": os.environ["FIO_VERSION"],
    "params": {"reps": reps, "runtime_s": int(os.environ["RUNTIME"]),
               "seq_runtime_s": int(os.environ["SEQ_RUNTIME"]), "ramp_s": os.environ["RAMP"],
               "size_mib": int(os.environ["SIZE_MIB"]), "fio_cpu": os.environ["CPU"],
               "zcfuse_args": os.environ["ZARGS"], "quick": os.environ["QUICK"] == "1"},
    "summary": summary, "runs": runs, "failures": failures,
}
json.dump(out, open(os.environ["JSON"], "w"), indent=1)

print()
print("medians of %d (fio taskset CPU: %s; %d s randread, %d s seq; load %s -> %s)" % (
    reps, os.environ["CPU"], int(os.environ["RUNTIME"]), int(os.environ["SEQ_RUNTIME"]),
    os.environ["LOAD_START"].split()[0], os.environ["LOAD_END"].split()[0]))
hdr = "| target | 4k IOPS | mean µs | p50 µs | p99 µs | 1M seq O_DIRECT GB/s | 1M seq buffered GB/s | IOPS vs dir | seq vs dir |"
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
fmt = lambda v, f: "–" if v is None else f % v
for t in targets:
    s = summary[t]
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        names[t], fmt(s["iops"], "%.0f"), fmt(s["mean_us"], "%.1f"), fmt(s["p50_us"], "%.1f"),
        fmt(s["p99_us"], "%.1f"), fmt(s["seq_direct_GBps"], "%.2f"), fmt(s["seq_buffered_GBps"], "%.2f"),
        fmt(s["iops_vs_dir"], "%.2f"), fmt(s["seq_vs_dir"], "%.2f")))
print()
print("server counters (READ requests by channel; fio randread I/Os):")
for r in runs:
    s = r.get("server")
    if not s:
        continue
    if r["target"] == "gofuse":
        desc = "READ=%d" % s["reads"]
    else:
        desc = "transport=%s READ ring=%d dev=%d GETATTR=%d" % (
            s["transport"], s["read_ring"], s["read_dev"], s["getattr"])
    busy = r.get("server_threads_randread", [])[:3]
    th = ", ".join("tid %d %d ticks on cpu %d (allowed %s)" % (b["tid"], b["ticks"], b["last_cpu"], b["allowed"]) for b in busy)
    print("  %-15s rep %d: %s; randread ios=%d %s; busiest threads: %s" % (
        r["target"], r["rep"], desc, r["randread"]["ios"], "ok" if s["reads_ok"] else "WRONG", th or "-"))
print()
print("raw results: %s" % os.environ["JSON"])
if failures:
    print("FAILED: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
EOF

# The chart: IOPS per target (median, with the min-max of the repetitions).
if [ "$PLOT" != none ]; then
	MPL=""
	for p in "$PY" /usr/bin/python3; do
		"$p" -c 'import matplotlib' 2>/dev/null && { MPL=$p; break; }
	done
	if [ -z "$MPL" ]; then
		say "no python3 with matplotlib (apt-get install python3-matplotlib): no chart"
	else
		"$MPL" - "$JSON" "$PLOT" <<'EOF' && say "chart: $PLOT"
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(open(sys.argv[1]))
names = {"dir": "directory\n(tmpfs)", "zcfuse-classic": "zcfuse\nclassic",
         "zcfuse-uring": "zcfuse\nuring", "gofuse": "go-fuse\nloopback"}
ts = [t for t in d["summary"] if t != "dir"]
med = [d["summary"][t]["iops"] / 1e3 for t in ts]
lo, hi = [], []
for t, m in zip(ts, med):
    v = [r["randread"]["iops"] / 1e3 for r in d["runs"] if r["target"] == t]
    lo.append(m - min(v)); hi.append(max(v) - m)
fig, ax = plt.subplots(figsize=(7, 4))
bars = ax.bar([names[t] for t in ts], med, yerr=[lo, hi], capsize=4,
              color=["#999999" if t == "gofuse" else "#4477aa" for t in ts])
for b, t, m, h in zip(bars, ts, med, hi):
    s = d["summary"][t]
    ax.annotate("%.0fk\n%.1f µs" % (s["iops"] / 1e3, s["mean_us"]), (b.get_x() + b.get_width() / 2, m + h),
                ha="center", va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
ax.axhline(80, color="#cc3311", ls="--", lw=1)
ax.text(len(ts) - 0.6, 81, "target 80k", color="#cc3311", fontsize=8, va="bottom", ha="right")
ax.axhline(95, color="#228833", ls=":", lw=1)
ax.text(len(ts) - 0.6, 96, "libfuse passthrough_hp uring ~95k", color="#228833", fontsize=8, va="bottom", ha="right")
ax.set_ylabel("kIOPS (median of %d)" % d["params"]["reps"])
ax.set_ylim(0, max(110, max(med) * 1.25))
cpu = d["params"]["fio_cpu"]
title = "fio 4 KiB QD1 O_DIRECT randread, " + ("fio unpinned" if cpu == "none" else "fio pinned to CPU %s" % cpu)
if "dir" in d["summary"]:
    title += "\n(the tmpfs directory itself: %.0fk IOPS)" % (d["summary"]["dir"]["iops"] / 1e3)
ax.set_title(title, fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
EOF
	fi
fi
exit "$AGG_RC"
