//! `bn-scale`: |γ| of each BatchNorm among the DFC's channel-wise members (network slimming's
//! criterion, without its sparsity training).

use super::{param, Criterion, Inputs, Member, SaliencyError, Unit};
use crate::graph::Coupling;

pub struct BnScale;

impl Criterion for BnScale {
    fn name(&self) -> &'static str {
        "bn-scale"
    }

    fn unit(&self) -> Unit {
        Unit::BatchNorms
    }

    fn score(
        &self,
        inputs: &Inputs,
        _index: usize,
        dfc: &Coupling,
        member: Member,
    ) -> Result<Vec<f64>, SaliencyError> {
        let Member::BatchNorm(bn) = member else {
            unreachable!("bn-scale scores BatchNorms");
        };
        Ok(param(inputs, dfc, bn, "weight")?
            .iter()
            .map(|g| g.abs())
            .collect())
    }
}
