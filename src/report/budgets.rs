//! Does a criterion that ranks channels closer to the oracle also prune better? At equal
//! budgets — step k of a schedule removes the same number of channels whatever the criterion —
//! the accuracy each criterion's network reached, beside Spearman's ρ across the criteria between
//! their ρ with the oracle (all layers) and that accuracy. For a sweep, right after pruning; for
//! the iterative schedule, after each step's fine-tune and after the final fine-tune.

use std::path::Path;

use polars::prelude::*;

use super::text::{latex_escape, latex_table, markdown_table};
use crate::prune::{Point, PruneResults, Variant};
use crate::stats::{spearman, Study};
use crate::util::tables::{write_csv, FileError};

/// Most steps shown per coupled setting.
const ROWS: usize = 12;

/// One budget: a step, for one coupled setting, and what the accuracy was measured after.
#[derive(Debug, PartialEq)]
struct Budget {
    coupled: bool,
    step: usize,
    /// Channels removed, as a fraction of all channels.
    removed: f64,
    after: &'static str,
    /// Per criterion (in `criteria` order), the accuracy reached.
    accuracy: Vec<f64>,
    /// Spearman ρ across the criteria between oracle ρ and accuracy.
    rho: f64,
}

/// The criteria pruned that the study also compared, with their all-layer ρ.
fn criteria(study: &Study, results: &PruneResults) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for v in &results.variants {
        let name = v.criterion.as_str();
        if out.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(row) = study.rows.iter().find(|r| r.criterion == name) {
            out.push((name.to_string(), row.all_layers.value));
        }
    }
    out
}

/// The budgets every criterion of `criteria` (name, oracle ρ) reached, per coupled setting:
/// up to [`ROWS`] steps, then the final fine-tune's last and best epoch where there was one.
fn budgets(criteria: &[(String, f64)], results: &PruneResults) -> Vec<Budget> {
    let oracle: Vec<f64> = criteria.iter().map(|(_, rho)| *rho).collect();
    let step_after = match results.schedule.fine_tunes() {
        true => "step fine-tune (validation)",
        false => "pruning (validation)",
    };
    let mut rows = Vec::new();
    for coupled in [true, false] {
        let variants: Vec<&Variant> = criteria
            .iter()
            .filter_map(|(name, _)| {
                results
                    .variants
                    .iter()
                    .find(|v| v.coupled == coupled && v.criterion.as_str() == name)
            })
            .collect();
        if variants.len() != criteria.len() || variants.len() < 2 {
            continue;
        }
        let all = variants[0].points[0].channels as f64;
        // A row only where every criterion's network has the same channels left.
        let mut row =
            |step: usize, after: &'static str, points: &[&Point], score: fn(&Point) -> f64| {
                if points.len() == variants.len()
                    && points.iter().all(|p| p.channels == points[0].channels)
                {
                    let accuracy: Vec<f64> = points.iter().map(|p| score(p)).collect();
                    rows.push(Budget {
                        coupled,
                        step,
                        removed: 1.0 - points[0].channels as f64 / all,
                        after,
                        rho: spearman(&oracle, &accuracy),
                        accuracy,
                    });
                }
            };
        let validation = |p: &Point| p.validation.map_or(f64::NAN, |s| s.accuracy);
        let test = |p: &Point| p.test.map_or(f64::NAN, |s| s.accuracy);
        // Steps every variant took, with a validation accuracy.
        let last = variants
            .iter()
            .map(|v| v.points.iter().filter(|p| p.validation.is_some()).count())
            .min()
            .unwrap_or(0);
        let every = last.div_ceil(ROWS).max(1);
        for step in (every..last).step_by(every) {
            let points: Vec<&Point> = variants.iter().filter_map(|v| v.point(step)).collect();
            row(step, step_after, &points, validation);
        }
        let tuned: Vec<_> = variants
            .iter()
            .filter_map(|v| v.fine_tuned.as_ref())
            .collect();
        let chosen: Vec<usize> = variants.iter().filter_map(|v| v.chosen).collect();
        if tuned.len() == variants.len() && chosen.iter().all(|&c| c == chosen[0]) {
            let last: Vec<&Point> = tuned.iter().map(|t| &t.last).collect();
            row(chosen[0], "final fine-tune, last epoch (test)", &last, test);
            let best: Vec<&Point> = tuned.iter().map(|t| &t.best).collect();
            row(chosen[0], "final fine-tune, best epoch (test)", &best, test);
        }
    }
    rows
}

/// Writes `budgets.md`, `budgets.tex` and `budgets.csv` into `dir`, when the results hold a
/// schedule of at least two criteria the study compared.
pub fn write_budgets(study: &Study, results: &PruneResults, dir: &Path) -> Result<(), FileError> {
    let criteria = criteria(study, results);
    let rows = budgets(&criteria, results);
    if rows.is_empty() {
        return Ok(());
    }
    let mut header = vec![
        "coupled".to_string(),
        "step".into(),
        "removed %".into(),
        "accuracy after".into(),
    ];
    header.extend(criteria.iter().map(|(n, rho)| format!("{n} (ρ {rho:.2})")));
    header.push("ρ(oracle ρ, acc.)".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|b| {
            let mut row = vec![
                if b.coupled { "on" } else { "off" }.to_string(),
                b.step.to_string(),
                format!("{:.1}", 100.0 * b.removed),
                b.after.to_string(),
            ];
            row.extend(b.accuracy.iter().map(|a| format!("{:.2}", 100.0 * a)));
            row.push(if b.rho.is_nan() {
                "–".into()
            } else {
                format!("{:.2}", b.rho)
            });
            row
        })
        .collect();
    let tuning = match results.schedule.fine_tunes() {
        true => {
            "after each step's fine-tune, on the validation images, and after the final \
             fine-tune, on the test set"
        }
        false => "right after pruning, without fine-tuning, on the validation images",
    };
    let note = format!(
        "{}: accuracy (%) after pruning to equal budgets (a step removes the same number of \
         channels for every criterion), {tuning}. In brackets each criterion's Spearman ρ with \
         the oracle over all layers; last column: Spearman ρ across the {} criteria between that \
         ρ and the accuracy reached.",
        results.name,
        criteria.len()
    );
    let write = |file: &str, text: String| {
        crate::util::atomic_file::write(&dir.join(file), text.as_bytes()).map_err(|e| FileError {
            path: dir.join(file),
            message: e.to_string(),
        })
    };
    write(
        "budgets.md",
        format!(
            "# {}: accuracy at equal budgets\n\n{note}\n\n{}",
            results.name,
            markdown_table(&header, &cells)
        ),
    )?;
    write(
        "budgets.tex",
        format!(
            "% {}\n{}",
            latex_escape(&note),
            latex_table(&header, &cells)
        ),
    )?;
    let mut columns = vec![
        Column::new(
            "coupled".into(),
            rows.iter().map(|b| b.coupled).collect::<Vec<_>>(),
        ),
        Column::new(
            "step".into(),
            rows.iter().map(|b| b.step as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "removed".into(),
            rows.iter().map(|b| b.removed).collect::<Vec<_>>(),
        ),
        Column::new(
            "after".into(),
            rows.iter().map(|b| b.after).collect::<Vec<_>>(),
        ),
    ];
    for (i, (name, _)) in criteria.iter().enumerate() {
        columns.push(Column::new(
            name.as_str().into(),
            rows.iter().map(|b| b.accuracy[i]).collect::<Vec<_>>(),
        ));
    }
    columns.push(Column::new(
        "rho".into(),
        rows.iter().map(|b| b.rho).collect::<Vec<_>>(),
    ));
    let mut table = DataFrame::new(rows.len(), columns).map_err(|e| FileError {
        path: dir.join("budgets.csv"),
        message: e.to_string(),
    })?;
    write_csv(&mut table, &dir.join("budgets.csv"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CriterionName, PruneSchedule};
    use crate::prune::{FineTuned, Score, Stop};

    fn point(step: usize, channels: usize, validation: f64, test: Option<f64>) -> Point {
        let score = |accuracy| Score {
            accuracy,
            loss: 1.0 - accuracy,
        };
        Point {
            step,
            chunk: 100 - channels,
            channels,
            parameters: 10 * channels,
            macs: 100 * channels as u64,
            validation: Some(score(validation)),
            test: test.map(score),
            latency: Vec::new(),
            model: None,
        }
    }

    /// A variant stepping through `channels` with `accuracy`, fine-tuned to `tuned` (last, best
    /// test accuracy) after its last step when given.
    fn variant(
        criterion: CriterionName,
        channels: &[usize],
        accuracy: &[f64],
        tuned: Option<(f64, f64)>,
    ) -> Variant {
        let points: Vec<Point> = channels
            .iter()
            .zip(accuracy)
            .enumerate()
            .map(|(step, (&c, &a))| point(step, c, a, None))
            .collect();
        let chosen = points.len() - 1;
        let at_chosen = |test| point(chosen, channels[chosen], accuracy[chosen], Some(test));
        Variant {
            criterion,
            coupled: true,
            eligible_channels: channels[0],
            stop: Stop::Target,
            headline: Vec::new(),
            chosen: tuned.map(|_| chosen),
            fine_tuned: tuned.map(|(last, best)| FineTuned {
                epochs: Vec::new(),
                best_epoch: 1,
                last: at_chosen(last),
                best: at_chosen(best),
            }),
            points,
        }
    }

    fn results(schedule: PruneSchedule, variants: Vec<Variant>) -> PruneResults {
        PruneResults {
            schema: crate::prune::SCHEMA,
            name: "hand".into(),
            arch: "resnet20".into(),
            dataset: "fashion-mnist".into(),
            schedule,
            chunk: 0.1,
            round_to: 1,
            validation_images: 10,
            test_images: 10,
            batch: 4,
            device: "cpu".into(),
            threads: 1,
            variants,
        }
    }

    fn oracle() -> Vec<(String, f64)> {
        vec![
            ("taylor".into(), 0.7),
            ("l1".into(), 0.3),
            ("random".into(), 0.0),
        ]
    }

    #[test]
    fn a_sweep_correlates_oracle_rho_with_the_accuracy_right_after_pruning() {
        let channels = [100, 90, 81, 73];
        let r = results(
            PruneSchedule::Sweep,
            vec![
                variant(
                    CriterionName::Taylor,
                    &channels,
                    &[0.9, 0.9, 0.8, 0.7],
                    None,
                ),
                variant(CriterionName::L1, &channels, &[0.9, 0.8, 0.5, 0.6], None),
                variant(
                    CriterionName::Random,
                    &channels,
                    &[0.9, 0.7, 0.6, 0.1],
                    None,
                ),
            ],
        );
        let rows = budgets(&oracle(), &r);
        // Every step but the unpruned one; step 2 by hand (taylor > l1 < random): ρ between
        // [3, 2, 1] and [3, 1, 2] is 1 − 6·2 / (3·8) = 0.5.
        assert_eq!(rows.iter().map(|b| b.step).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!((rows[0].step, rows[0].after), (1, "pruning (validation)"));
        assert!((rows[0].removed - 0.1).abs() < 1e-12);
        assert_eq!(rows[0].accuracy, vec![0.9, 0.8, 0.7]);
        assert!((rows[0].rho - 1.0).abs() < 1e-12);
        assert!((rows[1].rho - 0.5).abs() < 1e-12, "{}", rows[1].rho);
        assert!((rows[2].removed - 0.27).abs() < 1e-12);
    }

    #[test]
    fn an_iterative_schedule_adds_the_final_fine_tune_on_the_test_set() {
        let channels = [100, 95, 90];
        let r = results(
            PruneSchedule::Iterative,
            vec![
                variant(
                    CriterionName::Taylor,
                    &channels,
                    &[0.9, 0.9, 0.9],
                    Some((0.8, 0.85)),
                ),
                variant(
                    CriterionName::L1,
                    &channels,
                    &[0.9, 0.85, 0.8],
                    Some((0.82, 0.84)),
                ),
                variant(
                    CriterionName::Random,
                    &channels,
                    &[0.9, 0.8, 0.7],
                    Some((0.7, 0.75)),
                ),
            ],
        );
        let rows = budgets(&oracle(), &r);
        let after: Vec<_> = rows.iter().map(|b| (b.step, b.after)).collect();
        assert_eq!(
            after,
            vec![
                (1, "step fine-tune (validation)"),
                (2, "step fine-tune (validation)"),
                (2, "final fine-tune, last epoch (test)"),
                (2, "final fine-tune, best epoch (test)"),
            ]
        );
        assert_eq!(rows[2].accuracy, vec![0.8, 0.82, 0.7]);
        assert!((rows[2].rho - 0.5).abs() < 1e-12);
        assert_eq!(rows[3].accuracy, vec![0.85, 0.84, 0.75]);
        assert!((rows[3].rho - 1.0).abs() < 1e-12);
    }

    #[test]
    fn steps_with_unequal_budgets_are_left_out() {
        let r = results(
            PruneSchedule::Sweep,
            vec![
                variant(CriterionName::Taylor, &[100, 90, 80, 70], &[0.9; 4], None),
                variant(CriterionName::L1, &[100, 90, 81, 70], &[0.9; 4], None),
            ],
        );
        let steps: Vec<_> = budgets(&oracle()[..2], &r).iter().map(|b| b.step).collect();
        assert_eq!(steps, vec![1, 3]);
    }
}
