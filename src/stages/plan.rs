//! An experiment resolved into what will run: its dataset's shape, its network as a graph and
//! its run folder, with the device it names. Built without writing anything.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::config::{DatasetInfo, DeviceChoice, Experiment};
use crate::graph::Graph;
use crate::util::output_path::check_output_folder;
use crate::Error;

/// A validated experiment resolved into what will run.
pub struct Plan {
    pub experiment: Experiment,
    pub dataset: DatasetInfo,
    pub graph: Graph,
    pub out_dir: PathBuf,
}

impl Plan {
    /// Resolves `experiment`, whose run folder is `<results_root>/<name>`: refused when that
    /// folder cannot be made (a file stands where it or a folder above it would be, or the
    /// file system refuses).
    pub fn new(experiment: Experiment, results_root: &Path) -> Result<Self, Error> {
        let out_dir = results_root.join(experiment.name());
        Self::in_folder(experiment, &out_dir)
    }

    /// Resolves `experiment` whose run folder is `out_dir` (a grid point's, under `runs/`).
    pub fn in_folder(experiment: Experiment, out_dir: &Path) -> Result<Self, Error> {
        let out_dir = out_dir.to_path_buf();
        check_output_folder("--results", &out_dir)?;
        let dataset = experiment.data.info(experiment.synthetic());
        let model = &experiment.model;
        let graph = match &model.onnx {
            Some(path) => {
                crate::onnx::load(path, model.input, &dataset, &Device::Cpu)
                    .map_err(|why| Error::Input(format!("model.onnx: {why}")))?
                    .0
            }
            None => {
                crate::models::build(&model.arch, dataset.channels, dataset.size, dataset.classes)?
            }
        };
        Ok(Self {
            experiment,
            dataset,
            graph,
            out_dir,
        })
    }
}

/// The candle device `device` names; `"cuda"` without a usable GPU is refused.
pub fn device(choice: DeviceChoice) -> Result<Device, Error> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        DeviceChoice::Cuda => Device::new_cuda(0).map_err(|e| {
            Error::Device(format!("device: \"cuda\" is unavailable ({e}); use a machine with an NVIDIA driver, or device = \"cpu\""))
        }),
    }
}
