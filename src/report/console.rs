//! Tables printed on the terminal (Markdown, so they paste into notes and papers).

use std::fmt::Write as _;

use crate::bench::{BenchRow, CriterionTiming, OrderAgreement};
use crate::commands::inspect::Inspection;
use crate::commands::latency::LatencyReport;
use crate::eval::Timing;

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

/// The latency comparison, the coupled-layer shares and the slowest nodes.
pub fn latency_report(r: &LatencyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}), weights from {}; {} with {} threads; {} warm-up + {} timed passes per model, interleaved",
        r.name, r.arch, r.weights, r.device, r.threads, r.warmup, r.repeats
    );
    if let Some(p) = &r.pruning {
        let _ = writeln!(s, "pruned: {p}");
    }
    let _ = writeln!(
        s,
        "\n| model | parameters | MACs | prunable channels |\n|---|---|---|---|"
    );
    for m in &r.sizes {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} M | {} |",
            m.model,
            m.parameters,
            m.macs as f64 / 1e6,
            m.prunable_channels
        );
    }
    let timing = |t: &Timing| format!("{:.2} [{:.2}, {:.2}]", t.median_ms, t.p25_ms, t.p75_ms);
    let _ = writeln!(
        s,
        "\n| batch | unpruned ms, median [quartiles] | pruned ms | speedup (latency ratio) |\n|---|---|---|---|"
    );
    for b in &r.batches {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            b.batch,
            timing(&b.unpruned),
            b.pruned.as_ref().map_or("".into(), timing),
            b.speedup.map_or("".into(), |x| format!("{x:.3}×"))
        );
    }
    if let Some(ratio) = r.mac_ratio {
        let _ = writeln!(s, "\nMAC ratio, pruned / unpruned: {ratio:.3}");
    }
    let _ = writeln!(
        s,
        "\nPer-layer breakdown: time in nodes whose input or output channels are coupled\n\
         | model | batch | coupled ms / all ms | share | convs + linear: coupled share |\n|---|---|---|---|---|"
    );
    for c in &r.shares {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} / {:.2} | {:.1}% | {:.1}% |",
            c.model,
            c.batch,
            c.coupled_ms,
            c.total_ms,
            100.0 * c.share,
            100.0 * c.conv_linear_coupled_ms / c.conv_linear_total_ms
        );
    }
    let _ = write!(
        s,
        "\nwritten to {}: latency.json, latency_layers.csv (every node's median time)",
        r.out_dir.display()
    );
    s
}

/// One model's criterion timings, and the agreement of the two DFPC pair orders.
pub fn criteria_timings(timings: &[CriterionTiming], agreement: Option<&OrderAgreement>) -> String {
    let mut s = String::from("| model | criterion | DFCs | channels | median seconds | runs |\n|---|---|---|---|---|---|");
    for t in timings {
        let _ = write!(
            s,
            "\n| {} | {} | {} | {} | {:.4} | {} |",
            t.model,
            t.criterion.as_str(),
            t.dfcs,
            t.channels,
            t.seconds,
            t.runs
        );
    }
    if let Some(a) = agreement {
        let _ = write!(
            s,
            "\n\n{}: dfpc vs dfpc-name-order: Spearman ρ {:.6} over all channels; {} of {} DFCs differ, the most in {} (ρ {:.4}); {:.1}% of the lowest-scored tenth shared",
            a.model,
            a.spearman_all,
            a.dfcs_differing,
            a.dfcs,
            if a.worst_dfc.is_empty() { "none" } else { &a.worst_dfc },
            a.spearman_worst_dfc,
            100.0 * a.lowest_tenth_shared
        );
    }
    s
}

/// The two oracles' times per DFC, their ratio and their largest difference.
pub fn oracle_comparison(c: &crate::bench::OracleComparison) -> String {
    let mut out = format!(
        "oracle on {} images: suffix runs with tiles of {} channels against a full forward pass per channel\n{:<28} {:>8} {:>10} {:>10} {:>8} {:>12}",
        c.images, c.tile, "DFC", "channels", "fast s", "naive s", "speedup", "largest |Δ|"
    );
    for r in &c.dfcs {
        out.push_str(&format!(
            "\n{:<28} {:>8} {:>10.3} {:>10.3} {:>7.2}× {:>12.2e}",
            r.dfc,
            r.channels,
            r.fast_seconds,
            r.naive_seconds,
            r.naive_seconds / r.fast_seconds,
            r.largest_difference
        ));
    }
    out.push_str(&format!(
        "\n{:<28} {:>8} {:>10.3} {:>10.3} {:>7.2}×",
        "all",
        c.dfcs.iter().map(|r| r.channels).sum::<usize>(),
        c.fast_seconds,
        c.naive_seconds,
        c.naive_seconds / c.fast_seconds
    ));
    out
}
