//! The in-process server: mount a backing directory through zcfuse and
//! serve it from this process's library threads.

use std::ffi::{c_void, CStr, CString};
use std::fmt;
use std::io;
use std::mem;
use std::ops::BitOr;
use std::os::unix::ffi::OsStrExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process;
use std::ptr::{self, NonNull};
use std::slice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use zcfuse_sys as sys;

use crate::error::check;
use crate::session::path_cstring;

/// How requests travel from the kernel to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// FUSE-over-io_uring when the kernel offers it (Linux 6.14+ with
    /// `/sys/module/fuse/parameters/enable_uring` = Y), else `/dev/fuse`;
    /// the stats say why it fell back. The default.
    #[default]
    Auto,
    /// FUSE-over-io_uring, or `EPROTONOSUPPORT` at start.
    Uring,
    /// The classic `/dev/fuse` read/write loop.
    Classic,
}

impl Transport {
    fn raw(self) -> u32 {
        match self {
            Transport::Auto => sys::ZCFUSE_TRANSPORT_AUTO,
            Transport::Uring => sys::ZCFUSE_TRANSPORT_URING,
            Transport::Classic => sys::ZCFUSE_TRANSPORT_CLASSIC,
        }
    }

    fn from_raw(raw: u32) -> Option<Transport> {
        match raw {
            sys::ZCFUSE_TRANSPORT_AUTO => Some(Transport::Auto),
            sys::ZCFUSE_TRANSPORT_URING => Some(Transport::Uring),
            sys::ZCFUSE_TRANSPORT_CLASSIC => Some(Transport::Classic),
            _ => None,
        }
    }
}

/// Server flags, combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ServerFlags(u32);

impl ServerFlags {
    /// No flags.
    pub const NONE: ServerFlags = ServerFlags(0);
    /// Let other users in; implies the kernel's default_permissions checks.
    pub const ALLOW_OTHER: ServerFlags = ServerFlags(sys::ZCFUSE_SERVER_ALLOW_OTHER);
    /// Mount read-only.
    pub const READ_ONLY: ServerFlags = ServerFlags(sys::ZCFUSE_SERVER_READ_ONLY);
    /// Kernel FUSE passthrough: READ/WRITE bypass the server (needs root).
    pub const PASSTHROUGH: ServerFlags = ServerFlags(sys::ZCFUSE_SERVER_PASSTHROUGH);
    /// Log every request to stderr.
    pub const DEBUG: ServerFlags = ServerFlags(sys::ZCFUSE_SERVER_DEBUG);
    /// Hooks see, and the server writes, a private copy of a ring write's
    /// bytes, which the client can no longer change (a copy, counted in
    /// `copied_bytes`).
    pub const HOOK_COPY: ServerFlags = ServerFlags(sys::ZCFUSE_SERVER_HOOK_COPY);

    /// The `ZCFUSE_SERVER_*` bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub fn contains(self, other: ServerFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for ServerFlags {
    type Output = ServerFlags;

    fn bitor(self, rhs: ServerFlags) -> ServerFlags {
        ServerFlags(self.0 | rhs.0)
    }
}

/// Where the bytes a hook sees belong.
pub struct HookInfo<'a> {
    raw: &'a sys::zcfuse_hook_info_t,
}

impl HookInfo<'_> {
    /// Whether the data came from a session's op queue (zero-copy), not
    /// from a FUSE request.
    pub fn is_ring(&self) -> bool {
        self.raw.flags & sys::ZCFUSE_HOOK_RING != 0
    }

    /// The session of a ring op, else 0.
    pub fn session_id(&self) -> u64 {
        self.raw.session_id
    }

    /// The inode number in the backing directory.
    pub fn ino(&self) -> u64 {
        self.raw.ino
    }

    /// The file offset of the first byte.
    pub fn off(&self) -> i64 {
        self.raw.off
    }

    /// The file's path relative to the mount root.
    pub fn path(&self) -> &Path {
        if self.raw.path.is_null() {
            return Path::new("");
        }
        // SAFETY: a NUL-terminated string valid during the hook call, which
        // this borrow does not outlive.
        Path::new(std::ffi::OsStr::from_bytes(unsafe { CStr::from_ptr(self.raw.path) }.to_bytes()))
    }
}

impl fmt::Debug for HookInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookInfo")
            .field("ring", &self.is_ring())
            .field("session_id", &self.session_id())
            .field("ino", &self.ino())
            .field("off", &self.off())
            .field("path", &self.path())
            .finish()
    }
}

/// A hook: sees every byte written (before it reaches the backing file) or
/// read (after), on every path, in place.
type HookFn = dyn Fn(&HookInfo<'_>, &[u8]) + Send + Sync + 'static;

#[derive(Default)]
struct Hooks {
    on_write: Option<Box<HookFn>>,
    on_read: Option<Box<HookFn>>,
}

/// Options for a [`Server`]: `Server::builder(backing_dir, mountpoint)`,
/// then [`ServerBuilder::build`] (checks, mounts nothing) or
/// [`ServerBuilder::start`] (also mounts).
pub struct ServerBuilder {
    backing_dir: PathBuf,
    mountpoint: PathBuf,
    transport: Transport,
    queue_depth: u32,
    flags: ServerFlags,
    entry_timeout_ms: u32,
    attr_timeout_ms: u32,
    hooks: Hooks,
    limits: Vec<(String, u64)>,
}

impl ServerBuilder {
    /// Sets one of the server's limits by name ([`limit_names`]: e.g.
    /// `sessions_per_user`, `open_files_per_user`, `hello_timeout_ms`); 0
    /// means the library's default. An unknown name or a value out of
    /// range fails [`ServerBuilder::build`] (`ENOENT`, `ERANGE`).
    pub fn limit(mut self, name: &str, value: u64) -> Self {
        self.limits.push((name.to_owned(), value));
        self
    }

    /// How requests travel; [`Transport::Auto`] by default.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Ring threads per CPU queue, at most 64; 0 (the default) means 4.
    pub fn queue_depth(mut self, depth: u32) -> Self {
        self.queue_depth = depth;
        self
    }

    /// [`ServerFlags`], none by default.
    pub fn flags(mut self, flags: ServerFlags) -> Self {
        self.flags = flags;
        self
    }

    /// How long the kernel may cache lookups (default 1 s; zero: not at all).
    pub fn entry_timeout(mut self, t: Duration) -> Self {
        self.entry_timeout_ms = cache_ms(t);
        self
    }

    /// How long the kernel may cache attributes (default 1 s; zero: not at all).
    pub fn attr_timeout(mut self, t: Duration) -> Self {
        self.attr_timeout_ms = cache_ms(t);
        self
    }

    /// Calls `hook` for every write, before it reaches the backing file,
    /// with the bytes in place: for a ring op, in the client's arena.
    /// Hooks run on the server's threads, concurrently, and must be quick.
    /// They must not call back into this server, and must not panic (a
    /// panic aborts the process: it cannot unwind into the library).
    ///
    /// Unless [`ServerFlags::HOOK_COPY`], a ring write's bytes are only as
    /// trustworthy as the client, which may change them while the hook
    /// looks: treat the slice as possibly torn.
    pub fn on_write(mut self, hook: impl Fn(&HookInfo<'_>, &[u8]) + Send + Sync + 'static) -> Self {
        self.hooks.on_write = Some(Box::new(hook));
        self
    }

    /// Calls `hook` for every read, after it, with the bytes read. As
    /// [`ServerBuilder::on_write`].
    pub fn on_read(mut self, hook: impl Fn(&HookInfo<'_>, &[u8]) + Send + Sync + 'static) -> Self {
        self.hooks.on_read = Some(Box::new(hook));
        self
    }

    /// Checks the options and directories and creates the server; nothing
    /// is mounted yet. Errors: `EINVAL`, `ENOENT`/`ENOTDIR` (a directory
    /// missing), `EBUSY` (something is mounted on the mountpoint),
    /// `ENOTCONN` (the mountpoint is a dead FUSE mount).
    pub fn build(self) -> io::Result<Server> {
        let backing = path_cstring(&self.backing_dir)?;
        let mnt = path_cstring(&self.mountpoint)?;
        // SAFETY: all zeros is a valid zcfuse_server_opts_t (NULL pointers
        // and hooks); zcfuse_server_opts_init_size then sets the defaults.
        let mut opts: sys::zcfuse_server_opts_t = unsafe { mem::zeroed() };
        // SAFETY: opts is writable for its size. (Not zcfuse_server_opts_init:
        // that function fills a version-1 struct, whose creator ignores hooks.)
        unsafe { sys::zcfuse_server_opts_init_size(&mut opts, mem::size_of::<sys::zcfuse_server_opts_t>()) };
        debug_assert_eq!(opts.struct_size as usize, mem::size_of::<sys::zcfuse_server_opts_t>());
        opts.transport = self.transport.raw();
        opts.backing_dir = backing.as_ptr();
        opts.mountpoint = mnt.as_ptr();
        opts.queue_depth = self.queue_depth;
        opts.flags = self.flags.bits();
        opts.entry_timeout_ms = self.entry_timeout_ms;
        opts.attr_timeout_ms = self.attr_timeout_ms;
        let hooks = if self.hooks.on_write.is_some() || self.hooks.on_read.is_some() {
            let hooks = Box::new(self.hooks);
            if hooks.on_write.is_some() {
                opts.on_write = Some(on_write_trampoline);
            }
            if hooks.on_read.is_some() {
                opts.on_read = Some(on_read_trampoline);
            }
            opts.hook_ctx = (&*hooks as *const Hooks).cast_mut().cast();
            Some(hooks)
        } else {
            None
        };
        let mut raw = ptr::null_mut();
        // SAFETY: opts is initialised and its strings live through the
        // call (the library copies them); raw is a valid out pointer.
        // hook_ctx points into `hooks`, which the Server keeps until
        // after zcfuse_server_destroy.
        check(unsafe { sys::zcfuse_server_create(&opts, &mut raw) })?;
        let srv = Server {
            raw: NonNull::new(raw).expect("zcfuse_server_create returned 0 and a NULL server"),
            backing_dir: self.backing_dir,
            mountpoint: self.mountpoint,
            _hooks: hooks,
        };
        for (name, value) in &self.limits {
            let c = limit_cstring(name)?;
            // SAFETY: the server is live and not started; c is a valid C string.
            check(unsafe { sys::zcfuse_server_set_limit(srv.ptr(), c.as_ptr(), *value) })?;
        }
        Ok(srv)
    }

    /// [`ServerBuilder::build`], then [`Server::start`].
    pub fn start(self) -> io::Result<Server> {
        let srv = self.build()?;
        srv.start()?;
        Ok(srv)
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("backing_dir", &self.backing_dir)
            .field("mountpoint", &self.mountpoint)
            .field("transport", &self.transport)
            .field("queue_depth", &self.queue_depth)
            .field("flags", &self.flags)
            .field("entry_timeout_ms", &self.entry_timeout_ms)
            .field("attr_timeout_ms", &self.attr_timeout_ms)
            .field("on_write", &self.hooks.on_write.is_some())
            .field("on_read", &self.hooks.on_read.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// A zero duration means no caching, which the C API spells UINT32_MAX
/// (its 0 means the default).
fn cache_ms(t: Duration) -> u32 {
    if t.is_zero() {
        return u32::MAX;
    }
    t.as_nanos().div_ceil(1_000_000).min(u128::from(u32::MAX - 1)) as u32
}

unsafe extern "C" fn on_write_trampoline(
    ctx: *mut c_void,
    info: *const sys::zcfuse_hook_info_t,
    data: *const c_void,
    len: usize,
) {
    // SAFETY: ctx is the Hooks the Server owns, alive until after destroy.
    let hooks = unsafe { &*ctx.cast::<Hooks>() };
    if let Some(hook) = &hooks.on_write {
        // SAFETY: the library's arguments, valid during the call.
        unsafe { call_hook(hook, info, data, len) }
    }
}

unsafe extern "C" fn on_read_trampoline(
    ctx: *mut c_void,
    info: *const sys::zcfuse_hook_info_t,
    data: *const c_void,
    len: usize,
) {
    // SAFETY: as in on_write_trampoline.
    let hooks = unsafe { &*ctx.cast::<Hooks>() };
    if let Some(hook) = &hooks.on_read {
        // SAFETY: the library's arguments, valid during the call.
        unsafe { call_hook(hook, info, data, len) }
    }
}

/// # Safety
/// info is valid, and data readable for len bytes, during the call.
unsafe fn call_hook(hook: &HookFn, info: *const sys::zcfuse_hook_info_t, data: *const c_void, len: usize) {
    let ran = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract.
        let info = HookInfo { raw: unsafe { &*info } };
        let data = if data.is_null() || len == 0 {
            &[][..]
        } else {
            // SAFETY: per this function's contract (read-only to the hook).
            unsafe { slice::from_raw_parts(data.cast::<u8>(), len) }
        };
        hook(&info, data)
    }));
    if ran.is_err() {
        eprintln!("zcfuse: a server hook panicked; aborting (a panic cannot unwind into libzcfuse)");
        process::abort();
    }
}

/// A zcfuse server: one mount of a backing directory (a passthrough of
/// it), served by this process's library threads.
///
/// `Send` and `Sync`: [`Server::stop`] and [`Server::stats`] are meant to
/// be called while another thread sits in [`Server::run`]. Dropping it
/// stops it (unmounts) and frees it.
///
/// ```no_run
/// use zcfuse::{Server, Transport};
///
/// fn main() -> std::io::Result<()> {
///     let srv = Server::builder("/srv/data", "/mnt/data").transport(Transport::Auto).start()?;
///     let st = srv.stats()?;
///     println!("transport {:?}, {} ring requests", st.transport, st.ring_requests.iter().sum::<u64>());
///     srv.stop()
/// }
/// ```
pub struct Server {
    raw: NonNull<sys::zcfuse_server_t>,
    backing_dir: PathBuf,
    mountpoint: PathBuf,
    // Dropped after zcfuse_server_destroy (in Drop::drop) has ended
    // every server thread, so no hook runs any more.
    _hooks: Option<Box<Hooks>>,
}

// SAFETY: a zcfuse_server_t may be used from several threads at once
// (zcfuse.h); hooks are Send + Sync.
unsafe impl Send for Server {}
unsafe impl Sync for Server {}

impl Server {
    /// Options for a server of `backing_dir` on `mountpoint` (an existing
    /// directory with nothing mounted on it).
    pub fn builder(backing_dir: impl AsRef<Path>, mountpoint: impl AsRef<Path>) -> ServerBuilder {
        ServerBuilder {
            backing_dir: backing_dir.as_ref().to_path_buf(),
            mountpoint: mountpoint.as_ref().to_path_buf(),
            transport: Transport::Auto,
            queue_depth: 0,
            flags: ServerFlags::NONE,
            entry_timeout_ms: 0,
            attr_timeout_ms: 0,
            hooks: Hooks::default(),
            limits: Vec::new(),
        }
    }

    fn ptr(&self) -> *mut sys::zcfuse_server_t {
        self.raw.as_ptr()
    }

    /// The directory served.
    pub fn backing_dir(&self) -> &Path {
        &self.backing_dir
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Mounts and starts serving on the library's threads; returns once
    /// the mount is ready, or fails having undone the mount. Errors:
    /// `EALREADY` (started before: a server mounts once),
    /// `EPROTONOSUPPORT` ([`Transport::Uring`], or `Auto` with
    /// `ZCFUSE_REQUIRE_URING=1`, on a kernel without it), `EPERM` (not
    /// allowed to mount), `ETIMEDOUT`, another errno of mount(2) or io_uring.
    pub fn start(&self) -> io::Result<()> {
        // SAFETY: the server is live; it may be used from any thread.
        check(unsafe { sys::zcfuse_server_start(self.ptr()) }).map(drop)
    }

    /// Starts the server if needed, then blocks until the file system is
    /// unmounted: by [`Server::stop`] from another thread or `umount` from
    /// outside.
    pub fn run(&self) -> io::Result<()> {
        // SAFETY: as in start.
        check(unsafe { sys::zcfuse_server_run(self.ptr()) }).map(drop)
    }

    /// Unmounts and stops serving; requests in flight complete or fail
    /// with `ENOTCONN`. Waits for every server thread, so never call it
    /// from a hook. `Ok` also when stopped already or never started.
    pub fn stop(&self) -> io::Result<()> {
        // SAFETY: as in start.
        check(unsafe { sys::zcfuse_server_stop(self.ptr()) }).map(drop)
    }

    /// A snapshot of the server's counters. Cheap; any thread, any time.
    ///
    /// Two calls: the struct of the typed fields (`zcfuse_server_stats`),
    /// then every counter by name ([`Server::counters`]) for
    /// [`ServerStats::get`].
    pub fn stats(&self) -> io::Result<ServerStats> {
        // SAFETY: all zeros is a valid zcfuse_server_stats_t.
        let mut st: sys::zcfuse_server_stats_t = unsafe { mem::zeroed() };
        st.struct_size = mem::size_of::<sys::zcfuse_server_stats_t>() as u32;
        // SAFETY: the server is live; st is writable for struct_size bytes.
        check(unsafe { sys::zcfuse_server_stats(self.ptr(), &mut st) })?;
        let mut stats = ServerStats::from_raw(&st);
        stats.counters = self.counters()?;
        Ok(stats)
    }

    /// Every counter of one snapshot, by name, in the library's fixed
    /// order (`zcfuse_server_counters`): the typed fields of
    /// [`ServerStats`] and every counter the struct lacks (`fast_reads`,
    /// `fs.inodes`, ...), bools as 0/1. The names are the numbers of
    /// `zcfuse stats --json`, and static strings of the library. Cheap;
    /// any thread, any time.
    pub fn counters(&self) -> io::Result<Vec<(&'static str, u64)>> {
        // How many the library has: fixed for the life of the process.
        static SLOTS: AtomicUsize = AtomicUsize::new(0);
        let mut n = SLOTS.load(Ordering::Relaxed);
        if n == 0 {
            // SAFETY: the server is live; out NULL with n 0 only sizes.
            n = check(unsafe { sys::zcfuse_server_counters(self.ptr(), ptr::null_mut(), 0) })? as usize;
        }
        loop {
            let mut buf = vec![sys::zcfuse_counter_t { name: ptr::null(), value: 0 }; n];
            // SAFETY: the server is live; buf holds n counters.
            let total = check(unsafe { sys::zcfuse_server_counters(self.ptr(), buf.as_mut_ptr(), n) })? as usize;
            if total <= n {
                SLOTS.store(total, Ordering::Relaxed);
                // SAFETY: the library filled the first total names.
                return Ok(buf[..total].iter().map(|c| (unsafe { static_str(c.name) }, c.value)).collect());
            }
            n = total;
        }
    }
}

impl Server {
    /// The limit called `name` as the server uses it (defaults filled in).
    pub fn limit(&self, name: &str) -> io::Result<u64> {
        let c = limit_cstring(name)?;
        let mut v = 0u64;
        // SAFETY: the server is live; c is a valid C string; v is writable.
        check(unsafe { sys::zcfuse_server_limit(self.ptr(), c.as_ptr(), &mut v) })?;
        Ok(v)
    }
}

/// The names of the server's limits ([`ServerBuilder::limit`]), in the
/// library's order: one table in the library, so a limit added there
/// shows here with no change to this crate.
pub fn limit_names() -> Vec<&'static str> {
    let mut out = Vec::new();
    loop {
        // SAFETY: zcfuse_limit_name returns a static string or NULL.
        let p = unsafe { sys::zcfuse_limit_name(out.len()) };
        if p.is_null() {
            return out;
        }
        // SAFETY: p is a static string of the library.
        out.push(unsafe { static_str(p) });
    }
}

/// A limit's name as a C string (one with a NUL byte is invalid input).
fn limit_cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("limit {name:?}: a NUL byte")))
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: the server is live and destroyed once; destroy stops it
        // and ends its threads before the hooks are dropped.
        unsafe { sys::zcfuse_server_destroy(self.ptr()) }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("raw", &self.raw)
            .field("backing_dir", &self.backing_dir)
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

/// The library's static string at p as a `&'static str` ("" for NULL,
/// "?" for one that is not UTF-8).
///
/// # Safety
/// p is NULL or a NUL-terminated string that lives as long as the process.
unsafe fn static_str(p: *const std::ffi::c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    // SAFETY: per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("?")
}

/// The kernel's name of a FUSE opcode without its `FUSE_` prefix, as the
/// library names it (`zcfuse_opcode_name`): "READ" for 15 (the index of
/// [`ServerStats::ring_requests`]), "OP_<n>" for an opcode below 64 the
/// library does not know, "OTHER" for 0 and for opcodes from 64 up.
///
/// ```
/// assert_eq!(zcfuse::opcode_name(zcfuse::ServerStats::FUSE_READ as u32), "READ");
/// ```
pub fn opcode_name(opcode: u32) -> &'static str {
    // SAFETY: zcfuse_opcode_name returns a static string, never NULL.
    unsafe { static_str(sys::zcfuse_opcode_name(opcode)) }
}

/// What a server reports about itself ([`Server::stats`]).
///
/// The typed fields are `zcfuse_server_stats_t`, which is frozen at
/// version 2. Every counter the server has, those and any added since
/// (`fast_reads`, `fs.inodes`, ...), is also there by name:
/// [`ServerStats::get`], [`ServerStats::counters`]. A counter added to the
/// server shows there without a change to this crate. The named counters
/// are a snapshot of their own, taken right after the struct's, so on a
/// busy server `get("bytes_read")` may be a little ahead of `bytes_read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// The struct version the library filled in (2 for everything below).
    pub version: u32,
    /// The transport in use: Uring or Classic once started (Auto before);
    /// `None` for a value this binding does not know.
    pub transport: Option<Transport>,
    /// io_uring queues (one per possible CPU); 0 on the classic transport.
    pub queues: u32,
    /// Ring threads per queue; 0 on the classic transport.
    pub queue_depth: u32,
    /// Mounted and serving.
    pub running: bool,
    /// Payload bytes of successful FUSE READ replies.
    pub bytes_read: u64,
    /// Payload bytes of successful FUSE WRITE requests.
    pub bytes_written: u64,
    /// Error replies other than ENOENT, ENODATA and ENOSYS.
    pub errors: u64,
    /// FUSE requests that came over FUSE-over-io_uring, per opcode
    /// ([`ServerStats::FUSE_READ`], ...; slot 0 counts opcodes >= 64).
    pub ring_requests: [u64; 64],
    /// FUSE requests read from /dev/fuse, per opcode.
    pub dev_requests: [u64; 64],
    /// Why Auto fell back to /dev/fuse; empty when it did not.
    pub fallback_reason: String,
    /// Client sessions.
    pub sessions: u64,
    /// Arenas they share.
    pub arenas: u64,
    /// Of those, bytes in io_uring fixed buffers.
    pub registered_bytes: u64,
    /// Slots of the fixed-buffer table in use.
    pub fixed_slots_used: u64,
    /// Files attached to sessions.
    pub attached_files: u64,
    /// Ring ops served (from sessions' op queues).
    pub zc_ops: u64,
    /// Ring ops that failed.
    pub zc_errors: u64,
    /// Bytes read by ring ops.
    pub zc_read_bytes: u64,
    /// Bytes written by ring ops.
    pub zc_write_bytes: u64,
    /// Bytes moved zero-copy between arenas and backing files.
    pub zero_copy_bytes: u64,
    /// Bytes the server copied in user space ([`ServerFlags::HOOK_COPY`]).
    pub copied_bytes: u64,
    /// The most ops one session had in flight.
    pub queue_high_water: u64,
    /// The server's data-plane threads (one per CPU).
    pub workers: u64,
    /// Every counter by name, in the library's order.
    counters: Vec<(&'static str, u64)>,
}

impl ServerStats {
    /// The FUSE opcode of READ, an index of the per-opcode counters.
    pub const FUSE_READ: usize = 15;
    /// The FUSE opcode of WRITE.
    pub const FUSE_WRITE: usize = 16;

    /// FUSE requests of `opcode` on either transport.
    pub fn requests(&self, opcode: usize) -> u64 {
        self.ring_requests[opcode] + self.dev_requests[opcode]
    }

    /// The counter called `name` ("fast_reads", "fs.inodes"), or `None`
    /// when the server has none of that name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// Every counter by name, in the library's fixed order ([`Server::counters`]).
    pub fn counters(&self) -> &[(&'static str, u64)] {
        &self.counters
    }

    fn from_raw(st: &sys::zcfuse_server_stats_t) -> ServerStats {
        let reason: Vec<u8> = st.fallback_reason.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        ServerStats {
            version: st.version,
            transport: Transport::from_raw(st.transport),
            queues: st.queues,
            queue_depth: st.queue_depth,
            running: st.running != 0,
            bytes_read: st.bytes_read,
            bytes_written: st.bytes_written,
            errors: st.errors,
            ring_requests: st.ring_requests,
            dev_requests: st.dev_requests,
            fallback_reason: String::from_utf8_lossy(&reason).into_owned(),
            sessions: st.sessions,
            arenas: st.arenas,
            registered_bytes: st.registered_bytes,
            fixed_slots_used: st.fixed_slots_used,
            attached_files: st.attached_files,
            zc_ops: st.zc_ops,
            zc_errors: st.zc_errors,
            zc_read_bytes: st.zc_read_bytes,
            zc_write_bytes: st.zc_write_bytes,
            zero_copy_bytes: st.zero_copy_bytes,
            copied_bytes: st.copied_bytes,
            queue_high_water: st.queue_high_water,
            workers: st.workers,
            counters: Vec::new(),
        }
    }
}
