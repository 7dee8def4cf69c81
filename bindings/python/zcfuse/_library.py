"""Loads libzcfuse and declares every function of include/zcfuse.h.

This is the one module that touches the shared library. It finds it, in
this order:

1. ``$ZCFUSE_LIBRARY``, a path. When set, it is the only candidate: a
   wrong path is an error, never a silent fall-back to another copy.
2. The package folder: ``libzcfuse.so.0`` or ``libzcfuse.so`` next to
   this file (a wheel or an installed package may carry it there).
3. ``ctypes.util.find_library("zcfuse")`` (ldconfig's cache, e.g. after
   ``make install``).
4. When the package runs in place from a zcfuse checkout
   (``PYTHONPATH=bindings/python``): the checkout's ``build/`` folder.

If none loads, :class:`LibraryNotFoundError` (an :class:`ImportError`)
names every path tried and why each failed.

The structs mirror the header field for field; the function table
``PROTOTYPES`` gives ``restype``/``argtypes`` for every function, and the
tests compare it with the header so that the two cannot drift apart.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_char,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# ---------------------------------------------------------------------------
# Constants of include/zcfuse.h
# ---------------------------------------------------------------------------

#: The header version this binding was written against.
HEADER_VERSION = (0, 1, 0)
ARENA_MAX_SIZE = 1 << 30
ARENA_HUGE = 1 << 0
SHARED_REGISTERED = 1 << 0
SESSION_STATS_VERSION = 1
SERVER_STATS_VERSION = 2
#: struct_size of version 1 of zcfuse_server_stats_t (it ends at fallback_reason).
SERVER_STATS_V1_SIZE = 1328
STATS_OPCODES = 64
TRANSPORT_AUTO = 0
TRANSPORT_URING = 1
TRANSPORT_CLASSIC = 2
SERVER_ALLOW_OTHER = 1 << 0
SERVER_READ_ONLY = 1 << 1
SERVER_PASSTHROUGH = 1 << 2
SERVER_DEBUG = 1 << 3
SERVER_HOOK_COPY = 1 << 4
#: Set in zcfuse_hook_info_t.flags: the data came from a session's op queue.
HOOK_RING = 1 << 0
#: sizeof(zcfuse_server_opts_t) in version 1, before the hooks.
SERVER_OPTS_V1_SIZE = 24 + 2 * ctypes.sizeof(c_void_p)
# Zero-copy operations: op flags, opcodes, wait modes.
F_REQUIRE_ZC = 1 << 0
F_DATASYNC = 1 << 1
#: A read/write names {arena_id, arena_off} instead of a pointer.
F_ARENA = 1 << 2
OP_READ = 1
OP_WRITE = 2
OP_FSYNC = 3
MODE_SLEEP = 0
MODE_POLL = 1
#: entry_timeout_ms / attr_timeout_ms value meaning "no caching".
NO_CACHE = 0xFFFFFFFF

# ---------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------


class zcfuse_arena(Structure):
    """Opaque ``struct zcfuse_arena``; only pointers to it are used."""


class zcfuse_session(Structure):
    """Opaque ``struct zcfuse_session``; only pointers to it are used."""


class zcfuse_server(Structure):
    """Opaque ``struct zcfuse_server``; only pointers to it are used."""


ArenaP = POINTER(zcfuse_arena)
SessionP = POINTER(zcfuse_session)
ServerP = POINTER(zcfuse_server)


class zcfuse_session_stats_t(Structure):
    """``zcfuse_session_stats_t``: a session's view of the server."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("version", c_uint32),
        ("session_id", c_uint64),
        ("sessions", c_uint64),
        ("arenas", c_uint64),
        ("registered_bytes", c_uint64),
        ("attached_files", c_uint64),
    ]


class zcfuse_op_mem(Union):
    """The anonymous union of ``zcfuse_op_t``: a pointer, or an offset in
    the arena ``arena_id`` (with F_ARENA)."""

    _fields_ = [("buf", c_void_p), ("arena_off", c_uint64)]


class zcfuse_op_t(Structure):
    """``zcfuse_op_t``: one operation for zcfuse_submit().

    ``buf`` and ``arena_off`` share bytes 16..23 (an anonymous union in C,
    ``mem`` here, its fields reachable as ``op.buf`` / ``op.arena_off``).
    """

    _anonymous_ = ("mem",)
    _fields_ = [
        ("opcode", c_uint8),
        ("reserved", c_uint8 * 3),
        ("flags", c_uint32),
        ("file_id", c_uint32),
        ("arena_id", c_uint32),
        ("mem", zcfuse_op_mem),
        ("len", c_uint64),
        ("off", c_int64),
        ("user_data", c_uint64),
    ]


class zcfuse_cqe_t(Structure):
    """``zcfuse_cqe_t``: one completion (bytes moved, or -errno)."""

    _fields_ = [("user_data", c_uint64), ("res", c_int64)]


class zcfuse_hook_info_t(Structure):
    """``zcfuse_hook_info_t``: where the bytes a hook sees belong."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("session_id", c_uint64),
        ("ino", c_uint64),
        ("off", c_int64),
        ("path", c_char_p),
    ]


#: ``zcfuse_hook_fn``: void (*)(void *ctx, const zcfuse_hook_info_t *info,
#: const void *data, size_t len).
zcfuse_hook_fn = CFUNCTYPE(None, c_void_p, POINTER(zcfuse_hook_info_t), c_void_p, c_size_t)


class zcfuse_server_opts_t(Structure):
    """``zcfuse_server_opts_t``: fill with zcfuse_server_opts_init() first."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("transport", c_uint32),
        ("backing_dir", c_char_p),
        ("mountpoint", c_char_p),
        ("queue_depth", c_uint32),
        ("flags", c_uint32),
        ("entry_timeout_ms", c_uint32),
        ("attr_timeout_ms", c_uint32),
        # version 2
        ("on_write", zcfuse_hook_fn),
        ("on_read", zcfuse_hook_fn),
        ("hook_ctx", c_void_p),
    ]


class zcfuse_server_stats_t(Structure):
    """``zcfuse_server_stats_t``: a server's counters."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("version", c_uint32),
        ("transport", c_uint32),
        ("queues", c_uint32),
        ("queue_depth", c_uint32),
        ("running", c_uint32),
        ("bytes_read", c_uint64),
        ("bytes_written", c_uint64),
        ("errors", c_uint64),
        ("ring_requests", c_uint64 * STATS_OPCODES),
        ("dev_requests", c_uint64 * STATS_OPCODES),
        ("fallback_reason", c_char * 256),
        # version 2
        ("sessions", c_uint64),
        ("arenas", c_uint64),
        ("registered_bytes", c_uint64),
        ("fixed_slots_used", c_uint64),
        ("attached_files", c_uint64),
        ("zc_ops", c_uint64),
        ("zc_errors", c_uint64),
        ("zc_read_bytes", c_uint64),
        ("zc_write_bytes", c_uint64),
        ("zero_copy_bytes", c_uint64),
        ("copied_bytes", c_uint64),
        ("queue_high_water", c_uint64),
        ("workers", c_uint64),
    ]


class zcfuse_counter_t(Structure):
    """``zcfuse_counter_t``: one counter of a server, by name (a static
    string the library owns for the life of the process)."""

    _fields_ = [("name", c_char_p), ("value", c_uint64)]


#: name -> (restype, argtypes) for every function of include/zcfuse.h.
PROTOTYPES: Dict[str, Tuple[object, List[object]]] = {
    "zcfuse_version": (c_char_p, []),
    "zcfuse_strerror": (c_char_p, [c_int]),
    "zcfuse_last_error": (c_char_p, []),
    # arenas
    "zcfuse_arena_create": (c_int, [c_size_t, c_uint32, POINTER(ArenaP)]),
    "zcfuse_arena_import": (c_int, [c_int, c_size_t, POINTER(ArenaP)]),
    "zcfuse_arena_base": (c_void_p, [ArenaP]),
    "zcfuse_arena_size": (c_size_t, [ArenaP]),
    "zcfuse_arena_fd": (c_int, [ArenaP]),
    "zcfuse_arena_close": (None, [ArenaP]),
    # sessions
    "zcfuse_connect": (c_int, [c_char_p, POINTER(SessionP)]),
    "zcfuse_share": (c_int, [SessionP, ArenaP, POINTER(c_uint32), POINTER(c_uint32)]),
    "zcfuse_unshare": (c_int, [SessionP, c_uint32]),
    "zcfuse_attach": (c_int, [SessionP, c_int, POINTER(c_uint32)]),
    "zcfuse_detach": (c_int, [SessionP, c_uint32]),
    "zcfuse_session_stats": (c_int, [SessionP, POINTER(zcfuse_session_stats_t)]),
    # zero-copy operations
    "zcfuse_pwrite": (c_int64, [SessionP, c_uint32, c_void_p, c_size_t, c_int64, c_uint32]),
    "zcfuse_pread": (c_int64, [SessionP, c_uint32, c_void_p, c_size_t, c_int64, c_uint32]),
    "zcfuse_pwrite_arena": (
        c_int64, [SessionP, c_uint32, c_uint32, c_uint64, c_size_t, c_int64, c_uint32]
    ),
    "zcfuse_pread_arena": (
        c_int64, [SessionP, c_uint32, c_uint32, c_uint64, c_size_t, c_int64, c_uint32]
    ),
    "zcfuse_fsync": (c_int, [SessionP, c_uint32, c_uint32]),
    "zcfuse_submit": (c_int, [SessionP, POINTER(zcfuse_op_t), c_uint]),
    "zcfuse_wait": (c_int, [SessionP, POINTER(zcfuse_cqe_t), c_uint, c_uint, c_int]),
    "zcfuse_session_fd": (c_int, [SessionP]),
    "zcfuse_session_set_mode": (c_int, [SessionP, c_int, c_uint]),
    "zcfuse_close": (c_int, [SessionP]),
    # server
    "zcfuse_server_opts_init": (None, [POINTER(zcfuse_server_opts_t)]),
    "zcfuse_server_opts_init_size": (None, [POINTER(zcfuse_server_opts_t), c_size_t]),
    "zcfuse_server_create": (c_int, [POINTER(zcfuse_server_opts_t), POINTER(ServerP)]),
    "zcfuse_server_start": (c_int, [ServerP]),
    "zcfuse_server_run": (c_int, [ServerP]),
    "zcfuse_server_stop": (c_int, [ServerP]),
    "zcfuse_server_stats": (c_int, [ServerP, POINTER(zcfuse_server_stats_t)]),
    "zcfuse_server_counters": (c_int, [ServerP, POINTER(zcfuse_counter_t), c_size_t]),
    "zcfuse_server_counter": (c_int, [ServerP, c_char_p, POINTER(c_uint64)]),
    "zcfuse_opcode_name": (c_char_p, [c_uint32]),
    "zcfuse_server_set_limit": (c_int, [ServerP, c_char_p, c_uint64]),
    "zcfuse_server_limit": (c_int, [ServerP, c_char_p, POINTER(c_uint64)]),
    "zcfuse_limit_name": (c_char_p, [c_size_t]),
    "zcfuse_server_destroy": (None, [ServerP]),
}

#: Functions a library may lack (newer than some builds): bound on first
#: use, and a call raises ENOSYS when the loaded library does not have them.
OPTIONAL = frozenset(
    {
        "zcfuse_attach",
        "zcfuse_detach",
        "zcfuse_pwrite",
        "zcfuse_pread",
        "zcfuse_pwrite_arena",
        "zcfuse_pread_arena",
        "zcfuse_fsync",
        "zcfuse_submit",
        "zcfuse_wait",
        "zcfuse_session_fd",
        "zcfuse_session_set_mode",
    }
)

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

LIBRARY_NAMES = ("libzcfuse.so.0", "libzcfuse.so")
PACKAGE_DIR = Path(__file__).resolve().parent


class LibraryNotFoundError(ImportError):
    """libzcfuse could not be loaded; ``tried`` lists (path, why) pairs."""

    def __init__(self, tried: Sequence[Tuple[str, str]]) -> None:
        self.tried = list(tried)
        lines = "\n".join(f"  {path}: {why}" for path, why in self.tried)
        super().__init__(
            "zcfuse: cannot load libzcfuse; tried:\n"
            + lines
            + "\nBuild it with `make lib` in the zcfuse checkout, install it "
            "(`make install`), or set ZCFUSE_LIBRARY to its path."
        )


def _checkout_build_dir(package_dir: Path) -> Optional[Path]:
    """The build/ folder of the zcfuse checkout this package sits in, if any."""
    root = package_dir.parent.parent.parent  # bindings/python/zcfuse -> root
    if (root / "include" / "zcfuse.h").is_file() and (root / "bindings" / "python").is_dir():
        return root / "build"
    return None


def candidates(
    environ: Mapping[str, str],
    package_dir: Path = PACKAGE_DIR,
    find_library: Callable[[str], Optional[str]] = ctypes.util.find_library,
) -> List[Tuple[str, Optional[str]]]:
    """The candidates, in order, as (label, path) pairs.

    ``path`` is what to hand to ``ctypes.CDLL``, or None where a source
    offered nothing (find_library finding nothing); ``label`` names the
    candidate in an error.
    """
    env = environ.get("ZCFUSE_LIBRARY")
    if env:
        return [(f"{env} ($ZCFUSE_LIBRARY)", env)]
    out: List[Tuple[str, Optional[str]]] = [
        (str(package_dir / n), str(package_dir / n)) for n in LIBRARY_NAMES
    ]
    found = find_library("zcfuse")
    label = 'ctypes.util.find_library("zcfuse")'
    out.append((f"{found} ({label})" if found else label, found))
    build = _checkout_build_dir(package_dir)
    if build is not None:
        out += [(str(build / n), str(build / n)) for n in LIBRARY_NAMES]
    return out


def load_library(
    environ: Optional[Mapping[str, str]] = None,
    package_dir: Path = PACKAGE_DIR,
    find_library: Callable[[str], Optional[str]] = ctypes.util.find_library,
) -> Tuple[ctypes.CDLL, str]:
    """Loads libzcfuse; returns (the CDLL, the path it came from).

    Raises :class:`LibraryNotFoundError` naming every path tried. The
    arguments exist for tests; by default they are the real environment,
    this package's folder and ``ctypes.util.find_library``.
    """
    environ = os.environ if environ is None else environ
    tried: List[Tuple[str, str]] = []
    for label, path in candidates(environ, package_dir, find_library):
        if path is None:
            tried.append((label, "found nothing"))
        elif os.sep in path and not os.path.exists(path):
            tried.append((label, "no such file"))
        else:
            try:
                return ctypes.CDLL(path), path
            except OSError as e:
                tried.append((label, str(e)))
    raise LibraryNotFoundError(tried)


class Library:
    """The loaded libzcfuse with every function declared.

    Attribute access gives the ctypes function: ``LIB.zcfuse_connect(...)``.
    Functions in :data:`OPTIONAL` are looked up on first use; use
    :meth:`has` to ask whether the loaded library has one.
    """

    def __init__(self, cdll: ctypes.CDLL, path: str) -> None:
        self.cdll = cdll
        self.path = path
        self._lock = threading.Lock()
        self._optional: Dict[str, Optional[Callable[..., object]]] = {}
        missing = []
        for name, (restype, argtypes) in PROTOTYPES.items():
            if name in OPTIONAL:
                continue
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        if missing:
            raise ImportError(
                f"zcfuse: {path} lacks {', '.join(missing)}: it is older than "
                f"this binding (header {'.'.join(map(str, HEADER_VERSION))}); rebuild it"
            )

    def optional(self, name: str) -> Optional[Callable[..., object]]:
        """The declared function ``name`` from OPTIONAL, or None if absent."""
        with self._lock:
            if name not in self._optional:
                fn = getattr(self.cdll, name, None)
                if fn is not None:
                    restype, argtypes = PROTOTYPES[name]
                    fn.restype = restype
                    fn.argtypes = argtypes
                self._optional[name] = fn
            return self._optional[name]

    def has(self, name: str) -> bool:
        """Whether the loaded library exports ``name``."""
        if name in OPTIONAL:
            return self.optional(name) is not None
        return name in PROTOTYPES and hasattr(self, name)

    def __getattr__(self, name: str) -> Callable[..., object]:
        # Only reached for names not set in __init__: the optional ones.
        if name in OPTIONAL:
            fn = self.optional(name)
            if fn is not None:
                return fn
        raise AttributeError(name)


LIB = Library(*load_library())
