//! How the library's `-errno` results become `std::io::Error`s.

use std::error::Error as StdError;
use std::ffi::{c_int, CStr};
use std::fmt;
use std::io;

use zcfuse_sys as sys;

/// The library's detailed message about a failure (`zcfuse_last_error()`),
/// carried inside an [`io::Error`] by the calls that have one to give:
/// creating arenas, sessions and servers, sharing, attaching, starting
/// and stopping. Such an error's [`io::Error::kind`] is the errno's, but
/// its [`io::Error::raw_os_error`] is `None` (std keeps either an errno or
/// a payload); [`errno`] reads the errno of both kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    errno: i32,
    message: String,
}

impl Error {
    /// The positive errno, e.g. 16 (EBUSY).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The library's message, e.g. "mountpoint /mnt is busy: ...".
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (os error {})", self.message, self.errno)
    }
}

impl StdError for Error {}

/// The errno behind `err`: its raw OS error, or the errno of the
/// library's [`Error`] inside it. `None` for errors of other origins.
///
/// ```
/// # use std::io;
/// let e = io::Error::from_raw_os_error(18);
/// assert_eq!(zcfuse::errno(&e), Some(18));
/// ```
pub fn errno(err: &io::Error) -> Option<i32> {
    err.raw_os_error().or_else(|| err.get_ref()?.downcast_ref::<Error>().map(Error::errno))
}

/// A data-path result (`rc` >= 0, or -errno) as an `io::Result`, with the
/// errno alone: per-op failures have nothing to add to it.
pub(crate) fn check_raw(rc: i64) -> io::Result<u64> {
    if rc < 0 {
        Err(io::Error::from_raw_os_error(neg_errno(rc)))
    } else {
        Ok(rc as u64)
    }
}

/// A control-plane result as an `io::Result`: a failure carries
/// `zcfuse_last_error()`, which such a call sets whenever it fails.
pub(crate) fn check(rc: c_int) -> io::Result<c_int> {
    if rc >= 0 {
        return Ok(rc);
    }
    let errno = neg_errno(rc.into());
    // SAFETY: a static or thread-local NUL-terminated string, read at once
    // on the thread whose call just failed.
    let message = unsafe { CStr::from_ptr(sys::zcfuse_last_error()) }.to_string_lossy().into_owned();
    Err(with_message(errno, message))
}

/// An `io::Error` of kind `errno`'s that says `message`; just the errno
/// when the message is empty.
pub(crate) fn with_message(errno: i32, message: String) -> io::Error {
    if message.is_empty() {
        return io::Error::from_raw_os_error(errno);
    }
    let kind = io::Error::from_raw_os_error(errno).kind();
    io::Error::new(kind, Error { errno, message })
}

fn neg_errno(rc: i64) -> i32 {
    // -errno fits; anything else negative is not an errno the kernel has.
    i32::try_from(-rc).unwrap_or(5 /* EIO */)
}
