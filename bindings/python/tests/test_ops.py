"""Zero-copy operations from Python: pwrite/pread/readinto, submit/wait,
the session fd and asyncio, errors after close, server hooks, a spawned
child, and the zc_cp.py example. The server's own counters are the
oracle: a zero-copy op moves zero_copy_bytes and no FUSE READ/WRITE."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import hashlib
import multiprocessing
import os
import select
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import List, Tuple

import zcfuse
from zcfuse import Op, Opcode

from . import support
from .support import MountCase

try:
    import numpy
except ImportError:  # optional: python3-numpy
    numpy = None

KiB, MiB = 1 << 10, 1 << 20
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RW = (Opcode.READ, Opcode.WRITE)


def fuse_rw(st: zcfuse.ServerStats) -> Tuple[int, ...]:
    """FUSE READ and WRITE requests over both transports, separately."""
    return tuple(st.ring_requests[op] for op in RW) + tuple(st.dev_requests[op] for op in RW)


def close_quietly(fd: int) -> None:
    """close(2) that ignores errors (ENOTCONN once the server is gone)."""
    try:
        os.close(fd)
    except OSError:
        pass


class OpsCase(MountCase):
    """A mount, a session on it, and helpers to open and attach files."""

    def setUp(self) -> None:
        super().setUp()
        if not zcfuse.has_ops():
            support.skip_or_fail(self, f"{zcfuse.library_path} predates the zero-copy ops: rebuild it (make lib)")
        self.s = self.connect()

    def arena(self, size: int, share: bool = True) -> zcfuse.Arena:
        a = zcfuse.Arena.create(size)
        self.addCleanup(a.close)
        if share:
            self.s.share(a)
        return a

    def open(self, name: str, flags: int = os.O_RDWR | os.O_CREAT) -> Tuple[int, int]:
        """Opens ``name`` through the mount and attaches it: (fd, file_id)."""
        fd = os.open(os.path.join(self.mnt, name), flags, 0o644)
        self.addCleanup(close_quietly, fd)
        return fd, self.s.attach(fd)

    def backing_bytes(self, name: str) -> bytes:
        with open(os.path.join(self.backing, name), "rb") as f:
            return f.read()


class RoundTripTest(OpsCase):
    def test_numpy_round_trip_is_zero_copy(self) -> None:
        if numpy is None:
            support.skip_or_fail(self, "numpy is not importable (Debian: python3-numpy)")
        src_arena, dst_arena = self.arena(8 * MiB), self.arena(8 * MiB)
        src = numpy.frombuffer(src_arena, dtype=numpy.float64)
        dst = numpy.frombuffer(dst_arena, dtype=numpy.float64)
        arrays = [src, dst]
        self.addCleanup(arrays.clear)  # before the arenas close, even on failure
        src[:] = numpy.random.default_rng().random(src.size)
        self.assertFalse(numpy.array_equal(src, dst))
        fd, fid = self.open("array.bin")

        before = self.srv.stats()
        self.assertEqual(self.s.pwrite(fid, src, 0, require_zc=True), src.nbytes)
        self.assertEqual(self.s.readinto(fid, dst, 0, require_zc=True), dst.nbytes)
        after = self.srv.stats()

        self.assertTrue(numpy.array_equal(src, dst))
        self.assertEqual(after.zero_copy_bytes - before.zero_copy_bytes, 2 * src.nbytes)
        self.assertEqual(after.copied_bytes, before.copied_bytes)
        self.assertEqual(fuse_rw(after), fuse_rw(before), "FUSE READ/WRITE requests moved")
        self.assertEqual(after.zc_write_bytes - before.zc_write_bytes, src.nbytes)
        self.assertEqual(after.zc_read_bytes - before.zc_read_bytes, src.nbytes)
        # The bytes are in the backing file, and a reader through the mount sees them.
        self.assertEqual(self.backing_bytes("array.bin"), src.tobytes())
        self.assertEqual(os.pread(fd, 64, 4096), src.tobytes()[4096 : 4096 + 64])
        del src, dst  # the arenas close in cleanup only once no array is left

    def test_pread_forms(self) -> None:
        a = self.arena(64 * KiB)
        with memoryview(a) as m:
            m[:8192] = os.urandom(8192)
            _, fid = self.open("forms.bin")
            self.assertEqual(self.s.pwrite(fid, m[:8192], 0), 8192)
            # A size: new bytes (through a private buffer, the posix path).
            self.assertEqual(self.s.pread(fid, 100, 10), bytes(m[10:110]))
            # A buffer: a view of the part read, no copy; short at the end.
            got = self.s.pread(fid, m[16 * KiB : 32 * KiB], 4096, require_zc=True)
            self.assertIsInstance(got, memoryview)
            self.assertEqual(len(got), 4096)
            self.assertEqual(bytes(got), bytes(m[4096:8192]))
            got.release()
            # The whole arena as the buffer.
            self.assertEqual(self.s.readinto(fid, a, 0, require_zc=True), 8192)
            self.s.fsync(fid)
            self.s.fsync(fid, datasync=True)
            self.assertEqual(self.s.pread(fid, 10, 1 << 30), b"", "beyond the end")


class ClassicRoundTripTest(RoundTripTest):
    """The op queue does not depend on the FUSE transport: the same over /dev/fuse."""

    transport = "classic"


class PosixPathTest(OpsCase):
    def test_require_zc_outside_an_arena_is_efault(self) -> None:
        _, fid = self.open("plain.bin")
        data = bytearray(os.urandom(64 * KiB))
        before = self.srv.stats()
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.pwrite(fid, data, 0, require_zc=True)
        self.assertEqual(cm.exception.errno, errno.EFAULT)
        self.assertEqual(cm.exception.function, "zcfuse_pwrite")
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.readinto(fid, data, 0, require_zc=True)
        self.assertEqual(cm.exception.errno, errno.EFAULT)
        self.assertEqual(self.backing_bytes("plain.bin"), b"", "nothing was written")

        # Without require_zc the same buffer goes through the mount.
        self.assertEqual(self.s.pwrite(fid, data, 0), len(data))
        after = self.srv.stats()
        self.assertGreater(after.requests(Opcode.WRITE), before.requests(Opcode.WRITE))
        self.assertEqual(after.bytes_written - before.bytes_written, len(data))
        self.assertEqual(after.zero_copy_bytes, before.zero_copy_bytes)
        self.assertEqual(self.backing_bytes("plain.bin"), bytes(data))
        # bytes (read-only) are fine for a write, refused for a read.
        self.assertEqual(self.s.pwrite(fid, b"abc", 0), 3)
        with self.assertRaises((BufferError, TypeError)):
            self.s.readinto(fid, b"abc", 0)

    def test_unshared_arena_goes_the_posix_path(self) -> None:
        a = self.arena(64 * KiB, share=False)
        a[:4] = b"wxyz"
        _, fid = self.open("unshared.bin")
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.pwrite(fid, a, 0, require_zc=True)
        self.assertEqual(cm.exception.errno, errno.EFAULT)
        self.assertEqual(self.s.pwrite(fid, a, 0), 64 * KiB)
        self.assertEqual(self.backing_bytes("unshared.bin")[:4], b"wxyz")

    def test_read_only_attachment(self) -> None:
        a = self.arena(64 * KiB)
        with open(os.path.join(self.backing, "ro.bin"), "wb") as f:
            f.write(b"r" * 4096)
        _, fid = self.open("ro.bin", os.O_RDONLY)
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.pwrite(fid, a, 0, require_zc=True)
        self.assertEqual(cm.exception.errno, errno.EBADF)
        self.assertEqual(self.s.readinto(fid, a, 0), 4096)
        self.assertEqual(a[:4096], b"r" * 4096)
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.pwrite(fid, a, -1)
        self.assertIn(cm.exception.errno, (errno.EINVAL, errno.EBADF))
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.readinto(fid, a, -1)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.readinto(0xFFFF, a, 0)
        self.assertEqual(cm.exception.errno, errno.EBADF)


class ArenaOpsTest(OpsCase):
    """Buffers in a shared arena are named by {arena id, offset}
    (zcfuse_p*_arena, ZCFUSE_F_ARENA); the library's mapping is never used."""

    def test_ops_name_the_arena_by_id(self) -> None:
        a = zcfuse.Arena.create(256 * KiB)
        self.addCleanup(a.close)
        shared = self.s.share(a)
        _, fid = self.open("by-id.bin")
        with memoryview(a) as m:
            m[8 * KiB : 12 * KiB] = os.urandom(4 * KiB)
            with zcfuse._buffers.pin(m[8 * KiB :], writable=False) as p:
                self.assertEqual(self.s._arena_span(p.address, 4 * KiB), (shared.arena_id, 8 * KiB))
                self.assertEqual(p.address, a._py_address + 8 * KiB, "no translation")
            before = self.srv.stats()
            self.assertEqual(self.s.pwrite(fid, m[8 * KiB : 12 * KiB], 4 * KiB, require_zc=True), 4 * KiB)
            self.assertEqual(self.s.readinto(fid, m[100 * KiB : 104 * KiB], 4 * KiB, require_zc=True), 4 * KiB)
            after = self.srv.stats()
            self.assertEqual(bytes(m[100 * KiB : 104 * KiB]), bytes(m[8 * KiB : 12 * KiB]))
            self.assertEqual(after.zero_copy_bytes - before.zero_copy_bytes, 8 * KiB)
            self.assertEqual(fuse_rw(after), fuse_rw(before), "no FUSE READ/WRITE")
            # A buffer that starts in the arena and runs past its end: EFAULT,
            # from the by-arena call, and nothing moves.
            ctypes_buf = (ctypes.c_char * (8 * KiB)).from_address(a._py_address + 252 * KiB)
            with self.assertRaises(zcfuse.Error) as cm:
                self.s.pwrite(fid, ctypes_buf, 0)
            self.assertEqual((cm.exception.errno, cm.exception.function), (errno.EFAULT, "zcfuse_pwrite_arena"))
            # Batches too: F_ARENA is the binding's, not the caller's.
            with self.assertRaises(ValueError):
                self.s.submit([Op(Op.WRITE, fid, m[:4 * KiB], 0, flags=zcfuse._library.F_ARENA)])
            self.assertEqual(self.s.in_flight, 0)
            self.assertEqual(self.s.submit([Op(Op.READ, fid, m[:4 * KiB], 4 * KiB, user_data=1,
                                               flags=zcfuse.F_REQUIRE_ZC)]), 1)
            self.assertEqual(self.s.wait(1), [zcfuse.Completion(1, 4 * KiB)])
            self.assertEqual(bytes(m[:4 * KiB]), bytes(m[8 * KiB : 12 * KiB]))
        self.assertEqual(self.backing_bytes("by-id.bin")[4 * KiB :], bytes(a[8 * KiB : 12 * KiB]))

    def test_unshare_and_close_forget_the_arena(self) -> None:
        a = zcfuse.Arena.create(64 * KiB)
        shared = self.s.share(a)
        _, fid = self.open("forget.bin")
        self.assertEqual(self.s._arena_span(a._py_address, 4096), (shared.arena_id, 0))
        self.s.unshare(shared.arena_id)
        self.assertIsNone(self.s._arena_span(a._py_address, 4096))
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.pwrite(fid, a, 0, require_zc=True)  # by pointer now
        self.assertEqual((cm.exception.errno, cm.exception.function), (errno.EFAULT, "zcfuse_pwrite"))
        self.assertEqual(self.s.pwrite(fid, a, 0), 64 * KiB)  # the posix path
        self.s.share(a)
        addr = a._py_address
        a.close()
        self.assertIsNone(self.s._arena_span(addr, 4096), "a closed arena's range is not an arena")

    def test_arenas_of_two_sessions(self) -> None:
        other = self.connect()
        a, b = zcfuse.Arena.create(64 * KiB), zcfuse.Arena.create(64 * KiB)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        ida, idb = self.s.share(a).arena_id, other.share(b).arena_id
        self.assertEqual(self.s._arena_span(a._py_address + 5, 1), (ida, 5))
        self.assertIsNone(self.s._arena_span(b._py_address, 1), "b is the other session's")
        self.assertEqual(other._arena_span(b._py_address + 7, 1), (idb, 7))


class BatchTest(OpsCase):
    N, SIZE = 32, 4 * KiB

    def test_submit_wait_batch(self) -> None:
        src, dst = self.arena(self.N * self.SIZE), self.arena(self.N * self.SIZE)
        src[:] = os.urandom(len(src))
        _, fid = self.open("batch.bin")
        with memoryview(src) as sv, memoryview(dst) as dv:
            before = self.srv.stats()
            writes = [
                Op(Op.WRITE, fid, sv[i * self.SIZE : (i + 1) * self.SIZE], i * self.SIZE,
                   user_data=1000 + i, flags=zcfuse.F_REQUIRE_ZC)
                for i in range(self.N)
            ]
            self.assertEqual(self.s.submit(writes), self.N)
            self.assertEqual(self.s.in_flight, self.N)
            done = self.wait_all(self.N)
            self.assertEqual(sorted(c.user_data for c in done), [1000 + i for i in range(self.N)])
            self.assertTrue(all(c.res == self.SIZE for c in done), done)
            # Reads in reverse order, each into its own slot.
            reads = [
                Op(Op.READ, fid, dv[i * self.SIZE : (i + 1) * self.SIZE], i * self.SIZE,
                   user_data=2000 + i, flags=zcfuse.F_REQUIRE_ZC)
                for i in reversed(range(self.N))
            ]
            self.assertEqual(self.s.submit(reads), self.N)
            done = self.wait_all(self.N)
            self.assertEqual(sorted(c.user_data for c in done), [2000 + i for i in range(self.N)])
            self.assertTrue(all(c.res == self.SIZE for c in done), done)
            self.assertEqual(self.s.in_flight, 0)
            self.s.submit([Op(Op.FSYNC, fid, user_data=7)])
            self.assertEqual(self.s.wait(1, timeout=5), [zcfuse.Completion(7, 0)])
            del writes, reads
        self.assertEqual(src[:], dst[:])
        after = self.srv.stats()
        self.assertEqual(after.zero_copy_bytes - before.zero_copy_bytes, 2 * self.N * self.SIZE)
        self.assertEqual(fuse_rw(after), fuse_rw(before))
        self.assertGreaterEqual(after.queue_high_water, 1)
        # Nothing in flight: wait returns at once, and the arenas are free to close.
        self.assertEqual(self.s.wait(1, timeout=0), [])
        src.close()
        dst.close()

    def wait_all(self, n: int) -> List[zcfuse.Completion]:
        got: List[zcfuse.Completion] = []
        while len(got) < n:
            more = self.s.wait(n - len(got), timeout=10)
            self.assertTrue(more, f"timed out with {len(got)} of {n} completions")
            got += more
        return got

    def test_buffers_stay_pinned_until_completion(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("pin.bin")
        self.s.submit([Op(Op.WRITE, fid, memoryview(a)[:4096], 0, user_data=1)])
        with self.assertRaises(BufferError):
            a.close()  # the op still holds its buffer
        self.assertEqual(self.s.wait(1, timeout=10), [zcfuse.Completion(1, 4096)])
        a.close()
        self.assertTrue(a.closed)

    def test_local_errors_complete_at_once(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("errs.bin")
        ops = [
            Op(Op.WRITE, fid, bytearray(16), 0, user_data=1, flags=zcfuse.F_REQUIRE_ZC),
            Op(99, fid, a, 0, user_data=2),
            Op(Op.READ, 0xFFFF, memoryview(a)[:4096], 0, user_data=3),
            Op(Op.READ, fid, memoryview(a)[:4096], -5, user_data=4),
        ]
        self.assertEqual(self.s.submit(ops), len(ops))
        got = sorted(self.s.wait(len(ops), timeout=10))
        self.assertEqual(
            got,
            [(1, -errno.EFAULT), (2, -errno.EINVAL), (3, -errno.EBADF), (4, -errno.EINVAL)],
        )
        with self.assertRaises(BufferError):  # read into read-only memory: refused here
            self.s.submit([Op(Op.READ, fid, b"abcd", 0)])
        self.assertEqual(self.s.in_flight, 0)

    def test_fileno_turns_readable_after_submit(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("fd.bin")
        fd = self.s.fileno()
        self.assertGreaterEqual(fd, 0)
        self.assertEqual(self.s.fileno(), fd, "one fd per session")
        self.s.submit([Op(Op.WRITE, fid, memoryview(a)[:4096], 0, user_data=5)])
        r, _, _ = select.select([fd], [], [], 10)
        self.assertEqual(r, [fd], "the session fd did not turn readable within 10 s")
        self.assertEqual(self.s.wait(0, timeout=0), [zcfuse.Completion(5, 4096)])

    def test_wait_async(self) -> None:
        a = self.arena(self.N * self.SIZE)
        a[:] = os.urandom(len(a))
        _, fid = self.open("async.bin")

        async def main() -> Tuple[List[zcfuse.Completion], List[zcfuse.Completion], int]:
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:  # proves the loop keeps running
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0)

            t = asyncio.create_task(ticker())
            with memoryview(a) as m:
                ops = [
                    Op(Op.WRITE, fid, m[i * self.SIZE : (i + 1) * self.SIZE], i * self.SIZE, user_data=i)
                    for i in range(self.N)
                ]
                self.s.submit(ops)
                del ops
            first = await asyncio.wait_for(zcfuse.wait_async(self.s, min=1), 10)
            rest: List[zcfuse.Completion] = []
            while len(first) + len(rest) < self.N:
                rest += await asyncio.wait_for(zcfuse.wait_async(self.s, min=self.N), 10)
            none = await asyncio.wait_for(zcfuse.wait_async(self.s), 1)  # nothing in flight
            stop.set()
            await t
            self.assertEqual(none, [])
            return first, rest, ticks

        first, rest, ticks = asyncio.run(main())
        self.assertGreaterEqual(len(first), 1)
        self.assertEqual(sorted(c.user_data for c in first + rest), list(range(self.N)))
        self.assertTrue(all(c.res == self.SIZE for c in first + rest))
        self.assertGreater(ticks, 0)
        self.assertEqual(self.backing_bytes("async.bin"), a[:])

    def test_set_mode(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("mode.bin")
        self.s.set_mode("poll", spin_us=20)
        self.assertEqual(self.s.pwrite(fid, a, 0, require_zc=True), len(a))
        self.s.set_mode("sleep")
        self.assertEqual(self.s.readinto(fid, a, 0, require_zc=True), len(a))
        with self.assertRaises(ValueError):
            self.s.set_mode("spin")
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.set_mode(7)
        self.assertEqual(cm.exception.errno, errno.EINVAL)


class AfterCloseTest(OpsCase):
    def test_closed_session_raises_ebadf(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("closed.bin")
        self.s.submit([Op(Op.WRITE, fid, memoryview(a)[:4096], 0, user_data=1)])
        self.s.close()
        calls = {
            "pwrite": lambda: self.s.pwrite(fid, a, 0),
            "pread": lambda: self.s.pread(fid, 10, 0),
            "readinto": lambda: self.s.readinto(fid, a, 0),
            "fsync": lambda: self.s.fsync(fid),
            "submit": lambda: self.s.submit([Op(Op.FSYNC, fid)]),
            "wait": lambda: self.s.wait(),
            "fileno": lambda: self.s.fileno(),
            "set_mode": lambda: self.s.set_mode("poll"),
        }
        for name, call in calls.items():
            with self.assertRaises(zcfuse.Error, msg=name) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EBADF, name)
            self.assertIn("session is closed", str(cm.exception), name)
        a.close()  # close released the in-flight op's buffer
        self.assertTrue(a.closed)

    def test_closed_arena_raises(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("closed-arena.bin")
        a.close()
        for call in (
            lambda: self.s.pwrite(fid, a, 0, require_zc=True),
            lambda: self.s.readinto(fid, a, 0),
            lambda: self.s.pread(fid, a, 0),
            lambda: self.s.submit([Op(Op.WRITE, fid, a, 0)]),
        ):
            with self.assertRaises((ValueError, zcfuse.Error)):
                call()
        self.assertEqual(self.s.in_flight, 0)
        self.assertEqual(self.backing_bytes("closed-arena.bin"), b"")

    def test_server_gone(self) -> None:
        a = self.arena(64 * KiB)
        _, fid = self.open("gone.bin")
        self.srv.stop()
        with self.assertRaises(zcfuse.Error) as cm:
            self.s.pwrite(fid, a, 0, require_zc=True)
        self.assertEqual(cm.exception.errno, errno.ENOTCONN)


class HookTest(support.ScratchCase):
    def setUp(self) -> None:
        super().setUp()
        if not zcfuse.has_ops():
            support.skip_or_fail(self, f"{zcfuse.library_path} predates the zero-copy ops")
        self.backing, self.mnt = self.dirs()
        self.seen: List[Tuple[str, str, int, int, int, bool]] = []
        self.lock = threading.Lock()

    def hook(self, kind: str) -> zcfuse.Hook:
        def record(info: zcfuse.HookInfo, data: memoryview) -> None:
            # An assertion here would only reach sys.unraisablehook: record instead.
            entry = (kind, info.path, info.offset, len(data), zlib.crc32(data), info.ring)
            with self.lock:
                self.seen.append(entry if data.readonly else ("writable!",) + entry)  # type: ignore[arg-type]

        return record

    def run_ring_write(self, **opts: object) -> Tuple[int, zcfuse.ServerStats, zcfuse.ServerStats]:
        srv = self.server(self.backing, self.mnt, on_write=self.hook("w"), on_read=self.hook("r"), **opts)
        with zcfuse.connect(self.mnt) as s, zcfuse.Arena.create(256 * KiB) as a:
            s.share(a)
            a[:] = os.urandom(len(a))
            crc = zlib.crc32(a[4096 : 4096 + 64 * KiB])
            fd = os.open(os.path.join(self.mnt, "hooked.bin"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fid = s.attach(fd)
                before = srv.stats()
                with memoryview(a) as m:
                    self.assertEqual(s.pwrite(fid, m[4096 : 4096 + 64 * KiB], 8192, require_zc=True), 64 * KiB)
                    self.assertEqual(s.readinto(fid, m[:64 * KiB], 8192, require_zc=True), 64 * KiB)
                after = srv.stats()
            finally:
                os.close(fd)
        return crc, before, after

    def test_on_write_sees_the_ring_write(self) -> None:
        crc, before, after = self.run_ring_write()
        writes = [e for e in self.seen if e[0] == "w"]
        self.assertEqual(writes, [("w", "hooked.bin", 8192, 64 * KiB, crc, True)])
        reads = [e for e in self.seen if e[0] == "r"]
        self.assertEqual(reads, [("r", "hooked.bin", 8192, 64 * KiB, crc, True)])
        self.assertEqual(after.copied_bytes, before.copied_bytes, "in place: no copy")
        self.assertEqual(after.zero_copy_bytes - before.zero_copy_bytes, 2 * 64 * KiB)

    def test_hook_copy(self) -> None:
        crc, before, after = self.run_ring_write(hook_copy=True)
        self.assertIn(("w", "hooked.bin", 8192, 64 * KiB, crc, True), self.seen)
        self.assertEqual(after.copied_bytes - before.copied_bytes, 64 * KiB)

    def test_hooks_see_posix_writes_and_survive_exceptions(self) -> None:
        def boom(info: zcfuse.HookInfo, data: memoryview) -> None:
            raise RuntimeError("hook failure")

        unraisable: List[object] = []
        old = sys.unraisablehook
        sys.unraisablehook = unraisable.append
        self.addCleanup(setattr, sys, "unraisablehook", old)
        self.server(self.backing, self.mnt, transport="classic", on_write=boom, on_read=self.hook("r"))
        data = os.urandom(8 * KiB)
        with open(os.path.join(self.mnt, "posix.bin"), "wb") as f:
            f.write(data)
        self.assertEqual(self.backing_bytes_of("posix.bin"), data, "the write went through")
        self.assertTrue(unraisable, "the hook's exception was reported")
        # A read the kernel has not cached reaches the server and the hook.
        with open(os.path.join(self.backing, "fresh.bin"), "wb") as f:
            f.write(data)
        with open(os.path.join(self.mnt, "fresh.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        reads = [e for e in self.seen if e[0] == "r" and e[1] == "fresh.bin"]
        self.assertEqual(sum(e[3] for e in reads), len(data))
        self.assertFalse(any(e[5] for e in reads), "a FUSE read is not a ring op")

    def backing_bytes_of(self, name: str) -> bytes:
        with open(os.path.join(self.backing, name), "rb") as f:
            return f.read()

    def test_hook_must_be_callable(self) -> None:
        with self.assertRaises(TypeError):
            zcfuse.Server(self.backing, self.mnt, on_write=42)  # type: ignore[arg-type]


class SpawnTest(OpsCase):
    def test_spawned_child_does_zero_copy_io(self) -> None:
        before = self.srv.stats()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            got = pool.apply_async(support.spawn_child_zero_copy, (self.mnt, "child.bin", MiB)).get(timeout=60)
        after = self.srv.stats()
        self.assertNotEqual(got["pid"], os.getpid())
        self.assertNotEqual(got["session_id"], self.s.stats().session_id)
        self.assertEqual((got["wrote"], got["read"], got["same"]), (MiB, MiB, True))
        self.assertEqual(zlib.crc32(self.backing_bytes("child.bin")), got["crc"])
        self.assertEqual(after.zero_copy_bytes - before.zero_copy_bytes, 2 * MiB)
        self.assertEqual(fuse_rw(after), fuse_rw(before))


class ExampleTest(MountCase):
    def test_zc_cp(self) -> None:
        data = os.urandom(5 * MiB + 123)
        with open(os.path.join(self.backing, "src.bin"), "wb") as f:
            f.write(data)
        before = self.srv.stats()
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(zcfuse.__file__)))
        r = subprocess.run(
            [sys.executable, str(EXAMPLES / "zc_cp.py"), "--block", str(256 * KiB), "--depth", "4",
             os.path.join(self.mnt, "src.bin"), os.path.join(self.mnt, "dst.bin")],
            env=env, capture_output=True, text=True, timeout=120,
        )
        after = self.srv.stats()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"copied {len(data)} bytes", r.stdout)
        self.assertIn("MiB/s", r.stdout)
        with open(os.path.join(self.backing, "dst.bin"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(after.zero_copy_bytes - before.zero_copy_bytes, 2 * len(data))
        self.assertEqual(fuse_rw(after), fuse_rw(before), "the copy made FUSE READ/WRITE requests")


if __name__ == "__main__":
    import unittest

    unittest.main()
