"""Python buffers as C pointers for the zero-copy operations.

:func:`pin` takes a buffer export (``PyObject_GetBuffer``) that keeps the
memory in place, and its object alive, until :meth:`Pinned.release`: an
arena with a live export cannot be closed (``BufferError``), a bytearray
cannot be resized. :attr:`Pinned.address` is the buffer's address in this
process, as Python sees it.

A Python :class:`zcfuse.Arena` is its own ``mmap`` of the arena's memfd,
at another address than the library's mapping of the same pages
(``zcfuse_arena_base``). The session's operations do not translate
between the two: a buffer inside an arena the session shares is named
as {arena id, offset} (``zcfuse_pread_arena``/``zcfuse_pwrite_arena``,
``ZCFUSE_F_ARENA`` in a batch; :meth:`zcfuse.Session._arena_span`), any
other buffer goes by its pointer (the library then takes the copying
posix path, or fails with EFAULT under ``require_zc``).

The registry of open arenas by the address of their Python mapping and
:func:`c_address`, which translates such an address into the library's
mapping, are no longer used by the operations; they remain for code that
hands raw pointers to the library itself (bindings/bench/overhead.py).
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Optional, Tuple

if TYPE_CHECKING:
    from .arena import Arena


class Py_buffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (part of the stable ABI since 3.11)."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


PyBUF_SIMPLE = 0  # a contiguous buffer, or BufferError
PyBUF_WRITABLE = 1

_GetBuffer = ctypes.pythonapi.PyObject_GetBuffer
_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(Py_buffer), ctypes.c_int]
_GetBuffer.restype = ctypes.c_int
_Release = ctypes.pythonapi.PyBuffer_Release
_Release.argtypes = [ctypes.POINTER(Py_buffer)]
_Release.restype = None

# Live arenas by the address of their Python mapping. The lock makes a
# lookup and Arena.close() exclusive, so a translation never names an
# arena whose mapping is going away.
_lock = threading.Lock()
_arenas: "weakref.WeakValueDictionary[int, Arena]" = weakref.WeakValueDictionary()


def _fresh_lock_in_child() -> None:
    # Another thread may have held it at fork(): the child's calls must
    # reach the library (and its ECHILD), not hang here.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


def registry_lock() -> threading.Lock:
    """The lock that makes lookups and Arena.close() exclusive."""
    return _lock


def register(arena: "Arena", py_address: int) -> None:
    """Records a new arena whose Python mapping starts at ``py_address``."""
    with _lock:
        _arenas[py_address] = arena


def unregister(py_address: int) -> None:
    """Forgets the arena at ``py_address`` (closed or dying)."""
    with _lock:
        _arenas.pop(py_address, None)


def c_address(py_address: int, nbytes: int) -> int:
    """The pointer to hand to C for ``nbytes`` of memory at ``py_address``.

    Inside an open arena's Python mapping: the same offset in the
    library's mapping of that arena (``zcfuse_arena_base`` + offset).
    Anywhere else: ``py_address`` itself.
    """
    if nbytes == 0:
        return py_address
    with _lock:
        for start, arena in list(_arenas.items()):
            if start <= py_address and py_address + nbytes <= start + arena._size:
                base = arena._c_base
                if base:
                    return base + (py_address - start)
    return py_address


def export(obj: Any, writable: bool) -> Tuple[memoryview, int, int]:
    """Exports the contiguous buffer ``obj``: (the export, address, nbytes).

    The export is a private ``memoryview`` of ``obj``: the memory stays in
    place, and ``obj`` alive, until its ``release()`` (an arena cannot be
    closed meanwhile, a bytearray not resized). The address of a writable
    buffer comes from ``ctypes.c_char.from_buffer`` (no foreign call), that
    of a read-only one from ``PyObject_GetBuffer`` through ctypes (slower;
    such buffers only ever take the copying posix path). Raises
    :class:`TypeError` (not a buffer), :class:`BufferError` (not
    C-contiguous; read-only when ``writable``), :class:`ValueError` (a
    closed arena or mmap).
    """
    view = memoryview(obj)
    if not view.c_contiguous:
        view.release()
        raise BufferError("zcfuse: the buffer is not C-contiguous")
    if view.readonly:
        if writable:
            view.release()
            raise BufferError("zcfuse: the buffer is read-only and cannot be read into")
        return view, python_address(view), view.nbytes
    nbytes = view.nbytes
    if nbytes == 0:
        return view, python_address(view), 0
    return view, _addressof(_c_char.from_buffer(view)), nbytes  # that export ends at once


_c_char = ctypes.c_char
_addressof = ctypes.addressof


class Pinned:
    """A buffer export (see :func:`export`): ``address`` (this process's),
    ``nbytes``; held until :meth:`release` or garbage collection."""

    __slots__ = ("_view", "address", "nbytes", "__weakref__")

    def __init__(self, obj: Any, writable: bool) -> None:
        view, self.address, self.nbytes = export(obj, writable)
        self._view: Optional[memoryview] = view

    @property
    def readonly(self) -> bool:
        """Whether the buffer is read-only (False once released)."""
        return self._view is not None and self._view.readonly

    def release(self) -> None:
        """Ends the export; a second call does nothing."""
        view, self._view = self._view, None
        if view is not None:
            view.release()

    def __enter__(self) -> "Pinned":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def pin(obj: Any, writable: bool) -> Pinned:
    """Exports the contiguous buffer ``obj`` (writable when asked).

    Raises :class:`TypeError` for an object that is not a buffer and
    :class:`BufferError` for a non-contiguous or read-only one (when
    ``writable``); a closed arena or mmap raises :class:`ValueError`.
    """
    return Pinned(obj, writable)


def python_address(obj: Any) -> int:
    """The address of ``obj``'s buffer in this process (no translation)."""
    view = Py_buffer()
    _GetBuffer(obj, ctypes.byref(view), PyBUF_SIMPLE)
    try:
        return view.buf or 0
    finally:
        _Release(ctypes.byref(view))
