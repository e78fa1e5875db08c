//! 2-D convolution for the graph executor: our CPU kernels as a candle custom op (forward and
//! both gradients), candle's own op on other devices and dtypes.

mod epilogue;
mod kernels;
mod matmul;
mod narrow;
mod outer;
mod prepacked;
mod reads;
mod shared;
mod simd;

use std::cell::Cell;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::then::Then;
use epilogue::Epilogue;
pub use kernels::Geometry;
pub use prepacked::with_weights_packed_once;

/// Which implementation runs convolutions on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvBackend {
    /// Our kernels (the default).
    Ours,
    /// candle's stock `Tensor::conv2d`, kept as the reference and for comparisons.
    Candle,
}

thread_local! {
    static BACKEND: Cell<ConvBackend> = const { Cell::new(ConvBackend::Ours) };
}

/// Runs `work` with `backend` as the CPU convolution of the convolutions this thread calls
/// (ours outside it). Per thread, not per process: work beside it keeps its own choice.
pub fn with_conv_backend<T>(backend: ConvBackend, work: impl FnOnce() -> T) -> T {
    /// Restores the choice before `work`, also when it panics.
    struct Restore(ConvBackend);
    impl Drop for Restore {
        fn drop(&mut self) {
            BACKEND.set(self.0);
        }
    }
    let _restore = Restore(BACKEND.replace(backend));
    work()
}

/// The CPU convolution this thread's convolutions use.
pub fn conv_backend() -> ConvBackend {
    BACKEND.get()
}

/// `conv2d(x, w)` with square stride and padding, dilation 1; `x` is `[N, C, H, W]`, `w` is
/// `[O, C/groups, k, k]`. Differentiable in both arguments. Our kernels run for f32 on the CPU;
/// other devices and dtypes (and [`ConvBackend::Candle`]) use candle's op.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    if !use_our_kernels(x, w) {
        return x.conv2d(w, padding, stride, 1, groups);
    }
    let geometry = geometry(x, w, stride, padding, groups)?;
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Forward(geometry))
}

/// Inference only (no gradient): `conv2d(x, w) + b`, then `then`, all inside the convolution
/// while each image's output is in cache.
pub fn conv2d_bias_then(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
    then: Then,
) -> Result<Tensor> {
    if !use_our_kernels(x, w) {
        let y = x
            .conv2d(w, padding, stride, 1, groups)?
            .broadcast_add(&b.reshape((1, (), 1, 1))?)?;
        return then.apply(y);
    }
    let g = geometry(x, w, stride, padding, groups)?;
    let out_dims = [g.batch, g.out_channels, g.out_height(), g.out_width()];
    if b.dims() != [g.out_channels] {
        candle_core::bail!(
            "conv2d: bias {:?} for {} output channels",
            b.dims(),
            g.out_channels
        );
    }
    let op = FusedForward {
        geometry: g,
        bias: b.to_dtype(DType::F32)?.to_vec1()?,
        relu: !matches!(then, Then::Nothing),
    };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match then {
        Then::AddRelu(residual) if residual.dims() != out_dims => candle_core::bail!(
            "conv2d: residual {:?} for an output {out_dims:?}",
            residual.dims()
        ),
        Then::AddRelu(residual) => x.apply_op3_no_bwd(&w, &residual.contiguous()?, &op),
        Then::Nothing | Then::Relu => x.apply_op2_no_bwd(&w, &op),
    }
}

/// Our kernels cover f32 on the CPU, unless candle's convolution was chosen.
fn use_our_kernels(x: &Tensor, w: &Tensor) -> bool {
    let f32_on_cpu = x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32;
    f32_on_cpu && conv_backend() == ConvBackend::Ours
}

fn geometry(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Geometry> {
    let (batch, in_channels, height, width) = x.dims4()?;
    let (out_channels, per_group, kernel, kernel_w) = w.dims4()?;
    if kernel != kernel_w || per_group * groups != in_channels || out_channels % groups != 0 {
        candle_core::bail!(
            "conv2d: weight {:?} does not fit input {:?} with {groups} groups",
            w.dims(),
            x.dims()
        );
    }
    if height + 2 * padding < kernel || width + 2 * padding < kernel || stride == 0 {
        candle_core::bail!("conv2d: a {kernel}×{kernel} kernel does not fit a {height}×{width} input padded by {padding}");
    }
    Ok(Geometry {
        batch,
        in_channels,
        height,
        width,
        out_channels,
        kernel,
        stride,
        padding,
        groups,
    })
}

/// The contiguous f32 data of a custom op's argument.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("conv2d: expected a contiguous tensor"),
    }
}

struct Forward(Geometry);

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "prunelab-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(xs, xl)?, slice(ws, wl)?);
        Ok(forward_storage(&self.0, x, w, Epilogue::default()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Only the gradients somebody tracks: not the network input's, nor a detached
        // weight's (scoring with gate variables needs neither).
        let Geometry {
            stride,
            padding,
            groups,
            ..
        } = self.0;
        let dx = x.track_op().then_some(None);
        conv2d_grads(x, w, grad, (stride, padding, groups), (dx, w.track_op()))
    }
}

/// Whether [`conv2d_grads`] covers these tensors: our kernels run on them.
pub(crate) fn conv2d_grads_cover(x: &Tensor, w: &Tensor) -> bool {
    use_our_kernels(x, w)
}

/// `(∂L/∂x, ∂L/∂w)` of `conv2d(x, w, …)` from the output's gradient `dout`, each only where
/// wanted. `dx` is wanted with `Some(plus)`, a gradient that already reached `x` (`None` for
/// none): it returns `∂L/∂x + plus`. Only where [`conv2d_grads_cover`] the tensors.
pub(crate) fn conv2d_grads(
    x: &Tensor,
    w: &Tensor,
    dout: &Tensor,
    (stride, padding, groups): (usize, usize, usize),
    (dx_plus, want_dw): (Option<Option<&Tensor>>, bool),
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let g = geometry(x, w, stride, padding, groups)?;
    let (x, w, dout) = (x.contiguous()?, w.contiguous()?, dout.contiguous()?);
    let dx = match dx_plus {
        None => None,
        Some(None) => Some(dout.apply_op2_no_bwd(&w, &InputGrad(g))?),
        Some(Some(plus)) => {
            if plus.dims() != x.dims() {
                candle_core::bail!(
                    "conv2d: gradient {:?} for an input {:?}",
                    plus.dims(),
                    x.dims()
                );
            }
            Some(dout.apply_op3_no_bwd(&w, &plus.contiguous()?, &InputGrad(g))?)
        }
    };
    let dw = match want_dw {
        true => Some(x.apply_op2_no_bwd(&dout, &WeightGrad(g))?),
        false => None,
    };
    Ok((dx, dw))
}

/// The forward convolution with its bias, and possibly a residual and a ReLU, inside: on
/// `(x, w)`, or on `(x, w, residual)`.
struct FusedForward {
    geometry: Geometry,
    bias: Vec<f32>,
    relu: bool,
}

impl FusedForward {
    fn compute(&self, x: &[f32], w: &[f32], residual: Option<&[f32]>) -> (CpuStorage, Shape) {
        let epilogue = Epilogue {
            bias: Some(&self.bias),
            residual,
            relu: self.relu,
        };
        forward_storage(&self.geometry, x, w, epilogue)
    }
}

/// The forward convolution with `epilogue`, as a custom op's output.
fn forward_storage(g: &Geometry, x: &[f32], w: &[f32], epilogue: Epilogue) -> (CpuStorage, Shape) {
    let shape = Shape::from((g.batch, g.out_channels, g.out_height(), g.out_width()));
    (CpuStorage::F32(kernels::forward(g, x, w, epilogue)), shape)
}

impl CustomOp2 for FusedForward {
    fn name(&self) -> &'static str {
        "prunelab-conv2d-bias-relu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok(self.compute(slice(xs, xl)?, slice(ws, wl)?, None))
    }
}

impl CustomOp3 for FusedForward {
    fn name(&self) -> &'static str {
        "prunelab-conv2d-bias-add-relu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let residual = Some(slice(rs, rl)?);
        Ok(self.compute(slice(xs, xl)?, slice(ws, wl)?, residual))
    }
}

/// `(dout, w) → dx`, or `(dout, w, plus) → dx + plus`.
struct InputGrad(Geometry);

impl InputGrad {
    fn compute(&self, dout: &[f32], w: &[f32], plus: Option<&[f32]>) -> (CpuStorage, Shape) {
        let g = &self.0;
        let dx = kernels::input_grad(g, dout, w, plus);
        let shape = Shape::from((g.batch, g.in_channels, g.height, g.width));
        (CpuStorage::F32(dx), shape)
    }
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "prunelab-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        ds: &CpuStorage,
        dl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok(self.compute(slice(ds, dl)?, slice(ws, wl)?, None))
    }
}

impl CustomOp3 for InputGrad {
    fn name(&self) -> &'static str {
        "prunelab-conv2d-input-grad-plus"
    }

    fn cpu_fwd(
        &self,
        ds: &CpuStorage,
        dl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok(self.compute(slice(ds, dl)?, slice(ws, wl)?, Some(slice(ps, pl)?)))
    }
}

/// `(x, dout) → dw`.
struct WeightGrad(Geometry);

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "prunelab-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let per_group = g.in_channels / g.groups;
        let mut dw = vec![0.0f32; g.out_channels * per_group * g.kernel * g.kernel];
        kernels::weight_grad(g, slice(xs, xl)?, slice(ds, dl)?, &mut dw);
        Ok((
            CpuStorage::F32(dw),
            Shape::from((g.out_channels, per_group, g.kernel, g.kernel)),
        ))
    }
}
