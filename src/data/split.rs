//! One split of a dataset in memory, and the subsets and seeded draws taken of it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::DataError;
use crate::config::SubsetMode;

/// One split of a dataset: `images` is `[N, C, H, W]` row-major `u8`, `labels` is `[N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The first `n` images, or `n` images spread over the classes (the first `n / classes`
    /// of every class, one more of the first `n % classes` classes; file order kept). Refused
    /// when the split cannot provide them: a subset is never silently smaller than asked.
    pub fn subset(
        &self,
        n: usize,
        mode: SubsetMode,
        key: &'static str,
        source: &str,
    ) -> Result<Split, DataError> {
        let short = |message: String| DataError::Subset { key, message };
        let keep: Vec<usize> = match mode {
            SubsetMode::First => {
                if n > self.len() {
                    return Err(short(format!(
                        "asks for {n} images, but {source} holds {}",
                        self.len()
                    )));
                }
                (0..n).collect()
            }
            SubsetMode::PerClass => {
                let wanted = |c: usize| n / self.classes + usize::from(c < n % self.classes);
                let mut taken = vec![0usize; self.classes];
                let keep: Vec<usize> = (0..self.len())
                    .filter(|&i| {
                        let c = self.labels[i] as usize;
                        taken[c] += 1;
                        taken[c] <= wanted(c)
                    })
                    .collect();
                if let Some(c) = (0..self.classes).find(|&c| taken[c] < wanted(c)) {
                    return Err(short(format!(
                        "asks for {} images of class {c}, but {source} holds {}",
                        wanted(c),
                        taken[c]
                    )));
                }
                keep
            }
        };
        Ok(self.take(&keep))
    }

    /// Splits off `n` images drawn at random from `seed` (both parts keep file order): the
    /// rest, and the images drawn.
    pub fn hold_out(&self, n: usize, seed: u64, source: &str) -> Result<(Split, Split), DataError> {
        if n >= self.len() {
            return Err(DataError::Subset {
                key: "data.validation",
                message: format!(
                    "holds out {n} images, but {source} has {} training images to hold them out of",
                    self.len()
                ),
            });
        }
        let is_drawn = self.drawn(n, seed);
        let (drawn, rest): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| is_drawn[i]);
        Ok((self.take(&rest), self.take(&drawn)))
    }

    /// `n` images drawn at random from `seed`, in file order: the images `hold_out` would hold
    /// out, and all of them when `n` is the split's size. `key` names the setting that asks.
    pub fn draw(
        &self,
        n: usize,
        seed: u64,
        key: &'static str,
        source: &str,
    ) -> Result<Split, DataError> {
        if n > self.len() {
            return Err(DataError::Subset {
                key,
                message: format!("draws {n} images, but {source} holds {}", self.len()),
            });
        }
        let is_drawn = self.drawn(n, seed);
        let drawn: Vec<usize> = (0..self.len()).filter(|&i| is_drawn[i]).collect();
        Ok(self.take(&drawn))
    }

    /// Which images a seeded draw of `n` (at most the split's size) takes.
    fn drawn(&self, n: usize, seed: u64) -> Vec<bool> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut is_drawn = vec![false; self.len()];
        for i in rand::seq::index::sample(&mut rng, self.len(), n) {
            is_drawn[i] = true;
        }
        is_drawn
    }

    /// The images at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Split {
        Split {
            images: indices
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.empty_like()
        }
    }

    /// A split with no images, of this one's image shape and classes.
    pub fn empty_like(&self) -> Split {
        Split {
            images: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::SyntheticConfig;
    use crate::data::synthetic;

    #[test]
    fn a_held_out_split_is_seeded_disjoint_and_keeps_file_order() {
        let config = SyntheticConfig {
            train: 200,
            test: 10,
            classes: 4,
            image_size: 8,
        };
        let data = synthetic::generate(config, 1);
        let (rest, drawn) = data.train.hold_out(50, 3, "here").unwrap();
        assert_eq!((rest.len(), drawn.len()), (150, 50));
        // Every training image lands in exactly one part, each part in file order.
        let position = |image: &[u8]| (0..200).find(|&i| data.train.image(i) == image).unwrap();
        let rest_at: Vec<usize> = (0..150).map(|i| position(rest.image(i))).collect();
        let drawn_at: Vec<usize> = (0..50).map(|i| position(drawn.image(i))).collect();
        assert!(rest_at.windows(2).all(|w| w[0] < w[1]));
        assert!(drawn_at.windows(2).all(|w| w[0] < w[1]));
        assert!(rest_at.iter().all(|i| !drawn_at.contains(i)));
        assert_eq!(data.train.hold_out(50, 3, "here").unwrap().1, drawn);
        assert_ne!(data.train.hold_out(50, 4, "here").unwrap().1, drawn);
        assert!(data.train.hold_out(200, 3, "here").is_err());
        let train = &data.train;
        assert_eq!(train.draw(50, 3, "key", "here").unwrap(), drawn);
        assert_eq!(train.draw(train.len(), 3, "key", "here").unwrap(), *train);
        let too_many = train.draw(train.len() + 1, 3, "key", "here").unwrap_err();
        assert!(too_many.to_string().contains("key"), "{too_many}");
    }
}
