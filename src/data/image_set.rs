//! Fixed, seeded image sets (`[saliency.images]`, `[oracle.images]`): the same images, in the
//! same batches, on every run.

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Batch, Batcher, DataError, Dataset, Normalizer, Split};
use crate::config::{ImageRequest, SplitChoice};

impl Dataset {
    /// How many images `request` stands for; an error if the split holds fewer. Checked
    /// before any work.
    pub fn image_count(&self, request: ImageRequest) -> Result<usize, DataError> {
        self.chosen(request).map(|(_, chosen)| chosen.len())
    }

    /// The requested images, unaugmented and normalised by `normalizer`, in batches of `batch`.
    pub fn image_set(
        &self,
        request: ImageRequest,
        batch: usize,
        normalizer: &Normalizer,
        device: &Device,
    ) -> Result<Vec<Batch>, DataError> {
        let (split, chosen) = self.chosen(request)?;
        let batcher = Batcher {
            split,
            normalizer,
            device,
        };
        chosen
            .chunks(batch.max(1))
            .map(|indices| {
                batcher.batch(indices, None).map_err(|e| DataError::Subset {
                    key: request.key,
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// The split and the indices of `set`'s images, drawn without replacement, in file order.
    fn chosen(&self, request: ImageRequest) -> Result<(&Split, Vec<usize>), DataError> {
        let set = request.set;
        let (split, name) = match set.split {
            SplitChoice::Train => (&self.train, "training"),
            SplitChoice::Validation => (&self.validation, "validation"),
            SplitChoice::Test => (&self.test, "test"),
        };
        if split.is_empty() {
            return Err(DataError::Subset {
                key: request.key,
                message: format!(
                    "the {name} split is empty; hold training images out with [data] validation"
                ),
            });
        }
        let count = set.count.unwrap_or(request.default_count.min(split.len()));
        if count > split.len() {
            return Err(DataError::Subset {
                key: request.key,
                message: format!(
                    "asks for {count} images, but the {name} split holds {}",
                    split.len()
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(set.seed);
        let mut chosen = rand::seq::index::sample(&mut rng, split.len(), count).into_vec();
        chosen.sort_unstable();
        Ok((split, chosen))
    }
}
