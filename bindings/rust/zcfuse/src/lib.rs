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
//!     arena.fill(7);
//!     let n = s.pwrite(file, &arena[..4096], 0, true)?; // true: zero copy or EFAULT
//!     assert_eq!(n, 4096);
//!
//!     // A batch: both halves of the arena in flight at once.
//!     let (a, b) = arena.split_at_mut(1 << 19);
//!     s.submit(&[Op::read(file, a, 0).user_data(1), Op::write(file, b, 8192).user_data(2)])?;
//!     for c in s.wait(2, 2, None)? {
//!         println!("op {}: {:?}", c.user_data, c.result());
//!     }
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
//! # Lifetimes and threads
//!
//! Every handle frees itself on drop. Ops borrow their buffers, so an arena
//! cannot go away under an op, and [`Session::close`] consumes the session
//! (see the `compile_fail` examples on [`Session`] and [`Op`]). A session
//! keeps the mappings of the arenas it shares until it unshares them or
//! closes, so dropping a shared `Arena` is safe too. A [`Session`] is
//! `Send` but not `Sync` (one thread at a time, as the C API requires);
//! [`Arena`] and [`Server`] are `Send` and `Sync`.
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

pub use arena::Arena;
pub use error::{errno, Error};
pub use server::{HookInfo, Server, ServerBuilder, ServerFlags, ServerStats, Transport};
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
