//! Sessions against a live mount started through the safe Server API:
//! zero-copy round trips (the acceptance test) on both transports, the
//! copying path and require_zc, batches of ops that own their regions,
//! partial submits, raw submits, a session dropped with ops in flight,
//! attach, share, fsync, the session fd, a server that goes away.

mod common;

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use zcfuse::{errno, sys, Arena, Completion, Mode, Op, Region, Session, Transport};

/// The acceptance: a 4 MiB arena shared, a file opened O_RDWR
/// through the mount and attached, random bytes written zero-copy with
/// require_zc and read back into a second arena; the server saw exactly
/// those bytes move zero-copy, copied none, and served no FUSE READ or
/// WRITE.
fn round_trip(m: &common::Mount) {
    const SIZE: usize = 4 * MIB;
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut src = Arena::new(SIZE).expect("arena");
    let mut dst = Arena::new(SIZE).expect("arena");
    let a = s.share(&src).expect("share");
    s.share(&dst).expect("share");
    assert_eq!(s.is_registered(a), Some(true), "a root server registers arenas as fixed buffers");
    let f = m.open_rw("round-trip");
    let file = s.attach(&f).expect("attach");
    src.copy_from_slice(&random_bytes(SIZE));
    dst.fill(0xa5);

    let before = m.stats();
    assert_eq!(s.pwrite(file, &src, 0, true).expect("zero-copy pwrite"), SIZE);
    assert_eq!(s.pread(file, &mut dst, 0, true).expect("zero-copy pread"), SIZE);
    let after = m.stats();

    assert!(src[..] == dst[..], "the bytes read back differ from those written");
    assert_eq!(
        after.zero_copy_bytes - before.zero_copy_bytes,
        2 * SIZE as u64,
        "zero_copy_bytes: {before:?} -> {after:?}"
    );
    assert_eq!(after.zc_write_bytes - before.zc_write_bytes, SIZE as u64);
    assert_eq!(after.zc_read_bytes - before.zc_read_bytes, SIZE as u64);
    assert_eq!(after.copied_bytes, before.copied_bytes, "copied_bytes grew");
    assert_eq!(fuse_rw(&after), fuse_rw(&before), "FUSE READ/WRITE counters (ring 15, 16, dev 15, 16) moved");
    assert_eq!(after.zc_errors, before.zc_errors);

    // Readers through the mount see the new bytes (the write invalidated
    // the kernel's cache), and so does the backing file.
    assert!(fs::read(m.path("round-trip")).expect("read through the mount") == src[..]);
    assert!(fs::read(m.backing.join("round-trip")).expect("read the backing file") == src[..]);
    s.close().expect("close");
}

#[test]
fn round_trip_4mib_zero_copy() {
    let m = mount_or_skip!();
    round_trip(&m);
}

#[test]
fn round_trip_4mib_zero_copy_uring() {
    if let Some(why) = uring_unavailable() {
        if env_require_uring() {
            panic!("FUSE-over-io_uring required (ZCFUSE_REQUIRE_URING=1) but {why}");
        }
        return skip(&format!("FUSE-over-io_uring not available: {why}"));
    }
    let m = mount_or_skip!(|b| b.transport(Transport::Uring));
    assert_eq!(m.stats().transport, Some(Transport::Uring));
    round_trip(&m);
}

#[test]
fn round_trip_4mib_zero_copy_classic() {
    let m = mount_or_skip!(|b| b.transport(Transport::Classic));
    assert_eq!(m.stats().transport, Some(Transport::Classic));
    round_trip(&m);
}

fn env_require_uring() -> bool {
    std::env::var("ZCFUSE_REQUIRE_URING").as_deref() == Ok("1")
}

#[test]
fn require_zc_on_a_vec_is_efault_and_without_it_the_posix_path_copies() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let arena = Arena::new(64 * KIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("vec");
    let file = s.attach(&f).expect("attach");
    let data = random_bytes(64 * KIB);

    let before = m.stats();
    let e = s.pwrite(file, &data, 0, true).expect_err("a Vec is in no arena");
    assert_eq!(e.raw_os_error(), Some(EFAULT), "{e}");
    let mut back = vec![0u8; 64 * KIB];
    let e = s.pread(file, &mut back, 0, true).expect_err("a Vec is in no arena");
    assert_eq!(e.raw_os_error(), Some(EFAULT), "{e}");
    // The same through submit, with a region of an arena the session
    // does not share: the op completes at once with -EFAULT, and the
    // completion hands the region back.
    let mut other = Arena::new(64 * KIB).expect("arena");
    other.copy_from_slice(&data);
    let mut ops = vec![Op::write(file, other.into_region(), 0).user_data(7).require_zc()];
    assert_eq!(s.submit(&mut ops).expect("submit"), 1);
    assert!(ops.is_empty(), "the op taken left the Vec");
    let mut done = s.wait(1, 1, Some(Duration::from_secs(10))).expect("wait");
    assert_eq!(results(&done), [(7, -(EFAULT as i64))]);
    let other = done.pop().unwrap().into_region().expect("the region back").into_arena().expect("all of it");
    assert!(other[..] == data[..]);
    let mid = m.stats();
    assert_eq!(mid.zero_copy_bytes, before.zero_copy_bytes);
    assert_eq!(fuse_rw(&mid), fuse_rw(&before), "a refused op reached FUSE");
    assert_eq!(fs::metadata(m.path("vec")).expect("stat").len(), 0, "EFAULT wrote something");

    // Without require_zc the Vec goes through the mount: FUSE WRITEs and
    // READs, no zero-copy bytes.
    assert_eq!(s.pwrite(file, &data, 0, false).expect("posix pwrite"), data.len());
    assert_eq!(s.pread(file, &mut back, 0, false).expect("posix pread"), data.len());
    assert!(back == data);
    let after = m.stats();
    assert_eq!(after.zero_copy_bytes, before.zero_copy_bytes, "the posix path counted as zero copy");
    assert!(after.requests(16) > mid.requests(16), "no FUSE WRITE for the posix path: {after:?}");

    // Without require_zc a region of an unshared arena takes the posix
    // path too, and comes back holding the bytes read.
    let mut ops = vec![Op::read(file, other.into_region(), 0).user_data(8)];
    assert_eq!(s.submit(&mut ops).expect("submit"), 1);
    let mut done = s.wait(1, 1, Some(Duration::from_secs(10))).expect("wait");
    assert_eq!(results(&done), [(8, data.len() as i64)]);
    assert!(done.pop().unwrap().region.expect("the region back")[..] == data[..]);
    s.close().expect("close");
}

#[test]
fn a_batch_of_32_ops_completes_with_each_user_data() {
    const N: usize = 32;
    const CHUNK: usize = 64 * KIB;
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut src = Arena::new(N * CHUNK).expect("arena");
    let dst = Arena::new(N * CHUNK).expect("arena");
    s.share(&src).expect("share");
    s.share(&dst).expect("share");
    let f = m.open_rw("batch");
    let file = s.attach(&f).expect("attach");
    src.copy_from_slice(&random_bytes(N * CHUNK));
    let before = m.stats();

    // 32 writes, one per chunk, each tagged with its own user_data; each
    // op owns its chunk until the completion hands it back.
    let mut writes: Vec<Op> = src
        .into_region()
        .into_chunks(CHUNK)
        .into_iter()
        .enumerate()
        .map(|(i, c)| Op::write(file, c, (i * CHUNK) as u64).user_data(1000 + i as u64).require_zc())
        .collect();
    assert_eq!(s.submit(&mut writes).expect("submit writes"), N);
    assert_eq!((writes.len(), s.in_flight()), (0, N));
    let done = wait_all(&mut s, N);
    check_completions(&done, 1000, CHUNK);
    let src = reassemble(done);

    // 32 reads, in reverse order, into the second arena.
    let mut reads: Vec<Op> = dst
        .into_region()
        .into_chunks(CHUNK)
        .into_iter()
        .enumerate()
        .rev()
        .map(|(i, c)| Op::read(file, c, (i * CHUNK) as u64).user_data(5000 + i as u64).require_zc())
        .collect();
    assert_eq!(s.submit(&mut reads).expect("submit reads"), N);
    let done = wait_all(&mut s, N);
    assert_eq!(s.in_flight(), 0);
    check_completions(&done, 5000, CHUNK);
    let dst = reassemble(done);

    assert!(src[..] == dst[..]);
    let after = m.stats();
    assert_eq!(after.zero_copy_bytes - before.zero_copy_bytes, (2 * N * CHUNK) as u64);
    assert_eq!(after.zc_ops - before.zc_ops, 2 * N as u64);
    assert_eq!(fuse_rw(&after), fuse_rw(&before));
    assert!(after.queue_high_water >= 1);
    // Nothing is left: a wait that must not block returns nothing.
    assert!(s.wait(0, 8, Some(Duration::ZERO)).expect("wait").is_empty());
}

/// The arena back from the regions of completions that cover it.
fn reassemble(done: Vec<Completion>) -> Arena {
    let mut regions: Vec<Region> = done.into_iter().map(|c| c.into_region().expect("a region")).collect();
    regions.sort_by_key(|r| r.offset());
    let whole = regions.into_iter().reduce(|a, b| a.join(b).expect("adjacent regions")).expect("regions");
    whole.into_arena().expect("the regions cover the arena")
}

/// (user_data, res) of each completion.
fn results(done: &[Completion]) -> Vec<(u64, i64)> {
    done.iter().map(|c| (c.user_data, c.res)).collect()
}

/// Reaps n completions, with a deadline.
fn wait_all(s: &mut Session, n: usize) -> Vec<Completion> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    while all.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} completions", all.len());
        s.wait_into(1, n - all.len(), Some(Duration::from_secs(5)), &mut all).expect("wait");
    }
    all
}

/// Every user_data base..base+n exactly once, each moving len bytes.
fn check_completions(done: &[Completion], base: u64, len: usize) {
    let mut seen = vec![false; done.len()];
    for c in done {
        let i = c
            .user_data
            .checked_sub(base)
            .filter(|&i| (i as usize) < seen.len())
            .unwrap_or_else(|| panic!("unexpected user_data in {c:?}")) as usize;
        assert!(!seen[i], "user_data {} twice", c.user_data);
        seen[i] = true;
        assert_eq!(c.result().expect("op"), len, "{c:?}");
    }
}

#[test]
fn attach_of_a_file_outside_the_mount_is_exdev() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    // A file of the backing directory itself: the same bytes, not the mount.
    let outside = File::create(m.backing.join("outside")).expect("create");
    let e = s.attach(&outside).expect_err("attach outside the mount");
    assert_eq!(errno(&e), Some(EXDEV), "{e}");
    assert_eq!(e.kind(), io::ErrorKind::CrossesDevices);
    // The library's message travels with it.
    let detail = e.get_ref().and_then(|d| d.downcast_ref::<zcfuse::Error>()).expect("a zcfuse::Error inside");
    assert!(detail.message().contains("not a file on this session's mount"), "{detail}");
    // A raw fd works as well as a File, and a directory is not a regular file.
    let dir = File::open(&m.mnt).expect("open the mount root");
    let e = s.attach(&dir.as_raw_fd()).expect_err("attach a directory");
    assert_eq!(errno(&e), Some(EINVAL), "{e}");
}

#[test]
fn share_unshare_stats_and_a_dropped_arena_stays_mapped_while_shared() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let st = s.stats().expect("stats");
    assert_eq!((st.sessions, st.arenas, st.registered_bytes), (1, 0, 0));
    assert_ne!(st.session_id, 0);

    let small = Arena::new(4 * KIB).expect("arena");
    let big = Arena::new(8 * MIB).expect("arena");
    let a = s.share(&small).expect("share");
    let b = s.share(&big).expect("share");
    assert_ne!(a, b);
    assert!(small.is_shared() && big.is_shared());
    let st = s.stats().expect("stats");
    assert_eq!((st.arenas, st.registered_bytes), (2, (4 * KIB + 8 * MIB) as u64));
    assert_eq!(m.stats().arenas, 2);

    // Dropping a shared Arena leaves its mapping to the session, until unshare.
    drop(big);
    assert_eq!(s.stats().expect("stats").arenas, 2);
    s.unshare(b).expect("unshare the dropped arena");
    assert_eq!(s.is_registered(b), None);
    s.unshare(a).expect("unshare");
    assert!(!small.is_shared());
    let e = s.unshare(a).expect_err("unshare twice");
    assert_eq!(errno(&e), Some(ENOENT), "{e}");
    assert_eq!(s.stats().expect("stats").arenas, 0);

    // Closing the session releases what it still shares.
    s.share(&small).expect("share again");
    s.close().expect("close");
    let s2 = Session::connect(&m.mnt).expect("connect");
    let st = s2.stats().expect("stats");
    assert_eq!((st.sessions, st.arenas), (1, 0));
}

#[test]
fn fsync_detach_and_a_read_only_attachment() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut arena = Arena::new(64 * KIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("sync");
    let file = s.attach(&f).expect("attach");
    assert_eq!(s.attach(&f).expect("attach again"), file, "the same open file, the same id");
    arena[..5].copy_from_slice(b"hello");
    assert_eq!(s.pwrite(file, &arena[..5], 0, true).expect("pwrite"), 5);
    s.fsync(file, false).expect("fsync");
    s.fsync(file, true).expect("fdatasync");
    s.submit(&mut vec![Op::fsync(file).user_data(1), Op::fdatasync(file).user_data(2)]).expect("submit");
    let mut done = wait_all(&mut s, 2);
    done.sort_by_key(|c| c.user_data);
    assert_eq!(results(&done), [(1, 0), (2, 0)]);
    assert!(done.iter().all(|c| c.region.is_none()), "an fsync has no region");
    // A short read at the end of the file.
    assert_eq!(s.pread(file, &mut arena[100..200], 0, true).expect("pread"), 5);
    assert_eq!(&arena[100..105], b"hello");
    assert_eq!(s.pread(file, &mut arena[..100], 5, true).expect("pread at EOF"), 0);
    s.detach(file).expect("detach");
    let e = s.pwrite(file, &arena[..5], 0, true).expect_err("a detached file");
    assert_eq!(e.raw_os_error(), Some(EBADF), "{e}");
    assert_eq!(errno(&s.detach(file).expect_err("detach twice")), Some(ENOENT));

    // Opened O_RDONLY: reads work, writes are EBADF.
    let ro = File::open(m.path("sync")).expect("open read-only");
    let rfile = s.attach(&ro).expect("attach read-only");
    assert_eq!(s.pread(rfile, &mut arena[..5], 0, true).expect("pread"), 5);
    let e = s.pwrite(rfile, &arena[..5], 0, true).expect_err("write to a read-only attachment");
    assert_eq!(e.raw_os_error(), Some(EBADF), "{e}");
    // Closing the fd releases the attachment.
    drop(ro);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.pread(rfile, &mut arena[..5], 0, true) {
            Err(e) if e.raw_os_error() == Some(EBADF) => break,
            r => assert!(Instant::now() < deadline, "still attached after close: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

extern "C" {
    fn poll(fds: *mut PollFd, nfds: u64, timeout: i32) -> i32;
}

#[test]
fn the_session_fd_turns_readable_and_wait_times_out() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut arena = Arena::new(MIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("poll");
    let file = s.attach(&f).expect("attach");

    // Nothing pending: no wait, even with min 1 and a timeout.
    let t = Instant::now();
    assert!(s.wait(1, 4, Some(Duration::from_millis(50))).expect("wait").is_empty());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(errno(&s.wait(2, 1, None).expect_err("min > max")), Some(EINVAL));

    arena.fill(3);
    s.submit(&mut vec![Op::write(file, arena.into_region(), 0).user_data(9)]).expect("submit");
    let mut pfd = PollFd { fd: s.as_raw_fd(), events: 1 /* POLLIN */, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { poll(&mut pfd, 1, 10_000) };
    assert_eq!(n, 1, "the session fd did not turn readable");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.is_empty() && Instant::now() < deadline {
        got = s.wait(0, 4, Some(Duration::ZERO)).expect("wait");
    }
    assert_eq!(results(&got), [(9, MIB as i64)]);
    let arena = got.pop().unwrap().into_region().expect("the region back").into_arena().expect("all of it");

    // Poll mode works the same.
    s.set_mode(Mode::Poll, Duration::from_micros(20)).expect("poll mode");
    assert_eq!(s.pwrite(file, &arena[..4096], 0, true).expect("pwrite"), 4096);
    s.set_mode(Mode::Sleep, Duration::ZERO).expect("sleep mode");
    assert_eq!(s.pwrite(file, &arena[..4096], 0, true).expect("pwrite"), 4096);
}

/// The library never interprets user_data: values with the top bit set
/// come back as they went, even with the library's own synchronous calls
/// in between (which once tagged their ops with that bit).
#[test]
fn any_user_data_comes_back() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut arena = Arena::new(MIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("tag");
    let file = s.attach(&f).expect("attach");
    assert_eq!(s.pwrite(file, &arena[..4096], 0, true).expect("pwrite"), 4096);
    let tags = [1u64 << 63, (1 << 63) | 1, u64::MAX];
    let mut ops: Vec<Op> = tags.iter().map(|&t| Op::fsync(file).user_data(t)).collect();
    assert_eq!(s.submit(&mut ops).expect("submit"), 3);
    assert_eq!(s.pread(file, &mut arena[8192..8292], 0, true).expect("pread"), 100, "a sync call in between");
    let mut got: Vec<u64> =
        s.wait(3, 3, Some(Duration::from_secs(5))).expect("wait").iter().map(|c| c.user_data).collect();
    got.sort();
    let mut want = tags.to_vec();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_session_moves_to_another_thread() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut arena = Arena::new(MIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("thread");
    let file = s.attach(&f).expect("attach");
    arena.fill(42);
    let (s, arena) = std::thread::spawn(move || {
        let mut s = s;
        assert_eq!(s.pwrite(file, &arena, 0, true).expect("pwrite on another thread"), MIB);
        (s, arena)
    })
    .join()
    .expect("thread");
    drop(arena);
    s.close().expect("close");
    assert_eq!(fs::read(m.path("thread")).expect("read"), vec![42u8; MIB]);
}

#[test]
fn when_the_server_stops_ops_fail_with_enotconn() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let arena = Arena::new(64 * KIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("gone");
    let file = s.attach(&f).expect("attach");
    drop(f);
    m.server().stop().expect("stop");
    let t = Instant::now();
    let e = s.pwrite(file, &arena, 0, true).expect_err("pwrite after stop");
    assert!(matches!(e.raw_os_error(), Some(ENOTCONN) | Some(EBADF)), "{e}");
    let e = s.stats().expect_err("stats after stop");
    assert_eq!(errno(&e), Some(ENOTCONN), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "calls hung after the server went away");
    let e = s.close().expect_err("close after stop");
    assert_eq!(errno(&e), Some(ENOTCONN), "{e}");
}

/// More ops than the queue holds: submit takes what fits from the front
/// of the Vec and leaves the rest, which go in once completions are reaped.
#[test]
fn a_full_queue_takes_a_prefix_and_leaves_the_rest() {
    const N: usize = 300;
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let f = m.open_rw("full");
    let file = s.attach(&f).expect("attach");
    let mut ops: Vec<Op> = (0..N as u64).map(|i| Op::fdatasync(file).user_data(i)).collect();
    let taken = s.submit(&mut ops).expect("submit");
    assert!(taken > 0 && taken < N, "took {taken} of {N}: the queue holds 256");
    assert_eq!(ops.len(), N - taken, "the ops not taken stay");
    assert_eq!(ops[0].region().map(|r| r.len()), None);
    let mut got = Vec::new();
    while !ops.is_empty() {
        match s.submit(&mut ops) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("submit: {e}"),
        }
        s.wait_into(1, N, Some(Duration::from_secs(5)), &mut got).expect("wait");
    }
    got.extend(wait_all(&mut s, N - got.len()));
    let mut tags: Vec<u64> = got.iter().map(|c| c.user_data).collect();
    tags.sort();
    assert_eq!(tags, (0..N as u64).collect::<Vec<_>>());
    assert!(got.iter().all(|c| c.res == 0), "{got:?}");
    assert_eq!(s.in_flight(), 0);
}

/// submit_raw keeps the old pointer semantics (a Vec goes the posix path,
/// an arena pointer zero-copy), its user_data comes back as it went even
/// when a safe op carries the same value, and only safe ops carry a region.
#[test]
fn raw_ops_and_owned_ops_share_the_queue() {
    let m = mount_or_skip!();
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut arena = Arena::new(64 * KIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("raw");
    let file = s.attach(&f).expect("attach");
    let data = random_bytes(8 * KIB);
    arena[..8 * KIB].copy_from_slice(&data);
    let mut region = arena.into_region();
    let rest = region.split_off(8 * KIB);

    let raw = |opcode: i32, buf: *mut u8, len: usize, off: i64, user_data: u64| sys::zcfuse_op_t {
        opcode: opcode as u8,
        reserved: [0; 3],
        flags: 0,
        file_id: file.as_u32(),
        arena_id: 0,
        mem: sys::zcfuse_op_mem { buf: buf.cast() },
        len: len as u64,
        off,
        user_data,
    };
    let mut vec_buf = data.clone();
    let ops = [raw(sys::ZCFUSE_OP_WRITE, vec_buf.as_mut_ptr(), vec_buf.len(), 0, 5)];
    // SAFETY: vec_buf outlives the op, and is not touched until its completion is reaped.
    assert_eq!(unsafe { s.submit_raw(&ops) }.expect("submit_raw"), 1);
    assert_eq!(s.submit(&mut vec![Op::write(file, region, 8192).user_data(5)]).expect("submit"), 1);
    let mut done = wait_all(&mut s, 2);
    done.sort_by_key(|c| c.region.is_some());
    assert_eq!(results(&done), [(5, 8192), (5, 8192)]);
    assert!(done[0].region.is_none(), "a raw op has no region");
    let region = done.pop().unwrap().into_region().expect("the safe op's region");
    drop(vec_buf);
    let mut back = region.join(rest).expect("adjacent").into_arena().expect("the arena");

    // A raw read into the arena, zero copy.
    let before = m.stats();
    let ops = [raw(sys::ZCFUSE_OP_READ, back.as_mut_ptr(), 16 * KIB, 0, u64::MAX)];
    // SAFETY: `back` is not touched until the completion is reaped.
    assert_eq!(unsafe { s.submit_raw(&ops) }.expect("submit_raw"), 1);
    assert_eq!(results(&wait_all(&mut s, 1)), [(u64::MAX, 16 * KIB as i64)]);
    assert_eq!(m.stats().zero_copy_bytes - before.zero_copy_bytes, 16 * KIB as u64);
    assert!(back[..8 * KIB] == data[..] && back[8 * KIB..16 * KIB] == data[..]);

    // A raw op by arena id: inside the arena it moves; past its end it is EFAULT.
    let id = s.share(&back).expect("share again").as_u32();
    let by_id = |arena_off: u64, len: usize, user_data: u64| sys::zcfuse_op_t {
        flags: sys::ZCFUSE_F_ARENA,
        arena_id: id,
        mem: sys::zcfuse_op_mem { arena_off },
        ..raw(sys::ZCFUSE_OP_READ, std::ptr::null_mut(), len, 0, user_data)
    };
    let ops = [by_id(32 * KIB as u64, 16 * KIB, 1), by_id(60 * KIB as u64, 8 * KIB, 2)];
    // SAFETY: `back` is not touched until both completions are reaped.
    assert_eq!(unsafe { s.submit_raw(&ops) }.expect("submit_raw"), 2);
    let mut done = results(&wait_all(&mut s, 2));
    done.sort();
    assert_eq!(done, [(1, 16 * KIB as i64), (2, -(EFAULT as i64))]);
    assert!(back[32 * KIB..40 * KIB] == data[..] && back[40 * KIB..48 * KIB] == data[..]);
}

/// Dropping a session with reads in flight is safe: their regions go with
/// it, and the arena's other regions stay mapped and usable. The server
/// is fine afterwards.
#[test]
fn a_session_dropped_with_ops_in_flight_keeps_the_arena_mapped() {
    let m = mount_or_skip!();
    fs::write(m.path("inflight"), random_bytes(4 * MIB)).expect("write");
    let f = m.open_rw("inflight");
    for forget in [false, true] {
        let mut s = Session::connect(&m.mnt).expect("connect");
        let arena = Arena::new(8 * MIB).expect("arena");
        s.share(&arena).expect("share");
        let file = s.attach(&f).expect("attach");
        let mut reads = arena.into_region();
        let mut keep = reads.split_off(4 * MIB);
        let mut ops: Vec<Op> = reads
            .into_chunks(256 * KIB)
            .into_iter()
            .enumerate()
            .map(|(i, c)| Op::read(file, c, (i * 256 * KIB) as u64).require_zc())
            .collect();
        assert_eq!(s.submit(&mut ops).expect("submit"), 16);
        if forget {
            std::mem::forget(s); // leaks the regions and the mapping: nothing dangles
        } else {
            drop(s);
        }
        keep.fill(0x11);
        assert!(keep.iter().all(|&b| b == 0x11));
        assert!(keep.into_arena().is_err(), "a part of the arena");
    }
    let mut s = Session::connect(&m.mnt).expect("connect after");
    let file = s.attach(&f).expect("attach");
    let mut buf = vec![0u8; 4096];
    assert_eq!(s.pread(file, &mut buf, 0, false).expect("pread"), 4096);
}
