//! zc_cp SRC DST: copies a file between (or within) zcfuse mounts without
//! a copy in user space. SRC's bytes go from its backing file into a shared
//! arena and from there into DST's backing file, by reference, in batches
//! of ops submitted together (a window of 1 MiB reads, then its writes),
//! every op with require_zc so a stray buffer fails instead of copying.
//!
//! Build and run (after `make lib` at the repository root):
//!   cd bindings/rust && ZCFUSE_LIB_DIR=$PWD/../../build cargo run --example zc_cp -- SRC DST
//!
//! tests/zc_cp.rs runs this program's `copy` on a live mount.

use std::cmp::min;
use std::env;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use zcfuse::{Arena, Op, Session};

/// Bytes per op.
const CHUNK: usize = 1 << 20;
/// The arena's size at most: a window of WINDOW / CHUNK ops per batch.
const WINDOW: u64 = 16 << 20;
const PAGE: u64 = 4096;

fn main() -> ExitCode {
    match run(env::args_os()) {
        Ok(n) => {
            println!("zc_cp: copied {n} bytes zero-copy");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zc_cp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The program, given its arguments: the bytes copied.
pub fn run(args: impl IntoIterator<Item = OsString>) -> io::Result<u64> {
    let args: Vec<OsString> = args.into_iter().collect();
    if args.len() != 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: zc_cp SRC DST (both on zcfuse mounts)"));
    }
    copy(Path::new(&args[1]), Path::new(&args[2]))
}

/// Copies src to dst (created or truncated) through an arena shared with
/// the servers of both files' mounts, and returns the bytes copied.
pub fn copy(src: &Path, dst: &Path) -> io::Result<u64> {
    let from = File::open(src).map_err(|e| context(e, src))?;
    let size = from.metadata()?.len();
    let to = OpenOptions::new().write(true).create(true).truncate(true).open(dst).map_err(|e| context(e, dst))?;
    let (src_mnt, dst_mnt) = (mount_root(src)?, mount_root(dst)?);

    // One session per mount; the same arena is shared with both.
    let mut reader = Session::connect(&src_mnt).map_err(|e| context(e, &src_mnt))?;
    let mut other =
        if dst_mnt == src_mnt { None } else { Some(Session::connect(&dst_mnt).map_err(|e| context(e, &dst_mnt))?) };
    let arena_len = min(size, WINDOW).div_ceil(PAGE).max(1) * PAGE;
    let mut arena = Arena::new(arena_len as usize)?;
    reader.share(&arena)?;
    let rfile = reader.attach(&from).map_err(|e| context(e, src))?;
    let writer = other.as_mut().unwrap_or(&mut reader);
    if dst_mnt != src_mnt {
        writer.share(&arena)?;
    }
    let wfile = writer.attach(&to).map_err(|e| context(e, dst))?;

    let mut off = 0u64;
    while off < size {
        let want = min(size - off, arena_len) as usize;
        // Read the window: one op per chunk, all in flight together.
        let reads: Vec<Op<'_>> = arena[..want]
            .chunks_mut(CHUNK)
            .enumerate()
            .map(|(i, c)| Op::read(rfile, c, off + (i * CHUNK) as u64).user_data(i as u64).require_zc())
            .collect();
        let got = batch(&mut reader, &reads)?;
        // Contiguous bytes read: a short chunk is the end of the file.
        let mut n = 0;
        for (i, r) in got.iter().enumerate() {
            n += r;
            if *r < min(CHUNK, want - i * CHUNK) {
                break;
            }
        }
        drop(reads); // the arena's bytes are ours again
        if n == 0 {
            break; // src shrank
        }
        let writer = other.as_mut().unwrap_or(&mut reader);
        let writes: Vec<Op<'_>> = arena[..n]
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, c)| Op::write(wfile, c, off + (i * CHUNK) as u64).user_data(i as u64).require_zc())
            .collect();
        for (i, w) in batch(writer, &writes)?.into_iter().enumerate() {
            if w != min(CHUNK, n - i * CHUNK) {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("{}: short write at {off}", dst.display()),
                ));
            }
        }
        off += n as u64;
        if n < want {
            break;
        }
    }
    let writer = other.as_mut().unwrap_or(&mut reader);
    writer.fsync(wfile, false)?;
    if let Some(s) = other {
        s.close()?;
    }
    reader.close()?;
    Ok(off)
}

/// Runs ops whose user_data is their index: submits them all (in several
/// submits if the queue is full), waits for every completion, and returns
/// the bytes each moved, or the first error once all have completed.
fn batch(s: &mut Session, ops: &[Op<'_>]) -> io::Result<Vec<usize>> {
    let mut res = vec![0; ops.len()];
    let mut first_err = None;
    let (mut sent, mut reaped, mut stop) = (0, 0, false);
    loop {
        if sent < ops.len() && !stop {
            match s.submit(&ops[sent..]) {
                Ok(n) if n > 0 => sent += n,
                // The queue is full: reap, then submit the rest.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && sent > reaped => {}
                Ok(_) => unreachable!("submit took nothing without an error"),
                Err(e) => {
                    first_err.get_or_insert(e);
                    stop = true; // reap what is in flight, submit no more
                }
            }
        }
        if reaped == sent && (sent == ops.len() || stop) {
            break;
        }
        for c in s.wait(1, sent - reaped, None)? {
            reaped += 1;
            match c.result() {
                Ok(n) => res[c.user_data as usize] = n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(res),
    }
}

/// The root of the mount that holds path (which need not exist yet): the
/// highest directory above it on the same device.
fn mount_root(path: &Path) -> io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut root = fs::canonicalize(dir).map_err(|e| context(e, dir))?;
    let dev = fs::metadata(&root)?.dev();
    while let Some(parent) = root.parent() {
        if fs::metadata(parent)?.dev() != dev {
            break;
        }
        root = parent.to_path_buf();
    }
    Ok(root)
}

fn context(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
