//! A deterministic synthetic dataset with learnable class structure, for smoke tests.
//!
//! Every class has a prototype image (a sum of random low-frequency colour waves); a sample is
//! its class prototype shifted by up to two pixels plus Gaussian noise. A small CNN learns it in
//! an epoch or two, and the same seed always gives the same bytes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{Dataset, Split};
use crate::config::SyntheticConfig;

const NOISE_STD: f32 = 20.0;
const MAX_SHIFT: i64 = 2;

pub fn generate(config: SyntheticConfig, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_da7a);
    let size = config.image_size;
    let prototypes: Vec<Vec<f32>> = (0..config.classes)
        .map(|_| prototype(size, &mut rng))
        .collect();
    let mut split = |n: usize| sample_split(&prototypes, n, size, &mut rng);
    let train = split(config.train);
    let test = split(config.test);
    Dataset::new(train, test)
}

/// `[3, size, size]` values in [0, 255]: three random waves per channel around mid-grey.
fn prototype(size: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut image = vec![128.0f32; 3 * size * size];
    for channel in image.chunks_mut(size * size) {
        for _ in 0..3 {
            let (fy, fx) = (rng.random_range(0.5..2.5f32), rng.random_range(0.5..2.5f32));
            let (phase, amplitude) = (
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(20.0..45.0f32),
            );
            for (p, value) in channel.iter_mut().enumerate() {
                let (y, x) = (
                    (p / size) as f32 / size as f32,
                    (p % size) as f32 / size as f32,
                );
                *value += amplitude * (std::f32::consts::TAU * (fy * y + fx * x) + phase).sin();
            }
        }
    }
    image
}

fn sample_split(prototypes: &[Vec<f32>], n: usize, size: usize, rng: &mut ChaCha8Rng) -> Split {
    let noise = Normal::new(0.0f32, NOISE_STD).expect("positive std");
    let mut images = Vec::with_capacity(n * 3 * size * size);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.random_range(0..prototypes.len());
        let (dy, dx) = (
            rng.random_range(-MAX_SHIFT..=MAX_SHIFT),
            rng.random_range(-MAX_SHIFT..=MAX_SHIFT),
        );
        for c in 0..3 {
            for y in 0..size as i64 {
                for x in 0..size as i64 {
                    let sy = (y + dy).clamp(0, size as i64 - 1) as usize;
                    let sx = (x + dx).clamp(0, size as i64 - 1) as usize;
                    let value = prototypes[class][(c * size + sy) * size + sx] + noise.sample(rng);
                    images.push(value.clamp(0.0, 255.0) as u8);
                }
            }
        }
        labels.push(class as u8);
    }
    Split {
        images,
        labels,
        channels: 3,
        height: size,
        width: size,
        classes: prototypes.len(),
    }
}
