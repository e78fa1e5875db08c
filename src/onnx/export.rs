//! A graph and its parameters as an ONNX model: opset 17, IR version 8, every parameter an
//! initializer under its own name, one node per IR node under the node's name (a fused
//! convolution's ReLU becomes a `Relu` node of its own), the batch dimension left symbolic.

use candle_core::Tensor;

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{
    tensor_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::graph::{fuse_for_inference, ActShape, Graph, GraphError, Op, Params};

/// The opset and IR version every export declares (what onnxruntime and `onnx.checker` of the
/// last years read).
pub const OPSET: i64 = 17;
pub const IR_VERSION: i64 = 8;

/// The name of the batch dimension in the model's input and output.
const BATCH: &str = "batch";

/// `graph` as an ONNX model; with `fold_batchnorm`, in its inference form (each BatchNorm
/// that follows a convolution folded into it), else with BatchNormalization nodes.
pub fn to_onnx(
    graph: &Graph,
    params: &Params,
    fold_batchnorm: bool,
) -> Result<ModelProto, GraphError> {
    let (graph, params) = match fold_batchnorm {
        true => fuse_for_inference(graph, params)?,
        false => (graph.clone(), params.clone()),
    };
    let shapes = graph.shapes()?;
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    let mut initializers = Vec::new();
    for node in &graph.nodes[1..] {
        for spec in node.op.params() {
            let name = format!("{}.{}", node.name, spec.suffix);
            initializers.push(initializer(&name, params.get(&name)?)?);
        }
        let inputs: Vec<String> = node
            .inputs
            .iter()
            .map(|&i| graph.nodes[i].name.clone())
            .collect();
        let with_params = |suffixes: &[&str]| {
            let mut names = inputs.clone();
            names.extend(suffixes.iter().map(|s| format!("{}.{s}", node.name)));
            names
        };
        let call = |op_type: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>| NodeProto {
            input: inputs,
            output: vec![node.name.clone()],
            name: node.name.clone(),
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        };
        nodes.push(match node.op {
            Op::Input { .. } => unreachable!("only the first node is the input"),
            Op::Conv2d {
                kernel,
                stride,
                padding,
                groups,
                bias,
                ..
            } => {
                let names = match bias {
                    true => with_params(&["weight", "bias"]),
                    false => with_params(&["weight"]),
                };
                call(
                    "Conv",
                    names,
                    vec![
                        ints("kernel_shape", &[kernel, kernel]),
                        ints("strides", &[stride, stride]),
                        ints("pads", &[padding; 4]),
                        ints("dilations", &[1, 1]),
                        int("group", groups),
                    ],
                )
            }
            Op::BatchNorm { eps, momentum, .. } => call(
                "BatchNormalization",
                with_params(&["weight", "bias", "running_mean", "running_var"]),
                // ONNX's momentum weighs the running value, PyTorch's the new batch.
                vec![
                    float("epsilon", eps as f32),
                    float("momentum", (1.0 - momentum) as f32),
                ],
            ),
            Op::Relu => call("Relu", inputs, vec![]),
            Op::Add if inputs.len() == 2 => call("Add", inputs, vec![]),
            Op::Add => call("Sum", inputs, vec![]),
            Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => call(
                match node.op {
                    Op::MaxPool { .. } => "MaxPool",
                    _ => "AveragePool",
                },
                inputs,
                vec![
                    ints("kernel_shape", &[kernel, kernel]),
                    ints("strides", &[stride, stride]),
                ],
            ),
            Op::GlobalAvgPool => call("GlobalAveragePool", inputs, vec![]),
            Op::Flatten => call("Flatten", inputs, vec![int("axis", 1)]),
            Op::Linear { bias, .. } => call(
                "Gemm",
                match bias {
                    true => with_params(&["weight", "bias"]),
                    false => with_params(&["weight"]),
                },
                vec![int("transB", 1)],
            ),
        });
        if let Op::Conv2d { relu: true, .. } = node.op {
            // The fused ReLU: the convolution's value goes to a Relu node of its own.
            let pre_relu = format!("{}/pre-relu", node.name);
            let conv = nodes.last_mut().expect("just pushed");
            conv.output = vec![pre_relu.clone()];
            nodes.push(NodeProto {
                input: vec![pre_relu],
                output: vec![node.name.clone()],
                name: format!("{}/relu", node.name),
                op_type: "Relu".into(),
                ..Default::default()
            });
        }
    }
    let input = &graph.nodes[0];
    let output = &graph.nodes[graph.output()];
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "prunelab".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "prunelab".into(),
            initializer: initializers,
            input: vec![value_info(&input.name, shapes[0])],
            output: vec![value_info(&output.name, shapes[graph.output()])],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A parameter as a float initializer (little-endian raw data).
fn initializer(name: &str, tensor: &Tensor) -> Result<TensorProto, GraphError> {
    let values = tensor.flatten_all()?.to_vec1::<f32>()?;
    Ok(TensorProto {
        dims: tensor.dims().iter().map(|&d| d as i64).collect(),
        data_type: tensor_proto::DataType::Float as i32,
        name: name.into(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    })
}

/// A float tensor value of one example's `shape`, after the symbolic batch dimension.
fn value_info(name: &str, shape: ActShape) -> ValueInfoProto {
    let dims = shape.dims();
    let batch = Dimension {
        value: Some(dimension::Value::DimParam(BATCH.into())),
        ..Default::default()
    };
    let dim = std::iter::once(batch)
        .chain(dims.into_iter().map(|d| Dimension {
            value: Some(dimension::Value::DimValue(d as i64)),
            ..Default::default()
        }))
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: tensor_proto::DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn int(name: &str, value: usize) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value as i64,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}
