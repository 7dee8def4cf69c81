"""zcfuse: Python binding of libzcfuse, zero-copy data paths for FUSE.

A thin ctypes layer over ``include/zcfuse.h``; all logic lives in the C
library. The pieces:

- :class:`Arena` -- shared memory (a sealed memfd) that *is* a Python
  buffer: ``memoryview(arena)``, ``numpy.frombuffer(arena, ...)`` without
  a copy.
- :class:`Session` / :func:`connect` -- a client's connection to the
  server behind a mountpoint: share arenas, attach files, read and write
  them zero-copy (``pwrite``/``pread``/``readinto``, batches of
  :class:`Op` with ``submit``/``wait``, :func:`wait_async` for asyncio).
- :class:`Server` -- run a zcfuse passthrough server in this process,
  optionally with ``on_write``/``on_read`` hooks that see every byte;
  ``stats()`` and ``counters()`` read every counter it has, by name.
- :class:`Error` -- every failing call raises it, an :class:`OSError` with
  ``errno`` set and the library's detailed message; :class:`ClosedError`
  (EBADF, also a ValueError) for use after close.

The library is found through ``$ZCFUSE_LIBRARY``, the package folder,
``ctypes.util.find_library("zcfuse")`` and, in a checkout, ``build/``.
After ``os.fork()`` every call in the child raises ECHILD: use the
"spawn" or "forkserver" start method of multiprocessing.
"""

from __future__ import annotations

from ._library import (
    ARENA_HUGE,
    ARENA_MAX_SIZE,
    F_DATASYNC,
    F_REQUIRE_ZC,
    HEADER_VERSION,
    LIB as _LIB,
    NO_CACHE,
    SERVER_STATS_VERSION,
    SESSION_STATS_VERSION,
    STATS_OPCODES,
    LibraryNotFoundError,
)
from .arena import Arena
from .errors import ClosedError, Error
from .server import (
    CounterGroup,
    Hook,
    HookInfo,
    Opcode,
    Server,
    ServerStats,
    Transport,
    limit_names,
    opcode_name,
)
from .session import (
    Completion,
    Mode,
    Op,
    OpType,
    Session,
    SessionStats,
    SharedArena,
    connect,
    wait_async,
)

__version__ = "0.1.0"

#: Path of the loaded libzcfuse.
library_path: str = _LIB.path


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH" (zcfuse_version)."""
    return _LIB.zcfuse_version().decode()


def strerror(err: int) -> str:
    """Text for a negative (or positive) errno (zcfuse_strerror)."""
    return _LIB.zcfuse_strerror(err).decode()


def last_error() -> str:
    """The detailed message of this thread's last failed call, or ""."""
    return _LIB.zcfuse_last_error().decode("utf-8", "replace")


def has_attach() -> bool:
    """Whether the loaded library has zcfuse_attach and zcfuse_detach."""
    return _LIB.has("zcfuse_attach") and _LIB.has("zcfuse_detach")


def has_ops() -> bool:
    """Whether the loaded library has the zero-copy operations (zcfuse_pwrite ...)."""
    return all(
        _LIB.has(n)
        for n in (
            "zcfuse_pwrite",
            "zcfuse_pread",
            "zcfuse_fsync",
            "zcfuse_submit",
            "zcfuse_wait",
            "zcfuse_session_fd",
            "zcfuse_session_set_mode",
        )
    )


__all__ = [
    "ARENA_HUGE",
    "ARENA_MAX_SIZE",
    "Arena",
    "ClosedError",
    "Completion",
    "CounterGroup",
    "Error",
    "F_DATASYNC",
    "F_REQUIRE_ZC",
    "HEADER_VERSION",
    "Hook",
    "HookInfo",
    "LibraryNotFoundError",
    "Mode",
    "NO_CACHE",
    "Op",
    "OpType",
    "Opcode",
    "SERVER_STATS_VERSION",
    "SESSION_STATS_VERSION",
    "STATS_OPCODES",
    "Server",
    "ServerStats",
    "Session",
    "SessionStats",
    "SharedArena",
    "Transport",
    "connect",
    "has_attach",
    "has_ops",
    "last_error",
    "library_path",
    "limit_names",
    "opcode_name",
    "strerror",
    "version",
    "wait_async",
]
