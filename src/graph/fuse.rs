//! The inference form of a graph. Every BatchNorm that follows a convolution read by nothing
//! else is folded into it (`w′ = w·s`, `b′ = (b − μ)·s + β` with `s = γ/√(σ² + ε)`), and a ReLU
//! that is the only reader of such a convolution runs inside it: two passes over each
//! activation saved. Evaluation-mode outputs are unchanged up to rounding; the fused nodes have
//! no gradient. Use it for evaluation and latency timing, on pruned and unpruned graphs alike;
//! training and analysis keep the unfused graph.

use std::collections::BTreeMap;

use candle_core::Tensor;

use super::ir::{Graph, Node, Op};
use super::params::Params;
use super::GraphError;

/// The fused graph and its parameters.
pub fn fuse_for_inference(graph: &Graph, params: &Params) -> Result<(Graph, Params), GraphError> {
    let readers = graph.reader_counts();
    let folds_into = |node: &Node| -> Option<usize> {
        let &[input] = node.inputs.as_slice() else {
            return None;
        };
        let is_conv = matches!(graph.nodes[input].op, Op::Conv2d { .. });
        (matches!(node.op, Op::BatchNorm { .. }) && is_conv && readers[input] == 1).then_some(input)
    };

    let all = params.tensors();
    let tensor = |name: String| {
        all.get(&name)
            .cloned()
            .ok_or_else(|| GraphError::Invalid(format!("no parameter {name}")))
    };
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut nodes: Vec<Node> = Vec::with_capacity(graph.nodes.len());
    let mut new_index = vec![0usize; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if let (Some(conv), Op::BatchNorm { eps, .. }) = (folds_into(node), &node.op) {
            // The conv was emitted just before (its only reader is this BN): rewrite it in place.
            let target = new_index[conv];
            let conv_name = nodes[target].name.clone();
            let bn = |suffix: &str| tensor(format!("{}.{suffix}", node.name));
            let scale = bn("weight")?.div(&(bn("running_var")? + *eps)?.sqrt()?)?;
            let weight = tensor(format!("{conv_name}.weight"))?
                .broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
            let old_bias = match &nodes[target].op {
                Op::Conv2d { bias: true, .. } => tensor(format!("{conv_name}.bias"))?,
                _ => scale.zeros_like()?,
            };
            let bias = ((old_bias - bn("running_mean")?)?.mul(&scale)? + bn("bias")?)?;
            if let Op::Conv2d { bias, .. } = &mut nodes[target].op {
                *bias = true;
            }
            tensors.insert(format!("{conv_name}.weight"), weight);
            tensors.insert(format!("{conv_name}.bias"), bias);
            new_index[i] = target;
            continue;
        }
        if let (Op::Relu, &[input]) = (&node.op, node.inputs.as_slice()) {
            let target = new_index[input];
            if let Op::Conv2d {
                bias: true, relu, ..
            } = &mut nodes[target].op
            {
                if readers[input] == 1 && !*relu {
                    *relu = true;
                    new_index[i] = target;
                    continue;
                }
            }
        }
        for spec in node.op.params() {
            let name = format!("{}.{}", node.name, spec.suffix);
            tensors.insert(name.clone(), tensor(name)?);
        }
        new_index[i] = nodes.len();
        let inputs = node.inputs.iter().map(|&j| new_index[j]).collect();
        nodes.push(Node {
            name: node.name.clone(),
            op: node.op.clone(),
            inputs,
        });
    }
    let folded = Graph { nodes };
    folded.shapes()?;
    let device = all
        .values()
        .next()
        .map(|t| t.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let params = Params::from_tensors(&folded, tensors, &device)?;
    Ok((folded, params))
}
