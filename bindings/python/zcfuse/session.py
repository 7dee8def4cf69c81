"""Sessions: a client's connection to the zcfuse server behind a mount."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Protocol, Union

from . import _forksafe
from ._library import LIB, SHARED_REGISTERED, SessionP, zcfuse_session_stats_t
from .arena import Arena
from .errors import check, closed, error

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


@dataclass(frozen=True)
class SessionStats:
    """The server's control-plane counters, as a session sees them."""

    version: int
    session_id: int  #: this session's id on the server
    sessions: int  #: sessions the server holds
    arenas: int  #: arenas shared with the server, all sessions
    registered_bytes: int  #: of those, bytes in io_uring fixed buffers
    attached_files: int  #: files attached for zero-copy I/O


class SharedArena(NamedTuple):
    """What :meth:`Session.share` returns."""

    arena_id: int  #: the arena's id in this session
    registered: bool  #: the server registered it as an io_uring fixed buffer


class Session:
    """A connection to the zcfuse server behind a mountpoint.

    Open one with :meth:`connect` (or :func:`zcfuse.connect`); share
    arenas with :meth:`share`; attach files opened through the mount with
    :meth:`attach`; :meth:`close` it or use ``with``. A session is used by
    one thread at a time (open one per thread); the calls are serialised
    so that :meth:`close` never frees the handle under another call. After
    close every method raises :class:`zcfuse.ClosedError` (EBADF).

    After ``os.fork()`` every call in the child raises :class:`zcfuse.Error`
    with ECHILD (the library's Go runtime does not survive fork); use
    multiprocessing's "spawn" or "forkserver" start method and connect in
    the child.
    """

    def __init__(self, handle: Any, mountpoint: str) -> None:
        """Internal: use :meth:`connect`."""
        self._handle: Optional[Any] = handle
        self._lock = threading.Lock()
        self.mountpoint = mountpoint
        _forksafe.track(self)

    @classmethod
    def connect(cls, mountpoint: PathLike) -> "Session":
        """Connects to the server behind ``mountpoint``.

        The server is found through the mount itself, or through the
        environment variable ZCFUSE_CONTROL_SOCKET when set. Raises
        :class:`zcfuse.Error`: ENODATA (no zcfuse server answers there),
        EACCES (mounted without allow_other for another user), EAGAIN (too
        many sessions), ENOENT or ECONNREFUSED (the socket is gone).
        """
        path = os.fsencode(mountpoint)
        handle = SessionP()
        check(LIB.zcfuse_connect(path, ctypes.byref(handle)), "zcfuse_connect")
        return cls(handle, os.fsdecode(path))

    def _live(self) -> Any:
        if self._handle is None:
            raise closed("zcfuse session")
        return self._handle

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handle is None

    def share(self, arena: Arena) -> SharedArena:
        """Hands ``arena`` to the server; returns (arena_id, registered).

        The server maps the arena and, budget permitting, registers it as
        an io_uring fixed buffer (``registered``). The arena stays yours:
        close it after :meth:`unshare` or :meth:`close`. Raises
        :class:`zcfuse.Error`: ENOSPC (the session's arena or byte limit),
        EPERM/EINVAL (the server refused the memfd), ENOTCONN (server gone),
        EBADF (the arena or session is closed).
        """
        if not isinstance(arena, Arena):
            raise TypeError(f"share() needs a zcfuse.Arena, not {type(arena).__name__}")
        arena_id = ctypes.c_uint32()
        flags = ctypes.c_uint32()
        with self._lock, arena._borrow() as ah:
            rc = LIB.zcfuse_share(self._live(), ah, ctypes.byref(arena_id), ctypes.byref(flags))
            check(rc, "zcfuse_share")
        return SharedArena(arena_id.value, bool(flags.value & SHARED_REGISTERED))

    def unshare(self, arena_id: int) -> None:
        """Asks the server to release ``arena_id``; ENOENT if unknown."""
        with self._lock:
            check(LIB.zcfuse_unshare(self._live(), arena_id), "zcfuse_unshare")

    def attach(self, file: Union[int, _HasFileno]) -> int:
        """Attaches a file opened through this session's mount; returns its id.

        ``file`` is an fd or an object with ``fileno()``. Zero-copy I/O on
        it is allowed in the open's access mode; the binding ends on
        :meth:`detach`, on close of the session, and when the kernel
        releases the open file. Raises :class:`zcfuse.Error`: EXDEV (not
        on this session's mount), EACCES/EPERM (the server refused),
        ENOSYS (the loaded libzcfuse predates zcfuse_attach).
        """
        fd = file if isinstance(file, int) else file.fileno()
        file_id = ctypes.c_uint32()
        with self._lock:
            handle = self._live()
            fn = _optional("zcfuse_attach")
            check(fn(handle, fd, ctypes.byref(file_id)), "zcfuse_attach")
        return file_id.value

    def detach(self, file_id: int) -> None:
        """Ends the attachment ``file_id``; ENOENT if unknown."""
        with self._lock:
            handle = self._live()
            fn = _optional("zcfuse_detach")
            check(fn(handle, file_id), "zcfuse_detach")

    def stats(self) -> SessionStats:
        """The server's counters; raises ENOTCONN when the server is gone."""
        st = zcfuse_session_stats_t()
        st.struct_size = ctypes.sizeof(st)
        with self._lock:
            check(LIB.zcfuse_session_stats(self._live(), ctypes.byref(st)), "zcfuse_session_stats")
        return SessionStats(
            version=st.version,
            session_id=st.session_id,
            sessions=st.sessions,
            arenas=st.arenas,
            registered_bytes=st.registered_bytes,
            attached_files=st.attached_files,
        )

    def close(self) -> None:
        """Says goodbye; the server releases every arena this session shared.

        A second call does nothing. A server that is already gone is not
        an error (the session is freed either way). In a forked child it
        raises ECHILD and leaves the session to the parent.
        """
        with self._lock:
            handle = self._handle
            if handle is None:
                return
            rc = LIB.zcfuse_close(handle)
            if rc == -errno.ECHILD:
                check(rc, "zcfuse_close")  # not freed: the parent owns it
            self._handle = None
            if rc != -errno.ENOTCONN:
                check(rc, "zcfuse_close")

    def __enter__(self) -> "Session":
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            try:
                LIB.zcfuse_close(handle)
            except Exception:  # interpreter shutdown
                pass

    def __reduce__(self) -> Any:
        raise TypeError("a Session cannot be pickled: connect in the other process")

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "open"
        return f"<zcfuse.Session {self.mountpoint!r} {state}>"


def _optional(name: str) -> Any:
    fn = LIB.optional(name)
    if fn is None:
        raise error(
            errno.ENOSYS,
            name,
            f"the loaded libzcfuse ({LIB.path}) does not have it; rebuild it (make lib)",
        )
    return fn


def connect(mountpoint: PathLike) -> Session:
    """Connects to the zcfuse server behind ``mountpoint``; see :meth:`Session.connect`."""
    return Session.connect(mountpoint)
