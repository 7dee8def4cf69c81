"""Fresh locks in a forked child, so that a child call raises ECHILD
instead of hanging on a lock another parent thread held at fork()."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_objects: "weakref.WeakSet[Any]" = weakref.WeakSet()


def track(obj: Any) -> None:
    """Gives ``obj._lock`` a fresh lock in every forked child."""
    _objects.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_objects):
        obj._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
