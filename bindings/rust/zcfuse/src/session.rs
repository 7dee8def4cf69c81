//! Sessions: a client's connection to the server behind a mount, and the
//! zero-copy operations on files attached to it.

use std::ffi::{c_int, CString};
use std::fmt;
use std::io;
use std::mem::{self, ManuallyDrop};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

use zcfuse_sys as sys;

use crate::arena::{InArena, Mapping, Region};
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
/// [`Region`] it owns, or an fsync.
///
/// A region of an arena the session shares moves without a copy: the op
/// names it as `{arena id, offset}` (`ZCFUSE_F_ARENA`), which the library
/// finds by id. A region of an arena the session does not share is read
/// or written through the mount with plain pread/pwrite during `submit`,
/// unless the op [requires zero copy](Op::require_zc), which makes it
/// complete with `EFAULT` instead. Either way the op's [`Completion`]
/// hands the region back.
///
/// The op takes its region by value, and `submit` moves the op into the
/// session, so the region cannot be touched while the server reads or
/// writes it:
///
/// ```compile_fail,E0382
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn write_then_reuse(s: &mut Session, file: FileId, arena: Arena) -> std::io::Result<()> {
///     let mut region = arena.into_region();
///     region.fill(7);
///     s.submit(&mut vec![Op::write(file, region, 0)])?;
///     region.fill(8); // error[E0382]: borrow of moved value: `region`
///     Ok(())
/// }
/// ```
///
/// The same with the region taken back from its completion compiles:
///
/// ```no_run
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn write_then_reuse(s: &mut Session, file: FileId, arena: Arena) -> std::io::Result<()> {
///     let mut region = arena.into_region();
///     region.fill(7);
///     s.submit(&mut vec![Op::write(file, region, 0)])?;
///     s.wait(1, 1, None)?.remove(0).region.expect("a write's region").fill(8);
///     Ok(())
/// }
/// ```
///
/// Regions never overlap, so two ops cannot point at the same bytes; split
/// a region for ops that run side by side:
///
/// ```no_run
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn read_and_write(s: &mut Session, file: FileId, arena: Arena) -> std::io::Result<usize> {
///     let mut head = arena.into_region();
///     let tail = head.split_off(2048);
///     let mut ops = vec![Op::write(file, head, 0).user_data(1), Op::read(file, tail, 4096).user_data(2)];
///     s.submit(&mut ops)
/// }
/// ```
pub struct Op {
    raw: sys::zcfuse_op_t,
    region: Option<Region>,
}

// SAFETY: an Op is plain data plus an owned Region (Send and Sync); its
// raw pointer only repeats where the Region lies.
unsafe impl Send for Op {}
unsafe impl Sync for Op {}

impl Op {
    fn new(opcode: c_int, file: FileId, region: Option<Region>, off: u64) -> Op {
        let len = region.as_ref().map_or(0, |r| r.len());
        Op {
            raw: sys::zcfuse_op_t {
                opcode: opcode as u8,
                reserved: [0; 3],
                flags: 0,
                file_id: file.0,
                // Set by submit: {arena_id, arena_off} or the pointer.
                arena_id: 0,
                mem: sys::zcfuse_op_mem { buf: ptr::null_mut() },
                len: len as u64,
                // Offsets past i64::MAX turn negative: the op fails with EINVAL.
                off: off as i64,
                user_data: 0,
            },
            region,
        }
    }

    /// Reads up to `region.len()` bytes of `file` at `off` into `region`.
    /// The completion says how many (fewer at the end of the file) and
    /// hands the region back.
    pub fn read(file: FileId, region: Region, off: u64) -> Op {
        Op::new(sys::ZCFUSE_OP_READ, file, Some(region), off)
    }

    /// Writes `region` to `file` at `off`; the completion hands it back.
    pub fn write(file: FileId, region: Region, off: u64) -> Op {
        Op::new(sys::ZCFUSE_OP_WRITE, file, Some(region), off)
    }

    /// Flushes `file` to stable storage (fsync).
    pub fn fsync(file: FileId) -> Op {
        Op::new(sys::ZCFUSE_OP_FSYNC, file, None, 0)
    }

    /// Flushes `file`'s data to stable storage (fdatasync).
    pub fn fdatasync(file: FileId) -> Op {
        let mut op = Op::new(sys::ZCFUSE_OP_FSYNC, file, None, 0);
        op.raw.flags = sys::ZCFUSE_F_DATASYNC;
        op
    }

    /// Sets the value returned in this op's [`Completion`]: any u64, the
    /// library never interprets it.
    pub fn user_data(mut self, user_data: u64) -> Op {
        self.raw.user_data = user_data;
        self
    }

    /// Makes the op fail with `EFAULT` when its region's arena is not
    /// shared with the session, instead of copying through the mount.
    pub fn require_zc(mut self) -> Op {
        self.raw.flags |= sys::ZCFUSE_F_REQUIRE_ZC;
        self
    }

    /// The op's region, if it has one (not an fsync).
    pub fn region(&self) -> Option<&Region> {
        self.region.as_ref()
    }

    /// The op's region back, for an op that was not submitted.
    pub fn into_region(self) -> Option<Region> {
        self.region
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.raw;
        f.debug_struct("Op")
            .field("opcode", &r.opcode)
            .field("flags", &r.flags)
            .field("file_id", &r.file_id)
            .field("region", &self.region)
            .field("len", &r.len)
            .field("off", &r.off)
            .field("user_data", &r.user_data)
            .finish()
    }
}

/// The result of one submitted [`Op`]: bytes moved (0 for fsync; fewer
/// than asked at the end of the file), or `-errno`, and the op's region,
/// whose bytes are the caller's again.
#[derive(Debug)]
pub struct Completion {
    /// The op's [`Op::user_data`].
    pub user_data: u64,
    /// Bytes moved, or `-errno`.
    pub res: i64,
    /// The region the op read into or wrote from; `None` for an fsync and
    /// an op of [`Session::submit_raw`].
    pub region: Option<Region>,
}

impl Completion {
    /// The result as an `io::Result`: bytes moved, or the errno.
    pub fn result(&self) -> io::Result<usize> {
        check_raw(self.res).map(|n| n as usize)
    }

    /// The op's region (see [`Completion::region`](#structfield.region)).
    pub fn into_region(self) -> Option<Region> {
        self.region
    }
}

/// An op the session has submitted and not reaped: the caller's
/// user_data, and the region the server may be reading or writing.
struct InFlight {
    user_data: u64,
    region: Option<Region>,
}

/// What a session owns besides its handle: the arenas it shares and the
/// ops in flight, which both keep arena mappings alive.
#[derive(Default)]
struct State {
    /// What this session shares: its id, whether the server registered
    /// it, and its mapping, kept alive until unshare or close.
    shared: Vec<(ArenaId, bool, Arc<Mapping>)>,
    /// Ops in flight, by the slot index sent as their user_data; a None
    /// is free (listed in `free`) or being filled by submit.
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    in_flight: usize,
    /// Reused buffers for submit and wait.
    raw_ops: Vec<sys::zcfuse_op_t>,
    cqes: Vec<sys::zcfuse_cqe_t>,
}

impl State {
    /// op as the library takes it: a region of an arena this session
    /// shares by `{arena id, offset}`, any other by pointer (the copying
    /// path, or EFAULT with require_zc).
    fn raw_op(&self, op: &Op) -> sys::zcfuse_op_t {
        let mut raw = op.raw;
        if let Some(r) = &op.region {
            match self.shared.iter().find(|s| Arc::ptr_eq(&s.2, r.mapping())) {
                Some(s) => {
                    raw.flags |= sys::ZCFUSE_F_ARENA;
                    raw.arena_id = s.0.as_u32();
                    raw.mem = sys::zcfuse_op_mem { arena_off: r.offset() as u64 };
                }
                None => raw.mem = sys::zcfuse_op_mem { buf: r.ptr().cast() },
            }
        }
        raw
    }

    /// A free slot index.
    fn slot(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        })
    }
}

/// A connection to the zcfuse server behind a mountpoint, over which a
/// client shares [`Arena`](crate::Arena)s and to which it attaches files it opened
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
///     s.stats()?; // error[E0382]: borrow of moved value: `s`
///     Ok(())
/// }
/// ```
///
/// (to go on, connect again:)
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     let s = zcfuse::Session::connect("/mnt/data")?;
///     s.close()?;
///     zcfuse::Session::connect("/mnt/data")?.stats()?;
///     Ok(())
/// }
/// ```
///
/// It cannot be shared between threads:
///
/// ```compile_fail,E0277
/// fn main() -> std::io::Result<()> {
///     let s = zcfuse::Session::connect("/mnt/data")?;
///     std::thread::scope(|t| t.spawn(|| s.stats()).join().unwrap())?; // error[E0277]: `NonNull<zcfuse_session>` cannot be shared between threads safely
///     Ok(())
/// }
/// ```
///
/// but it can move to another thread:
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     let s = zcfuse::Session::connect("/mnt/data")?;
///     std::thread::scope(|t| t.spawn(move || s.stats()).join().unwrap())?;
///     Ok(())
/// }
/// ```
///
/// # Ops in flight
///
/// [`Session::submit`] moves its [`Op`]s, and the [`Region`]s they own,
/// into the session; [`Session::wait`] hands each region back with its
/// op's [`Completion`]. Until then the session holds the region, and with
/// it a count of its arena's mapping. Dropping or closing the session with
/// ops in flight is safe: `zcfuse_close` returns only once the server has
/// finished every op of the session, then the regions are dropped, and
/// the arena's memory is unmapped once nothing else holds it. Forgetting
/// the session (`mem::forget`) leaks the regions and keeps the mapping.
/// Dropping what an op came from cannot free the memory under it:
///
/// ```compile_fail,E0382
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn drop_under_the_op(mut s: Session, file: FileId, arena: Arena) -> std::io::Result<()> {
///     let region = arena.into_region();
///     s.submit(&mut vec![Op::read(file, region, 0)])?;
///     drop(arena); // error[E0382]: use of moved value: `arena`
///     Ok(())
/// }
/// ```
///
/// while dropping the session with the read in flight compiles, and is
/// safe:
///
/// ```no_run
/// # use zcfuse::{Arena, FileId, Op, Session};
/// fn drop_under_the_op(mut s: Session, file: FileId, arena: Arena) -> std::io::Result<()> {
///     let region = arena.into_region();
///     s.submit(&mut vec![Op::read(file, region, 0)])?;
///     drop(s); // the region goes with the session; the mapping lives while the region does
///     Ok(())
/// }
/// ```
pub struct Session {
    raw: NonNull<sys::zcfuse_session_t>,
    fd: RawFd,
    st: State,
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
        let s = Session { raw, fd, st: State::default() };
        check(fd)?;
        Ok(s)
    }

    fn ptr(&self) -> *mut sys::zcfuse_session_t {
        self.raw.as_ptr()
    }

    /// Shares `arena` (an [`Arena`](crate::Arena), or the arena a [`Region`] lies in)
    /// with the server, which maps it and, budget permitting, registers it
    /// for fixed-buffer I/O. From now on ops on buffers inside it move
    /// without a copy. The session keeps the
    /// arena's memory mapped until [`Session::unshare`] or its close,
    /// even if the `Arena` is dropped. Errors: `ENOSPC` (the session's
    /// arena count or byte limit), `EPERM`/`EINVAL`, `ENOTCONN`.
    pub fn share(&mut self, arena: &impl InArena) -> io::Result<ArenaId> {
        let map = arena.arena_mapping();
        let (mut id, mut flags) = (0u32, 0u32);
        // SAFETY: the session and arena are live; the outs are valid.
        check(unsafe { sys::zcfuse_share(self.ptr(), map.raw(), &mut id, &mut flags) })?;
        let id = ArenaId(id);
        self.st.shared.push((id, flags & sys::ZCFUSE_SHARED_REGISTERED != 0, Arc::clone(map)));
        Ok(id)
    }

    /// Whether the server registered arena `id` as an io_uring fixed
    /// buffer (else it serves it from its mapping, still without a copy);
    /// `None` if this session does not share `id`.
    pub fn is_registered(&self, id: ArenaId) -> Option<bool> {
        self.st.shared.iter().find(|s| s.0 == id).map(|s| s.1)
    }

    /// Asks the server to release arena `id`. Errors: `ENOENT` (not shared
    /// by this session), `ENOTCONN`.
    pub fn unshare(&mut self, id: ArenaId) -> io::Result<()> {
        // SAFETY: the session is live.
        check(unsafe { sys::zcfuse_unshare(self.ptr(), id.0) })?;
        // Only now does the library forget the arena's address range.
        if let Some(i) = self.st.shared.iter().position(|s| s.0 == id) {
            self.st.shared.swap_remove(i);
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
    /// queue (256 ops in flight) is full; the ops taken leave the front of
    /// `ops`, the rest stay there. Reap completions with
    /// [`Session::wait`] and submit the rest. An op that cannot start, and
    /// one that takes the copying path, completes at once. Errors (errno
    /// only; nothing is taken): `EAGAIN` (queue full), `ENOTCONN`.
    ///
    /// The session owns the ops taken, and their regions, until their
    /// completions are reaped: the server reads and writes the regions
    /// after this returns, and no one else can reach them meanwhile.
    pub fn submit(&mut self, ops: &mut Vec<Op>) -> io::Result<usize> {
        let n = ops.len().min(u32::MAX as usize);
        let mut raw = mem::take(&mut self.st.raw_ops);
        raw.clear();
        raw.extend(ops[..n].iter().map(|op| self.st.raw_op(op)));
        let (rc, tokens) = self.submit_tokens(&mut raw);
        self.st.raw_ops = raw;
        let taken = rc?;
        for (op, token) in ops.drain(..taken).zip(tokens) {
            self.st.slots[token] = Some(InFlight { user_data: op.raw.user_data, region: op.region });
        }
        Ok(taken)
    }

    /// [`Session::submit`] with the library's own op descriptors, whose
    /// buffers are raw pointers (anywhere: inside a shared arena they move
    /// without a copy, elsewhere they take the copying path during the
    /// call). Returns how many ops it took, from the front of `ops`. Their
    /// completions come back through [`Session::wait`] with the ops'
    /// `user_data` and no region.
    ///
    /// # Safety
    ///
    /// For each op taken, the memory it names (`mem.buf`, or with
    /// `ZCFUSE_F_ARENA` `len` bytes at `mem.arena_off` in arena
    /// `arena_id`) must stay allocated, and be read (a write op) or
    /// written (a read op) by no one else, from this call until
    /// [`Session::wait`] returns the op's completion, or the session is
    /// closed or dropped (`zcfuse_close` waits for the server to finish
    /// the session's ops). After `wait` fails with `ENOTCONN`, a stopping
    /// server may still move the bytes until it has stopped
    /// ([`Server::stop`](crate::Server::stop) returned, or its process
    /// ended). An arena op's arena must be one this session shares; the
    /// library checks the id and range (`EFAULT`), not who else uses the
    /// bytes.
    pub unsafe fn submit_raw(&mut self, ops: &[sys::zcfuse_op_t]) -> io::Result<usize> {
        let n = ops.len().min(u32::MAX as usize);
        let mut raw = mem::take(&mut self.st.raw_ops);
        raw.clear();
        raw.extend_from_slice(&ops[..n]);
        let (rc, tokens) = self.submit_tokens(&mut raw);
        self.st.raw_ops = raw;
        let taken = rc?;
        for (op, token) in ops[..taken].iter().zip(tokens) {
            self.st.slots[token] = Some(InFlight { user_data: op.user_data, region: None });
        }
        Ok(taken)
    }

    /// Submits `raw` with a free slot's index as each op's user_data, and
    /// returns how many the library took and the slots, in order, for the
    /// caller to fill; the slots of ops not taken are free again.
    fn submit_tokens(&mut self, raw: &mut [sys::zcfuse_op_t]) -> (io::Result<usize>, Vec<usize>) {
        let mut tokens = Vec::with_capacity(raw.len());
        for op in raw.iter_mut() {
            let token = self.st.slot();
            op.user_data = token as u64;
            tokens.push(token);
        }
        // SAFETY: the session is live; raw holds raw.len() valid
        // descriptors. Their buffers are regions the caller moves into
        // the session for as long as the ops are in flight (submit), or
        // the caller's promise (submit_raw).
        let rc = unsafe { sys::zcfuse_submit(self.ptr(), raw.as_ptr(), raw.len() as u32) };
        let taken = match check_raw(rc.into()) {
            Ok(t) => {
                let t = t as usize;
                assert!(t <= raw.len(), "zcfuse_submit took {t} of {} ops", raw.len());
                t
            }
            Err(e) => {
                self.st.free.append(&mut tokens);
                return (Err(e), tokens);
            }
        };
        self.st.free.extend(tokens.drain(taken..));
        self.st.in_flight += taken;
        (Ok(taken), tokens)
    }

    /// Ops submitted and not reaped yet.
    pub fn in_flight(&self) -> usize {
        self.st.in_flight
    }

    /// Waits until at least `min` completions are ready (fewer if fewer
    /// ops are pending) or `timeout` passes (`None`: no limit; zero: do
    /// not wait), and returns up to `max` of them (at most
    /// [`Session::MAX_WAIT`] per call), each with its op's region. On a
    /// timeout it returns what it has, perhaps nothing: call it again.
    /// Errors (errno only): `ENOTCONN` (the server is gone: noticed at
    /// once; ops still in flight then never complete, whether they ran is
    /// unknown, and their regions stay with the session until it is
    /// dropped), `EINVAL` (`min` greater than `max`).
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
        let mut cqes = mem::take(&mut self.st.cqes);
        cqes.clear();
        cqes.reserve(max);
        // SAFETY: the session is live; cqes has room for max.
        let rc =
            unsafe { sys::zcfuse_wait(self.ptr(), cqes.as_mut_ptr(), min as u32, max as u32, timeout_ms(timeout)) };
        let res = match check_raw(rc.into()) {
            Ok(n) => {
                let n = n as usize;
                assert!(n <= max, "zcfuse_wait returned {n} completions for room for {max}");
                // SAFETY: the library wrote n completions.
                unsafe { cqes.set_len(n) };
                out.reserve(n);
                for c in &cqes {
                    let op = usize::try_from(c.user_data)
                        .ok()
                        .and_then(|t| self.st.slots.get_mut(t))
                        .and_then(Option::take)
                        .unwrap_or_else(|| panic!("zcfuse_wait: a completion for no op in flight ({})", c.user_data));
                    self.st.free.push(c.user_data as usize);
                    self.st.in_flight -= 1;
                    out.push(Completion { user_data: op.user_data, res: c.res, region: op.region });
                }
                Ok(n)
            }
            Err(e) if e.raw_os_error() == Some(62 /* ETIME */) => Ok(0),
            Err(e) => Err(e),
        };
        self.st.cqes = cqes;
        res
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
        // The library has let go of the arenas' address ranges; ops still
        // in flight go with their regions.
        drop(mem::take(&mut this.st));
        check(rc).map(drop)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the session is live and closed once; `st` (the shared
        // mappings, the ops in flight) drops after.
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
            .field("shared", &self.st.shared.iter().map(|s| s.0).collect::<Vec<_>>())
            .field("in_flight", &self.st.in_flight)
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
