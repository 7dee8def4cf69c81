//! overhead: the Rust side of the bindings' overhead benchmark
//! (bindings/bench/run.sh runs it next to bindings/bench/overhead.c and
//! overhead.py and compares them).
//!
//! Through the safe crate only (Session::pwrite / Session::pread with
//! require_zc, from a slice of a shared 1 MiB Arena): connects to the
//! mount, shares the arena, opens and attaches FILE (pre-sized to 64 MiB),
//! sets the wait mode, then times N synchronous 4 KiB writes and N reads
//! at random 4 KiB-aligned offsets drawn with splitmix64 from SEED, the
//! same offsets as the C and Python programs.
//!
//!   cd bindings/rust && ZCFUSE_LIB_DIR=$PWD/../../build \
//!     cargo run --release --example overhead -- MNT FILE N WARMUP SEED sleep|poll SPIN_US
//!
//! Prints lines in overhead.c's format, with lang=rust; "null_call" is a
//! Session-less zcfuse_pwrite(NULL, ...) through zcfuse-sys (rejected in
//! the library's C shim), to compare with C's and ctypes' call cost.

use std::env;
use std::fs::OpenOptions;
use std::hint::black_box;
use std::io;
use std::process::ExitCode;
use std::ptr;
use std::time::{Duration, Instant};

use zcfuse::{sys, Arena, Mode, Session};

const OPSZ: usize = 4096;
const FILE_PAGES: u64 = 16384; // 64 MiB / 4 KiB
const ARENA_SIZE: usize = 1 << 20;

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Nearest rank, as in overhead.c.
fn pct(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64) + 0.999_999_999) as usize;
    sorted[rank.max(1) - 1]
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("overhead.rs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let args: Vec<String> = env::args().collect();
    if args.len() != 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: overhead MNT FILE N WARMUP SEED sleep|poll SPIN_US",
        ));
    }
    let num = |i: usize| -> io::Result<u64> {
        args[i].parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad number {}", args[i])))
    };
    let (mnt, path, mode) = (&args[1], &args[2], args[6].as_str());
    let (n, warm, seed, spin) = (num(3)? as usize, num(4)? as usize, num(5)?, num(7)?);

    let mut st = seed;
    let offs: Vec<u64> = (0..warm + n).map(|_| (splitmix64(&mut st) % FILE_PAGES) * OPSZ as u64).collect();
    let mut lat = vec![0u64; n];

    let mut s = Session::connect(mnt)?;
    let mut arena = Arena::new(ARENA_SIZE)?;
    s.share(&arena)?;
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let id = s.attach(&file)?;
    s.set_mode(if mode == "poll" { Mode::Poll } else { Mode::Sleep }, Duration::from_micros(spin))?;
    arena[..OPSZ].fill(0xa5);

    for write in [true, false] {
        let opname = if write { "write" } else { "read" };
        let buf = &mut arena[..OPSZ];
        for &off in &offs[..warm] {
            let r = if write { s.pwrite(id, buf, off, true)? } else { s.pread(id, buf, off, true)? };
            assert_eq!(r, OPSZ, "short {opname} in warm-up");
        }
        let start = Instant::now();
        for (i, &off) in offs[warm..].iter().enumerate() {
            let t0 = Instant::now();
            let r = if write { s.pwrite(id, buf, off, true)? } else { s.pread(id, buf, off, true)? };
            lat[i] = t0.elapsed().as_nanos() as u64;
            if r != OPSZ {
                return Err(io::Error::other(format!("short {opname}: {r}")));
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let mean = lat.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let mut sorted = lat.clone();
        sorted.sort_unstable();
        println!(
            "R lang=rust mode={mode} op={opname} n={n} mean_us={:.3} p50_us={:.3} p99_us={:.3} ops_s={:.0}",
            mean / 1e3,
            pct(&sorted, 0.50) as f64 / 1e3,
            pct(&sorted, 0.99) as f64 / 1e3,
            n as f64 / wall
        );
    }

    // The timer pair alone, and a call rejected in the C shim.
    let reps = 1_000_000u32;
    let t = Instant::now();
    let mut sink = 0u128;
    for _ in 0..reps {
        let a = Instant::now();
        sink += a.elapsed().as_nanos();
    }
    black_box(sink);
    println!("X lang=rust what=timer ns={:.1}", t.elapsed().as_nanos() as f64 / reps as f64);
    let buf = arena.as_ptr();
    let t = Instant::now();
    let mut r = 0;
    for i in 0..reps as usize {
        // SAFETY: a NULL session is rejected (-EINVAL) before anything is touched.
        r = unsafe {
            sys::zcfuse_pwrite(
                black_box(ptr::null_mut()),
                id.as_u32(),
                buf.cast(),
                OPSZ,
                offs[i % offs.len()] as i64,
                sys::ZCFUSE_F_REQUIRE_ZC,
            )
        };
    }
    println!("X lang=rust what=null_call ns={:.1}", t.elapsed().as_nanos() as f64 / reps as f64);
    if r != -22 {
        return Err(io::Error::other(format!("zcfuse_pwrite(NULL) = {r}, not -EINVAL")));
    }

    s.close()?;
    drop(file);
    Ok(())
}
