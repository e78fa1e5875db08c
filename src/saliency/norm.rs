//! `l1` / `l2`: the norm of each producer's filter for channel j (all its input channels and
//! kernel taps), summed over the DFC's producers by the default reduction.

use super::{param, Criterion, Inputs, Member, SaliencyError, Unit};
use crate::graph::Coupling;

pub enum FilterNorm {
    L1,
    L2,
}

impl Criterion for FilterNorm {
    fn name(&self) -> &'static str {
        match self {
            FilterNorm::L1 => "l1",
            FilterNorm::L2 => "l2",
        }
    }

    fn unit(&self) -> Unit {
        Unit::Producers
    }

    fn score(
        &self,
        inputs: &Inputs,
        _index: usize,
        dfc: &Coupling,
        member: Member,
    ) -> Result<Vec<f64>, SaliencyError> {
        let Member::Producer(p) = member else {
            unreachable!("l1/l2 score producers");
        };
        let weight = param(inputs, dfc, p, "weight")?;
        let per_channel = weight.len() / dfc.channels;
        Ok(weight
            .chunks(per_channel)
            .map(|filter| match self {
                FilterNorm::L1 => filter.iter().map(|w| w.abs()).sum(),
                FilterNorm::L2 => filter.iter().map(|w| w * w).sum::<f64>().sqrt(),
            })
            .collect())
    }
}
