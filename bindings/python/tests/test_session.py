"""Sessions against a server started in-process by zcfuse.Server:
connect, share, stats, unshare, attach, errors, close, fork, spawn."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import tempfile
import time
import unittest

import zcfuse

from . import support
from .support import MountCase, ScratchCase, wait_for

KiB, MiB = 1 << 10, 1 << 20


class SessionTest(MountCase):
    def test_connect_share_stats_unshare(self) -> None:
        s = self.connect()
        st = s.stats()
        self.assertEqual(st.version, zcfuse.SESSION_STATS_VERSION)
        self.assertNotEqual(st.session_id, 0)
        self.assertEqual((st.sessions, st.arenas, st.registered_bytes), (1, 0, 0))

        small = zcfuse.Arena.create(4 * KiB)
        self.addCleanup(small.close)
        big = zcfuse.Arena.create(64 * MiB)
        self.addCleanup(big.close)
        a = s.share(small)
        b = s.share(big)
        self.assertIsInstance(a, zcfuse.SharedArena)
        self.assertNotEqual(a.arena_id, b.arena_id)
        # A root server registers both as io_uring fixed buffers.
        self.assertTrue(a.registered and b.registered, (a, b))
        st = s.stats()
        self.assertEqual(st.arenas, 2)
        self.assertEqual(st.registered_bytes, 4 * KiB + 64 * MiB)
        srv = self.srv.stats()
        if srv.version >= 2:
            self.assertEqual((srv.sessions, srv.arenas, srv.registered_bytes), (1, 2, 4 * KiB + 64 * MiB))

        s.unshare(a.arena_id)
        st = s.stats()
        self.assertEqual((st.arenas, st.registered_bytes), (1, 64 * MiB))
        with self.assertRaises(zcfuse.Error) as cm:
            s.unshare(a.arena_id)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertIn("zcfuse_unshare", str(cm.exception))
        # Closing the session releases what it still shares.
        s.close()
        with zcfuse.connect(self.mnt) as s2:
            st = s2.stats()
            self.assertEqual((st.sessions, st.arenas, st.registered_bytes), (1, 0, 0))
            self.assertNotEqual(st.session_id, 0)

    def test_arena_data_survives_sharing(self) -> None:
        s = self.connect()
        with zcfuse.Arena.create(MiB) as a:
            with memoryview(a) as m:
                m[0:5] = b"hello"
                shared = s.share(a)  # shared while a view is alive
                self.assertEqual(bytes(m[0:5]), b"hello")
            s.unshare(shared.arena_id)

    def test_two_sessions(self) -> None:
        s1, s2 = self.connect(), self.connect()
        self.assertNotEqual(s1.stats().session_id, s2.stats().session_id)
        self.assertEqual(s1.stats().sessions, 2)
        with zcfuse.Arena.create(MiB) as a:
            s2.share(a)
            self.assertEqual(s1.stats().arenas, 1, "arenas counts every session's")
            s2.close()
            self.assertEqual(s1.stats().arenas, 0)
            self.assertEqual(s1.stats().sessions, 1)

    def test_share_closed_arena(self) -> None:
        s = self.connect()
        a = zcfuse.Arena.create(MiB)
        a.close()
        with self.assertRaises(zcfuse.Error) as cm:
            s.share(a)
        self.assertEqual(cm.exception.errno, errno.EBADF)
        self.assertEqual(s.stats().arenas, 0)
        with self.assertRaises(TypeError):
            s.share(bytearray(4096))  # type: ignore[arg-type]

    def test_closed_session_raises(self) -> None:
        s = zcfuse.connect(self.mnt)
        with s:
            self.assertFalse(s.closed)
        self.assertTrue(s.closed)
        s.close()  # a second close does nothing
        with zcfuse.Arena.create(4096) as a:
            calls = {
                "stats": lambda: s.stats(),
                "share": lambda: s.share(a),
                "unshare": lambda: s.unshare(1),
                "attach": lambda: s.attach(0),
                "detach": lambda: s.detach(1),
            }
            for name, call in calls.items():
                with self.assertRaises(zcfuse.ClosedError, msg=name) as cm:
                    call()
                self.assertEqual(cm.exception.errno, errno.EBADF, name)
                self.assertIn("session is closed", str(cm.exception), name)
        with self.assertRaises(zcfuse.ClosedError):
            with s:
                pass

    def test_server_gone(self) -> None:
        s = zcfuse.connect(self.mnt)
        self.srv.stop()
        with self.assertRaises(zcfuse.Error) as cm:
            s.stats()
        self.assertEqual(cm.exception.errno, errno.ENOTCONN)
        s.close()  # freed; a server already gone is not an error here
        self.assertTrue(s.closed)

    def test_fork_child_gets_echild(self) -> None:
        s = self.connect()
        a = zcfuse.Arena.create(MiB)
        self.addCleanup(a.close)
        a[0:6] = b"parent"
        s.share(a)
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: only os._exit leaves it
            code = 10
            try:
                codes = []
                for call in (
                    s.stats,
                    lambda: s.share(a),
                    lambda: zcfuse.Arena.create(4096),
                    lambda: zcfuse.connect(self.mnt),
                    lambda: zcfuse.Server(self.backing, self.mnt),
                ):
                    try:
                        call()
                        codes.append(1)  # succeeded: wrong
                    except zcfuse.Error as e:
                        codes.append(0 if e.errno == errno.ECHILD and "fork" in str(e) else 2)
                # Plain memory keeps working: the arena is MAP_SHARED.
                ok_mem = a[0:6] == b"parent"
                a[6:11] = b"+kid!"
                code = max(codes) if ok_mem else 3
                if code == 0 and time.monotonic() - t0 > 5:
                    code = 4  # "at once", not after a timeout
            finally:
                os._exit(code)
        status = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.fail("the forked child hung in a zcfuse call (killed after 10 s)")
        self.assertTrue(os.WIFEXITED(status), f"child status {status:#x}")
        self.assertEqual(
            os.WEXITSTATUS(status),
            0,
            "child: 1 a call succeeded, 2 wrong errno/message, 3 arena memory, "
            "4 too slow, 10 an exception",
        )
        self.assertEqual(a[6:11], b"+kid!", "the child wrote the shared arena")
        # The parent's session is unaffected.
        st = s.stats()
        self.assertEqual((st.sessions, st.arenas), (1, 1))
        with zcfuse.Arena.create(4096) as b:
            s.share(b)
            self.assertEqual(s.stats().arenas, 2)

    def test_spawned_process_connects_on_its_own(self) -> None:
        s = self.connect()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            got = pool.apply_async(support.spawn_child_stats, (self.mnt,)).get(timeout=60)
        self.assertNotEqual(got["pid"], os.getpid())
        self.assertNotEqual(got["session_id"], 0)
        self.assertNotEqual(got["session_id"], s.stats().session_id)
        self.assertEqual(got["sessions"], 2, "the parent's session and the child's")
        self.assertEqual(got["arenas_after_share"], 1)
        st = s.stats()
        self.assertEqual((st.sessions, st.arenas), (1, 0), "the child's session is gone")


class AttachTest(MountCase):
    def setUp(self) -> None:
        super().setUp()
        if not zcfuse.has_attach():
            support.skip_or_fail(
                self, f"{zcfuse.library_path} predates zcfuse_attach/zcfuse_detach: rebuild it (make lib)"
            )
        for name in ("rw.bin", "ro.bin"):
            with open(os.path.join(self.backing, name), "wb") as f:
                f.write(b"x" * 8192)

    def open(self, name: str, flags: int) -> int:
        fd = os.open(os.path.join(self.mnt, name), flags)
        self.addCleanup(self.close_quietly, fd)
        return fd

    @staticmethod
    def close_quietly(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    def test_attach_and_release(self) -> None:
        s = self.connect()
        rw = self.open("rw.bin", os.O_RDWR)
        with open(os.path.join(self.mnt, "ro.bin"), "rb") as ro:
            id_rw = s.attach(rw)
            id_ro = s.attach(ro)  # an object with fileno()
            self.assertNotEqual(id_rw, id_ro)
            self.assertEqual(s.attach(rw), id_rw, "the same open file gives the same id")
            self.assertEqual(s.stats().attached_files, 2)
            srv = self.srv.stats()
            if srv.version >= 2:
                self.assertEqual(srv.attached_files, 2)
        os.close(rw)
        # The kernel releases the files asynchronously.
        self.assertTrue(
            wait_for(lambda: s.stats().attached_files == 0, 5),
            f"attached_files stays {s.stats().attached_files} after close",
        )

    def test_detach(self) -> None:
        s = self.connect()
        fd = self.open("rw.bin", os.O_RDWR)
        fid = s.attach(fd)
        s.detach(fid)
        self.assertEqual(s.stats().attached_files, 0)
        with self.assertRaises(zcfuse.Error) as cm:
            s.detach(fid)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        with self.assertRaises(zcfuse.Error) as cm:
            s.detach(0xFFFF)
        self.assertEqual(cm.exception.errno, errno.ENOENT)

    def test_session_close_ends_attachments(self) -> None:
        s = zcfuse.connect(self.mnt)
        self.addCleanup(s.close)
        fd = self.open("rw.bin", os.O_RDWR)
        s.attach(fd)
        s.close()
        with zcfuse.connect(self.mnt) as s2:
            self.assertTrue(wait_for(lambda: s2.stats().attached_files == 0, 5))

    def test_attach_errors(self) -> None:
        s = self.connect()
        with tempfile.TemporaryFile(dir="/tmp") as f:
            with self.assertRaises(zcfuse.Error) as cm:
                s.attach(f)
            self.assertEqual(cm.exception.errno, errno.EXDEV, str(cm.exception))
            self.assertIn("zcfuse_attach", str(cm.exception))
        fd = self.open("rw.bin", os.O_RDONLY)
        os.close(fd)
        with self.assertRaises(zcfuse.Error) as cm:
            s.attach(fd)
        self.assertEqual(cm.exception.errno, errno.EBADF)
        dfd = self.open(".", os.O_RDONLY | os.O_DIRECTORY)
        with self.assertRaises(zcfuse.Error) as cm:
            s.attach(dfd)
        self.assertIn(cm.exception.errno, (errno.EINVAL, errno.EXDEV))
        self.assertEqual(s.stats().attached_files, 0)


class ConnectErrorTest(ScratchCase):
    def test_not_a_zcfuse_mount(self) -> None:
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.connect(self.scratch)
        e = cm.exception
        self.assertEqual(e.errno, errno.ENODATA)
        self.assertEqual(e.function, "zcfuse_connect")
        self.assertIn(self.scratch, str(e))
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.Session.connect(os.path.join(self.scratch, "missing"))
        self.assertIn(cm.exception.errno, (errno.ENOENT, errno.ENODATA))

    def test_not_picklable(self) -> None:
        import pickle

        backing, mnt = self.dirs()
        self.server(backing, mnt)
        with zcfuse.connect(mnt) as s, self.assertRaises(TypeError):
            pickle.dumps(s)


if __name__ == "__main__":
    unittest.main()
