//! Op outputs that are written without being zeroed first. An output is a fresh block of up to
//! tens of MiB, often one the allocator kept (so not zero already), and a memset of it is a
//! pass over memory on one thread before the op's own pass: 18% of BatchNorm's profile samples
//! when outputs were `vec![0.0; len]`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `len` values that `fill` initialises, handed to it uninitialised.
///
/// # Safety
///
/// `fill` must write every value it is handed.
pub(super) unsafe fn filled_by(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote the first `len` values (the caller's promise). A panic in `fill`
    // leaves the length at 0.
    unsafe { out.set_len(len) };
    out
}

/// `len` values that `fill(index, chunk)` writes, chunk by chunk (`chunk` values each, the last
/// one shorter), in parallel.
///
/// # Safety
///
/// `fill` must write every value of each chunk it is handed.
pub(super) unsafe fn written(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let fill_all = |out: &mut [MaybeUninit<f32>]| {
        let chunks = out.par_chunks_mut(chunk.max(1)).enumerate();
        chunks.for_each(|(i, values)| fill(i, values));
    };
    // SAFETY: the chunks cover the values, and `fill` writes each chunk (the caller's promise).
    unsafe { filled_by(len, fill_all) }
}

/// `values` set to zero, as initialised values: for a part of an output that is summed into,
/// zeroed just before, while it is in cache.
pub(super) fn zeroed(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    values.fill(MaybeUninit::new(0.0));
    // SAFETY: every value was just written, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `values` as an output a kernel that writes only initialised values can take.
///
/// # Safety
///
/// Whatever writes through the result must write initialised values only.
pub(super) unsafe fn as_uninit(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout; the caller keeps the values initialised.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_written_whole_and_in_place() {
        for (len, chunk) in [(0, 4), (1, 4), (10, 4), (12, 4), (5, 0)] {
            // SAFETY: every value of each chunk is written.
            let out = unsafe {
                written(len, chunk, |i, values| {
                    for (j, v) in values.iter_mut().enumerate() {
                        v.write((i * chunk.max(1) + j) as f32);
                    }
                })
            };
            assert_eq!(out, (0..len).map(|v| v as f32).collect::<Vec<_>>());
        }
        let mut values = [MaybeUninit::new(7.0f32); 3];
        assert_eq!(zeroed(&mut values), &[0.0; 3]);
    }
}
