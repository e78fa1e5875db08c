//! `dfpc`: DFPC's data-free saliency (BGSC), in closed form.
//!
//! For a producer→consumer pair (a, b) of a DFC and channel j, BGSC is
//! 1ᵀ |M_b|[:, I_j] · T · |D_a| · |M_a|[I_j, :] 1, where M is a layer's unrolled convolution
//! matrix (true stride and padding), D_a the scale |γ|/√(var+ε) of the BatchNorm after a, T the
//! per-channel map between a's output and b's input and I_j the positions of channel j. T is the
//! identity along a residual stream and an average before a classifier (all DFPC's ResNets
//! need); where a DFC holds more channel-wise layers, T composes them: pooling averages (max
//! pooling too, as the public code treats it), a depthwise convolution's |M|, and the scale of
//! any further BatchNorm. It bounds the ℓ1 change of b's
//! output when channel j is removed, for inputs bounded by 1. Every factor is non-negative, so
//! no matrix is built: |M_a|[I_j, :] 1 is, per output position, the sum of |W_a[j]| over the
//! taps that land inside the input, and 1ᵀ |M_b|[:, I_j] is, per input position, the sum of
//! |W_b[:, j]| over the taps that read it. A DFC's score sums its pairs (or reduces them as
//! configured).
//!
//! "b downstream of a" is graph order ([`PairOrder::Graph`]). The public DFPC code compares
//! layer names as strings, which misorders two-digit block indices (`layer3.10` < `layer3.2`);
//! [`PairOrder::Name`] reproduces that (`dfpc-name-order`), counting a pair when b's name sorts
//! after a's, or b is a linear layer, and treating an upstream b as if it read a's output.

use std::collections::HashMap;
use std::rc::Rc;

use super::{batch_norm_scale, param, Criterion, Inputs, Member, SaliencyError, Unit};
use crate::graph::{spatial, Coupling, Graph, Op};

/// How "consumer b is downstream of producer a" is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOrder {
    /// b comes after a in the graph: the network's own order.
    Graph,
    /// The public code's rule: b's name sorts after a's, or b is a linear layer.
    Name,
}

impl PairOrder {
    pub fn downstream(self, graph: &Graph, producer: usize, consumer: usize) -> bool {
        match self {
            PairOrder::Graph => consumer > producer,
            PairOrder::Name => {
                graph.nodes[consumer].name > graph.nodes[producer].name
                    || matches!(graph.nodes[consumer].op, Op::Linear { .. })
            }
        }
    }
}

pub struct Dfpc(pub PairOrder);

/// Per-channel values over a spatial grid: `values[(j·h + y)·w + x]`.
#[derive(Clone)]
struct Field {
    h: usize,
    w: usize,
    values: Vec<f64>,
}

impl Criterion for Dfpc {
    fn name(&self) -> &'static str {
        match self.0 {
            PairOrder::Graph => "dfpc",
            PairOrder::Name => "dfpc-name-order",
        }
    }

    fn unit(&self) -> Unit {
        Unit::Pairs(self.0)
    }

    fn score(
        &self,
        inputs: &Inputs,
        _index: usize,
        dfc: &Coupling,
        member: Member,
    ) -> Result<Vec<f64>, SaliencyError> {
        let Member::Pair { producer, consumer } = member else {
            unreachable!("dfpc scores producer→consumer pairs");
        };
        let rows = row_sums(inputs, dfc, producer)?;
        let read = dfc.consumer_input(inputs.graph, consumer);
        let mut memo = HashMap::new();
        let field = match self.reach(inputs, dfc, producer, read, &rows, &mut memo)? {
            Some(field) => field,
            None if self.0 == PairOrder::Graph => return Ok(vec![0.0; dfc.channels]),
            // The name order pairs b with a even where b does not read a's output: the public
            // code multiplies the matrices regardless, through D_a alone.
            None => Rc::new(self.unrouted(inputs, dfc, producer, consumer, rows)?),
        };
        let cols = column_sums(inputs, dfc, consumer)?;
        if (field.h, field.w) != (cols.h, cols.w) {
            return Err(self.unsupported(
                inputs,
                dfc,
                format!(
                    "{} reads a {}×{} map where {} writes {}×{}",
                    inputs.graph.nodes[consumer].name,
                    cols.h,
                    cols.w,
                    inputs.graph.nodes[producer].name,
                    field.h,
                    field.w
                ),
            ));
        }
        let per_channel = field.h * field.w;
        Ok(field
            .values
            .chunks(per_channel)
            .zip(cols.values.chunks(per_channel))
            .map(|(u, c)| u.iter().zip(c).map(|(u, c)| u * c).sum())
            .collect())
    }
}

impl Dfpc {
    fn unsupported(&self, inputs: &Inputs, dfc: &Coupling, why: String) -> SaliencyError {
        SaliencyError::Unsupported {
            criterion: self.name(),
            dfc: dfc.name(inputs.graph).to_string(),
            why,
        }
    }

    /// The field that `producer`'s row sums become at the output of `node`, following the
    /// DFC's channel-wise members; `None` when `node` does not depend on `producer`.
    fn reach(
        &self,
        inputs: &Inputs,
        dfc: &Coupling,
        producer: usize,
        node: usize,
        rows: &Rc<Field>,
        memo: &mut HashMap<usize, Option<Rc<Field>>>,
    ) -> Result<Option<Rc<Field>>, SaliencyError> {
        if node == producer {
            return Ok(Some(rows.clone()));
        }
        if node < producer || !dfc.members.contains(&node) {
            return Ok(None);
        }
        if let Some(known) = memo.get(&node) {
            return Ok(known.clone());
        }
        let graph = inputs.graph;
        let mut reached: Vec<Rc<Field>> = Vec::new();
        for &input in &graph.nodes[node].inputs {
            if let Some(f) = self.reach(inputs, dfc, producer, input, rows, memo)? {
                reached.push(f);
            }
        }
        let out = match reached.len() {
            0 => None,
            _ => Some(self.through(inputs, dfc, node, reached)?),
        };
        memo.insert(node, out.clone());
        Ok(out)
    }

    /// `fields` (the inputs of `node` that depend on the producer) through `node`'s op.
    fn through(
        &self,
        inputs: &Inputs,
        dfc: &Coupling,
        node: usize,
        mut fields: Vec<Rc<Field>>,
    ) -> Result<Rc<Field>, SaliencyError> {
        let graph = inputs.graph;
        let first = fields.remove(0);
        Ok(match graph.nodes[node].op {
            Op::Relu | Op::Flatten => first,
            // Channel j of the sum depends on the producer through every reached input.
            Op::Add if fields.is_empty() => first,
            Op::Add => {
                let mut sum = first.values.clone();
                for f in &fields {
                    sum.iter_mut().zip(&f.values).for_each(|(s, v)| *s += v);
                }
                Rc::new(Field {
                    h: first.h,
                    w: first.w,
                    values: sum,
                })
            }
            Op::BatchNorm { .. } => {
                let scale = batch_norm_scale(inputs, dfc, node)?;
                let per_channel = first.h * first.w;
                let values = first
                    .values
                    .chunks(per_channel)
                    .zip(&scale)
                    .flat_map(|(u, s)| u.iter().map(move |v| v * s))
                    .collect();
                Rc::new(Field {
                    h: first.h,
                    w: first.w,
                    values,
                })
            }
            // The public code treats max pooling as its window average too.
            Op::AvgPool { kernel, stride } | Op::MaxPool { kernel, stride } => {
                Rc::new(window_average(&first, kernel, stride))
            }
            Op::GlobalAvgPool => Rc::new(window_average(&first, first.h.max(first.w), 1)),
            // |M| of a depthwise convolution acts on each channel's plane alone.
            Op::Conv2d {
                depthwise: true,
                kernel,
                stride,
                padding,
                ..
            } => {
                let w = param(inputs, dfc, node, "weight")?;
                let (oh, ow) = spatial(inputs.shapes[node]);
                Rc::new(depthwise_abs(&first, &w, kernel, stride, padding, (oh, ow)))
            }
            _ => {
                return Err(self.unsupported(
                    inputs,
                    dfc,
                    format!(
                        "BGSC's closed form does not cover the {} {} between its producers and consumers",
                        graph.nodes[node].op.kind(),
                        graph.nodes[node].name
                    ),
                ))
            }
        })
    }

    /// The name order's pair whose consumer does not read the producer's output: D_a times the
    /// row sums, averaged to one value per channel if the consumer reads a pooled vector.
    fn unrouted(
        &self,
        inputs: &Inputs,
        dfc: &Coupling,
        producer: usize,
        consumer: usize,
        rows: Rc<Field>,
    ) -> Result<Field, SaliencyError> {
        let mut field = Rc::unwrap_or_clone(rows);
        if let Some(bn) = dfc.batch_norm_after(inputs.graph, producer) {
            field = Rc::unwrap_or_clone(self.through(inputs, dfc, bn, vec![Rc::new(field)])?);
        }
        let (h, w) = spatial(inputs.shapes[dfc.consumer_input(inputs.graph, consumer)]);
        if (h, w) == (1, 1) && (field.h, field.w) != (1, 1) {
            field = window_average(&field, field.h.max(field.w), 1);
        }
        Ok(field)
    }
}

/// Non-overlapping or strided square windows without padding, averaged (`k` ≥ the map's side
/// averages everything: global pooling).
fn window_average(f: &Field, kernel: usize, stride: usize) -> Field {
    let (kh, kw) = (kernel.min(f.h), kernel.min(f.w));
    let (oh, ow) = ((f.h - kh) / stride + 1, (f.w - kw) / stride + 1);
    let per_channel = f.h * f.w;
    let mut values = Vec::with_capacity(f.values.len() / per_channel * oh * ow);
    for plane in f.values.chunks(per_channel) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0;
                for y in oy * stride..oy * stride + kh {
                    for x in ox * stride..ox * stride + kw {
                        sum += plane[y * f.w + x];
                    }
                }
                values.push(sum / (kh * kw) as f64);
            }
        }
    }
    Field {
        h: oh,
        w: ow,
        values,
    }
}

/// `|M| u` for a depthwise convolution: each output position sums |w[j, tap]| times the field
/// at the input positions its taps read.
fn depthwise_abs(
    f: &Field,
    weight: &[f64],
    kernel: usize,
    stride: usize,
    padding: usize,
    (oh, ow): (usize, usize),
) -> Field {
    let k2 = kernel * kernel;
    let per_channel = f.h * f.w;
    let mut values = Vec::with_capacity(f.values.len() / per_channel * oh * ow);
    for (j, plane) in f.values.chunks(per_channel).enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0;
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let (y, x) = (
                            (oy * stride + ky) as isize - padding as isize,
                            (ox * stride + kx) as isize - padding as isize,
                        );
                        if y >= 0 && x >= 0 && (y as usize) < f.h && (x as usize) < f.w {
                            sum += weight[j * k2 + ky * kernel + kx].abs()
                                * plane[y as usize * f.w + x as usize];
                        }
                    }
                }
                values.push(sum);
            }
        }
    }
    Field {
        h: oh,
        w: ow,
        values,
    }
}

/// The geometry of a mixing layer as BGSC sees it.
struct Taps {
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Input and output spatial sizes.
    input: (usize, usize),
    output: (usize, usize),
}

fn taps(graph: &Graph, shapes: &[crate::graph::ActShape], node: usize) -> Taps {
    let (kernel, stride, padding) = match graph.nodes[node].op {
        Op::Conv2d {
            kernel,
            stride,
            padding,
            ..
        } => (kernel, stride, padding),
        _ => (1, 1, 0),
    };
    Taps {
        kernel,
        stride,
        padding,
        input: spatial(shapes[graph.nodes[node].inputs[0]]),
        output: spatial(shapes[node]),
    }
}

/// |M_a|[I_j, :] 1 for every channel j of `producer`'s output and every output position: the
/// sum of |W_a[j, c, ky, kx]| over the input channels and the taps inside the input.
fn row_sums(inputs: &Inputs, dfc: &Coupling, producer: usize) -> Result<Rc<Field>, SaliencyError> {
    let t = taps(inputs.graph, inputs.shapes, producer);
    let w = param(inputs, dfc, producer, "weight")?;
    let k2 = t.kernel * t.kernel;
    let per_filter = w.len() / dfc.channels;
    // s[j][tap] = Σ_c |W[j, c, tap]|
    let s: Vec<f64> = w
        .chunks(per_filter)
        .flat_map(|filter| {
            (0..k2).map(move |tap| {
                filter
                    .iter()
                    .skip(tap)
                    .step_by(k2)
                    .map(|v| v.abs())
                    .sum::<f64>()
            })
        })
        .collect();
    let inside = |o: usize, k: usize, size: usize| {
        let at = (o * t.stride + k) as isize - t.padding as isize;
        at >= 0 && (at as usize) < size
    };
    let valid = |o: usize, k: usize, axis: usize| inside(o, k, [t.input.0, t.input.1][axis]);
    Ok(Rc::new(sum_taps(
        &s,
        dfc.channels,
        t.kernel,
        t.output,
        valid,
    )))
}

/// 1ᵀ |M_b|[:, I_j] for every input channel j of `consumer` and every input position: the sum
/// of |W_b[o, j, ky, kx]| over the outputs o and the taps that read the position.
fn column_sums(inputs: &Inputs, dfc: &Coupling, consumer: usize) -> Result<Field, SaliencyError> {
    let t = taps(inputs.graph, inputs.shapes, consumer);
    let w = param(inputs, dfc, consumer, "weight")?;
    let k2 = t.kernel * t.kernel;
    let c = dfc.channels;
    // s[j][tap] = Σ_o |W[o, j, tap]|
    let mut s = vec![0.0; c * k2];
    for (i, v) in w.iter().enumerate() {
        s[i % (c * k2)] += v.abs();
    }
    // Does tap k read input position p of some output position?
    let reads = |p: usize, k: usize, out: usize| {
        let shifted = p + t.padding;
        shifted >= k && (shifted - k) % t.stride == 0 && (shifted - k) / t.stride < out
    };
    let valid = |p: usize, k: usize, axis: usize| reads(p, k, [t.output.0, t.output.1][axis]);
    Ok(sum_taps(&s, c, t.kernel, t.input, valid))
}

/// For every channel j and position (y, x) of an `h`×`w` grid, the sum of `per_tap[j][ky][kx]`
/// over the taps that `valid(y, ky, 0)` and `valid(x, kx, 1)` admit there.
fn sum_taps(
    per_tap: &[f64],
    channels: usize,
    kernel: usize,
    (h, w): (usize, usize),
    valid: impl Fn(usize, usize, usize) -> bool,
) -> Field {
    let k2 = kernel * kernel;
    let mut values = Vec::with_capacity(channels * h * w);
    for j in 0..channels {
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0.0;
                for ky in (0..kernel).filter(|&ky| valid(y, ky, 0)) {
                    for kx in (0..kernel).filter(|&kx| valid(x, kx, 1)) {
                        sum += per_tap[j * k2 + ky * kernel + kx];
                    }
                }
                values.push(sum);
            }
        }
    }
    Field { h, w, values }
}
