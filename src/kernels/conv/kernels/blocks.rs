//! How a convolution's work is cut: blocks of images that share a multiply, the buffers each
//! task keeps, and the loops that hand blocks or images to the threads.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::Geometry;

/// Worker threads: rayon's pool size.
pub(super) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Columns a multiply should have at least. A multiply per image would be tiny on small maps
/// (64 columns for an 8×8 map), so the images of a block share one multiply, their columns
/// side by side, and the products are scattered back. 256 measured best on ResNet-20 (2 cores):
/// larger blocks overflow L2 with the column matrix.
const TARGET_COLUMNS: usize = 256;

/// Images per multiply, and threads inside each multiply (when blocks are fewer than threads).
pub(super) fn blocking(g: &Geometry) -> (usize, usize) {
    let images = TARGET_COLUMNS
        .div_ceil(g.positions())
        .clamp(1, g.batch.max(1));
    let inner = if g.batch.div_ceil(images) >= threads() {
        1
    } else {
        threads()
    };
    (images, inner)
}

/// Per-task buffers: the block's column matrix and a product (or gathered gradient) matrix.
pub(super) struct Scratch {
    pub(super) cols: Vec<f32>,
    pub(super) product: Vec<f32>,
    /// A product as the multiply writes it, column-major, before it is turned around (sized
    /// on first use).
    pub(super) transposed: Vec<f32>,
}

impl Scratch {
    pub(super) fn new(g: &Geometry, images: usize) -> Self {
        let width = images * g.positions();
        let direct = images == 1 && g.is_pointwise();
        Scratch {
            cols: vec![0.0; if direct { 0 } else { g.col_rows() * width }],
            product: vec![
                0.0;
                if images == 1 {
                    0
                } else {
                    g.out_per_group() * width
                }
            ],
            transposed: Vec::new(),
        }
    }
}

/// Runs `f(first, inputs, outputs, scratch)` over blocks of `images` images (`first` the index
/// of a block's first image), in parallel when `inner` is 1 (each block on one thread), in
/// order otherwise (threads inside each multiply). `f` is handed its block's outputs
/// uninitialised.
pub(super) fn for_each_block(
    g: &Geometry,
    (images, inner): (usize, usize),
    (inputs, input_len): (&[f32], usize),
    (outputs, output_len): (&mut [MaybeUninit<f32>], usize),
    f: impl Fn(usize, &[f32], &mut [MaybeUninit<f32>], &mut Scratch) + Sync,
) {
    assert_eq!(inputs.len() / input_len, g.batch);
    assert_eq!(outputs.len(), g.batch * output_len);
    let scratch = || Scratch::new(g, images);
    let pairs = inputs
        .par_chunks(images * input_len)
        .zip(outputs.par_chunks_mut(images * output_len));
    if inner == 1 {
        pairs
            .enumerate()
            .for_each_init(scratch, |s, (b, (i, o))| f(b * images, i, o, s));
    } else {
        let mut s = scratch();
        let pairs = inputs
            .chunks(images * input_len)
            .zip(outputs.chunks_mut(images * output_len));
        pairs
            .enumerate()
            .for_each(|(b, (i, o))| f(b * images, i, o, &mut s));
    }
}

/// Runs `f(index, input, output, threads)` on every image: in parallel over the images when
/// there are enough of them, with the threads inside `f` otherwise. `f` is handed the image's
/// output uninitialised.
pub(super) fn for_each_image(
    g: &Geometry,
    (inputs, input_len): (&[f32], usize),
    (outputs, output_len): (&mut [MaybeUninit<f32>], usize),
    f: impl Fn(usize, &[f32], &mut [MaybeUninit<f32>], usize) + Sync,
) {
    assert_eq!(inputs.len() / input_len, g.batch);
    assert_eq!(outputs.len(), g.batch * output_len);
    if g.batch >= threads() {
        let pairs = inputs
            .par_chunks(input_len)
            .zip(outputs.par_chunks_mut(output_len));
        pairs.enumerate().for_each(|(n, (i, o))| f(n, i, o, 1));
    } else {
        let pairs = inputs.chunks(input_len).zip(outputs.chunks_mut(output_len));
        pairs
            .enumerate()
            .for_each(|(n, (i, o))| f(n, i, o, threads()));
    }
}
