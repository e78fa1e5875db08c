//! Channel surgery on DFCs: removing channels physically, or zeroing them in place.
//!
//! Channel j of a DFC sits at one axis of several tensors: the producers' output rows (weight
//! and bias), the consumers' input columns, every per-channel vector of its BatchNorms and the
//! filters of its depthwise convolutions. [`prune`] keeps the other channels of all of them and
//! shrinks the ops to match, giving a smaller graph that runs, saves and loads like any other;
//! [`mask`] zeroes the same slices and keeps every shape. In evaluation mode the two give the
//! same output, which is what makes a masked network a faithful stand-in for a pruned one.

use std::collections::BTreeMap;

use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::coupling::{couplings, Coupling};
use super::coupling_view::find_coupling;
use super::ir::{Graph, Op};
use super::params::Params;
use super::GraphError;

/// Which channels to remove from which DFCs. A DFC is named by its first producer, so a plan
/// written for one network applies to any network built the same way (and reads well as JSON:
/// `{"remove": {"layer1.0.conv1": [3, 17]}}`). Channel indices are those of the graph the plan
/// is applied to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPlan {
    #[serde(deserialize_with = "unique_keys")]
    pub remove: BTreeMap<String, Vec<usize>>,
    /// What made the plan (a command line); informational, never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_by: Option<String>,
}

/// A map whose keys must be unique: a DFC named twice is a mistake, not "the last one wins".
fn unique_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Vec<usize>>, D::Error> {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = BTreeMap<String, Vec<usize>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map from DFC names to lists of channel indices")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, Vec<usize>>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "DFC {key:?} is named twice"
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique)
}

impl ChannelPlan {
    /// Parses a plan from JSON (a UTF-8 byte-order mark is allowed). Unknown fields and a DFC
    /// named twice are errors.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        serde_json::from_slice(bytes).map_err(|e| format!("not a channel plan: {e}"))
    }

    /// Removes `round(fraction · C)` channels of every DFC (never all C), chosen uniformly at
    /// random from `seed`.
    pub fn random(graph: &Graph, fraction: f64, seed: u64) -> Result<Self, GraphError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(GraphError::Invalid(format!(
                "the fraction of channels to remove must be in [0, 1) (got {fraction})"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut plan = Self::default();
        for c in couplings(graph)? {
            let count = ((fraction * c.channels as f64).round() as usize).min(c.channels - 1);
            let mut channels = rand::seq::index::sample(&mut rng, c.channels, count).into_vec();
            channels.sort_unstable();
            plan.remove.insert(c.name(graph).to_string(), channels);
        }
        Ok(plan)
    }
}

/// Checks `plan` against `graph` and pairs each DFC with its sorted channels to remove.
fn resolve(graph: &Graph, plan: &ChannelPlan) -> Result<Vec<(Coupling, Vec<usize>)>, GraphError> {
    let found = couplings(graph)?;
    let mut resolved = Vec::new();
    for (name, channels) in &plan.remove {
        let coupling = find_coupling(graph, &found, name)?;
        let mut sorted = channels.clone();
        sorted.sort_unstable();
        let n = coupling.channels;
        if let Some(&bad) = sorted.iter().find(|&&j| j >= n) {
            return Err(GraphError::Invalid(format!(
                "DFC {name}: channel {bad} does not exist (it has {n} channels)"
            )));
        }
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(GraphError::Invalid(format!(
                "DFC {name}: channel {} is listed twice",
                pair[0]
            )));
        }
        if sorted.len() == n {
            return Err(GraphError::Invalid(format!(
                "DFC {name}: removing all {n} of its channels would cut the network; at least one must stay"
            )));
        }
        if !sorted.is_empty() {
            resolved.push((coupling.clone(), sorted));
        }
    }
    Ok(resolved)
}

/// Removes the plan's channels: a new, smaller graph and its tensors. `graph` and `params` are
/// left as they were.
pub fn prune(
    graph: &Graph,
    params: &Params,
    plan: &ChannelPlan,
) -> Result<(Graph, Params), GraphError> {
    let mut pruned = graph.clone();
    let mut tensors = params.tensors();
    let device = params_device(&tensors);
    for (coupling, removed) in resolve(graph, plan)? {
        let kept: Vec<u32> = (0..coupling.channels as u32)
            .filter(|j| removed.binary_search(&(*j as usize)).is_err())
            .collect();
        let n = kept.len();
        let kept = Tensor::from_vec(kept, n, &device)?;
        for slice in coupling.slices(graph) {
            let name = slice.tensor_name(graph);
            let t = tensor(&tensors, &name)?.index_select(&kept, slice.axis)?;
            tensors.insert(name, t);
        }
        for &p in &coupling.producers {
            match &mut pruned.nodes[p].op {
                Op::Conv2d { out_channels, .. } => *out_channels = n,
                Op::Linear { out_features, .. } => *out_features = n,
                other => unreachable!("a producer is a mixing op, not {}", other.kind()),
            }
        }
        for &c in &coupling.consumers {
            match &mut pruned.nodes[c].op {
                Op::Conv2d { in_channels, .. } => *in_channels = n,
                Op::Linear { in_features, .. } => *in_features = n,
                other => unreachable!("a consumer is a mixing op, not {}", other.kind()),
            }
        }
        for &m in &coupling.members {
            match &mut pruned.nodes[m].op {
                Op::BatchNorm { channels, .. } => *channels = n,
                Op::Conv2d {
                    in_channels,
                    out_channels,
                    groups,
                    ..
                } => (*in_channels, *out_channels, *groups) = (n, n, n),
                _ => {}
            }
        }
    }
    pruned.shapes()?;
    let params = Params::from_tensors(&pruned, tensors, &device)?;
    Ok((pruned, params))
}

/// Zeroes the plan's channels in every tensor that carries them (producers' rows, consumers'
/// columns, BN vectors, depthwise filters), keeping every shape: the channels contribute
/// nothing downstream, exactly as if they had been removed.
pub fn mask(graph: &Graph, params: &Params, plan: &ChannelPlan) -> Result<Params, GraphError> {
    let mut tensors = params.tensors();
    let device = params_device(&tensors);
    for (coupling, removed) in resolve(graph, plan)? {
        let mut keep = vec![1f32; coupling.channels];
        removed.iter().for_each(|&j| keep[j] = 0.0);
        let keep = Tensor::from_vec(keep, coupling.channels, &device)?;
        for slice in coupling.slices(graph) {
            let name = slice.tensor_name(graph);
            let t = tensor(&tensors, &name)?;
            let mut shape = vec![1; t.rank()];
            shape[slice.axis] = coupling.channels;
            let masked = t.broadcast_mul(&keep.to_dtype(t.dtype())?.reshape(shape)?)?;
            tensors.insert(name, masked);
        }
    }
    Params::from_tensors(graph, tensors, &device)
}

fn tensor(tensors: &BTreeMap<String, Tensor>, name: &str) -> Result<Tensor, GraphError> {
    tensors
        .get(name)
        .cloned()
        .ok_or_else(|| GraphError::Invalid(format!("no parameter {name}")))
}

fn params_device(tensors: &BTreeMap<String, Tensor>) -> candle_core::Device {
    tensors
        .values()
        .next()
        .map(|t| t.device().clone())
        .unwrap_or(candle_core::Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use candle_core::Device;

    /// conv(2→4) → BN → ReLU → conv(4→3): one DFC of 4 channels.
    fn chain() -> (Graph, Params) {
        let mut g = GraphBuilder::new(2, 5, 5);
        let x = g.conv("a", g.input(), 4, 3, 1, 1).unwrap();
        let x = g.batch_norm("bn", x).unwrap();
        let x = g.relu("relu", x).unwrap();
        g.conv("b", x, 3, 1, 1, 0).unwrap();
        let graph = g.finish();
        let params = Params::init(&graph, 7, &Device::Cpu).unwrap();
        (graph, params)
    }

    fn plan(name: &str, channels: &[usize]) -> ChannelPlan {
        ChannelPlan {
            remove: [(name.to_string(), channels.to_vec())].into(),
            produced_by: None,
        }
    }

    #[test]
    fn slices_every_tensor_of_the_dfc_at_its_channel_axis() {
        let (graph, params) = chain();
        let (pruned, pruned_params) = prune(&graph, &params, &plan("a", &[2, 0])).unwrap();
        let dims = |name: &str| pruned_params.get(name).unwrap().dims().to_vec();
        assert_eq!(dims("a.weight"), [2, 2, 3, 3]);
        assert_eq!(dims("bn.running_var"), [2]);
        assert_eq!(dims("b.weight"), [3, 2, 1, 1]);
        // The kept rows are channels 1 and 3, in order.
        let row = |p: &Params, j: usize| -> Vec<f32> {
            p.get("a.weight")
                .unwrap()
                .get(j)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(row(&pruned_params, 0), row(&params, 1));
        assert_eq!(row(&pruned_params, 1), row(&params, 3));
        assert!(matches!(
            pruned.nodes[1].op,
            Op::Conv2d {
                out_channels: 2,
                ..
            }
        ));
        assert!(matches!(
            pruned.nodes[2].op,
            Op::BatchNorm { channels: 2, .. }
        ));
    }

    #[test]
    fn masking_zeroes_the_same_slices_and_keeps_shapes() {
        let (graph, params) = chain();
        let masked = mask(&graph, &params, &plan("a", &[1])).unwrap();
        let w = masked.get("b.weight").unwrap();
        assert_eq!(w.dims(), [3, 4, 1, 1]);
        let column: Vec<f32> = w
            .narrow(1, 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(column.iter().all(|&v| v == 0.0));
        let gamma: Vec<f32> = masked.get("bn.weight").unwrap().to_vec1().unwrap();
        assert_eq!(gamma, [1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn a_random_plan_removes_the_rounded_fraction_of_every_dfc() {
        let graph = crate::models::build("resnet20", 3, 32, 10).unwrap();
        let plan = ChannelPlan::random(&graph, 0.3, 1).unwrap();
        let found = couplings(&graph).unwrap();
        assert_eq!(plan.remove.len(), found.len());
        for c in &found {
            let removed = &plan.remove[c.name(&graph)];
            // 16 → 5, 32 → 10, 64 → 19 channels.
            assert_eq!(removed.len(), (0.3 * c.channels as f64).round() as usize);
            assert!(removed.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(plan, ChannelPlan::random(&graph, 0.3, 1).unwrap());
        assert_ne!(plan, ChannelPlan::random(&graph, 0.3, 2).unwrap());
        // Never a DFC's last channel, whatever the fraction.
        let (chain, _) = chain();
        assert_eq!(
            ChannelPlan::random(&chain, 0.99, 0).unwrap().remove["a"].len(),
            3
        );
        assert!(ChannelPlan::random(&graph, 1.0, 0).is_err());
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        let (graph, params) = chain();
        let err = |p: ChannelPlan| prune(&graph, &params, &p).unwrap_err().to_string();
        assert!(err(plan("a", &[0, 1, 2, 3])).contains("at least one must stay"));
        assert!(err(plan("a", &[4])).contains("channel 4 does not exist"));
        assert!(err(plan("a", &[1, 1])).contains("listed twice"));
        assert!(err(plan("b", &[0])).contains("no DFC has \"b\""));
    }
}
