//! The rule of each imported op type: what node(s) of the IR an ONNX node becomes, or why it
//! cannot become any.

use super::attributes::{as_written, constant, ints, square, transpose, Attributes};
use super::{Builder, Made, Refusal, Value, SUPPORTED};
use crate::graph::{Op, BN_EPS, BN_MOMENTUM};
use crate::onnx::proto::NodeProto;

impl Builder<'_> {
    /// Imports one node, given the values of its inputs (a missing optional one is `Absent`).
    pub(super) fn node(&mut self, node: &NodeProto, name: &str, inputs: &[Value]) -> Made {
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
}
