//! Sessions: a client's connection to the server behind a mount, and the
//! zero-copy operations on files attached to it.

use std::ffi::{c_int, CString};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

use zcfuse_sys as sys;

use crate::arena::{Arena, Mapping};
use crate::error::{check, check_raw};

/// The id of an arena shared with a [`Session`] ([`Session::share`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArenaId(u32);

impl ArenaId {
    /// The id the library gave (`*arena_id_out` of `zcfuse_share`).
    pub fn as_u32(self) -> u32 {
        self.0
    }
}

/// A file attached to a [`Session`] ([`Session::attach`]): what ops name.
/// It stays valid until [`Session::detach`], the session's end, or the
/// kernel's release of the open file (the last close of its fd); ops on
/// it then fail with `EBADF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId(u32);

impl FileId {
    /// The id the library gave (`*file_id_out` of `zcfuse_attach`).
    pub fn as_u32(self) -> u32 {
        self.0
    }
}

/// How a session waits for completions ([`Session::set_mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Doorbells and eventfds: an idle session uses no CPU (the default).
    Sleep,
    /// Client and server spin for a while before they sleep.
    Poll,
}

/// The server's control-plane counters as a session sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    /// The struct version the library filled in.
    pub version: u32,
    /// This session's id on the server.
    pub session_id: u64,
    /// Sessions the server holds.
    pub sessions: u64,
    /// Arenas shared with the server, all sessions.
    pub arenas: u64,
    /// Of those, bytes in io_uring fixed buffers.
    pub registered_bytes: u64,
    /// Files attached for zero-copy I/O.
    pub attached_files: u64,
}

/// One operation for [`Session::submit`]: a read into or a write from a
/// buffer it borrows, or an fsync.
///
/// A buffer inside one arena the session shares moves without a copy.
/// Any other buffer (a `Vec`, the stack) is read or written through the
/// mount with plain pread/pwrite during `submit`, unless the op
/// [requires zero copy](Op::require_zc), which makes it complete with
/// `EFAULT` instead.
///
/// The op borrows its buffer for `'a`, so the arena it points into cannot
/// be dropped, nor its bytes written by Rust code, while the op exists:
///
/// ```compile_fail,E0597
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn submit_dangling(s: &mut Session, file: FileId) -> std::io::Result<usize> {
///     let op = {
///         let arena = Arena::new(4096)?;
///         Op::write(file, &arena[..], 0) // error: `arena` does not live long enough
///     };
///     s.submit(&[op])
/// }
/// ```
///
/// ```compile_fail,E0502
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn read_over_write(s: &mut Session, file: FileId, arena: &mut Arena) -> std::io::Result<usize> {
///     let (a, b) = (1024, 2048);
///     let w = Op::write(file, &arena[..b], 0);
///     let r = Op::read(file, &mut arena[a..], 0); // error: arena is borrowed by `w`
///     s.submit(&[w, r])
/// }
/// ```
///
/// Disjoint pieces are fine (`split_at_mut`, `chunks_mut`):
///
/// ```no_run
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn read_and_write(s: &mut Session, file: FileId, arena: &mut Arena) -> std::io::Result<usize> {
///     let (head, tail) = arena.split_at_mut(2048);
///     let w = Op::write(file, head, 0).user_data(1);
///     let r = Op::read(file, tail, 4096).user_data(2);
///     s.submit(&[w, r])
/// }
/// ```
#[repr(transparent)] // an &[Op] is handed to the library as zcfuse_op_t[]
pub struct Op<'a> {
    raw: sys::zcfuse_op_t,
    buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: an Op is a borrow of [u8] (Send and Sync) plus plain data.
unsafe impl Send for Op<'_> {}
unsafe impl Sync for Op<'_> {}

impl<'a> Op<'a> {
    fn new(opcode: c_int, file: FileId, buf: *mut u8, len: usize, off: u64) -> Op<'a> {
        Op {
            raw: sys::zcfuse_op_t {
                opcode: opcode as u8,
                reserved: [0; 3],
                flags: 0,
                file_id: file.0,
                reserved2: 0,
                buf: buf.cast(),
                len: len as u64,
                // Offsets past i64::MAX turn negative: the op fails with EINVAL.
                off: off as i64,
                user_data: 0,
            },
            buf: PhantomData,
        }
    }

    /// Reads up to `buf.len()` bytes of `file` at `off` into `buf`. The
    /// completion says how many (fewer at the end of the file).
    pub fn read(file: FileId, buf: &'a mut [u8], off: u64) -> Op<'a> {
        Op::new(sys::ZCFUSE_OP_READ, file, buf.as_mut_ptr(), buf.len(), off)
    }

    /// Writes `buf` to `file` at `off`.
    pub fn write(file: FileId, buf: &'a [u8], off: u64) -> Op<'a> {
        // The library only reads a write's buffer.
        Op::new(sys::ZCFUSE_OP_WRITE, file, buf.as_ptr().cast_mut(), buf.len(), off)
    }

    /// Flushes `file` to stable storage (fsync).
    pub fn fsync(file: FileId) -> Op<'static> {
        Op::new(sys::ZCFUSE_OP_FSYNC, file, ptr::null_mut(), 0, 0)
    }

    /// Flushes `file`'s data to stable storage (fdatasync).
    pub fn fdatasync(file: FileId) -> Op<'static> {
        let mut op = Op::new(sys::ZCFUSE_OP_FSYNC, file, ptr::null_mut(), 0, 0);
        op.raw.flags = sys::ZCFUSE_F_DATASYNC;
        op
    }

    /// Sets the value returned in this op's [`Completion`]: any u64, the
    /// library never interprets it.
    pub fn user_data(mut self, user_data: u64) -> Op<'a> {
        self.raw.user_data = user_data;
        self
    }

    /// Makes the op fail with `EFAULT` when its buffer is not inside a
    /// shared arena, instead of copying through the mount.
    pub fn require_zc(mut self) -> Op<'a> {
        self.raw.flags |= sys::ZCFUSE_F_REQUIRE_ZC;
        self
    }
}

impl fmt::Debug for Op<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.raw;
        f.debug_struct("Op")
            .field("opcode", &r.opcode)
            .field("flags", &r.flags)
            .field("file_id", &r.file_id)
            .field("buf", &r.buf)
            .field("len", &r.len)
            .field("off", &r.off)
            .field("user_data", &r.user_data)
            .finish()
    }
}

/// The result of one submitted [`Op`]: bytes moved (0 for fsync; fewer
/// than asked at the end of the file), or `-errno`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The op's [`Op::user_data`].
    pub user_data: u64,
    /// Bytes moved, or `-errno`.
    pub res: i64,
}

// Completions are reaped straight into a Vec<Completion>.
const _: () = {
    assert!(mem::size_of::<Completion>() == mem::size_of::<sys::zcfuse_cqe_t>());
    assert!(mem::align_of::<Completion>() == mem::align_of::<sys::zcfuse_cqe_t>());
    assert!(mem::offset_of!(Completion, user_data) == mem::offset_of!(sys::zcfuse_cqe_t, user_data));
    assert!(mem::offset_of!(Completion, res) == mem::offset_of!(sys::zcfuse_cqe_t, res));
};

impl Completion {
    /// The result as an `io::Result`: bytes moved, or the errno.
    pub fn result(&self) -> io::Result<usize> {
        check_raw(self.res).map(|n| n as usize)
    }
}

/// A connection to the zcfuse server behind a mountpoint, over which a
/// client shares [`Arena`]s and to which it attaches files it opened
/// through the mount, for zero-copy reads and writes.
///
/// A session is used by one thread at a time (like an io_uring): it is
/// `Send` but not `Sync`; open one per thread. Dropping it closes it
/// ([`Session::close`] says how that went); the server then releases the
/// arenas it shared and detaches its files.
///
/// ```no_run
/// use std::fs::OpenOptions;
/// use zcfuse::{Arena, Session};
///
/// fn main() -> std::io::Result<()> {
///     let mut s = Session::connect("/mnt/data")?;
///     let mut arena = Arena::new(1 << 20)?;
///     s.share(&arena)?;
///     let file = OpenOptions::new().read(true).write(true).open("/mnt/data/f")?;
///     let id = s.attach(&file)?;
///     arena[..5].copy_from_slice(b"hello");
///     s.pwrite(id, &arena[..5], 0, true)?; // zero copy, or EFAULT
///     s.close()
/// }
/// ```
///
/// `close` consumes the session, so it cannot be used afterwards:
///
/// ```compile_fail,E0382
/// fn main() -> std::io::Result<()> {
///     let s = zcfuse::Session::connect("/mnt/data")?;
///     s.close()?;
///     s.stats()?; // error: borrow of moved value: `s`
///     Ok(())
/// }
/// ```
///
/// and it cannot be shared between threads:
///
/// ```compile_fail,E0277
/// fn share_between_threads<T: Sync>(_: &T) {}
/// fn main() -> std::io::Result<()> {
///     let s = zcfuse::Session::connect("/mnt/data")?;
///     share_between_threads(&s); // error: `NonNull<...>` cannot be shared between threads
///     Ok(())
/// }
/// ```
pub struct Session {
    raw: NonNull<sys::zcfuse_session_t>,
    fd: RawFd,
    /// What this session shares: its id, whether the server registered
    /// it, and its mapping, kept alive until unshare or close.
    shared: Vec<(ArenaId, bool, Arc<Mapping>)>,
}

// SAFETY: a session may move between threads; it is used by one thread
// at a time (zcfuse.h), which `!Sync` and `&mut self` enforce.
unsafe impl Send for Session {}

impl Session {
    /// Connects to the server behind `mountpoint`, found through the mount
    /// itself (or `$ZCFUSE_CONTROL_SOCKET`). Errors: `ENODATA` (no zcfuse
    /// server there), `EACCES` (not mounted with allow-other for this
    /// user), `EAGAIN` (too many sessions), `ENOENT`/`ECONNREFUSED`.
    pub fn connect(mountpoint: impl AsRef<Path>) -> io::Result<Session> {
        let path = path_cstring(mountpoint.as_ref())?;
        let mut raw = ptr::null_mut();
        // SAFETY: path is NUL-terminated; raw is a valid out pointer.
        check(unsafe { sys::zcfuse_connect(path.as_ptr(), &mut raw) })?;
        let raw = NonNull::new(raw).expect("zcfuse_connect returned 0 and a NULL session");
        // SAFETY: raw is live. Its fd lives as long as it does.
        let fd = unsafe { sys::zcfuse_session_fd(raw.as_ptr()) };
        let s = Session { raw, fd, shared: Vec::new() };
        check(fd)?;
        Ok(s)
    }

    fn ptr(&self) -> *mut sys::zcfuse_session_t {
        self.raw.as_ptr()
    }

    /// Shares `arena` with the server, which maps it and, budget
    /// permitting, registers it for fixed-buffer I/O. From now on ops on
    /// buffers inside it move without a copy. The session keeps the
    /// arena's memory mapped until [`Session::unshare`] or its close,
    /// even if the `Arena` is dropped. Errors: `ENOSPC` (the session's
    /// arena count or byte limit), `EPERM`/`EINVAL`, `ENOTCONN`.
    pub fn share(&mut self, arena: &Arena) -> io::Result<ArenaId> {
        let (mut id, mut flags) = (0u32, 0u32);
        // SAFETY: the session and arena are live; the outs are valid.
        check(unsafe { sys::zcfuse_share(self.ptr(), arena.mapping().raw(), &mut id, &mut flags) })?;
        let id = ArenaId(id);
        self.shared.push((id, flags & sys::ZCFUSE_SHARED_REGISTERED != 0, Arc::clone(arena.mapping())));
        Ok(id)
    }

    /// Whether the server registered arena `id` as an io_uring fixed
    /// buffer (else it serves it from its mapping, still without a copy);
    /// `None` if this session does not share `id`.
    pub fn is_registered(&self, id: ArenaId) -> Option<bool> {
        self.shared.iter().find(|s| s.0 == id).map(|s| s.1)
    }

    /// Asks the server to release arena `id`. Errors: `ENOENT` (not shared
    /// by this session), `ENOTCONN`.
    pub fn unshare(&mut self, id: ArenaId) -> io::Result<()> {
        // SAFETY: the session is live.
        check(unsafe { sys::zcfuse_unshare(self.ptr(), id.0) })?;
        // Only now does the library forget the arena's address range.
        if let Some(i) = self.shared.iter().position(|s| s.0 == id) {
            self.shared.swap_remove(i);
        }
        Ok(())
    }

    /// Attaches `file`, a regular file opened through this session's
    /// mount (a `std::fs::File`, or any fd), for zero-copy I/O in the mode
    /// it was opened with. Attaching the same open file again gives the
    /// same id. Errors: `EXDEV` (not on this mount), `EINVAL` (not a
    /// regular file), `EBADF`, `EPERM` (the server refuses the caller),
    /// `EMFILE` (the session's limit), `ENOTCONN`/`ESHUTDOWN`.
    pub fn attach<F: AsRawFd + ?Sized>(&mut self, file: &F) -> io::Result<FileId> {
        let mut id = 0u32;
        // SAFETY: the session is live; id is a valid out pointer. The
        // library only stats and ioctls the fd.
        check(unsafe { sys::zcfuse_attach(self.ptr(), file.as_raw_fd(), &mut id) })?;
        Ok(FileId(id))
    }

    /// Ends the attachment `file`. Errors: `ENOENT` (not attached, maybe
    /// released by the kernel already), `EINVAL`, `ENOTCONN`.
    pub fn detach(&mut self, file: FileId) -> io::Result<()> {
        // SAFETY: the session is live.
        check(unsafe { sys::zcfuse_detach(self.ptr(), file.0) }).map(drop)
    }

    /// The server's control-plane counters. Errors: `ENOTCONN`.
    pub fn stats(&self) -> io::Result<SessionStats> {
        // SAFETY: all zeros is a valid zcfuse_session_stats_t.
        let mut st: sys::zcfuse_session_stats_t = unsafe { mem::zeroed() };
        st.struct_size = mem::size_of::<sys::zcfuse_session_stats_t>() as u32;
        // SAFETY: the session is live (and not Sync: no other thread uses it).
        check(unsafe { sys::zcfuse_session_stats(self.ptr(), &mut st) })?;
        Ok(SessionStats {
            version: st.version,
            session_id: st.session_id,
            sessions: st.sessions,
            arenas: st.arenas,
            registered_bytes: st.registered_bytes,
            attached_files: st.attached_files,
        })
    }

    /// Writes `buf` to `file` at `off` and returns the bytes written. A
    /// `buf` inside a shared arena moves without a copy; any other is
    /// written through the mount, or with `require_zc` fails with `EFAULT`.
    /// Errors (errno only): `EFAULT`, `EBADF` (unknown or released file,
    /// or attached read-only), `EINVAL` (offset past i64::MAX), `EFBIG`
    /// (past the process's `RLIMIT_FSIZE`: nothing written, no `SIGXFSZ`),
    /// `ENOTCONN`.
    pub fn pwrite(&mut self, file: FileId, buf: &[u8], off: u64, require_zc: bool) -> io::Result<usize> {
        // SAFETY: the session is live; buf is readable for its length and
        // borrowed until the call (which waits for the op) returns.
        let rc = unsafe {
            sys::zcfuse_pwrite(self.ptr(), file.0, buf.as_ptr().cast(), buf.len(), off as i64, zc(require_zc))
        };
        check_raw(rc).map(|n| n as usize)
    }

    /// Reads up to `buf.len()` bytes of `file` at `off` into `buf` and
    /// returns how many (fewer at the end of the file). As [`Session::pwrite`].
    pub fn pread(&mut self, file: FileId, buf: &mut [u8], off: u64, require_zc: bool) -> io::Result<usize> {
        // SAFETY: as in pwrite, with buf writable.
        let rc = unsafe {
            sys::zcfuse_pread(self.ptr(), file.0, buf.as_mut_ptr().cast(), buf.len(), off as i64, zc(require_zc))
        };
        check_raw(rc).map(|n| n as usize)
    }

    /// Flushes `file` to stable storage: fdatasync with `datasync`, else fsync.
    pub fn fsync(&mut self, file: FileId, datasync: bool) -> io::Result<()> {
        let flags = if datasync { sys::ZCFUSE_F_DATASYNC } else { 0 };
        // SAFETY: the session is live.
        check_raw(unsafe { sys::zcfuse_fsync(self.ptr(), file.0, flags) }.into()).map(drop)
    }

    /// Queues `ops` and returns how many it took: all, or fewer when the
    /// queue (256 ops in flight) is full; reap completions with
    /// [`Session::wait`] and submit the rest. An op that cannot start, and
    /// one that takes the copying path, completes at once. Errors (errno
    /// only): `EAGAIN` (queue full, nothing taken), `ENOTCONN`.
    ///
    /// The server moves the bytes after this returns: a read op's buffer
    /// gets them some time before its completion is reaped (see [`Arena`]).
    pub fn submit(&mut self, ops: &[Op<'_>]) -> io::Result<usize> {
        let n = ops.len().min(u32::MAX as usize) as u32;
        // Op is a zcfuse_op_t and a PhantomData: the same layout.
        let raw = ops.as_ptr().cast::<sys::zcfuse_op_t>();
        // SAFETY: the session is live; ops are n valid descriptors whose
        // buffers are borrowed for the call (the copying path runs in it).
        let rc = unsafe { sys::zcfuse_submit(self.ptr(), raw, n) };
        check_raw(rc.into()).map(|n| n as usize)
    }

    /// Waits until at least `min` completions are ready (fewer if fewer
    /// ops are pending) or `timeout` passes (`None`: no limit; zero: do
    /// not wait), and returns up to `max` of them (at most
    /// [`Session::MAX_WAIT`] per call). On a timeout it returns what it
    /// has, perhaps nothing: call it again. Errors (errno only):
    /// `ENOTCONN` (the server is gone: noticed at once; ops still in flight
    /// then never complete, and whether they ran is unknown), `EINVAL`
    /// (`min` greater than `max`).
    pub fn wait(&mut self, min: usize, max: usize, timeout: Option<Duration>) -> io::Result<Vec<Completion>> {
        let mut out = Vec::new();
        self.wait_into(min, max, timeout, &mut out)?;
        Ok(out)
    }

    /// The most completions one [`Session::wait`] returns; the op queue
    /// holds 256 in flight.
    pub const MAX_WAIT: usize = 1024;

    /// [`Session::wait`] that appends the completions to `out` (reusing its
    /// allocation) and returns how many it appended.
    pub fn wait_into(
        &mut self,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
        out: &mut Vec<Completion>,
    ) -> io::Result<usize> {
        if min > max {
            return Err(io::Error::from_raw_os_error(22 /* EINVAL */));
        }
        let max = max.min(Self::MAX_WAIT);
        let min = min.min(max);
        out.reserve(max);
        let len = out.len();
        // SAFETY: the session is live; out has room for max more cqes,
        // and Completion has zcfuse_cqe_t's layout.
        let rc = unsafe {
            let dst = out.as_mut_ptr().add(len).cast();
            sys::zcfuse_wait(self.ptr(), dst, min as u32, max as u32, timeout_ms(timeout))
        };
        match check_raw(rc.into()) {
            Ok(n) => {
                let n = n as usize;
                assert!(n <= max, "zcfuse_wait returned {n} completions for room for {max}");
                // SAFETY: the library wrote n completions after len.
                unsafe { out.set_len(len + n) };
                Ok(n)
            }
            Err(e) if e.raw_os_error() == Some(62 /* ETIME */) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sets how the session waits for completions; `spin` bounds a
    /// [`Mode::Poll`] spin (zero: 50 µs).
    pub fn set_mode(&mut self, mode: Mode, spin: Duration) -> io::Result<()> {
        let mode = match mode {
            Mode::Sleep => sys::ZCFUSE_MODE_SLEEP,
            Mode::Poll => sys::ZCFUSE_MODE_POLL,
        };
        let spin_us = spin.as_micros().min(u32::MAX as u128) as u32;
        // SAFETY: the session is live.
        check_raw(unsafe { sys::zcfuse_session_set_mode(self.ptr(), mode, spin_us) }.into()).map(drop)
    }

    /// Says goodbye and frees the session; the server releases every
    /// arena it shared and detaches every file. Errors: `ENOTCONN` when the
    /// server was already gone (the session is freed either way).
    pub fn close(self) -> io::Result<()> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the session is live and closed once: `this` is not dropped.
        let rc = unsafe { sys::zcfuse_close(this.ptr()) };
        // The library has let go of the arenas' address ranges.
        drop(mem::take(&mut this.shared));
        check(rc).map(drop)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the session is live and closed once; `shared` drops after.
        unsafe { sys::zcfuse_close(self.ptr()) };
    }
}

/// The session's completion fd: it turns readable when completions are
/// ready; put it in epoll/poll/tokio, then reap with
/// `wait(0, max, Some(Duration::ZERO))`. Owned by the session.
impl AsRawFd for Session {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsFd for Session {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the session owns the fd and keeps it open while it lives.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("raw", &self.raw)
            .field("fd", &self.fd)
            .field("shared", &self.shared.iter().map(|s| s.0).collect::<Vec<_>>())
            .finish()
    }
}

fn zc(require_zc: bool) -> u32 {
    if require_zc {
        sys::ZCFUSE_F_REQUIRE_ZC
    } else {
        0
    }
}

/// A timeout as zcfuse_wait's milliseconds: -1 for none, rounded up.
fn timeout_ms(timeout: Option<Duration>) -> c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(c_int::MAX as u128) as c_int
        }
    }
}

pub(crate) fn path_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{}: a path with a NUL byte", path.display())))
}
