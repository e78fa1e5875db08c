//! Weights packed once for [`narrow`]'s kernel while a network is timed. Inside
//! [`with_weights_packed_once`], a convolution's weights are packed at their first use on this
//! thread and the packing is kept to the end of the scope, as a deployed runtime prepares its
//! weights when it loads a model; outside, every call packs its own (a training step's weights
//! change every step).
//!
//! Packing costs about one pass over the weights: on the 4×4 maps of a wide network at batch 1
//! (ResNet-18's last stage: 2.4 M weights, 16 positions) that is as much as the multiply.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::narrow::{self, Packed};

/// A weight tensor as the kernels see it: where its values lie, how many, and how they are
/// split into groups of `channels × k`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    at: usize,
    len: usize,
    groups: usize,
    channels: usize,
    k: usize,
}

thread_local! {
    /// The packings kept by the scope this thread is in, if it is in one.
    static KEPT: RefCell<Option<HashMap<Key, Arc<[Packed]>>>> = const { RefCell::new(None) };
}

/// Runs `work` with each convolution weight that this thread packs packed only once. The
/// caller promises that no weight used inside changes or is freed before `work` returns
/// (the packing is found again by the weights' address).
pub fn with_weights_packed_once<T>(work: impl FnOnce() -> T) -> T {
    /// Ends the outermost scope, also when `work` panics.
    struct End(bool);
    impl Drop for End {
        fn drop(&mut self) {
            if self.0 {
                KEPT.set(None);
            }
        }
    }
    let outermost = KEPT.with_borrow_mut(|kept| {
        let outermost = kept.is_none();
        kept.get_or_insert_with(HashMap::new);
        outermost
    });
    let _end = End(outermost);
    work()
}

/// Whether this thread is inside [`with_weights_packed_once`].
pub(super) fn packing_kept() -> bool {
    KEPT.with_borrow(Option::is_some)
}

/// The weights of each of `groups` groups (`[channels × k]` each, one after the other in `w`)
/// packed for the kernel: kept from an earlier call in this thread's scope, if there is one.
pub(super) fn packed(w: &[f32], groups: usize, channels: usize, k: usize) -> Arc<[Packed]> {
    let pack = || -> Arc<[Packed]> {
        (0..groups)
            .map(|group| narrow::pack_weights(&w[group * channels * k..], channels, k))
            .collect()
    };
    let key = Key {
        at: w.as_ptr() as usize,
        len: w.len(),
        groups,
        channels,
        k,
    };
    KEPT.with_borrow_mut(|kept| match kept {
        None => pack(),
        Some(kept) => kept.entry(key).or_insert_with(pack).clone(),
    })
}
