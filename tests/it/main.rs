//! The integration tests: one binary, one module per subject (ripgrep's and cargo's layout),
//! with the helpers in [`common`].

mod backprop;
mod cifar_download;
mod cli_errors;
mod commands;
mod common;
mod conv_reference;
mod correlation;
mod couplings;
mod data_criteria;
mod data_readers;
mod executor;
mod graph_reference;
mod grids;
mod mistakes;
mod models;
mod onnx;
mod paper_figures;
mod pruning;
mod records;
mod refusals;
mod saliency;
mod slurm;
mod stages;
mod surgery;
mod torch_golden;
mod training;
