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
/// [`Arena::MAX_SIZE`]. It derefs to `[u8]`.
///
/// Share it with a [`Session`](crate::Session); reads and writes of
/// buffers that lie inside it then move by reference, without a copy. The
/// synchronous calls ([`Session::pread`](crate::Session::pread), ...)
/// borrow a slice of it for the call. Ops in flight ([`Session::submit`](
/// crate::Session::submit)) own their buffers instead: turn the arena into
/// a [`Region`] ([`Arena::into_region`]) and split that into as many
/// disjoint regions as you need.
///
/// ```
/// let mut arena = zcfuse::Arena::new(64 << 10)?;
/// arena[..5].copy_from_slice(b"hello");
/// let mut head = arena.into_region(); // the arena is gone: only regions are left
/// let tail = head.split_off(4096); // disjoint buffers for two ops
/// assert_eq!((head.len(), tail.len()), (4096, 60 << 10));
/// assert_eq!(&head[..5], b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the arena closes it, unless a session still shares it or a
/// region of it lives: the mapping is reference counted, and whoever
/// holds a count (a session that shares it, a region, an op in flight)
/// keeps it mapped. So the library never looks up a buffer in memory that
/// was unmapped and perhaps reused, and no op writes into memory that is
/// gone.
///
/// An arena is plain memory: `Send` and `Sync`, with `&`/`&mut` access as
/// for any slice.
pub struct Arena {
    map: Arc<Mapping>,
}

/// The mapping itself, shared by an [`Arena`] or its [`Region`]s, the
/// sessions it is shared with and their ops in flight; closed when the
/// last of them lets go. (`pub` only for the sealed [`InArena`]: it is
/// not exported.)
#[doc(hidden)]
pub struct Mapping {
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
        // once; no Arena or Region (the only ways to its memory) exists any
        // more, and no session holds it shared or in flight.
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

    /// Whether a session shares this arena now (or, for an arena that
    /// came back from regions, whether another count is held).
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.map) > 1
    }

    /// Turns the whole arena into one [`Region`], the buffer that ops
    /// ([`Op::read`](crate::Op::read), [`Op::write`](crate::Op::write))
    /// own while they are in flight. Split it with [`Region::split_off`],
    /// [`Region::split_to`] or [`Region::into_chunks`]; when one region
    /// covers the arena again, [`Region::into_arena`] gives the arena back.
    /// Share the arena before, or the region after
    /// ([`Session::share`](crate::Session::share) takes either).
    pub fn into_region(self) -> Region {
        let len = self.map.len;
        Region { map: self.map, off: 0, len }
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

/// A piece of an [`Arena`] that one owner holds alone: `len` bytes at
/// `offset` in the arena, which no other `Region` (nor any `Arena`)
/// overlaps. It derefs to `[u8]`, like a `Box<[u8]>` that lives in shared
/// memory.
///
/// Regions are what ops in flight own: [`Op::read`](crate::Op::read) and
/// [`Op::write`](crate::Op::write) take a region by value,
/// [`Session::submit`](crate::Session::submit) moves it into the session
/// while the server reads or writes it, and the op's
/// [`Completion`](crate::Completion) hands it back. A region in flight is
/// out of reach of safe code, so nothing reads bytes the server is writing
/// or changes bytes it is writing out.
///
/// Every region holds a count of its arena's mapping: the memory stays
/// mapped while any region (in flight or not) lives, whatever else is
/// dropped or forgotten.
///
/// ```
/// use zcfuse::Arena;
///
/// let mut chunks = Arena::new(4 * 4096)?.into_region().into_chunks(4096);
/// assert_eq!(chunks.len(), 4);
/// chunks[1].fill(1); // each chunk is its own buffer
/// let (b, a) = (chunks.pop().unwrap(), chunks.pop().unwrap());
/// let joined = a.join(b).expect("adjacent"); // the last two, together again
/// assert_eq!((joined.offset(), joined.len()), (2 * 4096, 2 * 4096));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Region {
    map: Arc<Mapping>,
    off: usize,
    len: usize,
}

// A Region is a unique `&mut [u8]` into memory its Arc keeps mapped: Send
// and Sync as such (Mapping is Send + Sync, and the pointer is derived
// from it on each access).

impl Region {
    /// Where the region starts in its arena, in bytes.
    pub fn offset(&self) -> usize {
        self.off
    }

    /// The size of the whole arena this region lies in.
    pub fn arena_len(&self) -> usize {
        self.map.len
    }

    /// Whether `self` and `other` lie in the same arena.
    pub fn same_arena(&self, other: &Region) -> bool {
        Arc::ptr_eq(&self.map, &other.map)
    }

    /// Splits the region in two: `self` keeps `[0, at)` and the returned
    /// region holds `[at, len)`. Panics if `at > len`.
    pub fn split_off(&mut self, at: usize) -> Region {
        assert!(at <= self.len, "split_off at {at} past the region's {} bytes", self.len);
        let tail = Region { map: Arc::clone(&self.map), off: self.off + at, len: self.len - at };
        self.len = at;
        tail
    }

    /// Splits the region in two: the returned region holds `[0, at)` and
    /// `self` keeps `[at, len)`. Panics if `at > len`.
    pub fn split_to(&mut self, at: usize) -> Region {
        assert!(at <= self.len, "split_to at {at} past the region's {} bytes", self.len);
        let head = Region { map: Arc::clone(&self.map), off: self.off, len: at };
        self.off += at;
        self.len -= at;
        head
    }

    /// Cuts the region into pieces of `size` bytes (the last may be
    /// shorter), in order. An empty region gives none. Panics if `size` is 0.
    pub fn into_chunks(mut self, size: usize) -> Vec<Region> {
        assert!(size > 0, "into_chunks of size 0");
        let mut out = Vec::with_capacity(self.len.div_ceil(size));
        while self.len > size {
            out.push(self.split_to(size));
        }
        if self.len > 0 {
            out.push(self);
        }
        out
    }

    /// Joins `self` and `next`, which must lie in the same arena with
    /// `next` starting where `self` ends; otherwise gives both back.
    pub fn join(self, next: Region) -> Result<Region, (Region, Region)> {
        if !self.same_arena(&next) || self.off + self.len != next.off {
            return Err((self, next));
        }
        Ok(Region { len: self.len + next.len, ..self })
    }

    /// The arena back, when this region covers all of it (so no other
    /// region of it exists); otherwise the region unchanged.
    pub fn into_arena(self) -> Result<Arena, Region> {
        if self.off == 0 && self.len == self.map.len {
            Ok(Arena { map: self.map })
        } else {
            Err(self)
        }
    }

    /// The mapping, for the sessions that share it.
    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// The first byte, for ops. Stable for the region's life (the
    /// mapping never moves).
    pub(crate) fn ptr(&self) -> *mut u8 {
        // SAFETY: off <= map.len, so this stays inside (or one past) the mapping.
        unsafe { self.map.base.as_ptr().add(self.off) }
    }
}

impl Deref for Region {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: [off, off+len) lies in the mapping, which self's Arc
        // keeps alive; no other Region or Arena overlaps it (regions come
        // only from splitting one arena, which into_region consumed), and
        // while an op is in flight the session owns the Region, so no
        // reference made here can exist then. Mutation needs &mut self.
        unsafe { slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl DerefMut for Region {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes this the only reference.
        unsafe { slice::from_raw_parts_mut(self.ptr(), self.len) }
    }
}

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Region {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("arena", &self.map.base)
            .field("offset", &self.off)
            .field("len", &self.len)
            .finish()
    }
}

/// What [`Session::share`](crate::Session::share) takes: an [`Arena`], or
/// a [`Region`] (which shares the whole arena it lies in). Sealed.
pub trait InArena: sealed::Sealed {}

impl InArena for Arena {}
impl InArena for Region {}

pub(crate) mod sealed {
    use super::{Arc, Arena, Mapping, Region};

    pub trait Sealed {
        fn arena_mapping(&self) -> &Arc<Mapping>;
    }

    impl Sealed for Arena {
        fn arena_mapping(&self) -> &Arc<Mapping> {
            self.mapping()
        }
    }

    impl Sealed for Region {
        fn arena_mapping(&self) -> &Arc<Mapping> {
            self.mapping()
        }
    }
}
