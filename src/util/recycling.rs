//! A global allocator that recycles large blocks: every op allocates its output afresh, in the
//! same sizes on every pass. Blocks of at least [`LARGE`] bytes are mapped from the OS and, when
//! freed, kept for the next request of the same length, so a pass reuses the last pass's pages
//! without faulting them in again. Kept blocks are unmapped, oldest first, where a new block
//! would take the mapped total past the most the live blocks have needed at once (and a
//! [`SLACK`]): the peak stays near the program's own, without the fragmentation of a general
//! allocator that keeps what it frees. Blocks of a huge page or more lie on huge pages.
//! Smaller blocks go to the wrapped allocator, and so do all blocks until [`Recycling::enable`].
//!
//! Against mimalloc keeping everything it frees (which backs it with transparent huge pages
//! too): ResNet-50's training peak falls from 5.5 to 3.8 GB, and ResNet-20/56 train at the same
//! speed (`paper_figures/benchmarks.md`).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Blocks of at least this many bytes are recycled.
pub const LARGE: usize = 256 << 10;
const PAGE: usize = 4096;
/// A transparent huge page.
const HUGE: usize = 2 << 20;
/// How far past the peak the mapped total may go before kept blocks are unmapped: blocks of
/// one length are needed again soon after the peak, and unmapping them at the peak only to
/// map them again costs page faults on every step.
const SLACK: usize = 128 << 20;
/// Freed blocks kept at most (each a few hundred KiB or more).
const SLOTS: usize = 1024;

/// Large blocks recycled, smaller ones from `A`.
pub struct Recycling<A> {
    small: A,
    on: AtomicBool,
    large: Mutex<Blocks>,
}

/// The large blocks' bookkeeping.
struct Blocks {
    /// Freed blocks (address, mapped length), oldest first.
    free: [(usize, usize); SLOTS],
    kept: usize,
    /// Bytes mapped in blocks in use, and in `free`.
    live_bytes: usize,
    kept_bytes: usize,
    /// The most `live_bytes` has been.
    peak_bytes: usize,
    /// Blocks mapped so far: each starts at another cache-line offset in its first page, so
    /// that arrays used together do not all fall into the same L1 sets.
    colors: usize,
}

impl<A> Recycling<A> {
    pub const fn new(small: A) -> Self {
        Recycling {
            small,
            on: AtomicBool::new(false),
            large: Mutex::new(Blocks {
                free: [(0, 0); SLOTS],
                kept: 0,
                live_bytes: 0,
                kept_bytes: 0,
                peak_bytes: 0,
                colors: 0,
            }),
        }
    }

    /// Recycles the large blocks allocated from now on.
    ///
    /// # Safety
    /// No block of [`LARGE`] bytes or more may be live: its release would be taken for a
    /// recycled block's. Call it first thing in `main`.
    pub unsafe fn enable(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    fn recycles(&self, layout: Layout) -> bool {
        self.on.load(Ordering::Relaxed) && layout.size() >= LARGE && layout.align() <= PAGE
    }

    fn blocks(&self) -> MutexGuard<'_, Blocks> {
        // Nothing panics while the lock is held.
        self.large.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes mapped in large blocks: in use, and kept for reuse.
    pub fn mapped(&self) -> (usize, usize) {
        let blocks = self.blocks();
        (blocks.live_bytes, blocks.kept_bytes)
    }
}

/// The length mapped for `layout`: whole pages, and one more for the offset in the first.
fn mapped_len(layout: Layout) -> usize {
    layout.size().div_ceil(PAGE) * PAGE + PAGE
}

impl Blocks {
    /// A kept block of `len` bytes, the most recently freed, if there is one.
    fn reuse(&mut self, len: usize, align: usize) -> Option<usize> {
        let i = (0..self.kept)
            .rev()
            .find(|&i| self.free[i].1 == len && self.free[i].0.is_multiple_of(align))?;
        let (address, _) = self.free[i];
        self.free.copy_within(i + 1..self.kept, i);
        self.kept -= 1;
        self.kept_bytes -= len;
        self.live_bytes += len;
        Some(address)
    }

    /// Takes the oldest kept block out, to be unmapped.
    fn evict(&mut self) -> (usize, usize) {
        let oldest = self.free[0];
        self.free.copy_within(1..self.kept, 0);
        self.kept -= 1;
        self.kept_bytes -= oldest.1;
        oldest
    }
}

// SAFETY: large blocks are anonymous mappings, each used from an offset in its first page that
// is a multiple of its alignment (at most a page), `size` long past that offset, and unmapped
// only when neither in use nor kept; everything else is the wrapped allocator's.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Recycling<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.recycles(layout) {
            return self.small.alloc(layout);
        }
        self.take(mapped_len(layout), layout.align()).0
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.recycles(layout) {
            return self.small.alloc_zeroed(layout);
        }
        let (block, fresh) = self.take(mapped_len(layout), layout.align());
        // Fresh mappings read as zero already (and stay untouched until written).
        if !fresh && !block.is_null() {
            block.write_bytes(0, layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.recycles(layout) {
            return self.small.dealloc(ptr, layout);
        }
        let len = mapped_len(layout);
        let mut blocks = self.blocks();
        blocks.live_bytes -= len;
        let evicted = (blocks.kept == SLOTS).then(|| blocks.evict());
        let kept = blocks.kept;
        blocks.free[kept] = (ptr as usize, len);
        blocks.kept += 1;
        blocks.kept_bytes += len;
        drop(blocks);
        if let Some((address, len)) = evicted {
            unmap(address, len);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !self.recycles(layout) && !self.recycles(new_layout) {
            return self.small.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            new.copy_from_nonoverlapping(ptr, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

impl<A> Recycling<A> {
    /// A block of `len` (whole pages) bytes, and whether it was freshly mapped; null if the OS
    /// has no memory for it.
    unsafe fn take(&self, len: usize, align: usize) -> (*mut u8, bool) {
        // A kept block that has to go to make room is remapped to the new length rather than
        // unmapped: its pages, already faulted in, move with it.
        let mut moved = None;
        loop {
            let mut blocks = self.blocks();
            if let Some(address) = blocks.reuse(len, align) {
                drop(blocks);
                if let Some((address, len)) = moved {
                    unmap(address, len);
                }
                return (address as *mut u8, false);
            }
            // Making room by unmapping the oldest kept blocks keeps the mapped total within
            // the peak and the slack.
            let limit = (blocks.peak_bytes + SLACK).max(blocks.live_bytes + len);
            if blocks.kept > 0 && blocks.live_bytes + blocks.kept_bytes + len > limit {
                let evicted = blocks.evict();
                drop(blocks);
                if let Some((address, len)) = moved.replace(evicted) {
                    unmap(address, len);
                }
                continue;
            }
            blocks.live_bytes += len;
            blocks.peak_bytes = blocks.peak_bytes.max(blocks.live_bytes);
            break;
        }
        let (block, fresh) = match moved {
            // Moving a huge block would lose its alignment to huge pages.
            Some((address, old_len)) if len < HUGE => {
                let block = libc::mremap(
                    (address & !(PAGE - 1)) as *mut libc::c_void,
                    old_len,
                    len,
                    libc::MREMAP_MAYMOVE,
                );
                if block == libc::MAP_FAILED {
                    unmap(address, old_len);
                }
                (block, false)
            }
            Some((address, old_len)) => {
                unmap(address, old_len);
                (map(len), true)
            }
            None => (map(len), true),
        };
        if block == libc::MAP_FAILED {
            self.blocks().live_bytes -= len;
            return (std::ptr::null_mut(), true);
        }
        let color = match moved {
            Some((address, _)) => address % PAGE / align * align,
            None => {
                let mut blocks = self.blocks();
                blocks.colors += 1;
                blocks.colors * 320 % PAGE / align * align
            }
        };
        (block.cast::<u8>().add(color), fresh)
    }
}

/// A fresh mapping of `len` bytes. One of a huge page or more starts on a huge page and is
/// advised to use them: transparent huge pages then back all of it but its tail, and every
/// pass over it misses the TLB 512 times less often.
unsafe fn map(len: usize) -> *mut libc::c_void {
    let extra = if len >= HUGE { HUGE } else { 0 };
    let block = libc::mmap(
        std::ptr::null_mut(),
        len + extra,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        0,
    );
    if block == libc::MAP_FAILED || extra == 0 {
        return block;
    }
    let start = (block as usize).next_multiple_of(HUGE);
    let head = start - block as usize;
    if head > 0 {
        libc::munmap(block, head);
    }
    if extra > head {
        libc::munmap((start + len) as *mut libc::c_void, extra - head);
    }
    libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    start as *mut libc::c_void
}

unsafe fn unmap(address: usize, len: usize) {
    libc::munmap((address & !(PAGE - 1)) as *mut libc::c_void, len);
}

#[cfg(test)]
mod tests;
