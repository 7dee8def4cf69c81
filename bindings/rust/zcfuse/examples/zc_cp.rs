//! zc_cp SRC DST: copies a file between (or within) zcfuse mounts without
//! a copy in user space. SRC's bytes go from its backing file into a shared
//! arena and from there into DST's backing file, by reference, in batches
//! of ops submitted together (a window of 1 MiB reads, then its writes),
//! every op with require_zc so a stray buffer fails instead of copying.
//! Each op owns its 1 MiB region of the arena while it is in flight; the
//! completions hand the regions back for the next batch.
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

use zcfuse::{Arena, Completion, Op, Region, Session};

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
    let arena = Arena::new(arena_len as usize)?;
    reader.share(&arena)?;
    let rfile = reader.attach(&from).map_err(|e| context(e, src))?;
    let writer = other.as_mut().unwrap_or(&mut reader);
    if dst_mnt != src_mnt {
        writer.share(&arena)?;
    }
    let wfile = writer.attach(&to).map_err(|e| context(e, dst))?;
    // The whole arena as one region: each window splits it into the
    // chunks its ops own, and joins them again from the completions.
    let mut whole = arena.into_region();

    let mut off = 0u64;
    while off < size {
        let want = min(size - off, arena_len) as usize;
        let mut window = whole;
        let spare = window.split_off(want);
        // Read the window: one op per chunk, all in flight together.
        let reads = window
            .into_chunks(CHUNK)
            .into_iter()
            .enumerate()
            .map(|(i, c)| Op::read(rfile, c, off + (i * CHUNK) as u64).user_data(i as u64).require_zc())
            .collect();
        let got = batch(&mut reader, reads)?;
        // Contiguous bytes read: a short chunk is the end of the file.
        let mut n = 0;
        for (i, c) in got.iter().enumerate() {
            let r = c.res as usize;
            n += r;
            if r < min(CHUNK, want - i * CHUNK) {
                break;
            }
        }
        if n == 0 {
            break; // src shrank
        }
        // The chunks are ours again: write the first n bytes.
        let mut window = join_all(got);
        let rest = window.split_off(n);
        let writer = other.as_mut().unwrap_or(&mut reader);
        let writes = window
            .into_chunks(CHUNK)
            .into_iter()
            .enumerate()
            .map(|(i, c)| Op::write(wfile, c, off + (i * CHUNK) as u64).user_data(i as u64).require_zc())
            .collect();
        let put = batch(writer, writes)?;
        for (i, w) in put.iter().enumerate() {
            if w.res as usize != min(CHUNK, n - i * CHUNK) {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("{}: short write at {off}", dst.display()),
                ));
            }
        }
        whole = join(join(join_all(put), rest), spare);
        off += n as u64;
        if n < want {
            break; // the end of src
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
/// the completions in op order (bytes moved, and each op's region), or
/// the first error once all have completed.
fn batch(s: &mut Session, mut ops: Vec<Op>) -> io::Result<Vec<Completion>> {
    let total = ops.len();
    let mut done = Vec::with_capacity(total);
    let mut first_err = None;
    while done.len() < total {
        if !ops.is_empty() && first_err.is_none() {
            match s.submit(&mut ops) {
                Ok(_) => {}
                // The queue is full: reap, then submit the rest.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && s.in_flight() > 0 => {}
                Err(e) => {
                    first_err = Some(e); // reap what is in flight, submit no more
                }
            }
        }
        if s.in_flight() == 0 {
            break;
        }
        s.wait_into(1, s.in_flight(), None, &mut done)?;
    }
    if let Some(e) = first_err.or_else(|| done.iter().find_map(|c| c.result().err())) {
        return Err(e);
    }
    done.sort_by_key(|c| c.user_data);
    Ok(done)
}

/// The regions of completions in op order, joined into one.
fn join_all(done: Vec<Completion>) -> Region {
    done.into_iter()
        .map(|c| c.into_region().expect("a read or write has a region"))
        .reduce(join)
        .expect("one op or more")
}

/// a and b, adjacent pieces of one arena, as one region.
fn join(a: Region, b: Region) -> Region {
    a.join(b).unwrap_or_else(|(a, b)| panic!("{a:?} and {b:?} are not adjacent"))
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
