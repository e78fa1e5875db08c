//! Fixed, seeded image sets (`[saliency.images]`, `[oracle.images]`): the same images, in the
//! same batches, on every run.

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Batch, Batcher, DataError, Dataset, Normalizer, Split};
use crate::config::{DatasetInfo, ImageRequest, SplitChoice};

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
        let split = match request.set.split {
            SplitChoice::Train => &self.train,
            SplitChoice::Validation => &self.validation,
            SplitChoice::Test => &self.test,
        };
        let count = count_in(request, split.len())?;
        let mut rng = ChaCha8Rng::seed_from_u64(request.set.seed);
        let mut chosen = rand::seq::index::sample(&mut rng, split.len(), count).into_vec();
        chosen.sort_unstable();
        Ok((split, chosen))
    }
}

/// [`Dataset::image_count`] from the dataset's known sizes, before it is read (or downloaded).
pub fn expected_image_count(info: &DatasetInfo, request: ImageRequest) -> Result<usize, DataError> {
    let available = match request.set.split {
        SplitChoice::Train => info.train,
        SplitChoice::Validation => info.validation,
        SplitChoice::Test => info.test,
    };
    count_in(request, available)
}

/// How many images `request` takes from its split of `available` images, or why it cannot.
fn count_in(request: ImageRequest, available: usize) -> Result<usize, DataError> {
    let name = match request.set.split {
        SplitChoice::Train => "training",
        SplitChoice::Validation => "validation",
        SplitChoice::Test => "test",
    };
    let fail = |message| DataError::Subset {
        key: request.key,
        message,
    };
    if available == 0 {
        return Err(fail(format!(
            "the {name} split is empty; hold training images out with [data] validation"
        )));
    }
    let count = request
        .set
        .count
        .unwrap_or(request.default_count.min(available));
    if count > available {
        return Err(fail(format!(
            "asks for {count} images, but the {name} split holds {available}"
        )));
    }
    Ok(count)
}
