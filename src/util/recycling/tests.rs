use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Recycling, HUGE, LARGE, PAGE, SLACK};

/// The system allocator, counting the blocks it hands out.
#[derive(Default)]
struct Counting(AtomicUsize);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn bytes(n: usize) -> Layout {
    Layout::from_size_align(n, 4).unwrap()
}

const MIB: usize = 1 << 20;

/// The length mapped for a block of `n` bytes: whole pages, and a page to place it in.
fn mapped(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE + PAGE
}

#[test]
fn small_and_overaligned_blocks_and_all_before_enabling_go_to_the_wrapped_allocator() {
    let recycling = Recycling::new(Counting::default());
    let allocate = |layout| unsafe {
        let p = recycling.alloc(layout);
        assert!(!p.is_null());
        recycling.dealloc(p, layout);
    };
    allocate(bytes(LARGE));
    assert_eq!(recycling.small.0.load(Ordering::Relaxed), 1);
    unsafe { recycling.enable() };
    allocate(bytes(LARGE - 1));
    allocate(Layout::from_size_align(LARGE, 2 * PAGE).unwrap());
    assert_eq!(recycling.small.0.load(Ordering::Relaxed), 3);
    assert_eq!(recycling.mapped(), (0, 0));
    allocate(bytes(LARGE));
    assert_eq!(recycling.small.0.load(Ordering::Relaxed), 3);
    assert_eq!(recycling.mapped(), (0, mapped(LARGE)));
}

fn enabled<A>(small: A) -> Recycling<A> {
    let recycling = Recycling::new(small);
    unsafe { recycling.enable() };
    recycling
}

#[test]
fn a_freed_block_serves_the_next_request_of_its_length_zeroed_where_asked() {
    let recycling = enabled(System);
    unsafe {
        let a = recycling.alloc_zeroed(bytes(MIB + 1));
        let len = mapped(MIB + 1);
        assert_eq!(recycling.mapped(), (len, 0));
        assert_eq!(a as usize % 64, 0);
        assert!(std::slice::from_raw_parts(a, MIB + 1)
            .iter()
            .all(|&b| b == 0));
        a.write_bytes(7, MIB + 1);
        recycling.dealloc(a, bytes(MIB + 1));
        assert_eq!(recycling.mapped(), (0, len));
        // Another length within the same pages is the same block.
        let b = recycling.alloc_zeroed(bytes(MIB + 2));
        assert_eq!(b, a);
        assert!(std::slice::from_raw_parts(b, MIB + 2)
            .iter()
            .all(|&b| b == 0));
        b.write_bytes(9, MIB);
        recycling.dealloc(b, bytes(MIB + 2));
        // Not zeroed unless asked: the last contents are still there.
        let c = recycling.alloc(bytes(MIB + 1));
        assert_eq!((c, *c), (a, 9));
        // Another length is another block.
        let d = recycling.alloc(bytes(2 * MIB));
        assert_ne!(d, c);
        assert_eq!(recycling.mapped(), (len + mapped(2 * MIB), 0));
        recycling.dealloc(c, bytes(MIB + 1));
        recycling.dealloc(d, bytes(2 * MIB));
    }
}

#[test]
fn kept_blocks_are_unmapped_oldest_first_to_stay_within_the_peak_and_slack() {
    let recycling = enabled(System);
    let (one, two_and_a_half) = (SLACK, SLACK / 2 * 5);
    unsafe {
        let a = recycling.alloc(bytes(one));
        let b = recycling.alloc(bytes(one));
        recycling.dealloc(a, bytes(one));
        recycling.dealloc(b, bytes(one));
        assert_eq!(recycling.mapped(), (0, 2 * mapped(one)));
        // 2.5 beside both kept would pass the peak of 2 and the slack of 1: both go.
        let c = recycling.alloc(bytes(two_and_a_half));
        assert_eq!(recycling.mapped(), (mapped(two_and_a_half), 0));
        recycling.dealloc(c, bytes(two_and_a_half));
        // 0.5 beside the 2.5 kept is within the peak of 2.5 and the slack.
        let d = recycling.alloc(bytes(one / 2));
        assert_eq!(
            recycling.mapped(),
            (mapped(one / 2), mapped(two_and_a_half))
        );
        recycling.dealloc(d, bytes(one / 2));
    }
}

#[test]
fn realloc_keeps_the_contents_across_small_and_large_blocks() {
    let recycling = enabled(System);
    unsafe {
        let mut p = recycling.alloc(bytes(1000));
        let mut len = 1000;
        for (i, byte) in std::slice::from_raw_parts_mut(p, len)
            .iter_mut()
            .enumerate()
        {
            *byte = i as u8;
        }
        for new_len in [LARGE + 5, 3 * MIB, 2000, 500] {
            p = recycling.realloc(p, bytes(len), new_len);
            assert!(!p.is_null());
            let kept = len.min(new_len).min(1000);
            let contents = std::slice::from_raw_parts(p, kept);
            assert!(contents.iter().enumerate().all(|(i, &b)| b == i as u8));
            len = new_len;
        }
        recycling.dealloc(p, bytes(len));
        assert_eq!(recycling.mapped().0, 0);
    }
}

#[test]
fn blocks_of_a_huge_page_or_more_start_on_one() {
    let recycling = enabled(System);
    unsafe {
        for n in [HUGE, 3 * HUGE + 5] {
            let p = recycling.alloc_zeroed(bytes(n));
            assert_eq!((p as usize & !(PAGE - 1)) % HUGE, 0);
            p.write_bytes(1, n);
            recycling.dealloc(p, bytes(n));
        }
        // Not moved to a new length, which would lose the alignment: a fresh mapping.
        let p = recycling.alloc(bytes(SLACK * 4));
        assert_eq!((p as usize & !(PAGE - 1)) % HUGE, 0);
        recycling.dealloc(p, bytes(SLACK * 4));
    }
}
