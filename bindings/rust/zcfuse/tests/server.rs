//! The safe Server API: start, stats, stop, busy mountpoints, options,
//! hooks.

mod common;

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use zcfuse::{errno, Arena, Server, ServerFlags, Session, Transport};

#[test]
fn start_on_a_busy_mountpoint_is_an_error() {
    let m = mount_or_skip!();
    let other = m.scratch().join("other-backing");
    fs::create_dir(&other).expect("mkdir");
    let e = Server::builder(&other, &m.mnt).start().expect_err("a second server on a busy mountpoint");
    assert_eq!(errno(&e), Some(EBUSY), "{e}");
    assert!(e.to_string().contains("busy"), "no detail in {e}");
    // The first server is unaffected.
    fs::write(m.path("still-there"), b"yes").expect("write through the first mount");
    assert!(m.stats().running);
}

#[test]
fn start_fails_when_the_mountpoint_became_busy_after_build() {
    if let Some(why) = mount_unavailable() {
        return skip(&why);
    }
    let scratch = Scratch::new();
    let (b1, b2, mnt) = (scratch.subdir("b1"), scratch.subdir("b2"), scratch.subdir("mnt"));
    // Both built while the mountpoint is free; the first one mounts.
    let first = Server::builder(&b1, &mnt).build().expect("build the first");
    let second = Server::builder(&b2, &mnt).build().expect("build the second");
    first.start().expect("start the first");
    let e = second.start().expect_err("start on a mountpoint that is busy by now");
    assert_eq!(errno(&e), Some(EBUSY), "{e}");
    fs::write(mnt.join("f"), b"first").expect("write");
    assert_eq!(fs::read(b1.join("f")).expect("read"), b"first", "the second server took over the mount");
    drop(second);
    drop(first);
    assert!(!is_mounted(&mnt), "still mounted after both servers were dropped");
}

#[test]
fn a_server_mounts_once_and_stops_on_drop() {
    if let Some(why) = mount_unavailable() {
        return skip(&why);
    }
    let scratch = Scratch::new();
    let (backing, mnt) = (scratch.subdir("backing"), scratch.subdir("mnt"));
    let srv = Server::builder(&backing, &mnt).build().expect("build");
    let st = srv.stats().expect("stats");
    assert!(!st.running);
    assert_eq!(st.transport, Some(Transport::Auto));
    assert_eq!(st.version, 2);
    srv.start().expect("start");
    let st = srv.stats().expect("stats");
    assert!(st.running);
    assert!(matches!(st.transport, Some(Transport::Uring) | Some(Transport::Classic)), "{st:?}");
    if st.transport == Some(Transport::Uring) {
        assert!(st.queues > 0 && st.queue_depth > 0, "{st:?}");
        assert!(st.fallback_reason.is_empty(), "{st:?}");
    }
    assert!(is_mounted(&mnt));
    assert_eq!(errno(&srv.start().expect_err("start twice")), Some(EALREADY));
    srv.stop().expect("stop");
    assert!(!srv.stats().expect("stats").running);
    assert!(!is_mounted(&mnt));
    srv.stop().expect("stop twice is fine");
    drop(srv);

    // Drop alone unmounts too.
    let srv = Server::builder(&backing, &mnt).start().expect("start again");
    assert!(is_mounted(&mnt));
    drop(srv);
    assert!(!is_mounted(&mnt), "Drop did not unmount");
}

#[test]
fn run_blocks_until_stop_from_another_thread() {
    if let Some(why) = mount_unavailable() {
        return skip(&why);
    }
    let scratch = Scratch::new();
    let (backing, mnt) = (scratch.subdir("backing"), scratch.subdir("mnt"));
    let srv = Arc::new(Server::builder(&backing, &mnt).build().expect("build"));
    let runner = {
        let srv = Arc::clone(&srv);
        std::thread::spawn(move || srv.run())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !srv.stats().expect("stats").running {
        assert!(std::time::Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    fs::write(mnt.join("f"), b"x").expect("write through the mount");
    srv.stop().expect("stop");
    runner.join().expect("thread").expect("run");
    assert!(!is_mounted(&mnt));
}

#[test]
fn bad_options_are_errors_with_the_library_message() {
    if let Some(why) = mount_unavailable() {
        return skip(&why);
    }
    let scratch = Scratch::new();
    let mnt = scratch.subdir("mnt");
    let e = Server::builder(scratch.dir.join("nope"), &mnt).build().expect_err("no backing dir");
    assert_eq!(errno(&e), Some(ENOENT), "{e}");
    let file = scratch.dir.join("file");
    fs::write(&file, b"").expect("write");
    let e = Server::builder(&file, &mnt).build().expect_err("a file as backing dir");
    assert_eq!(errno(&e), Some(ENOTDIR), "{e}");
    let e = Server::builder(&mnt, &mnt).queue_depth(65).build().expect_err("depth 65");
    assert_eq!(errno(&e), Some(EINVAL), "{e}");
    // The library's message is in the error, and its Display.
    let z = e.get_ref().and_then(|d| d.downcast_ref::<zcfuse::Error>()).expect("a zcfuse::Error inside");
    assert_eq!(z.errno(), EINVAL);
    assert!(!z.message().is_empty());
    assert_eq!(e.to_string(), format!("{} (os error {EINVAL})", z.message()));
    let e = Server::builder("a\0b", &mnt).build().expect_err("NUL in a path");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn options_reach_the_server() {
    let m = mount_or_skip!(|b| b
        .flags(ServerFlags::READ_ONLY)
        .queue_depth(2)
        .entry_timeout(Duration::ZERO)
        .attr_timeout(Duration::from_millis(1500)));
    let e = fs::write(m.path("f"), b"x").expect_err("write to a read-only mount");
    assert_eq!(e.raw_os_error(), Some(30 /* EROFS */), "{e}");
    let st = m.stats();
    if st.transport == Some(Transport::Uring) {
        assert_eq!(st.queue_depth, 2, "{st:?}");
    }
    assert!(ServerFlags::READ_ONLY.contains(ServerFlags::READ_ONLY));
    assert_eq!((ServerFlags::DEBUG | ServerFlags::HOOK_COPY).bits(), (1 << 3) | (1 << 4));
}

#[test]
fn hooks_see_ring_and_posix_bytes_in_place() {
    let written = Arc::new(AtomicU64::new(0));
    let read = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let m = {
        let (written, read, seen) = (Arc::clone(&written), Arc::clone(&read), Arc::clone(&seen));
        mount_or_skip!(move |b: zcfuse::ServerBuilder| b
            .on_write(move |info, data| {
                written.fetch_add(data.len() as u64, Ordering::Relaxed);
                seen.lock().unwrap().push((info.is_ring(), info.path().to_path_buf(), info.off(), data[0]));
            })
            .on_read(move |_info, data| {
                read.fetch_add(data.len() as u64, Ordering::Relaxed);
            }))
    };
    let mut s = Session::connect(&m.mnt).expect("connect");
    let mut arena = Arena::new(64 * KIB).expect("arena");
    s.share(&arena).expect("share");
    let f = m.open_rw("hooked");
    let file = s.attach(&f).expect("attach");
    arena.fill(0x5a);
    assert_eq!(s.pwrite(file, &arena, 4096, true).expect("ring write"), 64 * KIB);
    assert_eq!(s.pread(file, &mut arena[..8192], 4096, true).expect("ring read"), 8192);
    fs::write(m.path("posix"), [0x77u8; 100]).expect("posix write");
    assert_eq!(written.load(Ordering::Relaxed), 64 * KIB as u64 + 100);
    assert!(read.load(Ordering::Relaxed) >= 8192);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|(ring, p, off, b)| *ring && p.ends_with("hooked") && *off == 4096 && *b == 0x5a),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(ring, p, _, b)| !*ring && p.ends_with("posix") && *b == 0x77), "{seen:?}");
}

/// The typed counters of ServerStats (the frozen version-2 struct), by
/// their names in the library.
fn typed(st: &zcfuse::ServerStats) -> Vec<(&'static str, u64)> {
    vec![
        ("queues", st.queues.into()),
        ("queue_depth", st.queue_depth.into()),
        ("bytes_read", st.bytes_read),
        ("bytes_written", st.bytes_written),
        ("errors", st.errors),
        ("sessions", st.sessions),
        ("arenas", st.arenas),
        ("registered_bytes", st.registered_bytes),
        ("fixed_slots_used", st.fixed_slots_used),
        ("attached_files", st.attached_files),
        ("zc_ops", st.zc_ops),
        ("zc_errors", st.zc_errors),
        ("zc_read_bytes", st.zc_read_bytes),
        ("zc_write_bytes", st.zc_write_bytes),
        ("zero_copy_bytes", st.zero_copy_bytes),
        ("copied_bytes", st.copied_bytes),
        ("queue_high_water", st.queue_high_water),
        ("workers", st.workers),
    ]
}

#[test]
fn every_counter_by_name_in_one_snapshot() {
    let m = mount_or_skip!();
    fs::write(m.path("f"), vec![7u8; 64 * KIB]).expect("write through the mount");
    let before = m.stats();
    let counters = m.server().counters().expect("counters");
    let after = m.stats();
    // Names: non-empty, unique, in a fixed order, the same in stats().
    let names: Vec<&str> = counters.iter().map(|c| c.0).collect();
    assert!(names.iter().all(|n| !n.is_empty()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a name twice: {names:?}");
    assert_eq!(after.counters().iter().map(|c| c.0).collect::<Vec<_>>(), names);
    // Every typed field is a counter of the same name, its value between
    // the struct snapshots taken around it.
    for ((name, lo), (_, hi)) in typed(&before).into_iter().zip(typed(&after)) {
        let v = counters.iter().find(|c| c.0 == name).unwrap_or_else(|| panic!("no counter {name}: {names:?}")).1;
        assert!(lo.min(hi) <= v && v <= lo.max(hi), "{name} = {v}, the struct said {lo} then {hi}");
        assert!(after.get(name).is_some(), "{name}");
    }
    assert!(after.get("bytes_written").unwrap() >= 64 * KIB as u64);
    // Counters the struct lacks come by name.
    assert!(after.get("fast_reads").is_some(), "{names:?}");
    assert!(after.get("fs.inodes").expect("fs.inodes") >= 1);
    assert_eq!(after.get("read_only"), Some(0), "a bool is 0 or 1");
    assert_eq!(after.get("no_such_counter"), None);
    assert_eq!(after.get("fs"), None, "a part of the server, not a counter");
}

#[test]
fn opcode_names_come_from_the_library() {
    assert_eq!(zcfuse::opcode_name(zcfuse::ServerStats::FUSE_READ as u32), "READ");
    assert_eq!(zcfuse::opcode_name(zcfuse::ServerStats::FUSE_WRITE as u32), "WRITE");
    assert_eq!(zcfuse::opcode_name(26), "INIT");
    assert_eq!(zcfuse::opcode_name(7), "OP_7");
    assert_eq!(zcfuse::opcode_name(0), "OTHER");
    assert_eq!(zcfuse::opcode_name(64), "OTHER");
    assert_eq!(zcfuse::opcode_name(u32::MAX), "OTHER");
    assert!(std::ptr::eq(zcfuse::opcode_name(15), zcfuse::opcode_name(15)), "a static string");
    assert!((1..64).filter(|&op| !zcfuse::opcode_name(op).starts_with("OP_")).count() >= 50);
}

#[test]
fn limits_by_name() {
    if let Some(why) = mount_unavailable() {
        return skip(&why);
    }
    let names = zcfuse::limit_names();
    assert!(names.contains(&"sessions_per_user") && names.contains(&"hello_timeout_ms"), "{names:?}");
    let scratch = Scratch::new();
    let (b, mnt) = (scratch.subdir("b"), scratch.subdir("mnt"));
    let srv = Server::builder(&b, &mnt).limit("sessions_per_user", 3).build().expect("build with a limit");
    assert_eq!(srv.limit("sessions_per_user").expect("get"), 3);
    assert!(srv.limit("attached_files").expect("a default") > 0);
    let e = srv.limit("no_such_limit").expect_err("unknown name");
    assert_eq!(errno(&e), Some(2), "{e}");
    let e = Server::builder(&b, &mnt).limit("no_such_limit", 1).build().expect_err("unknown name at build");
    assert_eq!(errno(&e), Some(2), "{e}");
    let e = Server::builder(&b, &mnt).limit("fixed_slots", 1 << 40).build().expect_err("out of range");
    assert_eq!(errno(&e), Some(34), "{e}");
}
