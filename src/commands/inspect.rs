//! `prunelab inspect`: the couplings (DFCs) and costs of an experiment's network, from its
//! config alone (shapes come from the dataset kind; no data is read).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::graph::{couplings, layer_costs, ActShape, LayerCost};
use crate::stages::Plan;
use crate::Error;

/// One DFC, with node names.
#[derive(Debug, Clone, Serialize)]
pub struct CouplingRow {
    pub index: usize,
    pub producers: Vec<String>,
    pub consumers: Vec<String>,
    pub members: Vec<String>,
    pub channels: usize,
    pub coupled: bool,
}

/// What `inspect` reports (and writes as `inspect.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub name: String,
    pub arch: String,
    /// `[channels, height, width]` of one input.
    pub input: [usize; 3],
    pub classes: usize,
    pub parameters: usize,
    pub macs: u64,
    pub dfcs: usize,
    pub coupled_dfcs: usize,
    pub prunable_channels: usize,
    pub couplings: Vec<CouplingRow>,
    pub layers: Vec<LayerCost>,
    pub json: PathBuf,
}

/// Analyses the plan's graph and writes `results/<name>/inspect.json`.
pub fn inspect(plan: &Plan) -> Result<Inspection, Error> {
    let graph = &plan.graph;
    let found = couplings(graph)?;
    let layers = layer_costs(graph)?;
    let names = |nodes: &[usize]| {
        nodes
            .iter()
            .map(|&i| graph.nodes[i].name.clone())
            .collect::<Vec<_>>()
    };
    let rows: Vec<CouplingRow> = found
        .iter()
        .enumerate()
        .map(|(index, c)| CouplingRow {
            index,
            producers: names(&c.producers),
            consumers: names(&c.consumers),
            members: names(&c.members),
            channels: c.channels,
            coupled: c.is_coupled(),
        })
        .collect();
    let input = match graph.input_shape()? {
        ActShape::Map {
            channels,
            height,
            width,
        } => [channels, height, width],
        ActShape::Vector(n) => [n, 1, 1],
    };
    let inspection = Inspection {
        name: plan.experiment.name().to_string(),
        arch: plan.experiment.model.label(),
        input,
        classes: plan.dataset.classes,
        parameters: graph.parameter_count(),
        macs: layers.iter().map(|l| l.macs).sum(),
        dfcs: rows.len(),
        coupled_dfcs: rows.iter().filter(|r| r.coupled).count(),
        prunable_channels: rows.iter().map(|r| r.channels).sum(),
        couplings: rows,
        layers,
        json: plan.out_dir.join("inspect.json"),
    };
    crate::util::atomic_file::write_json(&inspection.json, &inspection)?;
    Ok(inspection)
}

pub fn command(experiment: &Path, results: &Path) -> Result<(), Error> {
    let plan = Plan::new(super::one_experiment(experiment)?, results)?;
    println!("{}", coupling_table(&inspect(&plan)?));
    Ok(())
}

/// The DFC table and the totals. Long producer/consumer lists are shortened to their ends.
fn coupling_table(i: &Inspection) -> String {
    let list = |names: &[String]| match names.len() {
        0..=3 => names.join(", "),
        n => format!("{}, {} … {} ({n})", names[0], names[1], names[n - 1]),
    };
    let mut s = String::new();
    let [c, h, w] = i.input;
    let _ = writeln!(
        s,
        "{} ({}) on {c}×{h}×{w} inputs, {} classes\n",
        i.name, i.arch, i.classes
    );
    let _ = writeln!(
        s,
        "| DFC | producers | consumers | channels | coupled |\n|---|---|---|---|---|"
    );
    for r in &i.couplings {
        let coupled = if r.coupled { "yes" } else { "" };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {coupled} |",
            r.index,
            list(&r.producers),
            list(&r.consumers),
            r.channels
        );
    }
    let _ = write!(
        s,
        "\n{} DFCs ({} coupled), {} prunable channels, {} parameters, {:.2} M MACs per image; written to {}",
        i.dfcs,
        i.coupled_dfcs,
        i.prunable_channels,
        i.parameters,
        i.macs as f64 / 1e6,
        i.json.display()
    );
    s
}
