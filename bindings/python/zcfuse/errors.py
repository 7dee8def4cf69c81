"""zcfuse's exceptions: a C function's -errno becomes :class:`Error`."""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional

from ._library import LIB


class Error(OSError):
    """A libzcfuse call failed.

    ``errno`` is the positive errno the C function returned negated;
    ``function`` names the C function; ``detail`` is the library's own
    message (``zcfuse_last_error()``), also part of ``str(error)``.
    """

    function: Optional[str] = None
    detail: str = ""


class ClosedError(Error, ValueError):
    """The object was closed (errno EBADF). Also a ValueError, as with files."""


def error(err: int, function: Optional[str], detail: str = "") -> Error:
    """Builds an :class:`Error` for -errno or errno ``err``."""
    code = abs(err)
    text = os.strerror(code)
    prefix = f"{function}: " if function else ""
    msg = f"{prefix}{text}: {detail}" if detail else f"{prefix}{text}"
    cls = ClosedError if code == _errno.EBADF and function is None else Error
    e = cls(code, msg)
    e.function = function
    e.detail = detail
    return e


def closed(what: str) -> ClosedError:
    """The error for using ``what`` after close()."""
    e = error(_errno.EBADF, None, f"{what} is closed")
    assert isinstance(e, ClosedError)
    return e


def check(rc: int, function: str) -> int:
    """Returns rc when it is >= 0; raises :class:`Error` for a -errno.

    Must run on the thread that made the call, right after it: the
    detail comes from zcfuse_last_error(), which is per thread.
    """
    if rc >= 0:
        return rc
    raw = LIB.zcfuse_last_error()
    detail = raw.decode("utf-8", "replace") if raw else ""
    raise error(rc, function, detail)
