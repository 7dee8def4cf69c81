"""Arenas: shared memory for zero-copy I/O, as Python buffers."""

from __future__ import annotations

import ctypes
import errno
import mmap
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from . import _buffers, _forksafe
from ._library import ARENA_HUGE, LIB, ArenaP
from .errors import check, closed, error


class Arena(mmap.mmap):
    """A zcfuse arena: a sealed memfd, mapped read-write.

    An Arena *is* a buffer: ``memoryview(arena)``, ``arena[0:4] = b"abcd"``
    and ``numpy.frombuffer(arena, dtype=...)`` all work on the shared pages
    themselves, without a copy. It is an :class:`mmap.mmap` of the arena's
    memfd (``MAP_SHARED``), so it sees exactly the pages the library and a
    server see; the library's own mapping of the same pages is at
    :attr:`address`.

    Make one with :meth:`create` or :meth:`import_fd`, share it with
    :meth:`zcfuse.Session.share`, and :meth:`close` it (or use ``with``).
    ``close()`` raises :class:`BufferError` while memoryviews or numpy
    arrays of the arena are alive, instead of unmapping memory under them;
    after close, buffer access raises :class:`ValueError` and the arena's
    own properties raise :class:`zcfuse.ClosedError` (a ValueError too).

    Differences from a plain mmap: :attr:`size` is a property (the arena's
    size in bytes), and :meth:`resize` is refused: arenas are sealed.
    Arenas are plain memory, so several threads may use one at once.
    """

    _handle: Optional[Any]
    _size: int
    _lock: threading.Lock
    _py_address: int  # where this mmap maps the arena
    _c_base: int  # where the library maps it (zcfuse_arena_base)

    def __new__(cls, *args: object, **kwargs: object) -> "Arena":
        raise TypeError("use Arena.create(size) or Arena.import_fd(fd, size)")

    @classmethod
    def _wrap(cls, handle: Any) -> "Arena":
        """Maps the library arena ``handle`` (owned from now on) in Python."""
        try:
            fd = check(LIB.zcfuse_arena_fd(handle), "zcfuse_arena_fd")
            size = LIB.zcfuse_arena_size(handle)
            self = mmap.mmap.__new__(
                cls, fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except BaseException:
            LIB.zcfuse_arena_close(handle)
            raise
        self._handle = handle
        self._size = size
        self._lock = threading.Lock()
        self._py_address = _buffers.python_address(self)
        self._c_base = int(LIB.zcfuse_arena_base(handle) or 0)
        _buffers.register(self, self._py_address)
        _forksafe.track(self)
        return self

    @classmethod
    def create(cls, size: int, huge: bool = False) -> "Arena":
        """Creates an arena of ``size`` bytes, zero-filled.

        ``size`` must be whole pages (4 KiB, or 2 MiB with ``huge=True``)
        and at most :data:`zcfuse.ARENA_MAX_SIZE`. ``huge`` backs it with
        huge pages, which must be reserved (/proc/sys/vm/nr_hugepages).
        Raises :class:`zcfuse.Error`: EINVAL (bad size), ENOMEM (no memory,
        no huge pages free), EMFILE.
        """
        handle = ArenaP()
        flags = ARENA_HUGE if huge else 0
        check(LIB.zcfuse_arena_create(size, flags, ctypes.byref(handle)), "zcfuse_arena_create")
        return cls._wrap(handle)

    @classmethod
    def import_fd(cls, fd: int, size: int) -> "Arena":
        """Adopts the memfd ``fd`` of ``size`` bytes as an arena.

        The arena works on a duplicate: the caller keeps and closes ``fd``.
        Raises :class:`zcfuse.Error`: EINVAL (not a memfd, too small, not
        whole pages), EPERM (not sealed with F_SEAL_SHRINK).
        """
        handle = ArenaP()
        check(LIB.zcfuse_arena_import(fd, size, ctypes.byref(handle)), "zcfuse_arena_import")
        return cls._wrap(handle)

    # -- properties -----------------------------------------------------

    def _live(self) -> Any:
        h = self._handle
        if h is None:
            raise closed("zcfuse arena")
        return h

    @property
    def size(self) -> int:  # type: ignore[override]
        """The arena's size in bytes (also ``len(arena)``)."""
        self._live()
        return self._size

    @property
    def fd(self) -> int:
        """The arena's memfd, owned by the arena: do not close it.

        Send it to another process (SCM_RIGHTS, ``pass_fds``) and adopt it
        there with :meth:`import_fd`.
        """
        return check(LIB.zcfuse_arena_fd(self._live()), "zcfuse_arena_fd")

    @property
    def address(self) -> int:
        """Where the library maps the arena (``zcfuse_arena_base``).

        The same pages as this buffer, at another virtual address. The
        session's zero-copy calls name a buffer of a shared arena by arena
        id and offset themselves: pass the Python buffer, not this address
        (it is for C code that takes raw pointers).
        """
        return int(LIB.zcfuse_arena_base(self._live()) or 0)

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        """Holds the C handle for one library call; close() waits for it."""
        with self._lock:
            yield self._live()

    # -- lifetime -------------------------------------------------------

    def close(self) -> None:
        """Unmaps the arena and closes its memfd; a second call does nothing.

        Raises :class:`BufferError` (and leaves the arena open) while
        memoryviews or arrays of it exist. Close an arena after
        :meth:`zcfuse.Session.unshare` or closing the session.
        """
        with self._lock:
            if self._handle is None:
                return
            with _buffers.registry_lock():  # no translation into it from here on
                try:
                    super().close()  # BufferError while exported: nothing changed
                except BufferError:
                    raise BufferError(
                        "zcfuse.Arena.close: memoryviews or arrays of the arena are still "
                        "alive: release them first (view.release(), `with memoryview(arena) "
                        "as view:`, del array); the arena stays open"
                    ) from None
                _buffers._arenas.pop(self._py_address, None)
            handle, self._handle = self._handle, None
            self._c_base = 0
            LIB.zcfuse_arena_close(handle)

    def resize(self, newsize: int) -> None:
        """Refused: an arena's memfd is sealed against growing and shrinking."""
        raise error(errno.EPERM, "Arena.resize", "an arena's memfd is sealed: its size is fixed")

    def __enter__(self) -> "Arena":
        self._live()
        return self

    def __exit__(self, exc_type: object, exc: Optional[BaseException], tb: object) -> None:
        if exc is None:
            self.close()  # BufferError while views are alive, as close() says
            return
        # An exception is leaving the block: closing must not replace it
        # with a BufferError about views the failed code had no chance to
        # release (they often live in the traceback's frames). The arena
        # then stays open and is closed when it is collected; the
        # exception carries a note saying so.
        try:
            self.close()
        except BufferError as e:
            note = f"zcfuse: the arena was not closed on the way out of `with`: {e}"
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(note)
            else:
                warnings.warn(note, ResourceWarning, stacklevel=2)

    def __del__(self) -> None:
        # No exports can be left when the object dies; mmap unmaps its own
        # mapping after this, the library's goes here.
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            try:
                LIB.zcfuse_arena_close(handle)
            except Exception:  # interpreter shutdown
                pass

    def __reduce__(self) -> Any:
        raise TypeError(
            "an Arena cannot be pickled: send its fd (arena.fd) and use Arena.import_fd"
        )

    def __repr__(self) -> str:
        if self._handle is None:
            return "<zcfuse.Arena closed>"
        return f"<zcfuse.Arena size={self._size} fd={self.fd}>"
