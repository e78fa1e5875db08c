//! The named tensors of a graph: trainable parameters as candle `Var`s, BN running statistics
//! as plain tensors.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::ir::{Graph, Init, ParamRole, ParamSpec};
use super::GraphError;
use crate::kernels::batch_norm::ChannelStats;

/// All tensors of one graph, keyed by PyTorch name (`layer1.0.bn1.running_var`).
#[derive(Debug, Clone)]
pub struct Params {
    pub trainable: BTreeMap<String, Var>,
    pub buffers: BTreeMap<String, Tensor>,
}

/// The batch statistics one BatchNorm saw in a training forward pass.
#[derive(Debug, Clone)]
pub struct BatchStats {
    pub node: String,
    pub momentum: f64,
    /// Per-channel mean and unbiased variance, shape `[C]`, detached.
    pub mean: Tensor,
    pub var: Tensor,
    /// The statistics the batch was normalised with (biased variance): what its gradient needs.
    pub normalised_with: ChannelStats,
}

impl BatchStats {
    /// PyTorch's running update uses the unbiased variance: biased · M / (M − 1).
    pub fn from_channel_stats(
        node: String,
        momentum: f64,
        stats: ChannelStats,
        device: &Device,
    ) -> Result<Self, GraphError> {
        let c = stats.mean.len();
        let correction = stats.count as f32 / (stats.count as f32 - 1.0).max(1.0);
        let unbiased: Vec<f32> = stats.var.iter().map(|v| v * correction).collect();
        Ok(Self {
            node,
            momentum,
            mean: Tensor::from_vec(stats.mean.clone(), c, device)?,
            var: Tensor::from_vec(unbiased, c, device)?,
            normalised_with: stats,
        })
    }
}

impl Params {
    /// Fresh parameters, initialised as PyTorch initialises these models, from `seed` alone.
    pub fn init(graph: &Graph, seed: u64, device: &Device) -> Result<Self, GraphError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Self {
            trainable: BTreeMap::new(),
            buffers: BTreeMap::new(),
        };
        for (name, spec) in specs(graph) {
            let values = sample(&spec, &mut rng);
            let tensor = Tensor::from_vec(values, spec.shape.as_slice(), device)?;
            params.insert(name, tensor, spec.role)?;
        }
        Ok(params)
    }

    /// Builds the store from a flat map of named tensors, which must hold exactly the graph's
    /// parameters with the right shapes (extra keys and mismatches are listed in the error).
    pub fn from_tensors(
        graph: &Graph,
        mut tensors: BTreeMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, GraphError> {
        let mut params = Self {
            trainable: BTreeMap::new(),
            buffers: BTreeMap::new(),
        };
        let mut missing = Vec::new();
        let mut mismatched = Vec::new();
        for (name, spec) in specs(graph) {
            match tensors.remove(&name) {
                None => missing.push(name),
                Some(t) if t.dims() != spec.shape.as_slice() => mismatched.push(format!(
                    "{name}: file has {:?}, model needs {:?}",
                    t.dims(),
                    spec.shape
                )),
                Some(t) => {
                    let t = t.to_dtype(DType::F32)?.to_device(device)?;
                    params.insert(name, t, spec.role)?;
                }
            }
        }
        let unexpected: Vec<String> = tensors.into_keys().collect();
        if missing.is_empty() && mismatched.is_empty() && unexpected.is_empty() {
            return Ok(params);
        }
        let mut why = Vec::new();
        for (label, list) in [
            ("missing", &missing),
            ("wrong shape", &mismatched),
            ("unexpected", &unexpected),
        ] {
            if !list.is_empty() {
                why.push(format!("{label} ({}): {}", list.len(), list.join(", ")));
            }
        }
        Err(GraphError::Weights(why.join("; ")))
    }

    fn insert(&mut self, name: String, tensor: Tensor, role: ParamRole) -> Result<(), GraphError> {
        match role {
            ParamRole::Trainable => {
                self.trainable.insert(name, Var::from_tensor(&tensor)?);
            }
            ParamRole::Buffer => {
                self.buffers.insert(name, tensor);
            }
        }
        Ok(())
    }

    /// The tensor named `name` (a trainable one stays attached to autograd).
    pub fn get(&self, name: &str) -> Result<&Tensor, GraphError> {
        self.trainable
            .get(name)
            .map(|v| v.as_tensor())
            .or_else(|| self.buffers.get(name))
            .ok_or_else(|| GraphError::Invalid(format!("no parameter named {name}")))
    }

    /// The device the tensors live on (the CPU for an empty set).
    pub fn device(&self) -> Device {
        self.trainable
            .values()
            .map(|v| v.device().clone())
            .chain(self.buffers.values().map(|t| t.device().clone()))
            .next()
            .unwrap_or(Device::Cpu)
    }

    /// Every tensor, detached, by name: what is saved.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        let trainable = self
            .trainable
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()));
        let buffers = self.buffers.iter().map(|(k, t)| (k.clone(), t.detach()));
        trainable.chain(buffers).collect()
    }

    /// Folds one training step's batch statistics into the running statistics (PyTorch:
    /// `running = (1 − momentum)·running + momentum·batch`, with the unbiased batch variance).
    pub fn update_running_stats(&mut self, stats: &[BatchStats]) -> Result<(), GraphError> {
        for s in stats {
            for (suffix, batch) in [("running_mean", &s.mean), ("running_var", &s.var)] {
                let key = format!("{}.{suffix}", s.node);
                let running = self
                    .buffers
                    .get(&key)
                    .ok_or_else(|| GraphError::Invalid(format!("no buffer {key}")))?;
                let updated = ((running * (1.0 - s.momentum))? + (batch * s.momentum)?)?;
                self.buffers.insert(key, updated.detach());
            }
        }
        Ok(())
    }
}

/// Every parameter of the graph with its full name, in graph order.
pub fn specs(graph: &Graph) -> impl Iterator<Item = (String, ParamSpec)> + '_ {
    graph.nodes.iter().flat_map(|node| {
        node.op
            .params()
            .into_iter()
            .map(move |spec| (format!("{}.{}", node.name, spec.suffix), spec))
    })
}

fn sample(spec: &ParamSpec, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    match spec.init {
        Init::Constant(value) => vec![value; n],
        Init::KaimingNormalFanOut => {
            // PyTorch: fan_out = shape[0] · receptive field, gain √2 for ReLU.
            let fan_out = spec.shape[0] * spec.shape[2..].iter().product::<usize>();
            let normal = Normal::new(0.0, (2.0 / fan_out as f64).sqrt()).expect("positive std");
            (0..n).map(|_| normal.sample(rng) as f32).collect()
        }
        Init::UniformFanIn(fan_in) => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let uniform = Uniform::new_inclusive(-bound, bound).expect("bound > 0");
            (0..n).map(|_| uniform.sample(rng) as f32).collect()
        }
    }
}
