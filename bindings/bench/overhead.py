"""overhead.py - the Python side of the bindings' overhead benchmark.

Run by bindings/bench/run.sh next to overhead.c and the Rust example
overhead.rs; same arguments, same output lines (see overhead.c):

    PYTHONPATH=bindings/python /usr/bin/python3 bindings/bench/overhead.py \
        MNT FILE N WARMUP SEED sleep|poll SPIN_US

Connects to the mount, shares a 1 MiB zcfuse.Arena, opens and attaches
FILE (pre-sized to 64 MiB), sets the wait mode, then times N synchronous
4 KiB writes and N reads at random 4 KiB-aligned offsets (splitmix64 from
SEED: the same offsets as the C and Rust programs), two ways:

  lang=py      the binding: Session.pwrite / Session.pread on a memoryview
               slice of the arena (made once), require_zc=True;
  lang=py-readinto  Session.readinto, i.e. pread without the memoryview
               of the bytes read that pread returns;
  lang=py-raw  one raw ctypes call of zcfuse_pwrite / zcfuse_pread per op
               with precomputed arguments (the session handle, the
               arena's C address): the same op, minus the binding's Python.

Then, without the server, the parts of a binding call (X lines, ns per
call): the timer pair, a raw ctypes call rejected in the C shim (NULL
session: compare with overhead.c's null_call), and the binding's own
steps one by one: the session lock, the buffer export (pin: Py_buffer via
PyObject_GetBuffer and release), the translation of the Python address to
the library's mapping (c_address), the optional-function lookup and
check(). Run it pinned to one CPU (run.sh: taskset -c 0).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

import zcfuse
from zcfuse import _buffers
from zcfuse._library import F_REQUIRE_ZC
from zcfuse.errors import check
from zcfuse.session import _optional

OPSZ = 4096
FILE_PAGES = 16384  # 64 MiB / 4 KiB
ARENA_SIZE = 1 << 20
M64 = (1 << 64) - 1


def splitmix64_offsets(seed: int, count: int) -> list:
    out = []
    s = seed & M64
    for _ in range(count):
        s = (s + 0x9E3779B97F4A7C15) & M64
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        out.append((z % FILE_PAGES) * OPSZ)
    return out


def pct(sorted_lat: list, q: float) -> int:
    """Nearest rank, as in overhead.c."""
    rank = int(q * len(sorted_lat) + 0.999999999)
    return sorted_lat[max(rank, 1) - 1]


def report(lang: str, mode: str, op: str, lat: list, wall_ns: int) -> None:
    n = len(lat)
    s = sorted(lat)
    print(
        f"R lang={lang} mode={mode} op={op} n={n} mean_us={sum(lat) / n / 1e3:.3f} "
        f"p50_us={pct(s, 0.50) / 1e3:.3f} p99_us={pct(s, 0.99) / 1e3:.3f} "
        f"ops_s={n / (wall_ns / 1e9):.0f}",
        flush=True,
    )


def timed_binding(fn, fid: int, buf, offs: list) -> tuple:
    """Per-op latencies (ns) of fn(fid, buf, off, True), and the loop's wall time.

    fn returns a count (pwrite, readinto) or a memoryview of the bytes
    read (pread); the check runs outside the timed region.
    """
    clock = time.perf_counter_ns
    lat = [0] * len(offs)
    i = 0
    start = clock()
    for off in offs:
        t0 = clock()
        r = fn(fid, buf, off, True)
        lat[i] = clock() - t0
        if r != OPSZ and len(r) != OPSZ:  # pwrite/readinto: a count; pread: a view
            raise RuntimeError(f"short op: {r}")
        i += 1
    return lat, clock() - start


def timed_raw(cfn, handle, fid: int, addr: int, offs: list) -> tuple:
    """The same with cfn(handle, fid, addr, 4096, off, REQUIRE_ZC), a ctypes function."""
    clock = time.perf_counter_ns
    lat = [0] * len(offs)
    i = 0
    flags = F_REQUIRE_ZC
    start = clock()
    for off in offs:
        t0 = clock()
        r = cfn(handle, fid, addr, OPSZ, off, flags)
        lat[i] = clock() - t0
        if r != OPSZ:
            raise RuntimeError(f"short op: {r}")
        i += 1
    return lat, clock() - start


def per_call_ns(body, reps: int) -> float:
    """ns per call of body(reps) minus an empty loop of reps iterations."""
    clock = time.perf_counter_ns
    t0 = clock()
    body(reps)
    t1 = clock()
    for _ in range(reps):
        pass
    t2 = clock()
    return ((t1 - t0) - (t2 - t1)) / reps


def breakdown(s: zcfuse.Session, cpw, fid: int, view, offs: list) -> None:
    """The parts of a binding call, in ns each, measured in tight loops."""
    clock = time.perf_counter_ns
    reps = 200_000
    noff = len(offs)

    def timer(k):
        for _ in range(k):
            t0 = clock()
            clock() - t0

    def null_call(k):
        null = zcfuse._library.SessionP()  # NULL: rejected in the C shim
        for i in range(k):
            cpw(null, fid, 0x1000, OPSZ, offs[i % noff], F_REQUIRE_ZC)

    def lock(k):
        lk = s._lock
        for _ in range(k):
            with lk:
                s._live()

    def pin(k):
        for _ in range(k):
            with _buffers.pin(view, writable=False) as p:
                p.address

    def getbuffer(k):  # the export alone, without the translation
        gb, rel, B = _buffers._GetBuffer, _buffers._Release, _buffers.Py_buffer
        for _ in range(k):
            v = B()
            gb(view, ctypes.byref(v), 0)
            rel(ctypes.byref(v))

    def c_address(k):
        pyaddr = _buffers.python_address(view)
        for _ in range(k):
            _buffers.c_address(pyaddr, OPSZ)

    def lookup_check(k):
        for _ in range(k):
            _optional("zcfuse_pwrite")
            check(OPSZ, "zcfuse_pwrite")

    for what, body in [
        ("timer", timer),
        ("null_call", null_call),
        ("lock", lock),
        ("pin", pin),
        ("getbuffer", getbuffer),
        ("c_address", c_address),
        ("lookup_check", lookup_check),
    ]:
        print(f"X lang=py what={what} ns={per_call_ns(body, reps):.1f}", flush=True)


def main() -> int:
    if len(sys.argv) != 8:
        print(f"usage: {sys.argv[0]} MNT FILE N WARMUP SEED sleep|poll SPIN_US", file=sys.stderr)
        return 2
    mnt, path = sys.argv[1], sys.argv[2]
    n, warm, seed = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    mode, spin = sys.argv[6], int(sys.argv[7])
    offs = splitmix64_offsets(seed, warm + n)
    warm_offs, run_offs = offs[:warm], offs[warm:]

    s = zcfuse.connect(mnt)
    arena = zcfuse.Arena.create(ARENA_SIZE)
    arena_id = s.share(arena).arena_id
    fd = os.open(path, os.O_RDWR)
    fid = s.attach(fd)
    s.set_mode(mode, spin)
    arena[:OPSZ] = b"\xa5" * OPSZ
    view = memoryview(arena)[:OPSZ]  # the arena slice every op uses

    # Raw ctypes: the declared functions of the binding (same argtypes and
    # restype), the session handle, and the buffer's address in the
    # library's mapping, all computed once.
    cpw, cpr = _optional("zcfuse_pwrite"), _optional("zcfuse_pread")
    handle = s._handle
    caddr = arena.address
    with _buffers.pin(view, writable=True) as p:
        assert s._arena_span(p.address, p.nbytes) == (arena_id, 0), "the slice is not named by arena"

    # Session.pread(fid, buffer, off) is readinto() plus a memoryview of
    # the part read (the returned value): lang=py times pread, as an
    # application would call it, and lang=py-readinto the call without
    # that view.
    for op, bfn, cfn in (("write", s.pwrite, cpw), ("read", s.pread, cpr)):
        timed_binding(bfn, fid, view, warm_offs)
        timed_raw(cfn, handle, fid, caddr, warm_offs)
        # Alternate binding and raw within the process, in halves, so that
        # drift favours neither.
        half = len(run_offs) // 2
        lat_b, wall_b = timed_binding(bfn, fid, view, run_offs[:half])
        lat_r, wall_r = timed_raw(cfn, handle, fid, caddr, run_offs[:half])
        lat_r2, wall_r2 = timed_raw(cfn, handle, fid, caddr, run_offs[half:])
        lat_b2, wall_b2 = timed_binding(bfn, fid, view, run_offs[half:])
        report("py", mode, op, lat_b + lat_b2, wall_b + wall_b2)
        report("py-raw", mode, op, lat_r + lat_r2, wall_r + wall_r2)

    timed_binding(s.readinto, fid, view, warm_offs)
    lat, wall = timed_binding(s.readinto, fid, view, run_offs)
    report("py-readinto", mode, "read", lat, wall)

    breakdown(s, cpw, fid, view, offs)

    view.release()
    s.close()
    os.close(fd)
    arena.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
