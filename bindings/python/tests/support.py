"""What the zcfuse binding's tests share: prerequisites, scratch mounts.

Skips name what the machine lacks; when the environment variable CI is
set, a missing prerequisite fails instead (as in the C and Go suites).
Scratch directories live under /dev/shm as zcfuse-pytest-PID-*; every
mount a test makes is stopped in its cleanup, with ``umount -l`` as the
last resort, so no server outlives its test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import unittest
import zlib
from pathlib import Path
from typing import Callable, Optional, Tuple

import zcfuse

ENABLE_URING = Path("/sys/module/fuse/parameters/enable_uring")
#: The zcfuse checkout these tests sit in (bindings/python/tests -> root).
REPO = Path(__file__).resolve().parents[3]


def skip_or_fail(case: unittest.TestCase, why: str) -> None:
    """Skips ``case`` because the machine lacks something, or fails under CI."""
    if os.environ.get("CI"):
        case.fail(f"CI is set, so a missing prerequisite is a failure: {why}")
    case.skipTest(why)


def mount_unavailable() -> Optional[str]:
    """Why this process cannot mount FUSE file systems, or None."""
    if os.geteuid() != 0:
        return "not root: mounting a FUSE file system needs mount(2) on /dev/fuse"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return f"cannot open /dev/fuse: {e}"
    return None


def uring_unavailable() -> Optional[str]:
    """Switches FUSE-over-io_uring on when possible; returns why not, or None."""
    try:
        if ENABLE_URING.read_text().strip() == "Y":
            return None
    except OSError as e:
        return f"cannot read {ENABLE_URING}: {e} (Linux 6.14+ with FUSE needed)"
    try:
        ENABLE_URING.write_text("Y\n")
    except OSError as e:
        return f"{ENABLE_URING} is N and cannot be switched on: {e}"
    return None if ENABLE_URING.read_text().strip() == "Y" else f"{ENABLE_URING} stays N"


def require_uring(case: unittest.TestCase) -> None:
    """Skips unless FUSE-over-io_uring is on (fails with ZCFUSE_REQUIRE_URING=1)."""
    why = uring_unavailable()
    if why is None:
        return
    if os.environ.get("ZCFUSE_REQUIRE_URING") == "1":
        case.fail(f"FUSE-over-io_uring required (ZCFUSE_REQUIRE_URING=1) but {why}")
    skip_or_fail(case, f"FUSE-over-io_uring not available: {why}")


def is_mounted(path: str) -> bool:
    """Whether something is mounted on ``path`` (per /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == real:
                return True
    return False


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Polls ``cond`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class ScratchCase(unittest.TestCase):
    """A test with a fresh scratch directory (removed afterwards)."""

    def setUp(self) -> None:
        super().setUp()
        self.scratch = tempfile.mkdtemp(prefix=f"zcfuse-pytest-{os.getpid()}-", dir="/dev/shm")
        self.addCleanup(shutil.rmtree, self.scratch, ignore_errors=True)

    def dirs(self, name: str = "") -> Tuple[str, str]:
        """Makes and returns (backing, mountpoint) directories in the scratch."""
        backing = os.path.join(self.scratch, name + "backing")
        mnt = os.path.join(self.scratch, name + "mnt")
        os.mkdir(backing)
        os.mkdir(mnt)
        return backing, mnt

    def server(self, backing: str, mnt: str, start: bool = True, **opts: object) -> zcfuse.Server:
        """A Server on (backing, mnt), closed in cleanup even on failure."""
        why = mount_unavailable()
        if why:
            skip_or_fail(self, why)
        srv = zcfuse.Server(backing, mnt, **opts)  # type: ignore[arg-type]
        self.addCleanup(self._stop, srv, mnt)
        if start:
            srv.start()
        return srv

    def _stop(self, srv: zcfuse.Server, mnt: str) -> None:
        try:
            srv.close()
        finally:
            if is_mounted(mnt):  # the last resort: never leave a mount behind
                subprocess.run(["umount", "-l", mnt], check=False)
                self.fail(f"{mnt} was still mounted after Server.close()")


class MountCase(ScratchCase):
    """A test with a zcfuse server mounted in-process (transport below)."""

    transport = "auto"

    def setUp(self) -> None:
        super().setUp()
        self.backing, self.mnt = self.dirs()
        self.srv = self.server(self.backing, self.mnt, transport=self.transport)

    def connect(self) -> zcfuse.Session:
        """A session on this test's mount, closed in cleanup."""
        s = zcfuse.connect(self.mnt)
        self.addCleanup(s.close)
        return s


def spawn_child_stats(mountpoint: str) -> dict:
    """Runs in a multiprocessing 'spawn' child: connects on its own, reads stats."""
    with zcfuse.connect(mountpoint) as s:
        st = s.stats()
        with zcfuse.Arena.create(1 << 20) as a:
            shared = s.share(a)
            after = s.stats()
            s.unshare(shared.arena_id)
    return {
        "pid": os.getpid(),
        "session_id": st.session_id,
        "sessions": st.sessions,
        "arenas_after_share": after.arenas,
    }


def spawn_child_zero_copy(mountpoint: str, name: str, size: int) -> dict:
    """Runs in a multiprocessing 'spawn' child: connects, shares an arena of
    its own, writes ``size`` bytes of a pattern zero-copy to ``name`` on the
    mount and reads them back zero-copy into another part of the arena."""
    with zcfuse.connect(mountpoint) as s, zcfuse.Arena.create(2 * size) as a:
        s.share(a)
        pattern = os.urandom(size)
        with memoryview(a) as m:
            m[:size] = pattern
            fd = os.open(os.path.join(mountpoint, name), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fid = s.attach(fd)
                wrote = s.pwrite(fid, m[:size], 0, require_zc=True)
                read = s.readinto(fid, m[size:], 0, require_zc=True)
                same = bytes(m[size : 2 * size]) == pattern
            finally:
                os.close(fd)
        return {
            "pid": os.getpid(),
            "session_id": s.stats().session_id,
            "wrote": wrote,
            "read": read,
            "same": same,
            "crc": zlib.crc32(pattern),
        }
