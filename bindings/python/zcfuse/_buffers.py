"""Python buffers as C pointers for the zero-copy operations.

A Python :class:`zcfuse.Arena` is its own ``mmap`` of the arena's memfd,
at another address than the library's mapping of the same pages
(``zcfuse_arena_base``). The library recognises an arena buffer by its
address in *its* mapping, so a buffer that lies in an arena's Python
mapping must be handed over at the same offset in the library's mapping.
:func:`c_address` is the one place that does this translation; every
other buffer goes as it is (the library then takes the copying posix
path, or fails with EFAULT under ``require_zc``).

:func:`pin` takes a buffer export (``PyObject_GetBuffer``) that keeps the
memory in place, and its object alive, until :meth:`Pinned.release`: an
arena with a live export cannot be closed (``BufferError``), a bytearray
cannot be resized.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Optional

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


class Pinned:
    """A buffer export: ``address`` (for C, translated), ``nbytes``.

    Holds the export until :meth:`release` (also on garbage collection).
    """

    __slots__ = ("_view", "address", "nbytes", "readonly", "__weakref__")

    def __init__(self, obj: Any, writable: bool) -> None:
        view = Py_buffer()
        flags = PyBUF_WRITABLE if writable else PyBUF_SIMPLE
        _GetBuffer(obj, ctypes.byref(view), flags)  # raises BufferError/TypeError
        self._view: Optional[Py_buffer] = view
        self.nbytes: int = view.len
        self.readonly = bool(view.readonly)
        self.address: int = c_address(view.buf or 0, view.len)

    def release(self) -> None:
        """Ends the export; a second call does nothing."""
        view, self._view = self._view, None
        if view is not None:
            _Release(ctypes.byref(view))

    def __enter__(self) -> "Pinned":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown
            pass


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
