"""bindings/python/README.md's example, run as written against a real
mount (as root): it must not rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unittest

import zcfuse

from .support import REPO, mount_unavailable, skip_or_fail

README = REPO / "bindings" / "python" / "README.md"


def usage_example() -> str:
    """The first ```python block after the README's "## Use" heading."""
    text = README.read_text()
    use = text.index("\n## Use\n")
    m = re.compile(r"^```python\n(.*?)^```$", re.S | re.M).search(text, use)
    if m is None:
        raise AssertionError(f"{README}: no python block after ## Use")
    return m.group(1)


class ReadmeTest(unittest.TestCase):
    def test_usage_example_runs_as_written(self) -> None:
        why = mount_unavailable()
        if why:
            skip_or_fail(self, why)
        code = usage_example()
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(zcfuse.__file__))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
        # The library these tests loaded, whichever way they found it.
        env["ZCFUSE_LIBRARY"] = zcfuse.library_path
        r = subprocess.run(
            [sys.executable, "-c", code], cwd="/", env=env,
            capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(r.returncode, 0, f"the README example failed:\n{r.stdout}{r.stderr}")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r.stdout)
        self.assertIn("arenas=1", lines[0])
        self.assertRegex(lines[1], r"^Transport\.(URING|CLASSIC) 8192$")


if __name__ == "__main__":
    unittest.main()
