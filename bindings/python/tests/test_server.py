"""zcfuse.Server: mount, serve, count, stop -- over each transport."""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import unittest

import zcfuse
from zcfuse import Opcode, Transport
from zcfuse import _library as L

from . import support
from .support import MountCase, ScratchCase, is_mounted

KiB = 1 << 10

#: The fields of zcfuse_server_stats_t that are counters (not struct_size,
#: version, transport, running, the arrays or fallback_reason).
STRUCT_COUNTERS = [
    name
    for name, _ in L.zcfuse_server_stats_t._fields_
    if name not in ("struct_size", "version", "transport", "running", "ring_requests", "dev_requests", "fallback_reason")
]


def possible_cpus() -> int:
    """CPUs in /sys/devices/system/cpu/possible: one io_uring queue each."""
    with open("/sys/devices/system/cpu/possible") as f:
        n = 0
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
    return n


class ServerIO:
    """Tests run for each transport (mixed into a MountCase below, which
    gives assert*, srv, backing, mnt and transport)."""

    def expected_transport(self) -> Transport:
        return Transport[self.transport.upper()]

    def test_stats_count_requests(self) -> None:
        st = self.srv.stats()
        self.assertTrue(st.running)
        self.assertEqual(st.version, zcfuse.SERVER_STATS_VERSION)
        self.assertEqual(st.transport, self.expected_transport())
        self.assertEqual(len(st.ring_requests), zcfuse.STATS_OPCODES)
        self.assertEqual(len(st.dev_requests), zcfuse.STATS_OPCODES)
        self.assertEqual(st.dev_requests[Opcode.INIT], 1)
        if st.transport == Transport.URING:
            self.assertEqual(st.queues, possible_cpus())
            self.assertGreater(st.queue_depth, 0)
        else:
            self.assertEqual((st.queues, st.queue_depth), (0, 0))

        data = os.urandom(256 * KiB)
        path = os.path.join(self.mnt, "out.bin")
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        after = self.srv.stats()
        self.assertGreaterEqual(after.requests(Opcode.CREATE), st.requests(Opcode.CREATE) + 1)
        self.assertGreater(after.requests(Opcode.WRITE), st.requests(Opcode.WRITE))
        self.assertEqual(after.bytes_written - st.bytes_written, len(data))
        if after.transport == Transport.URING:
            self.assertGreater(after.ring_requests[Opcode.WRITE], 0, "WRITE came over the ring")
            self.assertEqual(after.dev_requests[Opcode.WRITE], 0)
        else:
            self.assertGreater(after.dev_requests[Opcode.WRITE], 0)
            self.assertEqual(sum(after.ring_requests), 0)
        with open(os.path.join(self.backing, "out.bin"), "rb") as f:
            self.assertEqual(f.read(), data, "the bytes reached the backing directory")

        # A file the kernel has not cached: every byte is a READ reply.
        with open(os.path.join(self.backing, "in.bin"), "wb") as f:
            f.write(data)
        before = self.srv.stats()
        with open(os.path.join(self.mnt, "in.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        after = self.srv.stats()
        self.assertGreater(after.requests(Opcode.READ), before.requests(Opcode.READ))
        self.assertEqual(after.bytes_read - before.bytes_read, len(data))
        self.assertGreater(after.total_requests, before.total_requests)

    def test_counters_by_name(self) -> None:
        with open(os.path.join(self.mnt, "f.bin"), "wb") as f:
            f.write(os.urandom(64 * KiB))
        before = self.srv.stats()
        c = self.srv.counters()
        after = self.srv.stats()
        self.assertIsInstance(c, dict)
        self.assertEqual(list(c), list(self.srv.counters()), "the order is fixed")
        self.assertEqual(list(c), list(after.counters))
        self.assertTrue(all(isinstance(v, int) and v >= 0 for v in c.values()), c)
        # Every number of the struct is a counter of the same name, its value
        # between the struct snapshots taken around it.
        for name in STRUCT_COUNTERS:
            self.assertIn(name, c)
            lo, hi = sorted((getattr(before, name), getattr(after, name)))
            self.assertTrue(lo <= c[name] <= hi, f"{name}: {c[name]} not in [{lo}, {hi}]")
        self.assertGreaterEqual(c["bytes_written"], 64 * KiB)
        # Counters the struct lacks are attributes too, by name.
        self.assertIn("fast_reads", c)
        self.assertEqual(after.fast_reads, after.counters["fast_reads"])
        self.assertGreaterEqual(after.fs.inodes, 1)
        self.assertEqual(after.fs.inodes, after.counters["fs.inodes"])
        self.assertEqual(getattr(after, "fs.inodes"), after.get("fs.inodes"))
        self.assertIn("inodes", dir(after.fs))
        self.assertIn("fast_reads", dir(after))
        self.assertIsNone(after.get("no_such_counter"))
        with self.assertRaises(AttributeError):
            after.no_such_counter
        with self.assertRaises(AttributeError):
            after.fs.no_such_counter
        with self.assertRaises(TypeError):
            after.counters["bytes_read"] = 0  # type: ignore[index]
        self.assertEqual(after.counters["read_only"], 0)  # a bool is 0/1
        self.assertEqual(after.counters["queues"], after.queues)
        # One at a time, by name, through the C call.
        v = ctypes.c_uint64()
        lib = zcfuse._LIB
        self.assertEqual(lib.zcfuse_server_counter(self.srv._live(), b"bytes_written", ctypes.byref(v)), 0)
        self.assertGreaterEqual(v.value, c["bytes_written"])
        self.assertEqual(lib.zcfuse_server_counter(self.srv._live(), b"nope", ctypes.byref(v)), -errno.ENOENT)
        # A snapshot pickles, counters and all.
        self.assertEqual(pickle.loads(pickle.dumps(after)), after)

    def test_stop_unmounts(self) -> None:
        self.assertTrue(is_mounted(self.mnt))
        self.srv.stop()
        self.assertFalse(is_mounted(self.mnt))
        self.assertFalse(self.srv.stats().running)
        self.srv.stop()  # stopping a stopped server is fine
        with self.assertRaises(zcfuse.Error) as cm:
            self.srv.start()  # a server mounts once
        self.assertEqual(cm.exception.errno, errno.EALREADY)
        self.srv.close()
        self.assertTrue(self.srv.closed)
        for call in (self.srv.start, self.srv.stop, self.srv.stats, self.srv.run, self.srv.counters):
            with self.assertRaises(zcfuse.ClosedError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EBADF)
        self.srv.close()


class ClassicTest(ServerIO, MountCase):
    transport = "classic"


class UringTest(ServerIO, MountCase):
    transport = "uring"

    def setUp(self) -> None:
        # Switch FUSE-over-io_uring on before the server starts in MountCase.
        support.require_uring(self)
        super().setUp()


class AutoTest(ServerIO, MountCase):
    transport = "auto"

    def setUp(self) -> None:
        # Switch FUSE-over-io_uring on where possible, then see what auto picks.
        self.uring = support.uring_unavailable() is None
        super().setUp()

    def expected_transport(self) -> Transport:
        return Transport.URING if self.uring else Transport.CLASSIC

    def test_fallback_reason(self) -> None:
        st = self.srv.stats()
        if st.transport == Transport.URING:
            self.assertEqual(st.fallback_reason, "")
        else:
            self.assertNotEqual(st.fallback_reason, "", "a fallback says why")
            self.assertNotEqual(os.environ.get("ZCFUSE_REQUIRE_URING"), "1")


class ServerLifecycleTest(ScratchCase):
    def test_context_manager(self) -> None:
        backing, mnt = self.dirs()
        srv = zcfuse.Server(backing, mnt, transport="classic")
        self.addCleanup(self._stop, srv, mnt)
        self.assertFalse(is_mounted(mnt), "nothing is mounted before start")
        with srv as s:
            self.assertIs(s, srv)
            self.assertTrue(is_mounted(mnt))
            with open(os.path.join(mnt, "f"), "w") as f:
                f.write("hi")
        self.assertFalse(is_mounted(mnt))
        self.assertTrue(srv.closed)
        with open(os.path.join(backing, "f")) as f:
            self.assertEqual(f.read(), "hi")
        # Entered after start(): not started twice.
        srv2 = self.server(backing, mnt, transport="classic")
        with srv2:
            self.assertTrue(is_mounted(mnt))
        self.assertFalse(is_mounted(mnt))

    def test_limits_by_name(self) -> None:
        names = zcfuse.limit_names()
        self.assertIn("sessions_per_user", names)
        self.assertIn("hello_timeout_ms", names)
        backing, mnt = self.dirs()
        srv = zcfuse.Server(backing, mnt, limits={"sessions_per_user": 3, "hello_timeout_ms": 750})
        self.addCleanup(srv.close)
        self.assertEqual(srv.limit("sessions_per_user"), 3)
        self.assertEqual(srv.limit("hello_timeout_ms"), 750)
        self.assertGreater(srv.limit("attached_files"), 0, "unset: the library's default")
        with self.assertRaises(zcfuse.Error) as cm:
            srv.limit("no_such_limit")
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        for bad, err in (({"no_such_limit": 1}, errno.ENOENT), ({"fixed_slots": 1 << 40}, errno.ERANGE)):
            with self.assertRaises(zcfuse.Error) as cm:
                zcfuse.Server(backing, mnt, limits=bad)
            self.assertEqual(cm.exception.errno, err, bad)

    def test_run_in_a_thread_until_stop(self) -> None:
        backing, mnt = self.dirs()
        srv = self.server(backing, mnt, start=False)
        result: list = []

        def run() -> None:
            try:
                srv.run()
                result.append("ok")
            except BaseException as e:  # reported below
                result.append(e)

        t = threading.Thread(target=run)
        t.start()
        self.assertTrue(support.wait_for(lambda: srv.stats().running, 10), "run() did not start serving")
        self.assertTrue(is_mounted(mnt))
        os.listdir(mnt)
        srv.stop()
        t.join(10)
        self.assertFalse(t.is_alive(), "run() did not return after stop()")
        self.assertEqual(result, ["ok"])

    def test_umount_from_outside_ends_run(self) -> None:
        backing, mnt = self.dirs()
        srv = self.server(backing, mnt, transport="classic")
        done = threading.Event()
        t = threading.Thread(target=lambda: (srv.run(), done.set()))
        t.start()
        subprocess.run(["umount", mnt], check=True)
        t.join(10)
        self.assertTrue(done.is_set(), "run() did not return after umount")
        self.assertFalse(srv.stats().running)

    def test_read_only(self) -> None:
        backing, mnt = self.dirs()
        with open(os.path.join(backing, "f"), "w") as f:
            f.write("data")
        self.server(backing, mnt, read_only=True)
        with open(os.path.join(mnt, "f")) as f:
            self.assertEqual(f.read(), "data")
        with self.assertRaises(OSError) as cm:
            open(os.path.join(mnt, "g"), "w")
        self.assertEqual(cm.exception.errno, errno.EROFS)

    def test_create_errors(self) -> None:
        backing, mnt = self.dirs()
        cases = [
            (dict(backing_dir=os.path.join(self.scratch, "none"), mountpoint=mnt), errno.ENOENT),
            (dict(backing_dir=backing, mountpoint=os.path.join(self.scratch, "none")), errno.ENOENT),
            (dict(backing_dir=backing, mountpoint=mnt, queue_depth=65), errno.EINVAL),
        ]
        f = os.path.join(self.scratch, "file")
        open(f, "w").close()
        cases.append((dict(backing_dir=backing, mountpoint=f), errno.ENOTDIR))
        for kwargs, want in cases:
            with self.assertRaises(zcfuse.Error, msg=str(kwargs)) as cm:
                zcfuse.Server(**kwargs)  # type: ignore[arg-type]
            self.assertEqual(cm.exception.errno, want, str(cm.exception))
            self.assertEqual(cm.exception.function, "zcfuse_server_create")
            self.assertTrue(cm.exception.detail)
        with self.assertRaises(ValueError):
            zcfuse.Server(backing, mnt, transport="carrier-pigeon")
        # Something is mounted there already.
        self.server(backing, mnt)
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.Server(backing, mnt)
        self.assertEqual(cm.exception.errno, errno.EBUSY)

    def test_stopped_at_interpreter_exit(self) -> None:
        if support.mount_unavailable():
            support.skip_or_fail(self, support.mount_unavailable() or "")
        backing, mnt = self.dirs()
        # The check is registered before zcfuse is imported, so it runs after
        # zcfuse's atexit hook and before module teardown (where __del__
        # would close the server anyway).
        code = textwrap.dedent(
            f"""
            import atexit, os
            def check():
                mounted = any(l.split()[4] == os.path.realpath({mnt!r})
                              for l in open("/proc/self/mountinfo"))
                print("at exit:", "mounted" if mounted else "unmounted", flush=True)
            atexit.register(check)
            import zcfuse
            srv = zcfuse.Server({backing!r}, {mnt!r})
            srv.start()
            assert srv.stats().running
            print("started", flush=True)
            # no stop(), no close()
            """
        )
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(zcfuse.__file__)))
        try:
            r = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
            )
        finally:
            if is_mounted(mnt):
                subprocess.run(["umount", "-l", mnt], check=False)
                self.fail(f"{mnt} stayed mounted after the interpreter exited")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n"), ["started", "at exit: unmounted", ""])
        self.assertNotIn("Warning", r.stderr)


if __name__ == "__main__":
    unittest.main()
