#!/usr/bin/env python3
"""zc_cp.py -- copy a file on a zcfuse mount without copying it in user space.

Shows the zero-copy path from Python: one arena shared with the server,
SRC and DST attached to the session, and the copy done in rounds of
batched ops -- DEPTH reads of BLOCK bytes from SRC into the arena with one
submit(), their completions reaped with wait(), then DEPTH writes to DST
from the same arena memory. Every op carries F_REQUIRE_ZC, so nothing
silently falls back to the copying posix path. SRC and DST must both lie
on one zcfuse mount (the mountpoint is found from DST's directory).

Run (after `make lib`, from the repository root, with a zcfuse mount):

    PYTHONPATH=bindings/python python3 bindings/python/examples/zc_cp.py SRC DST
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Sequence

import zcfuse
from zcfuse import Op


def mountpoint_of(path: str) -> str:
    """The mount that ``path`` lies on (the nearest ancestor that is one)."""
    p = os.path.realpath(path)
    while not os.path.ismount(p):
        p = os.path.dirname(p)
    return p


def run_batch(session: zcfuse.Session, ops: Sequence[Op]) -> Dict[int, int]:
    """Submits ``ops`` and waits for all of them; returns user_data -> result."""
    results: Dict[int, int] = {}
    sent = 0
    while sent < len(ops) or len(results) < sent:
        if sent < len(ops):
            sent += session.submit(ops[sent:])
        for c in session.wait(min=1, max=64):
            if c.res < 0:
                raise OSError(-c.res, f"op {c.user_data}: {os.strerror(-c.res)}")
            results[c.user_data] = c.res
    return results


def copy_round(session: zcfuse.Session, slots: Sequence[memoryview], src_id: int, dst_id: int,
               pos: int) -> int:
    """Copies up to len(slots) blocks at ``pos``: one batch of reads, one of
    writes. Returns the bytes copied; fewer than a full round means the end."""
    block = len(slots[0])
    reads = [
        Op(Op.READ, src_id, slot, pos + i * block, user_data=i, flags=zcfuse.F_REQUIRE_ZC)
        for i, slot in enumerate(slots)
    ]
    got = run_batch(session, reads)
    sizes: List[int] = []
    for i in range(len(slots)):  # up to the first short read: the end of SRC
        sizes.append(got[i])
        if got[i] < block:
            break
    writes = [
        Op(Op.WRITE, dst_id, slots[i][:n], pos + i * block, user_data=i, flags=zcfuse.F_REQUIRE_ZC)
        for i, n in enumerate(sizes)
        if n > 0
    ]
    done = run_batch(session, writes)
    for i, n in enumerate(sizes):
        if n > 0 and done[i] != n:
            raise OSError(f"short write at {pos + i * block}: {done[i]} of {n} bytes")
    return sum(sizes)


def copy(src: str, dst: str, block: int, depth: int) -> int:
    """Copies ``src`` to ``dst`` through the zero-copy path; returns bytes copied."""
    mnt = mountpoint_of(os.path.dirname(os.path.abspath(dst)))
    total = 0
    with zcfuse.connect(mnt) as session, zcfuse.Arena.create(block * depth) as arena:
        session.share(arena)
        sfd = os.open(src, os.O_RDONLY)
        dfd = -1
        try:
            dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            src_id, dst_id = session.attach(sfd), session.attach(dfd)
            view = memoryview(arena)
            slots = [view[i * block : (i + 1) * block] for i in range(depth)]
            try:
                while True:
                    n = copy_round(session, slots, src_id, dst_id, total)
                    total += n
                    if n < block * depth:
                        break
            finally:  # the arena closes only once no view of it is left
                for slot in slots:
                    slot.release()
                view.release()
        finally:
            os.close(sfd)
            if dfd >= 0:
                os.close(dfd)
    return total


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--block", type=int, default=1 << 20, help="bytes per op (default 1 MiB)")
    ap.add_argument("--depth", type=int, default=8, help="ops per batch (default 8)")
    args = ap.parse_args(argv)
    if args.block <= 0 or args.block % 4096 or not 1 <= args.depth <= 256:
        ap.error("--block must be whole 4 KiB pages, --depth 1..256")
    t0 = time.perf_counter()
    try:
        n = copy(args.src, args.dst, args.block, args.depth)
    except (OSError, zcfuse.Error) as e:
        print(f"zc_cp: {e}", file=sys.stderr)
        return 1
    dt = time.perf_counter() - t0
    print(f"zc_cp: copied {n} bytes in {dt:.3f} s ({n / dt / (1 << 20):.1f} MiB/s), zero-copy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
