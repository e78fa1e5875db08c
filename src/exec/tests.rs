//! The executor's tests: fusion, live values, timing, parameter tracking.

use super::*;
use candle_core::Device;

fn resnet8() -> (Graph, Params, Tensor) {
    let graph = crate::models::build("resnet8", 3, 16, 10).unwrap();
    let params = Params::init(&graph, 0, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
    (graph, params, x)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn a_timed_forward_pass_computes_the_same_output_and_times_every_node() {
    let (graph, params, x) = resnet8();
    let plain = forward(&graph, &params, &x, Mode::EVAL).unwrap().output;
    let (timed, times) = forward_timed(&graph, &params, &x).unwrap();
    assert_eq!(max_diff(&plain, &timed), 0.0);
    assert_eq!(times.len(), graph.nodes.len());
    let conv = graph
        .nodes
        .iter()
        .position(|n| n.name == "layer1.0.conv1")
        .unwrap();
    assert!(times[conv] > Duration::ZERO);
}

#[test]
fn a_range_missing_a_live_value_names_the_node_that_reads_it() {
    let (graph, params, x) = resnet8();
    let err = run(
        &graph,
        &params,
        Live::input(x),
        3..6,
        Mode::EVAL,
        &mut NoTap,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("which is not live here"), "{err}");
    assert!(err.contains(&graph.nodes[3].name), "{err}");
}

#[test]
fn tracking_parameters_is_independent_of_the_batch_norm_statistics() {
    let (graph, params, x) = resnet8();
    let mode = Mode {
        batch_norm: BatchNormStats::Running,
        track_params: true,
    };
    let tracked = forward(&graph, &params, &x, mode).unwrap();
    assert!(tracked.batch_stats.is_empty());
    let eval = forward(&graph, &params, &x, Mode::EVAL).unwrap().output;
    // The same computation, but for the classifier: without a gradient it is our loop
    // (`kernels::linear`), with one candle's matmul, which sums in another order.
    assert!(max_diff(&tracked.output, &eval) < 1e-5);
    let grads = tracked.output.sum_all().unwrap().backward().unwrap();
    let w = &params.trainable["linear.weight"];
    assert!(grads.get(w.as_tensor()).is_some());
    let untracked = eval.sum_all().unwrap();
    assert!(untracked.backward().unwrap().get(w.as_tensor()).is_none());
}

/// Counts the outputs it is shown; `watch` says whether it needs every node's own.
struct Counter {
    watch: bool,
    shown: Vec<usize>,
}

impl Tap for Counter {
    fn sees(&self, _node: usize) -> bool {
        self.watch
    }

    fn after(&mut self, node: usize, value: Tensor) -> Result<Tensor, GraphError> {
        self.shown.push(node);
        Ok(value)
    }
}

#[test]
fn batch_norm_run_inside_its_relu_and_residual_add_computes_the_same_values_and_gradients() {
    let (graph, params, x) = resnet8();
    let train = |watch: bool| {
        let mut tap = Counter {
            watch,
            shown: Vec::new(),
        };
        let range = 0..graph.nodes.len();
        let done = run(
            &graph,
            &params,
            Live::input(x.clone()),
            range,
            Mode::TRAIN,
            &mut tap,
        );
        let done = done.unwrap();
        let output = done.live.into_output(&graph).unwrap();
        let grads = output.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let grads: Vec<Vec<f32>> = (params.trainable.values())
            .map(|v| {
                grads
                    .get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            })
            .collect();
        let means: Vec<Tensor> = done.batch_stats.iter().map(|s| s.mean.clone()).collect();
        (output, grads, means, tap.shown)
    };
    let (fused, fused_grads, fused_means, shown) = train(false);
    let (plain, plain_grads, plain_means, all) = train(true);
    assert_eq!(all.len(), graph.nodes.len());
    // resnet8: the BNs followed by a ReLU run inside it; the last BN of the identity block
    // and the shortcut BNs of the two projection blocks run inside the add and its ReLU.
    // Only the projection blocks' second BNs, which their shortcut's nodes follow, remain.
    let kinds = |nodes: &[usize], kind: &str| {
        nodes
            .iter()
            .filter(|&&i| graph.nodes[i].op.kind() == kind)
            .count()
    };
    assert_eq!(kinds(&shown, "batch_norm"), 2);
    assert_eq!(kinds(&shown, "add"), 0);
    assert_eq!(kinds(&shown, "relu"), kinds(&all, "relu"));
    assert_eq!(max_diff(&fused, &plain), 0.0);
    assert_eq!(fused_grads, plain_grads);
    for (a, b) in fused_means.iter().zip(&plain_means) {
        assert_eq!(max_diff(a, b), 0.0);
    }
}

/// The output of a whole evaluation pass, and the nodes whose outputs a [`Counter`] was
/// shown.
fn evaluate_counting(
    graph: &Graph,
    params: &Params,
    x: &Tensor,
    watch: bool,
) -> (Tensor, Vec<usize>) {
    let mut tap = Counter {
        watch,
        shown: Vec::new(),
    };
    let live = Live::input(x.clone());
    let done = run(
        graph,
        params,
        live,
        0..graph.nodes.len(),
        Mode::EVAL,
        &mut tap,
    );
    (done.unwrap().live.into_output(graph).unwrap(), tap.shown)
}

#[test]
fn an_inference_convolution_runs_its_residual_add_and_relu_inside() {
    let (graph, params, x) = resnet8();
    let (graph, params) = crate::graph::fuse_for_inference(&graph, &params).unwrap();
    let eval = |x: &Tensor, watch: bool| evaluate_counting(&graph, &params, x, watch);
    let adds = |shown: &[usize]| {
        (shown.iter())
            .filter(|&&i| matches!(graph.nodes[i].op, Op::Add))
            .count()
    };
    let (fused, shown) = eval(&x, false);
    let (plain, all) = eval(&x, true);
    assert_eq!(adds(&all), 3);
    assert_eq!(
        adds(&shown),
        0,
        "every add follows the convolution it reads last"
    );
    assert_eq!(max_diff(&fused, &plain), 0.0);
}

#[test]
fn a_convolution_that_a_gradient_flows_through_keeps_its_add_outside() {
    let mut builder = crate::graph::GraphBuilder::new(4, 6, 6);
    let a = builder.conv_with_bias("a", 0, 4, 3, 1, 1).unwrap();
    let b = builder.conv_with_bias("b", a, 4, 3, 1, 1).unwrap();
    let sum = builder.add("add", b, a).unwrap();
    builder.relu("relu", sum).unwrap();
    let graph = builder.finish();
    let params = Params::init(&graph, 0, &candle_core::Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 4, 6, 6), &candle_core::Device::Cpu).unwrap();
    let eval = |x: &Tensor, watch: bool| evaluate_counting(&graph, &params, x, watch);
    let (fused, shown) = eval(&x, false);
    assert!(!shown.contains(&sum));
    let (plain, _) = eval(&x, true);
    assert_eq!(max_diff(&fused, &plain), 0.0);
    let input = candle_core::Var::from_tensor(&x).unwrap();
    let (output, shown) = eval(input.as_tensor(), false);
    assert!(shown.contains(&sum));
    assert_eq!(max_diff(&output, &plain), 0.0);
    let grads = output.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(input.as_tensor()).is_some());
}
