//! Tables printed on the terminal (Markdown, so they paste into notes and papers).

use std::fmt::Write as _;

use crate::eval::BenchRow;
use crate::inspect::Inspection;

pub fn bench_header(batch: usize) -> String {
    format!(
        "| model | conv | threads | train img/s (batch {batch}) | infer img/s batch 1 | infer img/s batch {batch} \
         | GFLOP/s train / infer | peak RSS MiB | RSS growth over training MiB |\n|---|---|---|---|---|---|---|---|---|"
    )
}

pub fn bench_line(r: &BenchRow) -> String {
    format!(
        "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} / {:.0} | {:.0} | {:+.1} |",
        r.model,
        r.conv,
        r.threads,
        r.train_images_per_second,
        r.infer_batch1_images_per_second,
        r.infer_batch_images_per_second,
        r.train_gflops,
        r.infer_gflops,
        r.peak_rss_mib,
        r.train_rss_growth_mib
    )
}

/// The DFC table and the totals. Long producer/consumer lists are shortened to their ends.
pub fn coupling_table(i: &Inspection) -> String {
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
