//! Runs the zc_cp example's copy on live mounts: a 5 MiB random file
//! within one mount, and an odd-sized one from one mount to another.

mod common;

#[allow(dead_code)] // its main
#[path = "../examples/zc_cp.rs"]
mod zc_cp;

use std::ffi::OsString;
use std::fs;

use common::*;

#[test]
fn zc_cp_copies_5mib_within_a_mount_zero_copy() {
    const SIZE: usize = 5 * MIB;
    let m = mount_or_skip!();
    let data = random_bytes(SIZE);
    fs::write(m.path("src"), &data).expect("write src through the mount");
    let before = m.stats();

    let args: Vec<OsString> = vec!["zc_cp".into(), m.path("src").into(), m.path("dst").into()];
    let n = zc_cp::run(args).expect("zc_cp");
    assert_eq!(n, SIZE as u64);

    let after = m.stats();
    assert!(fs::read(m.path("dst")).expect("read dst") == data, "dst differs from src");
    assert!(fs::read(m.backing.join("dst")).expect("read the backing dst") == data);
    // Every byte moved by reference, twice (in and out), and not through FUSE.
    assert_eq!(after.zero_copy_bytes - before.zero_copy_bytes, 2 * SIZE as u64);
    assert_eq!(after.copied_bytes, before.copied_bytes);
    assert_eq!(fuse_rw(&after), fuse_rw(&before), "the copy went through FUSE READ/WRITE");
    // 1 MiB ops: 5 reads and 5 writes, and the fsync.
    assert_eq!(after.zc_ops - before.zc_ops, 11);
}

#[test]
fn zc_cp_copies_between_two_mounts_and_replaces_dst() {
    const SIZE: usize = 17 * MIB + 12345; // more than one window, a short tail
    let m1 = mount_or_skip!();
    let m2 = mount_or_skip!();
    let data = random_bytes(SIZE);
    fs::write(m1.path("src"), &data).expect("write src");
    fs::write(m2.path("dst"), vec![1u8; SIZE + 999]).expect("write an older, longer dst");
    let (b1, b2) = (m1.stats(), m2.stats());

    let n = zc_cp::copy(&m1.path("src"), &m2.path("dst")).expect("zc_cp across mounts");
    assert_eq!(n, SIZE as u64);
    let (a1, a2) = (m1.stats(), m2.stats());
    assert!(fs::read(m2.path("dst")).expect("read dst") == data, "dst differs from src");
    assert_eq!(a1.zc_read_bytes - b1.zc_read_bytes, SIZE as u64);
    assert_eq!(a2.zc_write_bytes - b2.zc_write_bytes, SIZE as u64);
    assert_eq!((fuse_rw(&a1), fuse_rw(&a2)), (fuse_rw(&b1), fuse_rw(&b2)));
}

#[test]
fn zc_cp_of_an_empty_file_and_its_errors() {
    let m = mount_or_skip!();
    fs::write(m.path("empty"), b"").expect("write");
    assert_eq!(zc_cp::copy(&m.path("empty"), &m.path("empty2")).expect("copy"), 0);
    assert_eq!(fs::metadata(m.path("empty2")).expect("stat").len(), 0);

    let e = zc_cp::run(vec![OsString::from("zc_cp")]).expect_err("no arguments");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    // Outside a zcfuse mount there is no server to connect to.
    let outside = m.scratch().join("outside");
    fs::write(&outside, b"x").expect("write");
    let e = zc_cp::copy(&outside, &m.scratch().join("outside2")).expect_err("not on a zcfuse mount");
    assert!(e.to_string().contains("/dev/shm"), "{e}");
}

#[test]
fn the_zc_cp_program_runs() {
    // target/debug/deps/zc_cp-HASH -> target/debug/examples/zc_cp
    let exe = std::env::current_exe().expect("current_exe");
    let exe = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples/zc_cp");
    if !exe.exists() {
        // `cargo test` builds the examples first; `cargo test --test zc_cp` does not.
        eprintln!("SKIP: {} is not built (run plain `cargo test`)", exe.display());
        return;
    }
    let m = mount_or_skip!();
    let data = random_bytes(300 * KIB + 1);
    fs::write(m.path("src"), &data).expect("write src");
    let out = std::process::Command::new(&exe).arg(m.path("src")).arg(m.path("dst")).output().expect("run zc_cp");
    assert!(out.status.success(), "zc_cp failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("zc_cp: copied {} bytes zero-copy", data.len()));
    assert!(fs::read(m.path("dst")).expect("read dst") == data);

    let out = std::process::Command::new(&exe).arg(m.path("missing")).arg(m.path("dst")).output().expect("run zc_cp");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("zc_cp: ") && err.contains("missing"), "{err}");
}
