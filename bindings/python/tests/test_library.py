"""The library loader, and the binding against include/zcfuse.h: every
function declared with the header's types, every struct field at the C
offset, every constant equal to the header's."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import zcfuse
from zcfuse import _library as L

from .support import REPO, skip_or_fail

HEADER = Path(os.environ.get("ZCFUSE_HEADER", REPO / "include" / "zcfuse.h"))
PYROOT = Path(zcfuse.__file__).resolve().parent.parent

STRUCTS = {
    "zcfuse_server_opts_t": L.zcfuse_server_opts_t,
    "zcfuse_server_stats_t": L.zcfuse_server_stats_t,
    "zcfuse_session_stats_t": L.zcfuse_session_stats_t,
    "zcfuse_op_t": L.zcfuse_op_t,
    "zcfuse_cqe_t": L.zcfuse_cqe_t,
    "zcfuse_hook_info_t": L.zcfuse_hook_info_t,
    "zcfuse_counter_t": L.zcfuse_counter_t,
}
OPAQUE = {
    "zcfuse_arena_t": L.zcfuse_arena,
    "zcfuse_session_t": L.zcfuse_session,
    "zcfuse_server_t": L.zcfuse_server,
}
SCALARS = {
    "int": ctypes.c_int,
    "unsigned": ctypes.c_uint,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "size_t": ctypes.c_size_t,
}
#: header macro -> the binding's value
CONSTANTS = {
    "ZCFUSE_VERSION_MAJOR": L.HEADER_VERSION[0],
    "ZCFUSE_VERSION_MINOR": L.HEADER_VERSION[1],
    "ZCFUSE_VERSION_PATCH": L.HEADER_VERSION[2],
    "ZCFUSE_ARENA_MAX_SIZE": L.ARENA_MAX_SIZE,
    "ZCFUSE_ARENA_HUGE": L.ARENA_HUGE,
    "ZCFUSE_SHARED_REGISTERED": L.SHARED_REGISTERED,
    "ZCFUSE_SESSION_STATS_VERSION": L.SESSION_STATS_VERSION,
    "ZCFUSE_SERVER_STATS_VERSION": L.SERVER_STATS_VERSION,
    "ZCFUSE_STATS_OPCODES": L.STATS_OPCODES,
    "ZCFUSE_TRANSPORT_AUTO": L.TRANSPORT_AUTO,
    "ZCFUSE_TRANSPORT_URING": L.TRANSPORT_URING,
    "ZCFUSE_TRANSPORT_CLASSIC": L.TRANSPORT_CLASSIC,
    "ZCFUSE_SERVER_ALLOW_OTHER": L.SERVER_ALLOW_OTHER,
    "ZCFUSE_SERVER_READ_ONLY": L.SERVER_READ_ONLY,
    "ZCFUSE_SERVER_PASSTHROUGH": L.SERVER_PASSTHROUGH,
    "ZCFUSE_SERVER_DEBUG": L.SERVER_DEBUG,
    "ZCFUSE_SERVER_HOOK_COPY": L.SERVER_HOOK_COPY,
    "ZCFUSE_HOOK_RING": L.HOOK_RING,
    "ZCFUSE_SERVER_OPTS_V1_SIZE": L.SERVER_OPTS_V1_SIZE,
    "ZCFUSE_SERVER_STATS_V1_SIZE": L.SERVER_STATS_V1_SIZE,
    "ZCFUSE_F_REQUIRE_ZC": L.F_REQUIRE_ZC,
    "ZCFUSE_F_DATASYNC": L.F_DATASYNC,
    "ZCFUSE_F_ARENA": L.F_ARENA,
    "ZCFUSE_OP_READ": L.OP_READ,
    "ZCFUSE_OP_WRITE": L.OP_WRITE,
    "ZCFUSE_OP_FSYNC": L.OP_FSYNC,
    "ZCFUSE_MODE_SLEEP": L.MODE_SLEEP,
    "ZCFUSE_MODE_POLL": L.MODE_POLL,
}


def header_text() -> Optional[str]:
    try:
        text = HEADER.read_text()
    except OSError:
        return None
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def ctype_of(decl: str) -> object:
    """The ctypes type for a C type as written in the header."""
    decl = re.sub(r"\bconst\b", "", decl)
    stars = decl.count("*")
    base = decl.replace("*", " ").split()
    assert len(base) == 1, f"unexpected C type {decl!r}"
    name = base[0]
    if name == "void":
        return None if stars == 0 else ctypes.c_void_p if stars == 1 else None
    if name == "char" and stars == 1:
        return ctypes.c_char_p
    if name in OPAQUE:
        t: object = OPAQUE[name]
    elif name in STRUCTS:
        t = STRUCTS[name]
    elif name in SCALARS:
        t = SCALARS[name]
    else:
        raise AssertionError(f"no ctypes mapping for C type {decl!r}")
    for _ in range(stars):
        t = ctypes.POINTER(t)  # type: ignore[arg-type]
    return t


def header_functions(text: str) -> Dict[str, Tuple[object, List[object]]]:
    """name -> (restype, argtypes) for every prototype in the header."""
    funcs = {}
    for m in re.finditer(r"^([A-Za-z_][\w \t\*]*?)\b(zcfuse_\w+)\s*\(([^)]*)\)\s*;", text, re.M):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        args = []
        for p in params.split(","):
            p = p.strip()
            if p in ("void", ""):
                continue
            p = re.sub(r"\b\w+$", "", p)  # drop the parameter's name
            args.append(ctype_of(p))
        funcs[name] = (ctype_of(ret), args)
    return funcs


def header_struct_fields(text: str, name: str) -> List[str]:
    """The field names of struct ``name``, those of anonymous unions in place."""
    body = r"((?:[^{}]|\{[^{}]*\})*)"  # one level of nested braces: a union
    m = re.search(r"typedef\s+struct\s+\w+\s*\{" + body + r"\}\s*" + name + r"\s*;", text, re.S)
    assert m, f"{name} not found in {HEADER}"
    return [f for f in re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;", m.group(1))]


def flat_fields(st: type) -> List[str]:
    """A ctypes struct's field names, an anonymous member's fields in its place."""
    out: List[str] = []
    for f in st._fields_:
        if f[0] in getattr(st, "_anonymous_", ()):
            out += flat_fields(f[1])
        else:
            out.append(f[0])
    return out


class HeaderTest(unittest.TestCase):
    """The binding agrees with include/zcfuse.h."""

    def setUp(self) -> None:
        text = header_text()
        if text is None:
            self.skipTest(f"{HEADER} not found (set ZCFUSE_HEADER to check an installed binding)")
        self.text = text

    def test_every_function_declared_with_the_header_types(self) -> None:
        funcs = header_functions(self.text)
        self.assertGreaterEqual(len(funcs), 20, "the header parser found too few functions")
        self.assertEqual(sorted(funcs), sorted(L.PROTOTYPES), "function list drifted from the header")
        for name, (restype, argtypes) in funcs.items():
            got_res, got_args = L.PROTOTYPES[name]
            self.assertIs(got_res, restype, f"{name} restype")
            self.assertEqual(len(got_args), len(argtypes), f"{name} argument count")
            for i, (a, b) in enumerate(zip(got_args, argtypes)):
                self.assertIs(a, b, f"{name} argument {i}: binding {a}, header {b}")

    def test_the_loaded_library_has_every_function(self) -> None:
        lib = zcfuse._LIB
        missing = [n for n in L.PROTOTYPES if not lib.has(n)]
        self.assertEqual(missing, [], f"{lib.path} lacks functions of the header; rebuild it (make lib)")
        for name in L.PROTOTYPES:
            fn = getattr(lib, name) if name not in L.OPTIONAL else lib.optional(name)
            self.assertEqual(fn.argtypes, L.PROTOTYPES[name][1], name)
            self.assertIs(fn.restype, L.PROTOTYPES[name][0], name)

    def test_struct_fields_match_the_header(self) -> None:
        for cname, st in STRUCTS.items():
            self.assertEqual(
                header_struct_fields(self.text, cname), flat_fields(st), cname
            )

    def test_sizes_offsets_and_constants_match_the_compiler(self) -> None:
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            skip_or_fail(self, "no C compiler (gcc/cc) to measure the C structs")
        lines = []
        for cname, st in STRUCTS.items():
            lines.append(f'printf("sizeof {cname} %zu\\n", sizeof({cname}));')
            for f in flat_fields(st):
                lines.append(f'printf("offsetof {cname}.{f} %zu\\n", offsetof({cname}, {f}));')
        for macro in CONSTANTS:
            lines.append(f'printf("const {macro} %llu\\n", (unsigned long long)({macro}));')
        src = (
            "#include <stddef.h>\n#include <stdio.h>\n#include \"zcfuse.h\"\n"
            "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            c, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
            Path(c).write_text(src)
            subprocess.run([cc, "-I", str(HEADER.parent), "-o", exe, c], check=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        got = dict(line.rsplit(" ", 1) for line in out.splitlines())
        for cname, st in STRUCTS.items():
            self.assertEqual(int(got[f"sizeof {cname}"]), ctypes.sizeof(st), f"sizeof {cname}")
            for f in flat_fields(st):
                off = getattr(st, f).offset
                self.assertEqual(int(got[f"offsetof {cname}.{f}"]), off, f"offsetof {cname}.{f}")
        for macro, value in CONSTANTS.items():
            self.assertEqual(int(got[f"const {macro}"]), value, macro)
        # Version 1 of each versioned struct ends where version 2 begins.
        self.assertEqual(L.zcfuse_server_stats_t.sessions.offset, L.SERVER_STATS_V1_SIZE, "stats v1 size")
        self.assertEqual(L.zcfuse_server_opts_t.on_write.offset, L.SERVER_OPTS_V1_SIZE, "opts v1 size")

    def test_every_header_constant_is_bound(self) -> None:
        macros = set(re.findall(r"^#define[ \t]+(ZCFUSE_\w+)[ \t]+\S", self.text, re.M))
        self.assertEqual(sorted(macros - set(CONSTANTS)), [], "constants of the header not bound")


class LoaderTest(unittest.TestCase):
    """Where the library comes from, and the error when it is nowhere."""

    def run_python(self, code: str, **env: str) -> subprocess.CompletedProcess:
        e = dict(os.environ)
        e.pop("ZCFUSE_LIBRARY", None)
        e.update(env)
        e["PYTHONPATH"] = str(PYROOT)
        return subprocess.run(
            [sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=60
        )

    def test_missing_zcfuse_library_is_an_error_naming_it(self) -> None:
        missing = "/nonexistent/zcfuse-test/libzcfuse.so.0"
        r = self.run_python("import zcfuse", ZCFUSE_LIBRARY=missing)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("LibraryNotFoundError", r.stderr)
        self.assertIn(f"{missing} ($ZCFUSE_LIBRARY): no such file", r.stderr)
        self.assertIn("make lib", r.stderr)

    def test_zcfuse_library_that_is_not_a_library(self) -> None:
        with tempfile.NamedTemporaryFile(suffix=".so") as f:
            f.write(b"not an ELF file")
            f.flush()
            r = self.run_python("import zcfuse", ZCFUSE_LIBRARY=f.name)
        self.assertNotEqual(r.returncode, 0)
        # The label, then dlopen's own reason (which begins with the path).
        self.assertIn(f"{f.name} ($ZCFUSE_LIBRARY): {f.name}: ", r.stderr)

    def test_zcfuse_library_is_used(self) -> None:
        lib = os.path.realpath(zcfuse.library_path)
        r = self.run_python("import zcfuse; print(zcfuse.library_path)", ZCFUSE_LIBRARY=lib)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), lib)

    def test_error_lists_every_path_tried(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            # A fake checkout: include/zcfuse.h and bindings/python/zcfuse, no build.
            pkg = Path(tmp, "bindings", "python", "zcfuse")
            pkg.mkdir(parents=True)
            Path(tmp, "include").mkdir()
            Path(tmp, "include", "zcfuse.h").write_text("")
            with self.assertRaises(L.LibraryNotFoundError) as cm:
                L.load_library(environ={}, package_dir=pkg, find_library=lambda name: None)
            tried = [p for p, _ in cm.exception.tried]
            self.assertEqual(
                tried,
                [
                    str(pkg / "libzcfuse.so.0"),
                    str(pkg / "libzcfuse.so"),
                    'ctypes.util.find_library("zcfuse")',
                    str(Path(tmp, "build", "libzcfuse.so.0")),
                    str(Path(tmp, "build", "libzcfuse.so")),
                ],
            )
            # find_library's answer is tried in its place, by name.
            cands = L.candidates({}, pkg, lambda name: "libzcfuse-fake.so.9")
            self.assertEqual(cands[2][1], "libzcfuse-fake.so.9")
            with self.assertRaises(L.LibraryNotFoundError) as cm:
                L.load_library(environ={}, package_dir=pkg, find_library=lambda n: "libzcfuse-fake.so.9")
            self.assertIn("libzcfuse-fake.so.9", str(cm.exception))

    def test_package_folder_is_tried_first(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            pkg = Path(tmp, "zcfuse")
            shutil.copytree(PYROOT / "zcfuse", pkg, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(os.path.realpath(zcfuse.library_path), pkg / "libzcfuse.so.0")
            e = {k: v for k, v in os.environ.items() if k != "ZCFUSE_LIBRARY"}
            e["PYTHONPATH"] = tmp
            r = subprocess.run(
                [sys.executable, "-c", "import zcfuse; print(zcfuse.library_path)"],
                env=e, capture_output=True, text=True, timeout=60, cwd=tmp,
            )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), str(pkg / "libzcfuse.so.0"))


class MiscTest(unittest.TestCase):
    def test_version_strerror_last_error(self) -> None:
        major, minor, _ = (int(x) for x in zcfuse.version().split("."))
        self.assertEqual(major, L.HEADER_VERSION[0])
        self.assertGreaterEqual(minor, L.HEADER_VERSION[1])
        self.assertEqual(zcfuse.strerror(-errno.ENOENT), os.strerror(errno.ENOENT))
        self.assertEqual(zcfuse.strerror(errno.ENOENT), os.strerror(errno.ENOENT))
        with self.assertRaises(zcfuse.Error) as cm:
            zcfuse.Arena.create(0)
        e = cm.exception
        self.assertIsInstance(e, OSError)
        self.assertEqual(e.errno, errno.EINVAL)
        self.assertEqual(e.function, "zcfuse_arena_create")
        self.assertEqual(e.detail, zcfuse.last_error())
        self.assertTrue(e.detail)
        self.assertIn(e.detail, str(e))
        self.assertIn("zcfuse_arena_create", str(e))


if __name__ == "__main__":
    unittest.main()
