//! Arenas on their own (no mount needed): sizes, memory, import, and the
//! library's version.

use std::ffi::{c_char, c_int, c_uint};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use zcfuse::{errno, Arena};

const EINVAL: i32 = 22;
const EPERM: i32 = 1;

#[test]
fn sizes_are_whole_pages_up_to_the_maximum() {
    let a = Arena::new(4096).expect("one page");
    assert_eq!(a.len(), 4096);
    assert!(a.iter().all(|&b| b == 0), "a new arena is zero-filled");
    assert!(!a.is_shared());
    for bad in [0, 4095, 4097, Arena::MAX_SIZE + 4096] {
        let e = Arena::new(bad).expect_err("a bad size");
        assert_eq!(errno(&e), Some(EINVAL), "size {bad}: {e}");
    }
    let e = Arena::new(4097).expect_err("not whole pages");
    assert!(e.to_string().contains("4097"), "the message names the size: {e}");
}

#[test]
fn an_arena_is_memory_and_a_memfd() {
    let mut a = Arena::new(64 << 10).expect("arena");
    a[..5].copy_from_slice(b"hello");
    a[65535] = 9;
    assert_eq!(&a[..5], b"hello");
    // The memfd holds the same bytes.
    let mut buf = [0u8; 5];
    let f = File::from(a.as_fd().try_clone_to_owned().expect("dup"));
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).expect("pread the memfd");
    assert_eq!(&buf, b"hello");
    assert_eq!(f.metadata().expect("fstat").len(), 64 << 10);
    assert!(a.as_raw_fd() >= 0);
    let moved = std::thread::spawn(move || {
        a[1] = b'a';
        a
    })
    .join()
    .expect("thread");
    assert_eq!(&moved[..5], b"hallo");
}

#[test]
fn import_takes_a_sealed_memfd_only() {
    let a = Arena::new(8192).expect("arena");
    // SAFETY: nothing writes the memfd while `b` borrows it (the test
    // only reads `b` after writing through `a` has ended).
    let b = unsafe { Arena::import(a.as_fd(), 8192) }.expect("import an arena's own memfd");
    let mut a = a;
    a[100] = 42;
    assert_eq!(b[100], 42, "the two mappings share pages");
    // SAFETY: as above.
    let e = unsafe { Arena::import(a.as_fd(), 16384) }.expect_err("larger than the memfd");
    assert_eq!(errno(&e), Some(EINVAL), "{e}");

    let plain = File::open("/proc/self/exe").expect("open a regular file");
    // SAFETY: the import fails.
    let e = unsafe { Arena::import(plain.as_fd(), 4096) }.expect_err("not a memfd");
    assert_eq!(errno(&e), Some(EINVAL), "{e}");

    extern "C" {
        fn memfd_create(name: *const c_char, flags: c_uint) -> c_int;
        fn ftruncate(fd: c_int, len: i64) -> c_int;
    }
    // SAFETY: a NUL-terminated name; the fd returned is ours.
    let fd = unsafe {
        memfd_create(c"unsealed".as_ptr(), 1 /* MFD_CLOEXEC */)
    };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: fd is a fresh fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fd is open.
    assert_eq!(unsafe { ftruncate(fd.as_raw_fd(), 4096) }, 0);
    // SAFETY: the import fails.
    let e = unsafe { Arena::import(fd.as_fd(), 4096) }.expect_err("a memfd without F_SEAL_SHRINK");
    assert_eq!(errno(&e), Some(EPERM), "{e}");
}

#[test]
fn arenas_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Arena>();
    send_sync::<zcfuse::Server>();
    fn send<T: Send>() {}
    send::<zcfuse::Session>();
    send::<zcfuse::Op<'static>>();
}

#[test]
fn the_library_is_the_header_version() {
    let v = zcfuse::version();
    let (major, minor, patch) = zcfuse::HEADER_VERSION;
    let lib: Vec<u32> = v.split('.').map(|p| p.parse().expect("a number")).collect();
    assert_eq!(lib.len(), 3, "{v}");
    // The same MAJOR, and not older than the header the crate was written for.
    assert_eq!(lib[0], major, "library {v}, header {major}.{minor}.{patch}");
    assert!((lib[1], lib[2]) >= (minor, patch), "library {v} is older than the header {major}.{minor}.{patch}");
}
