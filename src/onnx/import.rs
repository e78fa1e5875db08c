//! An ONNX model as a graph of the IR and its parameters, names kept: a node with weights is
//! named after them (`layer1.0.conv1` for `layer1.0.conv1.weight`), any other after its ONNX
//! node. Constants, `Identity`, `Dropout` and the shape arithmetic of a flatten (`Shape`,
//! `Gather`, `Unsqueeze`, `Concat`, … on shapes) are folded; every node the IR cannot express
//! is listed in the error, with its name, and nothing is built.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use candle_core::{Device, Tensor};

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_shape_proto::dimension;
use super::proto::{type_proto, AttributeProto, GraphProto, NodeProto, ValueInfoProto};
use super::tensors::{decode, Constant, Values};
use crate::graph::{ActShape, Graph, Node, Op, Params, BN_EPS, BN_MOMENTUM};

/// What a value of the ONNX graph is here.
#[derive(Debug, Clone)]
enum Value {
    /// The output of node `i` of the graph being built.
    Node(usize),
    Constant(Constant),
    /// The output of a node that could not be imported (already reported).
    Refused,
    /// An optional input left out.
    Absent,
}

/// The graph being built, and what could not be imported.
struct Builder<'a> {
    onnx: &'a GraphProto,
    nodes: Vec<Node>,
    shapes: Vec<ActShape>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    names: HashSet<String>,
    values: HashMap<String, Value>,
    /// How many nodes (and graph outputs) read each value.
    readers: HashMap<String, usize>,
    /// Op types no rule imports, with the nodes of each.
    unsupported: BTreeMap<String, Vec<String>>,
    /// Nodes of a supported type whose attributes or inputs are not.
    refused: Vec<String>,
}

/// The graph and parameters of the ONNX graph `onnx` (its external data in `dir`), its input
/// `[C, H, W]` taken from the model, or from `input` where the model leaves it open.
pub fn import(
    onnx: &GraphProto,
    dir: &Path,
    input: Option<[usize; 3]>,
    device: &Device,
) -> Result<(Graph, Params), String> {
    let mut b = Builder {
        onnx,
        nodes: Vec::new(),
        shapes: Vec::new(),
        tensors: BTreeMap::new(),
        names: HashSet::new(),
        values: HashMap::new(),
        readers: HashMap::new(),
        unsupported: BTreeMap::new(),
        refused: Vec::new(),
    };
    for t in &onnx.initializer {
        let constant = decode(t, dir).map_err(|e| format!("initializer {:?}: {e}", t.name))?;
        b.values.insert(t.name.clone(), Value::Constant(constant));
    }
    for name in onnx.node.iter().flat_map(|n| &n.input) {
        *b.readers.entry(name.clone()).or_default() += 1;
    }
    for output in &onnx.output {
        *b.readers.entry(output.name.clone()).or_default() += 1;
    }
    b.input(input)?;
    for (i, node) in onnx.node.iter().enumerate() {
        let name = match node.name.is_empty() {
            true => format!("{}_{i}", node.op_type),
            false => node.name.clone(),
        };
        let inputs: Vec<Value> = node
            .input
            .iter()
            .map(|v| match v.is_empty() {
                true => Ok(Value::Absent),
                false => b.values.get(v).cloned().ok_or_else(|| {
                    format!("node {name:?} reads {v:?}, which no earlier node makes")
                }),
            })
            .collect::<Result<_, _>>()?;
        let supported = matches!(node.domain.as_str(), "" | "ai.onnx")
            && SUPPORTED.contains(&node.op_type.as_str());
        let outputs = if supported && inputs.iter().any(|v| matches!(v, Value::Refused)) {
            // Downstream of a node already reported: nothing more to say about it.
            vec![Value::Refused; node.output.len()]
        } else {
            match b.node(node, &name, &inputs) {
                Ok(outputs) => outputs,
                Err(Refusal::Unsupported) => {
                    let key = match node.domain.as_str() {
                        "" | "ai.onnx" => node.op_type.clone(),
                        domain => format!("{domain}.{}", node.op_type),
                    };
                    b.unsupported.entry(key).or_default().push(name.clone());
                    vec![Value::Refused; node.output.len()]
                }
                Err(Refusal::Because(why)) => {
                    b.refused
                        .push(format!("{} node {name:?}: {why}", node.op_type));
                    vec![Value::Refused; node.output.len()]
                }
            }
        };
        for (value, made) in node.output.iter().zip(outputs) {
            b.values.insert(value.clone(), made);
        }
    }
    b.finish(device)
}

/// The op types imported (some only in the forms the IR expresses).
const SUPPORTED: &[&str] = &[
    "Identity",
    "Dropout",
    "Constant",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Cast",
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Add",
    "Sum",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
];

/// Why a node was not imported.
enum Refusal {
    /// No rule for its op type.
    Unsupported,
    Because(String),
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Refusal::Because(why)
    }
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Self {
        Refusal::Because(why.into())
    }
}

type Made = Result<Vec<Value>, Refusal>;

impl Builder<'_> {
    /// The graph's one input, an image batch `[N, C, H, W]`.
    fn input(&mut self, given: Option<[usize; 3]>) -> Result<(), String> {
        let inputs: Vec<&ValueInfoProto> = self
            .onnx
            .input
            .iter()
            .filter(|i| !self.values.contains_key(&i.name))
            .collect();
        let [input] = inputs[..] else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "the model has {} inputs ({}); prunelab's networks read one image batch [N, C, H, W]",
                inputs.len(),
                names.join(", ")
            ));
        };
        let dims: Vec<Option<usize>> = match &input.r#type.as_ref().and_then(|t| t.value.clone()) {
            Some(type_proto::Value::TensorType(t)) => t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if dims.len() != 4 {
            return Err(format!(
                "the input {:?} has {} dimensions; prunelab's networks read [N, C, H, W]",
                input.name,
                dims.len()
            ));
        }
        let [c, h, w] = match (given, [dims[1], dims[2], dims[3]]) {
            (None, [Some(c), Some(h), Some(w)]) => [c, h, w],
            (None, _) => {
                return Err(format!(
                    "the input {:?} has a dynamic size ({}): give it as [model] input = [C, H, W]",
                    input.name,
                    show_dims(&dims)
                ))
            }
            (Some(given), model) => {
                let fits = given
                    .iter()
                    .zip(model)
                    .all(|(&g, m)| m.is_none_or(|m| m == g));
                if !fits {
                    return Err(format!(
                        "the input {:?} is {} but [model] input is {given:?}",
                        input.name,
                        show_dims(&dims)
                    ));
                }
                given
            }
        };
        let op = Op::Input {
            channels: c,
            height: h,
            width: w,
        };
        let i = self
            .push(input.name.clone(), op, vec![])
            .map_err(|e| match e {
                Refusal::Because(why) => why,
                Refusal::Unsupported => unreachable!("push refuses only with a reason"),
            })?;
        self.values.insert(input.name.clone(), Value::Node(i));
        Ok(())
    }

    /// Imports one node, given the values of its inputs (a missing optional one is `Absent`).
    fn node(&mut self, node: &NodeProto, name: &str, inputs: &[Value]) -> Made {
        if !matches!(node.domain.as_str(), "" | "ai.onnx")
            || !SUPPORTED.contains(&node.op_type.as_str())
        {
            return Err(Refusal::Unsupported);
        }
        let needed = match node.op_type.as_str() {
            "Constant" => 0,
            "BatchNormalization" => 5,
            "Conv" | "Gemm" | "MatMul" | "Gather" | "Reshape" | "Add" => 2,
            _ => 1,
        };
        let given = inputs
            .iter()
            .filter(|v| !matches!(v, Value::Absent))
            .count();
        if given < needed
            || inputs
                .iter()
                .take(needed)
                .any(|v| matches!(v, Value::Absent))
        {
            return Err(format!("has {given} inputs, needs {needed}").into());
        }
        let a = Attributes(&node.attribute);
        let one = |v: Value| Ok(vec![v]);
        match node.op_type.as_str() {
            "Identity" | "Dropout" => {
                if node.output.len() > 1 && self.read(&node.output[1]) {
                    return Err("its mask output is read".into());
                }
                one(inputs[0].clone())
            }
            "Constant" => one(Value::Constant(a.constant()?)),
            "Shape" => {
                let shape = self.shape_of(&inputs[0])?;
                let mut dims: Vec<Option<i64>> = std::iter::once(None)
                    .chain(shape.iter().map(|&d| Some(d as i64)))
                    .collect();
                let rank = dims.len() as i64;
                let clamp = |i: i64| (if i < 0 { i + rank } else { i }).clamp(0, rank) as usize;
                let end = clamp(a.int("end")?.unwrap_or(rank));
                let start = clamp(a.int("start")?.unwrap_or(0)).min(end);
                dims = dims[start..end].to_vec();
                one(ints(vec![dims.len()], dims))
            }
            "Gather" => {
                let data = constant(&inputs[0])?;
                let indices = constant(&inputs[1])?;
                if a.int("axis")?.unwrap_or(0) != 0 || data.dims.len() != 1 {
                    return Err("only gathers from a 1-D shape are folded".into());
                }
                let values = data.ints()?;
                let picked = indices
                    .known_ints()?
                    .iter()
                    .map(|&i| {
                        let at = if i < 0 { i + values.len() as i64 } else { i };
                        values
                            .get(at as usize)
                            .copied()
                            .ok_or(format!("index {i} is outside {} values", values.len()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                one(ints(indices.dims.clone(), picked))
            }
            "Unsqueeze" | "Squeeze" if !matches!(inputs[0], Value::Node(_)) => {
                let data = constant(&inputs[0])?;
                // Folded on constants of at most one dimension: 1-D in, 1-D out.
                let values = data.ints()?;
                let dims = match values.len() {
                    1 if node.op_type == "Unsqueeze" => vec![1],
                    n if data.dims.len() <= 1 => vec![n],
                    _ => return Err("only scalar and 1-D shapes are folded".into()),
                };
                one(ints(dims, values))
            }
            "Squeeze" => {
                // Squeezing the 1×1 map of a global pooling: a flatten.
                match self.shape_of(&inputs[0])?[..] {
                    [_, 1, 1] => self.push_node(name, Op::Flatten, &inputs[..1]),
                    _ => Err("only a map of 1×1 is squeezed (into a vector)".into()),
                }
            }
            "Concat" => {
                let mut all = Vec::new();
                for v in inputs {
                    match v {
                        Value::Constant(c) if c.dims.len() <= 1 => all.extend(c.ints()?),
                        _ => return Err(Refusal::Unsupported),
                    }
                }
                one(ints(vec![all.len()], all))
            }
            "Cast" => match &inputs[0] {
                Value::Constant(c) => one(Value::Constant(c.clone())),
                _ => Err("only constants are cast".into()),
            },
            "Conv" => self.conv(node, name, &a, inputs),
            "BatchNormalization" => {
                if a.int("training_mode")?.unwrap_or(0) != 0 || node.output.len() > 1 {
                    return Err("only inference-mode batch normalisation is imported".into());
                }
                let channels = self.channels(&inputs[0])?;
                let params = ["weight", "bias", "running_mean", "running_var"];
                let mut named = Vec::new();
                for (suffix, v) in params.iter().zip(&inputs[1..]) {
                    let c = constant(v)?;
                    if c.len() != channels {
                        return Err(format!(
                            "its {suffix} has {} values for {channels} channels",
                            c.len()
                        )
                        .into());
                    }
                    named.push((*suffix, c.dims.clone(), c.floats()?));
                }
                if named.len() != 4 {
                    return Err("needs scale, bias, mean and variance".into());
                }
                let onnx_momentum = match a.float("momentum")? {
                    Some(m) => as_written(m),
                    None => 1.0 - BN_MOMENTUM,
                };
                let op = Op::BatchNorm {
                    channels,
                    eps: as_written(a.float("epsilon")?.unwrap_or(BN_EPS as f32)),
                    // ONNX's momentum weighs the running value, PyTorch's the new batch.
                    momentum: as_written((1.0 - onnx_momentum) as f32),
                };
                let stem = self.stem(&node.input[1], name);
                self.push_with_params(stem, op, &inputs[..1], named)
            }
            "Relu" => self.push_node(name, Op::Relu, &inputs[..1]),
            "Clip" => {
                let bound = |k: usize, attr: &str| -> Result<Option<f32>, Refusal> {
                    match inputs.get(k) {
                        Some(Value::Constant(c)) => Ok(Some(c.floats()?[0])),
                        Some(Value::Node(_)) => Err("its bounds are not constants".into()),
                        _ => Ok(a.float(attr)?),
                    }
                };
                match (bound(1, "min")?, bound(2, "max")?) {
                    (Some(0.0), None) => self.push_node(name, Op::Relu, &inputs[..1]),
                    _ => Err(
                        "only Clip(min = 0) (a ReLU) is imported; ReLU6 is not supported yet"
                            .into(),
                    ),
                }
            }
            "Add" | "Sum" => self.add(name, &node.input, inputs),
            "MaxPool" | "AveragePool" => {
                if node.output.len() > 1 && self.read(&node.output[1]) {
                    return Err("its indices output is read".into());
                }
                let kernel =
                    square(a.ints("kernel_shape")?, "kernel")?.ok_or("has no kernel_shape")?;
                let stride = square(a.ints("strides")?, "stride")?.unwrap_or(1);
                if a.ints("pads")?.is_some_and(|p| p.iter().any(|&p| p != 0))
                    || matches!(
                        a.string("auto_pad")?.as_deref(),
                        Some("SAME_UPPER" | "SAME_LOWER")
                    )
                {
                    return Err("pooling with padding is not supported".into());
                }
                if a.ints("dilations")?
                    .is_some_and(|d| d.iter().any(|&d| d != 1))
                {
                    return Err("dilated pooling is not supported".into());
                }
                if a.int("ceil_mode")?.unwrap_or(0) != 0 {
                    return Err("ceil_mode = 1 is not supported".into());
                }
                let op = match node.op_type.as_str() {
                    "MaxPool" => Op::MaxPool { kernel, stride },
                    _ => Op::AvgPool { kernel, stride },
                };
                self.push_node(name, op, &inputs[..1])
            }
            "GlobalAveragePool" => self.push_node(name, Op::GlobalAvgPool, &inputs[..1]),
            "ReduceMean" => {
                let axes = match inputs.get(1) {
                    Some(Value::Constant(c)) => Some(c.known_ints()?),
                    Some(Value::Node(_)) => return Err("its axes are not a constant".into()),
                    _ => a.ints("axes")?,
                };
                let mut axes = axes.ok_or("reduces every axis")?;
                axes.iter_mut()
                    .for_each(|x| *x = if *x < 0 { *x + 4 } else { *x });
                axes.sort();
                if axes != [2, 3] || self.shape_of(&inputs[0])?.len() != 3 {
                    return Err(
                        "only the mean over a map's positions (axes 2, 3) is imported".into(),
                    );
                }
                let pooled = self.push_node(name, Op::GlobalAvgPool, &inputs[..1])?;
                match a.int("keepdims")?.unwrap_or(1) {
                    0 => self.push_node(&format!("{name}/flatten"), Op::Flatten, &pooled),
                    _ => Ok(pooled),
                }
            }
            "Flatten" => {
                if a.int("axis")?.unwrap_or(1) != 1 {
                    return Err(
                        "only flattening after the batch axis (axis = 1) is imported".into(),
                    );
                }
                self.flatten(name, &inputs[0])
            }
            "Reshape" => {
                let target = constant(&inputs[1])?.ints()?;
                let features: usize = self.shape_of(&inputs[0])?.iter().product();
                let flat = match target[..] {
                    [None | Some(0), Some(-1)] => true,
                    [None | Some(0) | Some(-1), Some(n)] => n as usize == features,
                    _ => false,
                };
                match flat {
                    true => self.flatten(name, &inputs[0]),
                    false => Err(format!(
                        "only a reshape to [batch, features] is imported, not {target:?}"
                    )
                    .into()),
                }
            }
            "Gemm" => {
                if a.int("transA")?.unwrap_or(0) != 0 {
                    return Err("transA = 1 is not supported".into());
                }
                let w = constant(&inputs[1])?;
                let [rows, cols] = w.dims[..] else {
                    return Err("its B is not a matrix".into());
                };
                let alpha = a.float("alpha")?.unwrap_or(1.0);
                let beta = a.float("beta")?.unwrap_or(1.0);
                let mut weight: Vec<f32> = w.floats()?.iter().map(|v| v * alpha).collect();
                let (out, features) = match a.int("transB")?.unwrap_or(0) {
                    0 => {
                        weight = transpose(&weight, rows, cols);
                        (cols, rows)
                    }
                    _ => (rows, cols),
                };
                let bias = match inputs.get(2) {
                    Some(v @ Value::Constant(_)) => {
                        let c = constant(v)?;
                        if c.len() != out {
                            return Err(
                                format!("its C has {} values for {out} outputs", c.len()).into()
                            );
                        }
                        Some(c.floats()?.iter().map(|v| v * beta).collect())
                    }
                    Some(Value::Node(_)) => return Err("its C is not a constant".into()),
                    _ => None,
                };
                self.linear(
                    name,
                    &node.input[1],
                    &inputs[0],
                    (out, features, weight),
                    bias,
                )
            }
            "MatMul" => {
                let w = constant(&inputs[1])?;
                let [features, out] = w.dims[..] else {
                    return Err("its second operand is not a constant matrix".into());
                };
                let weight = transpose(&w.floats()?, features, out);
                self.linear(
                    name,
                    &node.input[1],
                    &inputs[0],
                    (out, features, weight),
                    None,
                )
            }
            _ => Err(Refusal::Unsupported),
        }
    }

    fn conv(&mut self, node: &NodeProto, name: &str, a: &Attributes, inputs: &[Value]) -> Made {
        let w = constant(&inputs[1])?;
        let [out_channels, per_group, kh, kw] = w.dims[..] else {
            return Err("its weight is not [out, in/groups, kh, kw]".into());
        };
        if kh != kw {
            return Err(format!("a {kh}×{kw} kernel is not square (not supported)").into());
        }
        if a.ints("dilations")?
            .is_some_and(|d| d.iter().any(|&d| d != 1))
        {
            return Err("dilated convolutions are not supported".into());
        }
        let stride = square(a.ints("strides")?, "stride")?.unwrap_or(1);
        let padding = match a.string("auto_pad")?.as_deref() {
            None | Some("NOTSET") => match a.ints("pads")? {
                Some(p) if p.iter().any(|&x| x != p[0]) => {
                    return Err(
                        format!("pads {p:?} are not equal on every side (not supported)").into(),
                    )
                }
                Some(p) => p.first().copied().unwrap_or(0) as usize,
                None => 0,
            },
            Some("VALID") => 0,
            Some(_) if stride == 1 && kh % 2 == 1 => (kh - 1) / 2,
            Some(other) => {
                return Err(
                    format!("auto_pad {other} with stride {stride} is not supported").into(),
                )
            }
        };
        let groups = a.int("group")?.unwrap_or(1) as usize;
        let in_channels = self.channels(&inputs[0])?;
        if groups == 0 || per_group * groups != in_channels {
            return Err(format!(
                "its weight takes {per_group} channels in each of {groups} groups, its input has {in_channels}"
            )
            .into());
        }
        let mut named = vec![("weight", w.dims.clone(), w.floats()?)];
        if let Some(v @ Value::Constant(_)) = inputs.get(2) {
            let b = constant(v)?;
            if b.len() != out_channels {
                return Err(format!(
                    "its bias has {} values for {out_channels} channels",
                    b.len()
                )
                .into());
            }
            named.push(("bias", vec![out_channels], b.floats()?));
        }
        let op = Op::Conv2d {
            in_channels,
            out_channels,
            kernel: kh,
            stride,
            padding,
            groups,
            depthwise: groups > 1 && groups == in_channels && groups == out_channels,
            bias: named.len() == 2,
            relu: false,
        };
        let stem = self.stem(&node.input[1], name);
        self.push_with_params(stem, op, &inputs[..1], named)
    }

    /// `x Wᵀ + b` (`weight` is `[out, features]`).
    fn linear(
        &mut self,
        name: &str,
        weight_name: &str,
        x: &Value,
        (out, features, weight): (usize, usize, Vec<f32>),
        bias: Option<Vec<f32>>,
    ) -> Made {
        let x = match self.shape_of(x)?[..] {
            [_] => x.clone(),
            // A linear layer on a 1×1 map (a MatMul after a kept-dims pooling) reads it flat.
            [_, 1, 1] => self.push_node(
                &format!("{name}/flatten"),
                Op::Flatten,
                std::slice::from_ref(x),
            )?[0]
                .clone(),
            _ => return Err("its input is not a vector".into()),
        };
        let mut named = vec![("weight", vec![out, features], weight)];
        if let Some(b) = bias {
            named.push(("bias", vec![out], b));
        }
        let op = Op::Linear {
            in_features: features,
            out_features: out,
            bias: named.len() == 2,
        };
        let stem = self.stem(weight_name, name);
        self.push_with_params(stem, op, &[x], named)
    }

    /// A sum of activations, or a bias added to a bias-free linear layer that only it reads
    /// (PyTorch exports some as MatMul then Add).
    fn add(&mut self, name: &str, names: &[String], inputs: &[Value]) -> Made {
        if inputs.iter().all(|v| matches!(v, Value::Node(_))) {
            return self.push_node(name, Op::Add, inputs);
        }
        let (i, read_by, c) = match inputs {
            [Value::Node(i), Value::Constant(c)] => (*i, &names[0], c),
            [Value::Constant(c), Value::Node(i)] => (*i, &names[1], c),
            _ => return Err("adds constants, not activations".into()),
        };
        let only_here = self.readers.get(read_by) == Some(&1);
        match self.nodes[i].op {
            Op::Linear {
                out_features,
                bias: false,
                ..
            } if only_here && c.len() == out_features => {
                let bias = format!("{}.bias", self.nodes[i].name);
                self.tensors.insert(bias, (vec![out_features], c.floats()?));
                if let Op::Linear { bias, .. } = &mut self.nodes[i].op {
                    *bias = true;
                }
                Ok(vec![Value::Node(i)])
            }
            _ => Err(
                "adds a constant to an activation (only a linear layer's bias is imported)".into(),
            ),
        }
    }

    fn flatten(&mut self, name: &str, x: &Value) -> Made {
        match self.shape_of(x)?.len() {
            1 => Ok(vec![x.clone()]),
            _ => self.push_node(name, Op::Flatten, std::slice::from_ref(x)),
        }
    }

    fn read(&self, value: &str) -> bool {
        self.readers.get(value).is_some_and(|&n| n > 0)
    }

    /// A node with weights is named after its weight (`layer1.0.conv1.weight` → `layer1.0.conv1`)
    /// where that is free, else after its ONNX node.
    fn stem(&self, weight: &str, name: &str) -> String {
        match weight.strip_suffix(".weight") {
            Some(stem) if !stem.is_empty() && !self.names.contains(stem) => stem.to_string(),
            _ => name.to_string(),
        }
    }

    fn push_node(&mut self, name: &str, op: Op, inputs: &[Value]) -> Made {
        self.push_with_params(name.to_string(), op, inputs, vec![])
    }

    fn push_with_params(
        &mut self,
        name: String,
        op: Op,
        inputs: &[Value],
        params: Vec<(&str, Vec<usize>, Vec<f32>)>,
    ) -> Made {
        let inputs = inputs
            .iter()
            .map(|v| match v {
                Value::Node(i) => Ok(*i),
                _ => Err(Refusal::from(
                    "reads a constant where the IR needs an activation",
                )),
            })
            .collect::<Result<Vec<usize>, Refusal>>()?;
        let name = self.unique(name);
        for (suffix, dims, values) in params {
            self.tensors
                .insert(format!("{name}.{suffix}"), (dims, values));
        }
        Ok(vec![Value::Node(self.push(name, op, inputs)?)])
    }

    fn push(&mut self, name: String, op: Op, inputs: Vec<usize>) -> Result<usize, Refusal> {
        self.names.insert(name.clone());
        self.nodes.push(Node { name, op, inputs });
        let i = self.nodes.len() - 1;
        let graph = Graph {
            nodes: std::mem::take(&mut self.nodes),
        };
        let shape = graph.node_shape(i, &self.shapes);
        self.nodes = graph.nodes;
        match shape {
            Ok(shape) => {
                self.shapes.push(shape);
                Ok(i)
            }
            Err(e) => {
                self.nodes.pop();
                Err(e.to_string().into())
            }
        }
    }

    fn unique(&self, name: String) -> String {
        if !self.names.contains(&name) {
            return name;
        }
        (2..)
            .map(|k| format!("{name}_{k}"))
            .find(|n| !self.names.contains(n))
            .expect("some suffix is free")
    }

    /// One example's shape of an activation (`[C, H, W]` or `[n]`).
    fn shape_of(&self, v: &Value) -> Result<Vec<usize>, Refusal> {
        match v {
            Value::Node(i) => Ok(match self.shapes[*i] {
                ActShape::Map {
                    channels,
                    height,
                    width,
                } => vec![channels, height, width],
                ActShape::Vector(n) => vec![n],
            }),
            _ => Err("needs an activation here".into()),
        }
    }

    fn channels(&self, v: &Value) -> Result<usize, Refusal> {
        match self.shape_of(v)?[..] {
            [c, _, _] => Ok(c),
            _ => Err("needs a [C, H, W] map".into()),
        }
    }

    /// The graph, once every node was imported and the model's output is its last node.
    fn finish(self, device: &Device) -> Result<(Graph, Params), String> {
        let mut problems: Vec<String> = self
            .unsupported
            .iter()
            .map(|(op, names)| {
                let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
                let more = match names.len() > 5 {
                    true => format!(" and {} more", names.len() - 5),
                    false => String::new(),
                };
                format!(
                    "{op} ({} node(s): {}{more}): not supported",
                    names.len(),
                    shown.join(", ")
                )
            })
            .collect();
        problems.extend(self.refused);
        if !problems.is_empty() {
            return Err(format!(
                "the model uses what prunelab cannot import:\n  {}",
                problems.join("\n  ")
            ));
        }
        let [output] = &self.onnx.output[..] else {
            return Err(format!(
                "the model has {} outputs; prunelab's networks have one (the logits)",
                self.onnx.output.len()
            ));
        };
        match self.values.get(&output.name) {
            Some(Value::Node(i)) if *i == self.nodes.len() - 1 => {}
            Some(Value::Node(_)) => {
                return Err(format!(
                    "the output {:?} is not the model's last operation",
                    output.name
                ))
            }
            _ => {
                return Err(format!(
                    "the output {:?} is not computed from the input",
                    output.name
                ))
            }
        }
        let graph = Graph { nodes: self.nodes };
        let mut tensors = BTreeMap::new();
        for (name, (dims, values)) in self.tensors {
            let t = Tensor::from_vec(values, dims.as_slice(), device).map_err(|e| e.to_string())?;
            tensors.insert(name, t);
        }
        let params = Params::from_tensors(&graph, tensors, device).map_err(|e| e.to_string())?;
        Ok((graph, params))
    }
}

/// The node attributes, read by name and type.
struct Attributes<'a>(&'a [AttributeProto]);

impl Attributes<'_> {
    fn get(&self, name: &str, want: AttributeType) -> Result<Option<&AttributeProto>, Refusal> {
        match self.0.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) if a.r#type == want as i32 => Ok(Some(a)),
            Some(a) => Err(format!(
                "attribute {name} has type {}, expected {}",
                a.r#type,
                format!("{want:?}").to_uppercase()
            )
            .into()),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>, Refusal> {
        Ok(self.get(name, AttributeType::Int)?.map(|a| a.i))
    }

    fn float(&self, name: &str) -> Result<Option<f32>, Refusal> {
        Ok(self.get(name, AttributeType::Float)?.map(|a| a.f))
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, Refusal> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    fn string(&self, name: &str) -> Result<Option<String>, Refusal> {
        Ok(self
            .get(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// A `Constant` node's value, from whichever attribute holds it.
    fn constant(&self) -> Result<Constant, Refusal> {
        if let Some(t) = self
            .get("value", AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref())
        {
            return Ok(decode(t, Path::new(""))?);
        }
        if let Some(v) = self.float("value_float")? {
            return Ok(Constant {
                dims: vec![],
                values: Values::Floats(vec![v]),
            });
        }
        if let Some(v) = self.int("value_int")? {
            return Ok(Constant {
                dims: vec![],
                values: Values::Ints(vec![Some(v)]),
            });
        }
        if let Some(a) = self.get("value_floats", AttributeType::Floats)? {
            return Ok(Constant {
                dims: vec![a.floats.len()],
                values: Values::Floats(a.floats.clone()),
            });
        }
        if let Some(v) = self.ints("value_ints")? {
            return Ok(ints(vec![v.len()], v.into_iter().map(Some).collect()).constant());
        }
        Err("holds no value prunelab reads (a tensor, float(s) or int(s))".into())
    }
}

impl Value {
    fn constant(self) -> Constant {
        match self {
            Value::Constant(c) => c,
            _ => unreachable!("built as a constant"),
        }
    }
}

fn ints(dims: Vec<usize>, values: Vec<Option<i64>>) -> Value {
    Value::Constant(Constant {
        dims,
        values: Values::Ints(values),
    })
}

fn constant(v: &Value) -> Result<Constant, Refusal> {
    match v {
        Value::Constant(c) => Ok(c.clone()),
        Value::Node(_) => {
            Err("reads an activation where a constant (a weight or shape) is needed".into())
        }
        Value::Refused | Value::Absent => Err("misses an input".into()),
    }
}

/// Both entries of a 2-D attribute, which must be equal.
fn square(values: Option<Vec<i64>>, what: &str) -> Result<Option<usize>, Refusal> {
    match values.as_deref() {
        None => Ok(None),
        Some(&[a, b]) if a == b && a > 0 => Ok(Some(a as usize)),
        Some(v) => Err(format!("{what} {v:?} is not square and positive (not supported)").into()),
    }
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

/// A float attribute as the decimal it was written from (`1e-5`, not 9.99999974e-6), so that
/// an imported BatchNorm matches one built here.
fn as_written(v: f32) -> f64 {
    v.to_string().parse().expect("a float prints as a float")
}

fn show_dims(dims: &[Option<usize>]) -> String {
    let shown: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", shown.join(", "))
}
