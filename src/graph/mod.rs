//! The network as data: IR, execution on candle, parameters, persistence.

mod batch_norm;
mod builder;
mod channelwise;
mod conv;
mod cost;
mod coupling;
mod coupling_view;
mod exec;
mod fuse;
mod io;
mod ir;
mod output;
mod params;
mod surgery;
mod taps;
mod then;
mod wide;

use std::path::PathBuf;

pub use batch_norm::{batch_norm_train, ChannelStats};
pub use builder::{GraphBuilder, BN_EPS, BN_MOMENTUM};
pub use channelwise::{add_channel_bias, relu};
pub use conv::{conv2d, conv2d_bias_then, conv_backend, set_conv_backend, ConvBackend};
pub use cost::{layer_costs, macs, LayerCost};
pub use coupling::{channel_role, couplings, ChannelRole, Coupling};
pub use coupling_view::{find_coupling, spatial, ChannelSlice, SliceRole};
pub use exec::{
    forward, forward_for_backward, forward_timed, run, BatchNormStats, Forward, Gradients, Live,
    Mode, NoTap, Run, Tap, Tape,
};
pub use fuse::fuse_for_inference;
pub use io::{
    load_model, load_state_dict, non_finite, read_model_metadata, read_safetensors, save_model,
    write_safetensors,
};
pub use ir::{ActShape, Graph, Init, Node, Op, ParamRole, ParamSpec};
pub use params::{specs, BatchStats, Params};
pub use surgery::{mask, prune, ChannelPlan};
pub use taps::{ChannelMask, Gates};
pub use then::Then;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("invalid graph: {0}")]
    Invalid(String),
    #[error("weights do not fit the model: {0}")]
    Weights(String),
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
