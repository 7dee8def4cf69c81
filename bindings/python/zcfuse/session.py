"""Sessions: a client's connection to the zcfuse server behind a mount."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple, Union

from . import _forksafe
from ._buffers import Pinned, export, pin
from ._enum import NamedIntEnum
from ._library import (
    F_ARENA,
    F_DATASYNC,
    F_REQUIRE_ZC,
    LIB,
    MODE_POLL,
    MODE_SLEEP,
    OP_FSYNC,
    OP_READ,
    OP_WRITE,
    SHARED_REGISTERED,
    SessionP,
    zcfuse_cqe_t,
    zcfuse_op_t,
    zcfuse_session_stats_t,
)
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


class OpType(NamedIntEnum):
    """What an :class:`Op` does (ZCFUSE_OP_*); also ``Op.READ`` etc."""

    READ = OP_READ
    WRITE = OP_WRITE
    FSYNC = OP_FSYNC


class Mode(NamedIntEnum):
    """How a session waits for completions (zcfuse_session_set_mode)."""

    SLEEP = MODE_SLEEP  #: doorbells: client and server sleep when idle (the default)
    POLL = MODE_POLL  #: client and server spin for a while before sleeping


@dataclass
class Op:
    """One operation for :meth:`Session.submit` (``zcfuse_op_t``).

    ``opcode`` is :attr:`READ`, :attr:`WRITE` or :attr:`FSYNC` (an
    :class:`OpType`; a plain int is taken and turned into one);
    ``buffer`` any contiguous buffer (writable for a read; None for
    fsync): a slice of a shared :class:`zcfuse.Arena` moves with no copy;
    ``flags`` are :data:`zcfuse.F_REQUIRE_ZC` / :data:`zcfuse.F_DATASYNC`.
    ``user_data`` comes back in the :class:`Completion`.
    """

    READ: ClassVar[OpType] = OpType.READ
    WRITE: ClassVar[OpType] = OpType.WRITE
    FSYNC: ClassVar[OpType] = OpType.FSYNC

    opcode: int
    file_id: int
    buffer: Any = None
    offset: int = 0
    user_data: int = 0
    flags: int = 0

    def __post_init__(self) -> None:
        try:
            self.opcode = OpType(self.opcode)
        except ValueError:
            pass  # the library answers an unknown opcode with EINVAL


class Completion(NamedTuple):
    """One completion from :meth:`Session.wait`.

    ``res`` is the bytes moved (0 for fsync; short at the end of a file)
    or a negative errno, as in C.
    """

    user_data: int
    res: int


class Session:
    """A connection to the zcfuse server behind a mountpoint.

    Open one with :meth:`connect` (or :func:`zcfuse.connect`); share
    arenas with :meth:`share`; attach files opened through the mount with
    :meth:`attach`; read and write attached files with :meth:`pwrite`,
    :meth:`pread`, :meth:`readinto`, :meth:`fsync`, or in batches with
    :meth:`submit` and :meth:`wait` (:meth:`fileno` for event loops,
    :func:`zcfuse.wait_async` for asyncio); :meth:`close` it or use
    ``with``. A session is used by
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
        # Buffers of submitted ops, by user_data: [ops in flight, exports],
        # released when the last op with that user_data completes.
        self._pinned: Dict[int, Tuple[int, List[Pinned]]] = {}
        self._inflight = 0
        # The arenas this session shares, as (start, end, arena_id, arena):
        # where the arena's Python mapping lies, and a weak reference. An op
        # on a buffer inside one names {arena_id, offset} (ZCFUSE_F_ARENA).
        self._shared: List[Tuple[int, int, int, "weakref.ref[Arena]"]] = []
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
            start = arena._py_address
            self._shared.append((start, start + arena._size, arena_id.value, weakref.ref(arena)))
        return SharedArena(arena_id.value, bool(flags.value & SHARED_REGISTERED))

    def unshare(self, arena_id: int) -> None:
        """Asks the server to release ``arena_id``; ENOENT if unknown.

        From then on, buffers in that arena go by pointer: the posix path,
        or EFAULT with ``require_zc``.
        """
        with self._lock:
            rc = LIB.zcfuse_unshare(self._live(), arena_id)
            self._shared = [e for e in self._shared if e[2] != arena_id]
            check(rc, "zcfuse_unshare")

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

    # -- zero-copy operations ---------------------------------------------

    def _arena_span(self, address: int, nbytes: int) -> Optional[Tuple[int, int]]:
        """(arena_id, offset) when ``address`` lies in an arena this session
        shares, else None (the op then goes by pointer). Called with the
        lock held and the buffer pinned.

        Only the start must lie inside: a buffer running past the arena's
        end still goes by arena, and the library answers EFAULT. An arena
        closed meanwhile no longer counts (its address range may hold other
        memory now); mmap's ``closed`` changes with the unmapping itself,
        under the GIL, so a range found open here is the arena's.
        """
        if nbytes == 0:
            return None
        for start, end, arena_id, ref in self._shared:
            if start <= address < end:
                arena = ref()
                if arena is not None and not arena.closed:
                    return arena_id, address - start
        return None

    def pwrite(self, file_id: int, data: Any, offset: int, require_zc: bool = False) -> int:
        """Writes the buffer ``data`` to ``file_id`` at ``offset``; returns bytes written.

        ``data`` is any contiguous buffer: a shared :class:`Arena`, a slice
        of ``memoryview(arena)``, a numpy array on an arena (written as its
        raw bytes) travel by reference, with no copy. Any other buffer is
        written through the mount with plain pwrite (the posix path),
        unless ``require_zc``: then it raises EFAULT instead. Raises
        :class:`zcfuse.Error`: EFAULT (straddles an arena's end), EBADF
        (unknown file id, detached or closed file, attached read-only),
        EINVAL (negative offset), EFBIG (past the process's RLIMIT_FSIZE:
        nothing written, no SIGXFSZ), ENOTCONN (server gone), EBADF
        (:class:`zcfuse.ClosedError`) once the session is closed.
        """
        return self._rw(_PWRITE, file_id, data, False, offset, require_zc)

    def readinto(self, file_id: int, buffer: Any, offset: int, require_zc: bool = False) -> int:
        """Reads ``file_id`` at ``offset`` into the writable ``buffer``; returns bytes read.

        Fewer bytes than the buffer holds means the end of the file. As
        :meth:`pwrite`: a buffer in a shared arena is filled with no copy,
        another through the mount (or EFAULT with ``require_zc``); a file
        attached write-only is EBADF.
        """
        return self._rw(_PREAD, file_id, buffer, True, offset, require_zc)

    def _rw(
        self, fns: Tuple[str, str], file_id: int, buf: Any, writable: bool, offset: int,
        require_zc: bool,
    ) -> int:
        """One synchronous read or write: by arena id for a buffer in an
        arena this session shares, else by pointer. ``fns`` names the
        pointer and the by-arena C function. The hot path of the binding:
        kept flat (no context managers, functions looked up once)."""
        flags = F_REQUIRE_ZC if require_zc else 0
        with self._lock:
            handle = self._handle
            if handle is None:
                raise closed("zcfuse session")
            view, address, nbytes = export(buf, writable)
            try:
                span = self._arena_span(address, nbytes) if self._shared else None
                if span is None:
                    name = fns[0]
                    rc = _fn(name)(handle, file_id, address, nbytes, offset, flags)
                else:
                    name = fns[1]
                    rc = _fn(name)(handle, file_id, span[0], span[1], nbytes, offset, flags)
            finally:
                view.release()
            if rc < 0:
                check(rc, name)  # on this thread, right after the call
            return rc

    def pread(
        self, file_id: int, size_or_buffer: Any, offset: int, require_zc: bool = False
    ) -> Union[bytes, memoryview]:
        """Reads ``file_id`` at ``offset``.

        Given a size, returns up to that many bytes as new ``bytes`` (read
        through a private buffer: the posix path; EFAULT with
        ``require_zc``). Given a writable buffer, fills it as
        :meth:`readinto` does and returns a byte-wise ``memoryview`` of
        the part read, without a copy (release it before closing an
        arena it views).
        """
        if isinstance(size_or_buffer, int):
            buf = bytearray(size_or_buffer)
            n = self.readinto(file_id, buf, offset, require_zc)
            return bytes(memoryview(buf)[:n])
        n = self.readinto(file_id, size_or_buffer, offset, require_zc)
        with memoryview(size_or_buffer) as m:
            return m.cast("B")[:n]

    def fsync(self, file_id: int, datasync: bool = False) -> None:
        """Flushes ``file_id`` to stable storage (fdatasync with ``datasync``)."""
        flags = F_DATASYNC if datasync else 0
        with self._lock:
            check(_optional("zcfuse_fsync")(self._live(), file_id, flags), "zcfuse_fsync")

    def submit(self, ops: Sequence[Op]) -> int:
        """Queues ``ops``; returns how many were taken (fewer when the queue is full).

        Each op's buffer stays exported (pinned: an arena cannot be
        closed, a bytearray not resized) until :meth:`wait` returns the
        last completion carrying its ``user_data``; give ops in flight
        distinct ``user_data``. Submit the rest after reaping. An op that
        cannot start (bad buffer, unknown file, a copying posix-path op)
        completes at once. Raises :class:`zcfuse.Error`: EAGAIN (queue
        full, nothing taken; 256 ops in flight at most), ENOTCONN,
        EBADF; and TypeError/BufferError for a bad buffer (nothing queued).
        """
        n = len(ops)
        arr = (zcfuse_op_t * max(n, 1))()
        pins: List[Optional[Pinned]] = []
        try:
            with self._lock:
                handle = self._live()
                for i, op in enumerate(ops):
                    if op.flags & F_ARENA:
                        raise ValueError(
                            "Op.flags: F_ARENA is the binding's to set (a buffer in a "
                            "shared arena is named by arena id and offset by itself)"
                        )
                    c = arr[i]
                    c.opcode = op.opcode
                    c.flags = op.flags
                    c.file_id = op.file_id
                    c.off = op.offset
                    c.user_data = op.user_data
                    p = None
                    if op.buffer is not None:
                        p = pin(op.buffer, writable=op.opcode == OP_READ)
                        c.len = p.nbytes
                        span = self._arena_span(p.address, p.nbytes)
                        if span is None:
                            c.buf = p.address
                        else:
                            _optional("zcfuse_pwrite_arena")  # ENOSYS: no ZCFUSE_F_ARENA either
                            c.flags = op.flags | F_ARENA
                            c.arena_id, c.arena_off = span
                    pins.append(p)
                taken = check(_optional("zcfuse_submit")(handle, arr, n), "zcfuse_submit")
                self._inflight += taken
                for op, p in zip(ops[:taken], pins[:taken]):
                    count, held = self._pinned.get(op.user_data, (0, []))
                    if p is not None:
                        held.append(p)
                    self._pinned[op.user_data] = (count + 1, held)
                del pins[:taken]
            return taken
        finally:
            for p in pins:  # not taken: nothing refers to them
                if p is not None:
                    p.release()

    def wait(self, min: int = 1, max: int = 64, timeout: Optional[float] = None) -> List[Completion]:
        """Waits for at least ``min`` completions and returns up to ``max``.

        Fewer than ``min`` when fewer ops are in flight. ``timeout`` in
        seconds (None: no limit, 0: do not wait); when it passes first,
        returns ``[]`` (nothing is lost: call again). The buffers of the
        completed ops are released. Raises :class:`zcfuse.Error`:
        ENOTCONN (server gone), EBADF.
        """
        if max < 1:
            raise ValueError("max must be at least 1")
        ms = -1 if timeout is None else int(timeout * 1000 + 0.999)
        cqes = (zcfuse_cqe_t * max)()
        with self._lock:
            rc = _optional("zcfuse_wait")(self._live(), cqes, min, max, ms)
            if rc == -errno.ETIME:
                return []
            n = check(rc, "zcfuse_wait")
            out = [Completion(cqes[i].user_data, cqes[i].res) for i in range(n)]
            self._inflight -= n
            for c in out:
                count, held = self._pinned.pop(c.user_data, (1, []))
                if count > 1:
                    self._pinned[c.user_data] = (count - 1, held)
                else:
                    for p in held:
                        p.release()
        return out

    @property
    def in_flight(self) -> int:
        """Ops taken by :meth:`submit` and not yet returned by :meth:`wait`."""
        return self._inflight

    def fileno(self) -> int:
        """An fd that turns readable when completions are ready (owned by the session).

        For select/epoll/asyncio; reap with ``wait(0, max, timeout=0)``.
        Ops that completed at once in :meth:`submit` (posix path, errors)
        do not make it readable: call ``wait(0, ..., timeout=0)`` first.
        """
        with self._lock:
            return check(_optional("zcfuse_session_fd")(self._live()), "zcfuse_session_fd")

    def set_mode(self, mode: Union[str, int], spin_us: int = 0) -> None:
        """How the session waits: "sleep" (doorbells, the default) or "poll".

        ``mode`` is "sleep", "poll" or a :class:`Mode`. In "poll" mode
        client and server spin up to ``spin_us`` microseconds (0: 50)
        before sleeping.
        """
        code: Optional[int]
        if isinstance(mode, str):
            code = Mode.__members__.get(mode.upper())
        else:
            code = mode
        if code is None:
            raise ValueError(f"mode must be 'sleep' or 'poll', not {mode!r}")
        with self._lock:
            rc = _optional("zcfuse_session_set_mode")(self._live(), code, spin_us)
            check(rc, "zcfuse_session_set_mode")

    def _drain(self) -> None:
        """Resets the completion fd (an eventfd) after it turned readable."""
        try:
            os.read(self.fileno(), 8)
        except (BlockingIOError, InterruptedError):
            pass

    def _release_all(self) -> None:
        for _, held in self._pinned.values():
            for p in held:
                p.release()
        self._pinned.clear()
        self._inflight = 0

    # -- lifetime -----------------------------------------------------------

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
            self._shared = []
            self._release_all()
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


_PWRITE = ("zcfuse_pwrite", "zcfuse_pwrite_arena")
_PREAD = ("zcfuse_pread", "zcfuse_pread_arena")
#: Optional functions found so far, by name (see _fn).
_found: Dict[str, Any] = {}


def _fn(name: str) -> Any:
    """_optional(name), remembered once found (the per-op path)."""
    fn = _found.get(name)
    if fn is None:
        fn = _found[name] = _optional(name)
    return fn


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


async def wait_async(session: Session, min: int = 1, max: int = 64) -> List[Completion]:
    """asyncio's :meth:`Session.wait`: at least ``min`` completions, up to ``max``.

    Waits for :meth:`Session.fileno` with ``loop.add_reader`` and reaps
    with ``wait(0, ..., timeout=0)``, so the event loop never blocks.
    Returns fewer than ``min`` when no more ops are in flight. Only one
    coroutine may wait on a session at a time.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    got: List[Completion] = []
    while True:
        got += session.wait(0, max - len(got), timeout=0)
        if len(got) >= min or len(got) >= max or session.in_flight == 0:
            return got
        fd = session.fileno()
        ready = loop.create_future()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        # zcfuse_wait(..., min 0, ...) leaves the eventfd set; reset it
        # before reaping, or it would stay readable and the loop spin.
        session._drain()
