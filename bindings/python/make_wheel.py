"""Builds a wheel of the zcfuse binding that carries libzcfuse, and
installs it into a virtual environment; `make python` runs it.

    python3 bindings/python/make_wheel.py --lib build/libzcfuse.so.0 \
        --dist build/dist --venv build/venv

Works offline: nothing is fetched. The package is staged in a temporary
folder with the library copied in as zcfuse/libzcfuse.so.0 (the first
name the loader tries in the package folder), so the checkout's
bindings/python stays as it is and keeps loading the checkout's build/.
The wheel is built by --python (default: the one running this) with its
own setuptools and wheel (the pyproject's backend, setuptools.build_meta,
called as pip would with `--no-build-isolation`: nothing fetched), tagged
py3-none-<platform>: any Python >= 3.9, this machine's architecture. The
venv is made by the same Python with `--system-site-packages` when
missing, so that a system numpy stays visible, and the wheel installed
with the venv's pip (`--no-index --force-reinstall`). Last, the venv's python imports zcfuse from / with a clean
environment (no ZCFUSE_LIBRARY, LD_LIBRARY_PATH, PYTHONPATH) and must load
the library the wheel carries.

Needs a Python with venv and ensurepip (Debian: python3-venv) and, for
building, setuptools >= 61 and wheel (Debian: python3-setuptools,
python3-wheel); `make python-deps` installs them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
#: What the wheel holds besides the library: the package's sources and metadata.
SOURCES = ("pyproject.toml", "README.md", "zcfuse")
LIBRARY_NAME = "libzcfuse.so.0"

#: pyproject.toml's build backend (setuptools.build_meta), run in the staged
#: package: builds the wheel into argv[1].
BUILD_WHEEL = (
    "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])"
)

#: Run by the venv's python from / to show where zcfuse comes from.
PROBE = (
    "import zcfuse, sys; "
    "print(zcfuse.__file__); print(zcfuse.library_path); print(zcfuse.version())"
)


def platform_tag() -> str:
    """This machine's wheel platform tag, e.g. linux_x86_64."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def stage(lib: Path, into: Path) -> None:
    """Copies the package and ``lib`` (as zcfuse/libzcfuse.so.0) into ``into``."""
    for name in SOURCES:
        src = HERE / name
        if src.is_dir():
            shutil.copytree(
                src,
                into / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "libzcfuse.so*"),
            )
        else:
            shutil.copy2(src, into / name)
    shutil.copyfile(lib.resolve(), into / "zcfuse" / LIBRARY_NAME)
    os.chmod(into / "zcfuse" / LIBRARY_NAME, 0o755)
    # The wheel carries a native library: tag it with this platform, not
    # "any" (the Python code is still version-independent: py3-none-...).
    (into / "setup.cfg").write_text(f"[bdist_wheel]\nplat_name = {platform_tag()}\n")


def run(cmd: List[str], **kw: object) -> None:
    """Runs ``cmd``, showing its output only when it fails."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # type: ignore[call-overload]
                       text=True, **kw)
    if r.returncode != 0:
        sys.stdout.write(r.stdout)
        raise SystemExit(f"make_wheel: exit {r.returncode} from {cmd[0]}")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_venv(python: str, venv: Path, with_pip: bool = True) -> Path:
    """Creates ``venv`` (system site packages visible) unless it exists."""
    py = venv_python(venv)
    if not py.exists():
        cmd = [python, "-m", "venv", "--system-site-packages", str(venv)]
        run(cmd if with_pip else cmd + ["--without-pip"])
    return py


def pip(python: str, venv_py: Path) -> List[str]:
    """The pip command for ``venv_py``'s environment: its own pip, else
    ``python``'s pip aimed at it (pip >= 22.3: --python)."""
    if subprocess.run([str(venv_py), "-c", "import pip"], capture_output=True).returncode == 0:
        return [str(venv_py), "-m", "pip"]
    return [python, "-m", "pip", "--python", str(venv_py)]


def build_wheel(python: str, lib: Path, dist: Path) -> Path:
    """Builds the wheel with ``python``'s setuptools and wheel into ``dist``."""
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("zcfuse-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="zcfuse-wheel-") as tmp:
        src = Path(tmp) / "zcfuse"
        src.mkdir()
        stage(lib, src)
        # The PEP 517 hook pip would call under --no-build-isolation, called
        # directly: the same wheel, without pip's start-up and copies.
        run([python, "-c", BUILD_WHEEL, str(dist)], cwd=str(src), env=clean_env())
    wheels = sorted(dist.glob("zcfuse-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"make_wheel: expected one wheel in {dist}, found {wheels}")
    return wheels[0]


def install(pip_cmd: List[str], wheel: Path) -> None:
    """Installs ``wheel`` with ``pip_cmd``, replacing an older one."""
    run(
        pip_cmd + ["install", "--quiet", "--no-index", "--no-deps",
                   "--force-reinstall", "--disable-pip-version-check", str(wheel)],
        env=clean_env(),
    )


def clean_env() -> dict:
    """The environment without anything that could point at another libzcfuse."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ZCFUSE_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME")}
    env["PIP_NO_INPUT"] = "1"
    return env


def probe(py: Path) -> List[str]:
    """Imports zcfuse with ``py`` from / in a clean environment; returns
    [package file, library path, version], or raises when the library is
    not the package's own copy."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    out = subprocess.run(
        [str(py), "-c", PROBE], cwd="/", env=env, check=True,
        capture_output=True, text=True,
    ).stdout.split("\n")
    pkg, lib = Path(out[0]).parent, Path(out[1])
    if lib.parent != pkg:
        raise SystemExit(f"make_wheel: {py} loaded {lib}, not the package's own {pkg / LIBRARY_NAME}")
    return out[:3]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", required=True, type=Path, help="the libzcfuse to carry")
    ap.add_argument("--dist", required=True, type=Path, help="where the wheel goes")
    ap.add_argument("--venv", required=True, type=Path, help="the venv to install into")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter that builds the wheel and makes the venv "
                    "(default: this one)")
    ap.add_argument("--without-pip", action="store_true",
                    help="make the venv without pip (faster) and install with "
                    "--python's pip")
    args = ap.parse_args(argv)
    if not args.lib.exists():
        raise SystemExit(f"make_wheel: {args.lib} does not exist (make lib builds it)")
    wheel = build_wheel(args.python, args.lib, args.dist.absolute())
    py = make_venv(args.python, args.venv.absolute(), with_pip=not args.without_pip)
    install(pip(args.python, py), wheel)
    pkg, lib, version = probe(py)
    print(f"python: {wheel}")
    print(f"python: {venv_python(args.venv)} imports zcfuse {version} with {lib} (from /, clean environment)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
