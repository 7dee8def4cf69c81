"""Servers: mount a backing directory through zcfuse, served in this process."""

from __future__ import annotations

import atexit
import ctypes
import errno
import os
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from . import _forksafe
from ._enum import NamedIntEnum
from ._library import (
    HOOK_RING,
    LIB,
    NO_CACHE,
    SERVER_ALLOW_OTHER,
    SERVER_DEBUG,
    SERVER_HOOK_COPY,
    SERVER_PASSTHROUGH,
    SERVER_READ_ONLY,
    STATS_OPCODES,
    ServerP,
    zcfuse_counter_t,
    zcfuse_hook_fn,
    zcfuse_server_opts_t,
    zcfuse_server_stats_t,
)
from .errors import Error, check, closed

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class Transport(NamedIntEnum):
    """How requests travel from the kernel to the server (zcfuse_transport_t).

    An int that prints its name: ``print(srv.stats().transport)`` shows
    ``Transport.URING``.
    """

    AUTO = 0  #: FUSE-over-io_uring when the kernel offers it, else /dev/fuse
    URING = 1  #: FUSE-over-io_uring or fail with EPROTONOSUPPORT
    CLASSIC = 2  #: the classic /dev/fuse loop


def _opcode_members() -> List[Tuple[str, int]]:
    """(name, opcode) for every FUSE opcode below STATS_OPCODES that the
    library names (zcfuse_opcode_name: "READ" for 15; "OP_<n>" for one it
    does not know, which is left out)."""
    members = []
    for op in range(1, STATS_OPCODES):
        name = (LIB.zcfuse_opcode_name(op) or b"").decode("ascii", "replace")
        if name.isidentifier() and not name.startswith("OP_") and name != "OTHER":
            members.append((name, op))
    return members


#: FUSE opcodes (include/uapi/linux/fuse.h): indices of the stats arrays.
#: Built at import from the library's own table (zcfuse_opcode_name), so
#: the binding holds no copy of it: ``Opcode.READ`` is 15, and an opcode
#: the library learns appears here without a change to this file.
Opcode = NamedIntEnum("Opcode", _opcode_members(), module=__name__, qualname="Opcode")  # type: ignore[misc]
Opcode.__doc__ = """FUSE opcodes (include/uapi/linux/fuse.h), named as the library names
them (zcfuse_opcode_name): the indices of ``ServerStats.ring_requests``
and ``dev_requests``."""


def opcode_name(opcode: int) -> str:
    """The library's name of a FUSE opcode, without FUSE_: "READ" for 15,
    "OP_<n>" for one below :data:`STATS_OPCODES` it does not know, "OTHER"
    for 0 and for opcodes from :data:`STATS_OPCODES` up (zcfuse_opcode_name)."""
    return (LIB.zcfuse_opcode_name(opcode) or b"").decode("ascii", "replace")


class CounterGroup:
    """The counters under one dotted prefix, as attributes: ``st.fs`` is the
    group of "fs.inodes", "fs.open_files", ..., so ``st.fs.inodes`` reads
    "fs.inodes" (JSON nests it as ``{"fs": {"inodes": ...}}``)."""

    __slots__ = ("_counters", "_prefix")

    def __init__(self, counters: Mapping[str, int], prefix: str) -> None:
        self._counters = counters
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return _counter_attr(self._counters, self._prefix + name)

    def __dir__(self) -> List[str]:
        return _counter_dir(self._counters, self._prefix)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k[len(self._prefix):]}={v}" for k, v in self._counters.items() if k.startswith(self._prefix)
        )
        return f"CounterGroup({self._prefix[:-1]}: {inner})"


def _counter_attr(counters: Mapping[str, int], name: str) -> Any:
    """The counter ``name``, or the group of those under "name.", or AttributeError."""
    if name in counters:
        return counters[name]
    prefix = name + "."
    if any(k.startswith(prefix) for k in counters):
        return CounterGroup(counters, prefix)
    raise AttributeError(f"no field or counter {name!r}")


def _counter_dir(counters: Mapping[str, int], prefix: str) -> List[str]:
    """The attribute names of the counters under ``prefix``: a name, or the
    first part of a dotted one."""
    return sorted({k[len(prefix):].split(".", 1)[0] for k in counters if k.startswith(prefix)})


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of a server's counters.

    The fields below are zcfuse_server_stats_t, frozen at version 2.
    ``ring_requests`` and ``dev_requests`` have :data:`zcfuse.STATS_OPCODES`
    entries indexed by FUSE opcode (:class:`Opcode`); slot 0 counts opcodes
    >= 64. ``ring`` counts requests that came over FUSE-over-io_uring,
    ``dev`` those read from /dev/fuse (INIT, FORGET, INTERRUPT, and every
    request on the classic transport).

    Every other counter the server has is an attribute too, by its name
    (zcfuse_server_counters): ``st.fast_reads``, and ``st.fs.inodes`` for
    "fs.inodes" (or ``st.counters["fs.inodes"]``, ``st.get("fs.inodes")``);
    a counter added to the server shows here with no change to the
    binding. ``counters`` maps every name to its value (bools as 0/1); it
    is a snapshot of its own, taken right after the struct's, so on a busy
    server ``st.counters["bytes_read"]`` may be a little ahead of
    ``st.bytes_read``.
    """

    version: int
    transport: Transport  #: URING or CLASSIC in use (AUTO before start)
    queues: int  #: io_uring queues (0 on the classic transport)
    queue_depth: int  #: ring threads per queue (0 on the classic transport)
    running: bool  #: mounted and serving
    bytes_read: int  #: payload bytes of successful READ replies
    bytes_written: int  #: payload bytes of WRITE requests
    errors: int  #: error replies other than ENOENT, ENODATA and ENOSYS
    ring_requests: Tuple[int, ...]
    dev_requests: Tuple[int, ...]
    fallback_reason: str  #: why AUTO fell back to /dev/fuse; "" if it did not
    # Version 2 (None from a library that fills only version 1):
    sessions: Optional[int] = None  #: client sessions
    arenas: Optional[int] = None  #: arenas they share
    registered_bytes: Optional[int] = None  #: of those, bytes in io_uring fixed buffers
    fixed_slots_used: Optional[int] = None  #: slots of the fixed-buffer table in use
    attached_files: Optional[int] = None  #: files attached to sessions
    # The ring path (ops from sessions' op queues), also version 2:
    zc_ops: Optional[int] = None  #: ops served
    zc_errors: Optional[int] = None  #: of those, failed
    zc_read_bytes: Optional[int] = None  #: bytes read by ring ops
    zc_write_bytes: Optional[int] = None  #: bytes written by ring ops
    zero_copy_bytes: Optional[int] = None  #: bytes moved between arenas and files with no copy
    copied_bytes: Optional[int] = None  #: bytes the server copied in user space (hook_copy)
    queue_high_water: Optional[int] = None  #: most ops one session had in flight
    workers: Optional[int] = None  #: data-plane threads (one per CPU)
    #: Every counter by name, in the library's order (read-only).
    counters: Mapping[str, int] = field(default_factory=dict, repr=False, hash=False)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: the counters.
        if name.startswith("__"):
            raise AttributeError(name)
        counters = self.__dict__.get("counters") or {}
        try:
            return _counter_attr(counters, name)
        except AttributeError:
            raise AttributeError(f"'ServerStats' object has no field or counter {name!r}") from None

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(_counter_dir(self.__dict__.get("counters") or {}, "")))

    def __getstate__(self) -> Dict[str, Any]:
        # A mappingproxy does not pickle: its dict does.
        state = dict(self.__dict__)
        state["counters"] = dict(state.get("counters") or {})
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, MappingProxyType(v) if k == "counters" else v)

    def get(self, name: str, default: Optional[int] = None) -> Optional[int]:
        """The counter ``name`` ("fast_reads", "fs.inodes"), or ``default``."""
        return self.counters.get(name, default)

    def requests(self, opcode: int) -> int:
        """Requests of ``opcode`` over both transports."""
        return self.ring_requests[opcode] + self.dev_requests[opcode]

    @property
    def total_requests(self) -> int:
        """All requests served, over both transports."""
        return sum(self.ring_requests) + sum(self.dev_requests)


_V2_FIELDS = (
    "sessions",
    "arenas",
    "registered_bytes",
    "fixed_slots_used",
    "attached_files",
    "zc_ops",
    "zc_errors",
    "zc_read_bytes",
    "zc_write_bytes",
    "zero_copy_bytes",
    "copied_bytes",
    "queue_high_water",
    "workers",
)


@dataclass(frozen=True)
class HookInfo:
    """Where the bytes a hook sees belong (zcfuse_hook_info_t)."""

    path: str  #: the file, relative to the mount root
    offset: int  #: file offset of the first byte
    ino: int  #: inode number in the backing directory
    ring: bool  #: the data came from a session's op queue, not a FUSE request
    session_id: int  #: the session of a ring op, else 0


#: A hook: ``hook(info, data)``; ``data`` is a read-only memoryview.
Hook = Callable[[HookInfo, memoryview], None]


def _wrap_hook(hook: Hook) -> Any:
    """A zcfuse_hook_fn calling ``hook`` with a HookInfo and a memoryview.

    The memoryview views the library's memory and is released when the
    hook returns. An exception is reported through sys.unraisablehook
    (by ctypes) and does not stop the I/O.
    """

    def call(ctx: Any, info_p: Any, data: Optional[int], length: int) -> None:
        ci = info_p.contents
        info = HookInfo(
            path=os.fsdecode(ci.path or b""),
            offset=ci.off,
            ino=ci.ino,
            ring=bool(ci.flags & HOOK_RING),
            session_id=ci.session_id,
        )
        if length and data:
            raw = memoryview((ctypes.c_char * length).from_address(data)).cast("B")
            view = raw.toreadonly()
        else:
            raw = view = memoryview(b"")
        try:
            hook(info, view)
        finally:
            try:
                view.release()
                raw.release()
            except BufferError:  # the hook kept an export of it: its problem
                pass

    return zcfuse_hook_fn(call)

_live: "weakref.WeakSet[Server]" = weakref.WeakSet()

#: How many counters the library has (0: not asked yet); fixed for the
#: life of the process.
_counter_slots = 0
#: The counters' names, decoded once each (the library's strings are static).
_counter_names: Dict[bytes, str] = {}


def _counter_name(raw: bytes) -> str:
    name = _counter_names.get(raw)
    if name is None:
        name = _counter_names.setdefault(raw, raw.decode("utf-8", "replace"))
    return name


class Server:
    """A zcfuse passthrough server of ``backing_dir`` on ``mountpoint``.

    The constructor checks the options and directories (nothing is mounted
    yet); :meth:`start` mounts and returns once the mount answers;
    :meth:`stop` unmounts; :meth:`close` stops and frees. As a context
    manager it starts on entry (unless started) and closes on exit. A
    server still open at interpreter exit is closed then (atexit).

    ``transport`` is "auto", "uring", "classic" or a :class:`Transport`;
    ``queue_depth`` 0 means the library's default (4), at most 64;
    the timeouts are in milliseconds, 0 = default (1000),
    :data:`zcfuse.NO_CACHE` = no caching. Methods may be called from any
    thread (:meth:`stop` and :meth:`stats` while another sits in :meth:`run`).

    ``on_write`` / ``on_read`` are hooks ``hook(info, data)`` that see
    every byte written (before it reaches the backing file) and read
    (after), on every path: FUSE requests and sessions' zero-copy ops.
    ``info`` is a :class:`HookInfo`; ``data`` a read-only
    :class:`memoryview` of the bytes in place (for a ring op, in the
    client's arena), valid only during the call: copy what you keep
    (``bytes(data)``). Hooks run on the server's threads, concurrently,
    holding the GIL: keep them quick, and never let this process touch
    the mount from code that holds the GIL (an mmap of a file on it, an
    import from it) or the hook waits forever. An exception in a hook is
    reported through :func:`sys.unraisablehook`; the I/O goes on.
    ``hook_copy`` makes hooks see, and the server write, a private copy
    of a ring write (counted in ``copied_bytes``), so a client cannot
    change the bytes after the hook checked them.

    ``limits`` sets the server's limits by name (:func:`limit_names`:
    ``{"sessions_per_user": 8, "hello_timeout_ms": 500}``; 0 = the
    library's default).

    Raises :class:`zcfuse.Error`: EINVAL (bad option), ENOENT/ENOTDIR (a
    directory is missing), EBUSY (something is mounted there), ENOTCONN (a
    dead FUSE mount there); ENOENT/ERANGE for an unknown limit or a value
    out of its range.
    """

    def __init__(
        self,
        backing_dir: PathLike,
        mountpoint: PathLike,
        *,
        transport: Union[str, Transport] = Transport.AUTO,
        queue_depth: int = 0,
        allow_other: bool = False,
        read_only: bool = False,
        passthrough: bool = False,
        debug: bool = False,
        entry_timeout_ms: int = 0,
        attr_timeout_ms: int = 0,
        on_write: Optional[Hook] = None,
        on_read: Optional[Hook] = None,
        hook_copy: bool = False,
        limits: Optional[Mapping[str, int]] = None,
    ) -> None:
        self._handle: Optional[Any] = None
        # The C callbacks must outlive the C server: freed with it.
        self._hooks: Tuple[Any, ...] = ()
        self._lock = threading.Lock()
        self._started = False
        if isinstance(transport, str):
            try:
                transport = Transport[transport.upper()]
            except KeyError:
                raise ValueError(
                    f"transport must be 'auto', 'uring' or 'classic', not {transport!r}"
                ) from None
        self.backing_dir = os.fsdecode(backing_dir)
        self.mountpoint = os.fsdecode(mountpoint)
        self.transport = Transport(transport)
        opts = zcfuse_server_opts_t()
        # The sized init: the plain one fills a version-1 struct (no hooks).
        LIB.zcfuse_server_opts_init_size(ctypes.byref(opts), ctypes.sizeof(opts))
        opts.transport = int(self.transport)
        opts.backing_dir = os.fsencode(backing_dir)
        opts.mountpoint = os.fsencode(mountpoint)
        opts.queue_depth = queue_depth
        opts.flags = (
            (SERVER_ALLOW_OTHER if allow_other else 0)
            | (SERVER_READ_ONLY if read_only else 0)
            | (SERVER_PASSTHROUGH if passthrough else 0)
            | (SERVER_DEBUG if debug else 0)
            | (SERVER_HOOK_COPY if hook_copy else 0)
        )
        opts.entry_timeout_ms = entry_timeout_ms
        opts.attr_timeout_ms = attr_timeout_ms
        hooks = []
        for name, hook in (("on_write", on_write), ("on_read", on_read)):
            if hook is not None:
                if not callable(hook):
                    raise TypeError(f"{name} must be callable, not {type(hook).__name__}")
                fn = _wrap_hook(hook)
                setattr(opts, name, fn)
                hooks.append(fn)
        self._hooks = tuple(hooks)
        handle = ServerP()
        check(LIB.zcfuse_server_create(ctypes.byref(opts), ctypes.byref(handle)), "zcfuse_server_create")
        try:
            for name, value in (limits or {}).items():
                check(
                    LIB.zcfuse_server_set_limit(handle, name.encode(), value),
                    f"zcfuse_server_set_limit {name}",
                )
        except BaseException:
            LIB.zcfuse_server_destroy(handle)
            raise
        self._handle = handle
        _live.add(self)
        _forksafe.track(self)

    def limit(self, name: str) -> int:
        """The limit called ``name`` as the server uses it (defaults filled
        in); see :func:`limit_names`. Raises ENOENT for an unknown name."""
        v = ctypes.c_uint64()
        check(LIB.zcfuse_server_limit(self._live(), name.encode(), ctypes.byref(v)), "zcfuse_server_limit")
        return v.value

    def _live(self) -> Any:
        if self._handle is None:
            raise closed("zcfuse server")
        return self._handle

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` freed the server."""
        return self._handle is None

    def start(self) -> None:
        """Mounts and starts serving on the library's threads.

        Returns once the mount is ready. A server mounts once: a second
        start raises EALREADY. Also EPROTONOSUPPORT (transport "uring", or
        "auto" under ZCFUSE_REQUIRE_URING=1, without FUSE-over-io_uring),
        EPERM (may not mount), ETIMEDOUT, or an errno of mount(2).
        """
        h = self._live()
        self._started = True
        check(LIB.zcfuse_server_start(h), "zcfuse_server_start")

    def run(self) -> None:
        """Starts if needed, then blocks until the file system is unmounted.

        By :meth:`stop` from another thread or ``umount`` from outside. The
        GIL is released meanwhile, but Ctrl-C is only seen once it returns:
        run it in a thread and call :meth:`stop` from the main thread.
        """
        h = self._live()
        self._started = True
        check(LIB.zcfuse_server_run(h), "zcfuse_server_run")

    def stop(self) -> None:
        """Unmounts and stops serving; waits for the server's threads.

        Requests in flight complete or fail with ENOTCONN. Does nothing when
        not running. Raises :class:`zcfuse.Error` when the unmount failed.
        """
        check(LIB.zcfuse_server_stop(self._live()), "zcfuse_server_stop")

    def counters(self) -> Dict[str, int]:
        """Every counter of one snapshot, by name, in the library's fixed
        order (zcfuse_server_counters): those of :class:`ServerStats` and
        every one the struct lacks ("fast_reads", "fs.inodes", ...), bools
        as 0/1. Cheap; callable from any thread."""
        global _counter_slots
        h = self._live()
        n = _counter_slots
        if n == 0:  # the count is the same for the life of the process
            n = check(LIB.zcfuse_server_counters(h, None, 0), "zcfuse_server_counters")
        while True:
            buf = (zcfuse_counter_t * n)()
            total = check(LIB.zcfuse_server_counters(h, buf, n), "zcfuse_server_counters")
            if total <= n:
                _counter_slots = total
                return {_counter_name(c.name): c.value for c in buf[:total]}
            n = total

    def stats(self) -> ServerStats:
        """A snapshot of the counters; cheap, callable from any thread.

        Two calls: the struct (zcfuse_server_stats), then every counter by
        name (:meth:`counters`) for the attributes the struct lacks."""
        st = zcfuse_server_stats_t()
        st.struct_size = ctypes.sizeof(st)
        check(LIB.zcfuse_server_stats(self._live(), ctypes.byref(st)), "zcfuse_server_stats")
        v2 = {}
        if st.version >= 2:
            v2 = {name: getattr(st, name) for name in _V2_FIELDS}
        counters = MappingProxyType(self.counters())
        return ServerStats(
            version=st.version,
            transport=Transport(st.transport),
            queues=st.queues,
            queue_depth=st.queue_depth,
            running=bool(st.running),
            bytes_read=st.bytes_read,
            bytes_written=st.bytes_written,
            errors=st.errors,
            ring_requests=tuple(st.ring_requests),
            dev_requests=tuple(st.dev_requests),
            fallback_reason=st.fallback_reason.decode("utf-8", "replace"),
            counters=counters,
            **v2,
        )

    def close(self) -> None:
        """Stops the server if it runs and frees it; a second call does nothing.

        When the unmount fails the error is raised and the server stays
        open, so that close() can be tried again.
        """
        with self._lock:
            handle = self._handle
            if handle is None:
                return
            check(LIB.zcfuse_server_stop(handle), "zcfuse_server_stop")
            self._handle = None
            LIB.zcfuse_server_destroy(handle)
            self._hooks = ()

    def __enter__(self) -> "Server":
        if not self._started:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            try:
                LIB.zcfuse_server_destroy(handle)
            except Exception:  # interpreter shutdown
                pass

    def __reduce__(self) -> Any:
        raise TypeError("a Server cannot be pickled")

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else ("started" if self._started else "created")
        return f"<zcfuse.Server {self.backing_dir!r} on {self.mountpoint!r} {state}>"


@atexit.register
def _close_all() -> None:
    """Closes every server still open at interpreter exit."""
    for srv in list(_live):
        try:
            srv.close()
        except Error as e:
            if e.errno == errno.ECHILD:
                continue  # a forked child: the parent owns the server
            warnings.warn(f"zcfuse: could not stop the server on {srv.mountpoint}: {e}")


def limit_names() -> List[str]:
    """The names of the server's limits (``Server(limits=...)``), in the
    library's order: one table in the library, so a limit added there
    shows here with no change to this package."""
    out: List[str] = []
    while True:
        raw = LIB.zcfuse_limit_name(len(out))
        if raw is None:
            return out
        out.append(raw.decode("ascii"))


__all__ = [
    "NO_CACHE",
    "CounterGroup",
    "Hook",
    "HookInfo",
    "Opcode",
    "Server",
    "ServerStats",
    "Transport",
    "STATS_OPCODES",
    "limit_names",
    "opcode_name",
]
