//! f32 CPU kernels: convolution (forward and both gradients), BatchNorm, ReLU and the
//! per-channel sums, as candle custom ops. Every SIMD loop and every `unsafe` block of the
//! crate (but the allocator's) lives here.

pub mod batch_norm;
pub mod channelwise;
pub mod conv;
pub mod linear;
pub(crate) mod output;
pub mod then;
mod wide;

pub use batch_norm::{batch_norm_train, ChannelStats};
pub use channelwise::{add_channel_bias, relu};
pub use conv::{
    conv2d, conv2d_bias_then, conv_backend, with_conv_backend, with_weights_packed_once,
    ConvBackend,
};
pub use linear::linear;
pub use then::Then;
