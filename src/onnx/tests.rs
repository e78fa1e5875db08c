//! Export then import gives back the graph and every tensor bit for bit; the folded form
//! computes what the unfolded one does; what cannot be imported is named.

use candle_core::{Device, Tensor};
use prost::Message;

use super::proto::{ModelProto, NodeProto};
use super::{import, to_onnx};
use crate::exec::{forward, Mode};
use crate::graph::{prune, ChannelPlan, Graph, Params};
use crate::models::build;

fn round_trip(model: &ModelProto) -> Result<(Graph, Params), String> {
    let decoded = ModelProto::decode(model.encode_to_vec().as_slice()).unwrap();
    assert_eq!(&decoded, model, "the encoding reads back as written");
    import(
        decoded.graph.as_ref().unwrap(),
        std::path::Path::new("."),
        None,
        &Device::Cpu,
    )
}

fn same_tensors(a: &Params, b: &Params) {
    let (a, b) = (a.tensors(), b.tensors());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        let (x, y) = (t.flatten_all().unwrap(), b[name].flatten_all().unwrap());
        let (x, y) = (x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap());
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name}"
        );
    }
}

fn logits(graph: &Graph, params: &Params, x: &Tensor) -> Vec<f32> {
    let out = forward(graph, params, x, Mode::EVAL).unwrap().output;
    out.flatten_all().unwrap().to_vec1().unwrap()
}

/// Nets of every family, unpruned and with 30% of every DFC's channels removed at random.
fn nets() -> Vec<(String, Graph, Params)> {
    let mut nets = Vec::new();
    for arch in ["resnet20", "resnet50", "mobilenetv2", "vgg11"] {
        let graph = build(arch, 3, 32, 10).unwrap();
        let params = Params::init(&graph, 7, &Device::Cpu).unwrap();
        let plan = ChannelPlan::random(&graph, 0.3, 1).unwrap();
        let (pruned, pruned_params) = prune(&graph, &params, &plan).unwrap();
        nets.push((arch.to_string(), graph, params));
        nets.push((format!("{arch} pruned"), pruned, pruned_params));
    }
    nets
}

#[test]
fn export_then_import_gives_back_the_graph_and_its_tensors() {
    for (name, graph, params) in nets() {
        let (back, back_params) = round_trip(&to_onnx(&graph, &params, false).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, graph, "{name}");
        same_tensors(&back_params, &params);
    }
}

#[test]
fn the_folded_export_computes_what_the_network_does() {
    let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
    for (name, graph, params) in nets() {
        let model = to_onnx(&graph, &params, true).unwrap();
        let nodes = &model.graph.as_ref().unwrap().node;
        assert!(
            nodes.iter().all(|n| n.op_type != "BatchNormalization"),
            "{name}"
        );
        let (back, back_params) = round_trip(&model).unwrap();
        let (want, got) = (logits(&graph, &params, &x), logits(&back, &back_params, &x));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = want
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst <= 1e-5 * scale, "{name}: {worst} of {scale}");
    }
}

#[test]
fn what_cannot_be_imported_is_listed_by_op_type_and_node() {
    let graph = build("resnet20", 3, 32, 10).unwrap();
    let params = Params::init(&graph, 7, &Device::Cpu).unwrap();
    let mut model = to_onnx(&graph, &params, false).unwrap();
    let nodes = &mut model.graph.as_mut().unwrap().node;
    let mut rename = |at: usize, op: &str| {
        let n: &mut NodeProto = &mut nodes[at];
        n.op_type = op.into();
        n.name.clone()
    };
    let (first, second, third) = (rename(2, "Elu"), rename(9, "Elu"), rename(5, "LRN"));
    let err = round_trip(&model).unwrap_err();
    assert!(
        err.contains(&format!(
            "Elu (2 node(s): {first}, {second}): not supported"
        )) && err.contains(&format!("LRN (1 node(s): {third}): not supported")),
        "{err}"
    );
}

#[test]
fn a_dilated_convolution_is_refused_by_name() {
    let graph = build("resnet8", 3, 32, 10).unwrap();
    let params = Params::init(&graph, 7, &Device::Cpu).unwrap();
    let mut model = to_onnx(&graph, &params, false).unwrap();
    let conv = &mut model.graph.as_mut().unwrap().node[0];
    for a in &mut conv.attribute {
        if a.name == "dilations" {
            a.ints = vec![2, 2];
        }
    }
    let name = conv.name.clone();
    let err = round_trip(&model).unwrap_err();
    assert!(
        err.contains(&format!(
            "Conv node {name:?}: dilated convolutions are not supported"
        )),
        "{err}"
    );
}
