"""Arenas as Python buffers: zero-copy views, the same pages as the
library's mapping, and no way to reach freed memory after close."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import unittest

import zcfuse

try:
    import numpy
except ImportError:  # optional: python3-numpy
    numpy = None

MiB = 1 << 20


def free_huge_pages() -> int:
    try:
        with open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") as f:
            return int(f.read())
    except OSError:
        return 0


class ArenaTest(unittest.TestCase):
    def arena(self, size: int = MiB) -> zcfuse.Arena:
        a = zcfuse.Arena.create(size)
        self.addCleanup(a.close)
        return a

    def test_create_properties(self) -> None:
        a = self.arena(4 * MiB)
        self.assertEqual(a.size, 4 * MiB)
        self.assertEqual(len(a), 4 * MiB)
        self.assertGreaterEqual(a.fd, 0)
        self.assertNotEqual(a.address, 0)
        self.assertFalse(a.closed)
        self.assertEqual(a[0 : 4 * MiB].count(0), 4 * MiB, "a new arena is zero-filled")
        os.fstat(a.fd)
        self.assertIn("size=4194304", repr(a))

    def test_memoryview_is_the_library_mapping(self) -> None:
        a = self.arena()
        with memoryview(a) as m:
            self.assertEqual((m.nbytes, m.readonly, m.format), (MiB, False, "B"))
            m[100:105] = b"hello"
            m[-1] = 0x7F
            # The library's mapping (zcfuse_arena_base) sees the same pages.
            self.assertEqual(ctypes.string_at(a.address + 100, 5), b"hello")
            self.assertEqual(ctypes.string_at(a.address + MiB - 1, 1), b"\x7f")
            ctypes.memmove(a.address + 200, b"from C", 6)
            self.assertEqual(bytes(m[200:206]), b"from C")
        self.assertEqual(a[100:105], b"hello")
        a[0:3] = b"abc"
        self.assertEqual(bytes(memoryview(a)[0:3]), b"abc")
        # And the memfd itself: what a server maps.
        self.assertEqual(os.pread(a.fd, 5, 100), b"hello")

    def test_numpy_frombuffer_without_copy(self) -> None:
        if numpy is None:
            self.skipTest("numpy is not installed (apt-get install python3-numpy)")
        a = self.arena(2 * MiB)
        arr = numpy.frombuffer(a, dtype=numpy.uint64)
        self.assertEqual(arr.size, 2 * MiB // 8)
        self.assertTrue(arr.flags.writeable)
        self.assertEqual(arr.ctypes.data, ctypes.addressof(ctypes.c_char.from_buffer(a)))
        arr[:] = numpy.arange(arr.size, dtype=numpy.uint64)
        self.assertEqual(ctypes.c_uint64.from_address(a.address + 8 * 12345).value, 12345)
        ctypes.c_uint64.from_address(a.address + 8).value = 0xDEADBEEF
        self.assertEqual(int(arr[1]), 0xDEADBEEF)
        with self.assertRaises(BufferError):
            a.close()  # the array still maps it
        del arr
        a.close()

    def test_close_with_live_export_raises_buffererror(self) -> None:
        a = zcfuse.Arena.create(MiB)
        m = memoryview(a)
        with self.assertRaises(BufferError):
            a.close()
        self.assertFalse(a.closed)
        m[0] = 1  # still mapped: close changed nothing
        self.assertEqual(a[0], 1)
        self.assertGreaterEqual(a.fd, 0)
        m.release()
        a.close()
        self.assertTrue(a.closed)

    def test_exit_with_exception_keeps_it(self) -> None:
        # The block fails while a view is alive: the failure comes out, not
        # a BufferError from closing the arena; the arena stays usable and
        # closes once the view is gone.
        m = None
        with self.assertRaises(FileNotFoundError) as cm:
            with zcfuse.Arena.create(MiB) as a:
                m = memoryview(a)
                open("/nonexistent/zcfuse-test", "rb")
        self.assertIsNone(cm.exception.__context__)
        self.assertFalse(a.closed)
        if hasattr(cm.exception, "add_note"):
            notes = getattr(cm.exception, "__notes__", [])
            self.assertTrue(any("was not closed" in n for n in notes), notes)
        m[0] = 7
        m.release()
        a.close()
        self.assertTrue(a.closed)

    def test_exit_with_exception_closes_without_views(self) -> None:
        with self.assertRaises(KeyError):
            with zcfuse.Arena.create(MiB) as a:
                raise KeyError("x")
        self.assertTrue(a.closed)

    def test_exit_without_exception_reports_live_views(self) -> None:
        with self.assertRaises(BufferError) as cm:
            with zcfuse.Arena.create(MiB) as a:
                m = memoryview(a)
        self.assertIn("still alive", str(cm.exception))
        self.assertFalse(a.closed)
        m.release()
        a.close()

    def test_use_after_close_raises(self) -> None:
        a = zcfuse.Arena.create(MiB)
        a.close()
        a.close()  # a second close does nothing
        self.assertTrue(a.closed)
        with self.assertRaises(ValueError):
            memoryview(a)
        with self.assertRaises(ValueError):
            a[0]
        with self.assertRaises(ValueError):
            a[0:4] = b"abcd"
        for prop in ("fd", "size", "address"):
            with self.assertRaises(zcfuse.ClosedError) as cm:
                getattr(a, prop)
            self.assertEqual(cm.exception.errno, errno.EBADF)
            self.assertIsInstance(cm.exception, zcfuse.Error)
            self.assertIsInstance(cm.exception, ValueError)
        if numpy is not None:
            with self.assertRaises(ValueError):
                numpy.frombuffer(a, dtype=numpy.uint8)
        with self.assertRaises(ValueError):
            with a:
                pass

    def test_context_manager(self) -> None:
        with zcfuse.Arena.create(64 * 1024) as a:
            a[0:2] = b"ok"
        self.assertTrue(a.closed)

    def test_bad_sizes(self) -> None:
        for size in (0, 100, 4096 + 1, zcfuse.ARENA_MAX_SIZE + 4096):
            with self.assertRaises(zcfuse.Error) as cm:
                zcfuse.Arena.create(size)
            self.assertEqual(cm.exception.errno, errno.EINVAL, size)
            self.assertIn("zcfuse_arena_create", str(cm.exception))

    def test_huge(self) -> None:
        if free_huge_pages() == 0:
            # The header's promise when none are reserved: ENOMEM.
            with self.assertRaises(zcfuse.Error) as cm:
                zcfuse.Arena.create(2 * MiB, huge=True)
            self.assertEqual(cm.exception.errno, errno.ENOMEM)
        else:
            with zcfuse.Arena.create(2 * MiB, huge=True) as a:
                with memoryview(a) as m:
                    m[-1] = 9
                self.assertEqual(ctypes.string_at(a.address + 2 * MiB - 1, 1), b"\x09")
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.Arena.create(4096, huge=True)  # not whole huge pages
        self.assertIn(cm.exception.errno, (errno.EINVAL, errno.ENOMEM))

    def test_import_fd(self) -> None:
        a = self.arena()
        a[0:6] = b"shared"
        b = zcfuse.Arena.import_fd(a.fd, MiB)
        self.addCleanup(b.close)
        self.assertNotEqual(b.fd, a.fd, "import works on a duplicate")
        self.assertEqual(b[0:6], b"shared")
        b[6:8] = b"!!"
        self.assertEqual(a[0:8], b"shared!!")
        # Refused: not a memfd; too small; not sealed against shrinking.
        with open("/proc/self/stat", "rb") as f:
            with self.assertRaises(zcfuse.Error) as cm:
                zcfuse.Arena.import_fd(f.fileno(), 4096)
            self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.Arena.import_fd(a.fd, 2 * MiB)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        fd = os.memfd_create("unsealed", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        self.addCleanup(os.close, fd)
        os.ftruncate(fd, 4096)
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.Arena.import_fd(fd, 4096)
        self.assertEqual(cm.exception.errno, errno.EPERM)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        with zcfuse.Arena.import_fd(fd, 4096) as c:
            c[0:2] = b"ok"
            self.assertEqual(os.pread(fd, 2, 0), b"ok")

    def test_sealed_size(self) -> None:
        a = self.arena()
        with self.assertRaises(zcfuse.Error) as cm:
            a.resize(2 * MiB)
        self.assertEqual(cm.exception.errno, errno.EPERM)
        with self.assertRaises(OSError):
            os.ftruncate(a.fd, MiB // 2)  # F_SEAL_SHRINK
        self.assertEqual(os.fstat(a.fd).st_size, MiB)

    def test_not_constructible_or_picklable(self) -> None:
        import pickle

        with self.assertRaises(TypeError):
            zcfuse.Arena(-1, 4096)  # type: ignore[call-arg]
        a = self.arena(4096)
        with self.assertRaises(TypeError):
            pickle.dumps(a)

    def test_many_arenas_do_not_leak(self) -> None:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(200):
            with zcfuse.Arena.create(64 * 1024) as a:
                a[0] = 1
        for _ in range(50):
            zcfuse.Arena.create(64 * 1024)  # dropped: freed by the garbage collector
        import gc

        gc.collect()
        self.assertLessEqual(len(os.listdir("/proc/self/fd")), before + 2)


if __name__ == "__main__":
    unittest.main()
