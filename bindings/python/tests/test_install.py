"""The wheel `make python` builds: it carries libzcfuse, installs offline
into a fresh venv, and that venv's python imports zcfuse from / with a
clean environment (no ZCFUSE_LIBRARY, LD_LIBRARY_PATH or PYTHONPATH),
loading the library inside the package. Runs make_wheel.py, the script
behind `make python`, into a temporary folder (about 10 s)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

import zcfuse

from .support import REPO, skip_or_fail

MAKE_WHEEL = REPO / "bindings" / "python" / "make_wheel.py"


def missing_tools() -> str:
    """What this Python lacks to build and install the wheel offline, or ""."""
    lacks = [m for m in ("venv", "ensurepip", "pip", "setuptools", "wheel")
             if importlib.util.find_spec(m) is None]
    if lacks:
        return (f"{sys.executable} lacks {', '.join(lacks)} "
                "(Debian: make python-deps installs python3-venv -pip -setuptools -wheel)")
    return ""


class WheelInstallTest(unittest.TestCase):
    def test_wheel_carries_library_and_imports_from_root(self) -> None:
        why = missing_tools()
        if why:
            skip_or_fail(self, why)
        tmp = Path(tempfile.mkdtemp(prefix="zcfuse-wheel-test-"))
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        lib = Path(zcfuse.library_path)  # the library these tests run against
        env = {k: v for k, v in os.environ.items() if k != "ZCFUSE_LIBRARY"}
        r = subprocess.run(
            [sys.executable, str(MAKE_WHEEL), "--lib", str(lib), "--dist", str(tmp / "dist"),
             "--venv", str(tmp / "venv"), "--without-pip"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        self.assertEqual(r.returncode, 0, f"make_wheel.py failed:\n{r.stdout}{r.stderr}")

        wheels = list((tmp / "dist").glob("zcfuse-*.whl"))
        self.assertEqual(len(wheels), 1, wheels)
        self.assertRegex(wheels[0].name, r"^zcfuse-[0-9.]+-py3-none-linux_[a-z0-9_]+\.whl$")
        with zipfile.ZipFile(wheels[0]) as z:
            names = z.namelist()
            self.assertIn("zcfuse/libzcfuse.so.0", names)
            self.assertEqual(z.read("zcfuse/libzcfuse.so.0"), lib.read_bytes())
            self.assertFalse([n for n in names if "__pycache__" in n or n.endswith(".pyc")])

        # The installed package, from /, with nothing pointing at a library.
        probe = ("import zcfuse, os; a = zcfuse.Arena.create(1 << 20); a[:2] = b'ok'; "
                 "print(zcfuse.__file__); print(zcfuse.library_path); print(zcfuse.version()); "
                 "print(bytes(a[:2]).decode()); a.close()")
        r = subprocess.run(
            [str(tmp / "venv" / "bin" / "python"), "-c", probe],
            cwd="/", env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pkg_file, lib_path, version, data = r.stdout.splitlines()
        pkg = Path(pkg_file).parent
        self.assertTrue(pkg.is_relative_to(tmp / "venv") if hasattr(pkg, "is_relative_to")
                        else str(pkg).startswith(str(tmp / "venv")), pkg)
        self.assertEqual(Path(lib_path), pkg / "libzcfuse.so.0")
        self.assertEqual(version, zcfuse.version())
        self.assertEqual(data, "ok")
        # The checkout's package stays as it was: no library dropped into it.
        self.assertFalse(list((REPO / "bindings" / "python" / "zcfuse").glob("libzcfuse.so*")))


if __name__ == "__main__":
    unittest.main()
