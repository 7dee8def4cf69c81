//! What the zcfuse crate's tests share: prerequisites, scratch directories
//! and live mounts.
//!
//! Scratch directories are /dev/shm/zcfuse-rstest-PID-N. A [`Mount`] runs a
//! zcfuse server in this process through the safe `Server` API; dropping it
//! (also while a failed test unwinds) stops the server, unmounts with
//! `umount -l` as the last resort (and fails the test if that was needed),
//! and removes the scratch directory. A test skips, saying why, only when
//! the machine cannot mount FUSE file systems at all; with CI set in the
//! environment it fails instead.
#![allow(dead_code)] // each test binary uses its own part of this

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use zcfuse::{Server, ServerBuilder, ServerStats};

pub const KIB: usize = 1 << 10;
pub const MIB: usize = 1 << 20;
pub const EBADF: i32 = 9;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EXDEV: i32 = 18;
pub const EINVAL: i32 = 22;
pub const ENOENT: i32 = 2;
pub const EPERM: i32 = 1;
pub const EALREADY: i32 = 114;
pub const ENOTCONN: i32 = 107;
pub const ENOTDIR: i32 = 20;

extern "C" {
    fn geteuid() -> u32;
}

/// Why this process cannot mount FUSE file systems, or None.
pub fn mount_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        return Some("not root: mounting a FUSE file system needs mount(2) on /dev/fuse".into());
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        return Some(format!("cannot open /dev/fuse: {e}"));
    }
    if !Path::new("/dev/shm").is_dir() {
        return Some("no /dev/shm for scratch directories".into());
    }
    None
}

/// Whether FUSE-over-io_uring is switched on (switching it on if it can).
pub fn uring_unavailable() -> Option<String> {
    let p = "/sys/module/fuse/parameters/enable_uring";
    match fs::read_to_string(p) {
        Ok(s) if s.trim() == "Y" => return None,
        Ok(_) => {}
        Err(e) => return Some(format!("cannot read {p}: {e} (Linux 6.14+ with FUSE needed)")),
    }
    if let Err(e) = fs::write(p, "Y\n") {
        return Some(format!("{p} is N and cannot be switched on: {e}"));
    }
    match fs::read_to_string(p) {
        Ok(s) if s.trim() == "Y" => None,
        _ => Some(format!("{p} stays N")),
    }
}

/// Reports a skip (the machine lacks `why`), or fails under CI.
pub fn skip(why: &str) {
    if env::var_os("CI").is_some() {
        panic!("CI is set, so a missing prerequisite is a failure: {why}");
    }
    eprintln!("SKIP: {why}");
}

/// A mount for this test, or return from the test after reporting a skip.
#[macro_export]
macro_rules! mount_or_skip {
    () => {
        mount_or_skip!(|b| b)
    };
    ($configure:expr) => {
        match common::Mount::start_with($configure) {
            Some(m) => m,
            None => return,
        }
    };
}

/// A scratch directory under /dev/shm, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/dev/shm/zcfuse-rstest-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Scratch { dir }
    }

    /// Makes and returns the directory `name` in the scratch.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Never follow into a mount that is still there: unmount first.
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            stop_mount(&e.path());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A zcfuse server on a fresh backing directory and mountpoint.
pub struct Mount {
    server: Option<Server>,
    pub backing: PathBuf,
    pub mnt: PathBuf,
    scratch: Scratch, // dropped last, after the server
}

impl Mount {
    /// Starts a server (with the builder `configure` makes of the default
    /// one), or reports a skip and returns None.
    pub fn start_with(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Option<Mount> {
        if let Some(why) = mount_unavailable() {
            skip(&why);
            return None;
        }
        let scratch = Scratch::new();
        let backing = scratch.subdir("backing");
        let mnt = scratch.subdir("mnt");
        let mut m = Mount { server: None, backing, mnt, scratch };
        let b = configure(Server::builder(&m.backing, &m.mnt));
        m.server = Some(b.start().unwrap_or_else(|e| panic!("start a server on {}: {e}", m.mnt.display())));
        Some(m)
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server")
    }

    pub fn stats(&self) -> ServerStats {
        self.server().stats().expect("server stats")
    }

    /// A path on the mount.
    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// The scratch directory, for files outside the mount.
    pub fn scratch(&self) -> &Path {
        &self.scratch.dir
    }

    /// Opens (creating) name on the mount read-write.
    pub fn open_rw(&self, name: &str) -> File {
        let p = self.path(name);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        drop(self.server.take()); // Server's Drop stops it and frees it
        if is_mounted(&self.mnt) {
            stop_mount(&self.mnt);
            if !thread::panicking() {
                panic!("{} was still mounted after the Server was dropped", self.mnt.display());
            }
        }
    }
}

/// Lazily unmounts path if something is mounted there.
fn stop_mount(path: &Path) {
    if is_mounted(path) {
        eprintln!("umount -l {}", path.display());
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
}

/// Whether something is mounted on path (per /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(|l| l.split(' ').nth(4)).any(|m| Path::new(&m.replace("\\040", " ")) == real)
}

/// n random bytes (from /dev/urandom).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut v)).expect("read /dev/urandom");
    v
}

/// The FUSE READ and WRITE requests a server has served, on both transports.
pub fn fuse_rw(st: &ServerStats) -> [u64; 4] {
    [
        st.ring_requests[ServerStats::FUSE_READ],
        st.ring_requests[ServerStats::FUSE_WRITE],
        st.dev_requests[ServerStats::FUSE_READ],
        st.dev_requests[ServerStats::FUSE_WRITE],
    ]
}
