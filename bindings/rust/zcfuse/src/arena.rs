//! Arenas: shared memory for zero-copy I/O.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr::{self, NonNull};
use std::slice;
use std::sync::Arc;

use zcfuse_sys as sys;

use crate::error::check;

/// Shared memory for zero-copy I/O: a sealed memfd mapped read-write,
/// whole pages (4 KiB; 2 MiB with [`Arena::new_huge`]) up to
/// [`Arena::MAX_SIZE`]. It derefs to `[u8]`, so ops take slices of it.
///
/// Share it with a [`Session`](crate::Session); reads and writes of buffers
/// that lie inside it then move by reference, without a copy.
///
/// ```
/// let mut arena = zcfuse::Arena::new(64 << 10)?;
/// arena[..5].copy_from_slice(b"hello");
/// let (head, tail) = arena.split_at_mut(4096); // disjoint buffers for two ops
/// assert_eq!((head.len(), tail.len()), (4096, 60 << 10));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the arena closes it, unless a session still shares it: the
/// session keeps the mapping (not the `Arena`) alive until it unshares the
/// arena or closes, so the library never looks up a buffer in memory that
/// was unmapped and perhaps reused.
///
/// An arena is plain memory: `Send` and `Sync`, with `&`/`&mut` access as
/// for any slice. One thing Rust cannot see: while a read op *submitted
/// with [`Session::submit`](crate::Session::submit)* is in flight, the
/// server writes into the arena behind the op's (by then released)
/// borrow. Leave those bytes alone until the op's completion is reaped.
pub struct Arena {
    map: Arc<Mapping>,
}

/// The mapping itself, shared by an [`Arena`] and the sessions it is
/// shared with; closed when the last of them lets go.
pub(crate) struct Mapping {
    raw: NonNull<sys::zcfuse_arena_t>,
    base: NonNull<u8>,
    len: usize,
    fd: RawFd,
}

// SAFETY: an arena is plain memory, and create, import and close are
// thread-safe (zcfuse.h); `Mapping` hands out no references itself.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn raw(&self) -> *const sys::zcfuse_arena_t {
        self.raw.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: raw came from zcfuse_arena_create/import and is closed
        // once; no Arena (the only way to its memory) exists any more.
        unsafe { sys::zcfuse_arena_close(self.raw.as_ptr()) }
    }
}

impl Arena {
    /// The largest arena, 1 GiB: io_uring registers at most that as one buffer.
    pub const MAX_SIZE: usize = sys::ZCFUSE_ARENA_MAX_SIZE;

    /// Creates an arena of `size` bytes, whole 4 KiB pages, zero-filled.
    /// Errors: `EINVAL` (0, not whole pages, over [`Arena::MAX_SIZE`]),
    /// `ENOMEM`, `EMFILE`.
    pub fn new(size: usize) -> io::Result<Arena> {
        Self::create(size, 0)
    }

    /// Creates an arena of `size` bytes (whole 2 MiB pages) backed by huge
    /// pages, which must be reserved beforehand
    /// (`/proc/sys/vm/nr_hugepages`), else `ENOMEM`.
    pub fn new_huge(size: usize) -> io::Result<Arena> {
        Self::create(size, sys::ZCFUSE_ARENA_HUGE)
    }

    fn create(size: usize, flags: u32) -> io::Result<Arena> {
        let mut raw = ptr::null_mut();
        // SAFETY: raw is a valid out pointer.
        check(unsafe { sys::zcfuse_arena_create(size, flags, &mut raw) })?;
        // SAFETY: the library just made raw.
        Ok(unsafe { Self::adopt(raw) })
    }

    /// Adopts the memfd `fd` of `size` bytes as an arena, after the checks
    /// a server makes: `EINVAL` when it is not a memfd, holds fewer than
    /// `size` bytes or `size` is not whole pages; `EPERM` when it is not
    /// sealed against shrinking. The arena maps a duplicate of `fd`; the
    /// caller keeps its own.
    ///
    /// # Safety
    ///
    /// The arena hands out `&[u8]` and `&mut [u8]` of the memfd's pages.
    /// Whoever else holds the memfd (another process, another mapping or
    /// arena of it in this one, `write` on the fd) must not change those
    /// bytes while such a reference lives, as Rust assumes no one does.
    pub unsafe fn import(fd: BorrowedFd<'_>, size: usize) -> io::Result<Arena> {
        let mut raw = ptr::null_mut();
        // SAFETY: raw is a valid out pointer; fd is open (borrowed).
        check(unsafe { sys::zcfuse_arena_import(fd.as_raw_fd(), size, &mut raw) })?;
        // SAFETY: the library just made raw.
        Ok(unsafe { Self::adopt(raw) })
    }

    /// Wraps an arena the library just created.
    ///
    /// # Safety
    /// raw is a live arena that nothing else owns.
    unsafe fn adopt(raw: *mut sys::zcfuse_arena_t) -> Arena {
        let raw = NonNull::new(raw).expect("zcfuse returned 0 and a NULL arena");
        // SAFETY: raw is live; base, size and fd are fixed for its life.
        let (base, len, fd) = unsafe {
            (
                sys::zcfuse_arena_base(raw.as_ptr()),
                sys::zcfuse_arena_size(raw.as_ptr()),
                sys::zcfuse_arena_fd(raw.as_ptr()),
            )
        };
        let map = Mapping { raw, base: NonNull::new(base.cast()).expect("an arena without memory"), len, fd };
        Arena { map: Arc::new(map) }
    }

    /// The mapping, for the sessions that share it.
    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// Whether a session shares this arena now.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.map) > 1
    }
}

impl Deref for Arena {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is len bytes, readable, and lives as long as
        // self; mutation needs &mut self.
        unsafe { slice::from_raw_parts(self.map.base.as_ptr(), self.map.len) }
    }
}

impl DerefMut for Arena {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes this the only reference
        // (sessions keep the mapping alive but never touch its memory).
        unsafe { slice::from_raw_parts_mut(self.map.base.as_ptr(), self.map.len) }
    }
}

impl AsRef<[u8]> for Arena {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Arena {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// The arena's memfd, owned by the arena (to pass to another process,
/// e.g. over SCM_RIGHTS). See [`Arena::import`] on writing through it.
impl AsFd for Arena {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the arena owns fd and keeps it open while it lives.
        unsafe { BorrowedFd::borrow_raw(self.map.fd) }
    }
}

impl AsRawFd for Arena {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("base", &self.map.base)
            .field("len", &self.map.len)
            .field("fd", &self.map.fd)
            .field("shared", &self.is_shared())
            .finish()
    }
}
