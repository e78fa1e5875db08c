//! The network as data: the IR and its shapes, couplings (DFCs) and their view, surgery,
//! parameters, persistence, cost and inference fusion. Running it is [`crate::exec`]'s job.

#![forbid(unsafe_code)]

mod builder;
mod cost;
mod coupling;
mod coupling_view;
mod fuse;
mod io;
mod ir;
mod params;
mod surgery;

use std::path::PathBuf;

pub use builder::{GraphBuilder, BN_EPS, BN_MOMENTUM};
pub use cost::{layer_costs, macs, LayerCost};
pub use coupling::{channel_role, couplings, ChannelRole, Coupling};
pub use coupling_view::{find_coupling, spatial, ChannelSlice, SliceRole};
pub use fuse::fuse_for_inference;
pub use io::{
    load_model, load_state_dict, non_finite, read_model_metadata, read_safetensors, save_model,
    write_safetensors,
};
pub use ir::{ActShape, Graph, Init, Node, Op, ParamRole, ParamSpec};
pub use params::{specs, BatchStats, Params};
pub use surgery::{mask, prune, ChannelPlan};

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
