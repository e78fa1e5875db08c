//! An ONNX model as a graph of the IR and its parameters, names kept: a node with weights is
//! named after them (`layer1.0.conv1` for `layer1.0.conv1.weight`), any other after its ONNX
//! node. Constants, `Identity`, `Dropout` and the shape arithmetic of a flatten (`Shape`,
//! `Gather`, `Unsqueeze`, `Concat`, … on shapes) are folded; every node the IR cannot express
//! is listed in the error, with its name, and nothing is built.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use candle_core::{Device, Tensor};

use super::proto::tensor_shape_proto::dimension;
use super::proto::{type_proto, GraphProto, ValueInfoProto};
use super::tensors::{decode, Constant};
use crate::graph::{ActShape, Graph, Node, Op, Params};

mod attributes;
mod rules;

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
            Value::Node(i) => Ok(self.shapes[*i].dims()),
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

fn show_dims(dims: &[Option<usize>]) -> String {
    let shown: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", shown.join(", "))
}
