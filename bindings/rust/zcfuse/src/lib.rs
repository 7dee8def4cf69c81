//! Safe Rust API of libzcfuse: a zero-copy data path for FUSE file systems.
//!
//! An application keeps its data in [`Arena`]s (sealed memfds), hands them
//! once to the zcfuse server behind a mount over a [`Session`], attaches
//! files it opened through the mount, and from then on reads and writes
//! move by reference: the server moves the bytes between the arena and the
//! backing file with io_uring, and no one copies them in user space. A
//! [`Server`] runs such a mount (a passthrough of a backing directory)
//! inside this process.
//!
//! ```no_run
//! use std::fs::OpenOptions;
//! use zcfuse::{Arena, Op, Server, Session};
//!
//! fn main() -> std::io::Result<()> {
//!     let srv = Server::builder("/srv/data", "/mnt/data").start()?;
//!     let mut s = Session::connect(srv.mountpoint())?;
//!     let mut arena = Arena::new(1 << 20)?;
//!     s.share(&arena)?;
//!     let f = OpenOptions::new().read(true).write(true).create(true).open("/mnt/data/f")?;
//!     let file = s.attach(&f)?;
//!
//!     // A synchronous call borrows a slice for the call.
//!     arena.fill(7);
//!     let n = s.pwrite(file, &arena[..4096], 0, true)?; // true: zero copy or EFAULT
//!     assert_eq!(n, 4096);
//!
//!     // A batch: both halves of the arena in flight at once, each owned
//!     // by its op until the completion hands it back.
//!     let mut a = arena.into_region();
//!     let b = a.split_off(1 << 19);
//!     s.submit(&mut vec![Op::read(file, a, 0).user_data(1), Op::write(file, b, 8192).user_data(2)])?;
//!     let mut back = Vec::new();
//!     for c in s.wait(2, 2, None)? {
//!         println!("op {}: {:?}", c.user_data, c.result());
//!         back.extend(c.region);
//!     }
//!     back.sort_by_key(|r| r.offset());
//!     let (b, a) = (back.pop().unwrap(), back.pop().unwrap());
//!     let arena = a.join(b).ok().and_then(|r| r.into_arena().ok()).expect("the whole arena again");
//!     assert_eq!(arena.len(), 1 << 20);
//!     s.close()
//! }
//! ```
//!
//! # Errors
//!
//! Every failure is an [`std::io::Error`] made from the library's `-errno`.
//! Data-path calls ([`Session::pread`], [`Session::submit`], ...) give the
//! errno alone, so [`std::io::Error::raw_os_error`] has it. Control-plane
//! calls (creating, connecting, sharing, attaching, starting) add the
//! library's detailed message (`zcfuse_last_error()`) as an [`Error`]
//! payload: their `raw_os_error()` is then `None`, and [`errno`] reads the
//! errno of either kind.
//!
//! # Buffers in flight
//!
//! The synchronous calls ([`Session::pread`], [`Session::pwrite`]) borrow
//! a slice (of an arena, or any memory) for the call, which returns once
//! the server is done with it.
//!
//! Ops submitted with [`Session::submit`] run after it returns, so they
//! *own* their buffers: an [`Op`] takes a [`Region`] by value, a piece of
//! an arena that no other region overlaps (made with
//! [`Arena::into_region`], which consumes the arena, then
//! [`Region::split_off`], [`Region::split_to`], [`Region::into_chunks`]).
//! `submit` moves the op, region and all, into the session, and
//! [`Session::wait`] hands the region back in the op's [`Completion`].
//! While the server reads or writes a region, safe code has no way to it;
//! afterwards [`Region::join`] and [`Region::into_arena`] put the arena
//! back together. A region of an arena the session shares travels as
//! `{arena id, offset}`, always zero-copy.
//!
//! The arena's mapping is reference counted ([`std::sync::Arc`]): the
//! arena or its regions, the sessions that share it and the ops in
//! flight each hold a count, and it is unmapped when the last one goes.
//! So nothing can unmap memory under an op: not dropping, closing or
//! `mem::forget`ting an arena, a region, an op or a session (forgetting
//! leaks the mapping, which is safe). Dropping or closing a session with
//! ops in flight is safe too: the library waits for the server to finish
//! them, and their regions are dropped with the session.
//! [`Session::submit_raw`] keeps the old pointer semantics for those who
//! take on that contract themselves (it is `unsafe`). The `compile_fail`
//! examples on [`Op`] and [`Session`] show what the compiler refuses, each
//! beside a twin that differs in that one line and compiles.
//!
//! # Lifetimes and threads
//!
//! Every handle frees itself on drop, and [`Session::close`] consumes the
//! session. A session keeps the mappings of the arenas it shares until it
//! unshares them or closes, so dropping a shared `Arena` is safe too. A
//! [`Session`] is `Send` but not `Sync` (one thread at a time, as the C
//! API requires); [`Arena`], [`Region`], [`Op`], [`Completion`] and
//! [`Server`] are `Send` and `Sync`.
//!
//! # Fork
//!
//! libzcfuse carries a Go runtime, which does not survive `fork()`: every
//! call in a forked child fails with `ECHILD`. Spawn processes with
//! `std::process::Command` (which execs) rather than forking.
//!
//! # Linking
//!
//! `zcfuse-sys` links `libzcfuse.so` from `$ZCFUSE_LIB_DIR`, else from
//! `pkg-config --libs zcfuse`. At run time the dynamic loader must find it
//! (installed, an rpath, or `LD_LIBRARY_PATH`); this crate's own tests and
//! examples carry an rpath to the directory they linked.

mod arena;
mod error;
mod server;
mod session;

use std::ffi::CStr;

pub use arena::{Arena, InArena, Region};
pub use error::{errno, Error};
pub use server::{limit_names, opcode_name, HookInfo, Server, ServerBuilder, ServerFlags, ServerStats, Transport};
pub use session::{ArenaId, Completion, FileId, Mode, Op, Session, SessionStats};
/// The raw declarations this crate is built on.
pub use zcfuse_sys as sys;

/// The library's version, "MAJOR.MINOR.PATCH". A library of the same
/// MAJOR as [`HEADER_VERSION`] works with this crate.
pub fn version() -> &'static str {
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::zcfuse_version()) }.to_str().unwrap_or("?")
}

/// The version of `include/zcfuse.h` this crate was written against:
/// (MAJOR, MINOR, PATCH).
pub const HEADER_VERSION: (u32, u32, u32) =
    (sys::ZCFUSE_VERSION_MAJOR as u32, sys::ZCFUSE_VERSION_MINOR as u32, sys::ZCFUSE_VERSION_PATCH as u32);
