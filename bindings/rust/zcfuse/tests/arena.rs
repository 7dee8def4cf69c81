//! Arenas on their own (no mount needed): sizes, memory, import, regions
//! (split, join, back to the arena, the mapping they keep alive), and the
//! library's version.

use std::ffi::{c_char, c_int, c_uint};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use zcfuse::{errno, Arena, Completion, Op, Region};

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
    send_sync::<Region>();
    send_sync::<Op>();
    send_sync::<Completion>();
}

#[test]
fn regions_split_and_join_without_overlap() {
    let mut a = Arena::new(16 << 10).expect("arena");
    for (i, b) in a.iter_mut().enumerate() {
        *b = (i / 4096) as u8;
    }
    let mut r = a.into_region();
    assert_eq!((r.offset(), r.len(), r.arena_len()), (0, 16 << 10, 16 << 10));
    let tail = r.split_off(12 << 10);
    let head = r.split_to(4096);
    assert_eq!((head.offset(), head.len()), (0, 4096));
    assert_eq!((r.offset(), r.len()), (4096, 8192));
    assert_eq!((tail.offset(), tail.len()), (12 << 10, 4096));
    assert!(head.iter().all(|&b| b == 0) && tail.iter().all(|&b| b == 3));
    assert_eq!((r[0], r[8191]), (1, 2));
    assert!(head.same_arena(&tail));

    // Only the next region joins, in order.
    let (tail, head) = tail.join(head).expect_err("not adjacent in that order");
    let (head, tail) = head.join(tail).expect_err("a gap between");
    let mid = head.join(r).expect("adjacent");
    let whole = mid.join(tail).expect("adjacent");
    assert_eq!((whole.offset(), whole.len()), (0, 16 << 10));

    // Chunks cover the region in order, the last one short.
    let mut chunks = whole.into_chunks(5000);
    assert_eq!(
        chunks.iter().map(|c| (c.offset(), c.len())).collect::<Vec<_>>(),
        [(0, 5000), (5000, 5000), (10000, 5000), (15000, 1384)]
    );
    chunks[3].fill(9);
    // An arena comes back only from a region that covers it.
    let last = chunks.pop().unwrap();
    let first = chunks.into_iter().reduce(|a, b| a.join(b).expect("adjacent")).unwrap();
    let first = first.into_arena().expect_err("a part of the arena");
    let a = first.join(last).expect("adjacent").into_arena().expect("the whole arena");
    assert_eq!(a.len(), 16 << 10);
    assert_eq!(a[16383], 9);
    assert!(Arena::new(4096).expect("arena").into_region().into_chunks(4096).pop().unwrap().into_arena().is_ok());
    assert!(Region::into_chunks(Arena::new(4096).expect("arena").into_region().split_off(4096), 7).is_empty());
}

#[test]
fn regions_of_different_arenas_do_not_join() {
    let a = Arena::new(4096).expect("arena").into_region();
    let mut b = Arena::new(8192).expect("arena").into_region();
    let b2 = b.split_off(4096);
    assert!(!a.same_arena(&b));
    // a ends at 4096 and b2 starts there, but in another arena.
    let (a, _b2) = a.join(b2).expect_err("another arena");
    assert_eq!(a.len(), 4096);
}

#[test]
fn a_region_keeps_its_arena_mapped() {
    let mut r = Arena::new(8192).expect("arena").into_region();
    let keep = r.split_off(4096);
    drop(r);
    // The other half's memory is still mapped and writable, from another thread too.
    let keep = std::thread::spawn(move || {
        let mut keep = keep;
        keep.fill(0x42);
        keep
    })
    .join()
    .expect("thread");
    assert!(keep.iter().all(|&b| b == 0x42));
    // A forgotten region leaks its count: the mapping stays, nothing dangles.
    let mut r = Arena::new(4096).expect("arena").into_region();
    let piece = r.split_off(2048);
    std::mem::forget(piece);
    r.fill(1);
    assert!(r.into_arena().is_err(), "half of the arena");
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
