//! `random`: uniform scores in [0, 1), from the experiment's seed and the DFC's index alone, so
//! that a seed reproduces them and different seeds give independent rankings (the null
//! baseline of every correlation study).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Criterion, Inputs, Member, SaliencyError, Unit};
use crate::graph::Coupling;

pub struct Random;

impl Criterion for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn unit(&self) -> Unit {
        Unit::Whole
    }

    fn score(
        &self,
        inputs: &Inputs,
        index: usize,
        dfc: &Coupling,
        _member: Member,
    ) -> Result<Vec<f64>, SaliencyError> {
        let mut rng = ChaCha8Rng::seed_from_u64(inputs.seed);
        rng.set_stream(index as u64);
        Ok((0..dfc.channels).map(|_| rng.random::<f64>()).collect())
    }
}
