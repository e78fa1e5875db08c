//! The study: every criterion against the oracle, in Molchanov et al.'s three rows, with
//! intervals, per-DFC values, the criterion × criterion matrix and the null distribution.

use super::results::{
    CriterionRow, DfcRow, Estimate, Matrix, NullDistribution, Study, StudySettings,
};
use super::{bootstrap, kendall_tau_b, l2_normalised, mean_defined, spearman};

/// One scoring of every channel: `dfcs[d][c]` scores channel `c` of DFC `d`.
#[derive(Debug, Clone, Copy)]
pub struct Scoring<'a> {
    pub name: &'a str,
    pub dfcs: &'a [Vec<f64>],
}

/// A DFC as the study's tables name it; `coupled`: its channels span more than one layer.
#[derive(Debug, Clone, Copy)]
pub struct DfcInfo<'a> {
    pub name: &'a str,
    pub coupled: bool,
}

/// The study. `criteria` are compared with `reference`; `extra` scorings (e.g. `oracle-signed`)
/// enter only the matrix; `null` is the random criterion's scorings under several seeds (empty:
/// no null distribution). `dfcs` names the DFCs, in the scorings' order. Every scoring must have
/// the reference's shape and finite scores, every name must be distinct, and
/// `0 < confidence < 1`; the error says which input breaks which.
pub fn study(
    reference: &Scoring,
    criteria: &[Scoring],
    extra: &[Scoring],
    dfcs: &[DfcInfo],
    null: &[Vec<Vec<f64>>],
    settings: &StudySettings,
) -> Result<Study, String> {
    check(reference, criteria, extra, dfcs, null, settings)?;
    let pooled = |s: &[Vec<f64>]| s.concat();
    let normalised = |s: &[Vec<f64>]| s.iter().flat_map(|v| l2_normalised(v)).collect::<Vec<_>>();
    let oracle = pooled(reference.dfcs);
    let per_dfc_rho = |s: &[Vec<f64>]| -> Vec<f64> {
        reference
            .dfcs
            .iter()
            .zip(s)
            .map(|(r, c)| spearman(c, r))
            .collect()
    };
    let intervals = bootstrap::intervals(reference.dfcs, criteria, settings);
    let mut rows = Vec::with_capacity(criteria.len());
    let mut kendall_per_dfc = Vec::with_capacity(criteria.len());
    let mut rho_per_dfc = Vec::with_capacity(criteria.len());
    for (c, bounds) in criteria.iter().zip(intervals) {
        let rho = per_dfc_rho(c.dfcs);
        let tau: Vec<f64> = reference
            .dfcs
            .iter()
            .zip(c.dfcs)
            .map(|(r, s)| kendall_tau_b(s, r))
            .collect();
        let (all, l2) = (pooled(c.dfcs), normalised(c.dfcs));
        let estimate = |value: f64, (low, high): (f64, f64)| Estimate { value, low, high };
        rows.push(CriterionRow {
            criterion: c.name.to_string(),
            per_layer: estimate(mean_defined(rho.iter().copied()), bounds[0]),
            all_layers: estimate(spearman(&all, &oracle), bounds[1]),
            all_layers_l2: estimate(spearman(&l2, &oracle), bounds[2]),
            kendall_per_layer: mean_defined(tau.iter().copied()),
            kendall_all_layers: kendall_tau_b(&all, &oracle),
            kendall_all_layers_l2: kendall_tau_b(&l2, &oracle),
            undefined_dfcs: rho.iter().filter(|x| x.is_nan()).count(),
        });
        rho_per_dfc.push(rho);
        kendall_per_dfc.push(tau);
    }
    let mut per_dfc = Vec::with_capacity(dfcs.len() * criteria.len());
    for (d, info) in dfcs.iter().enumerate() {
        for (k, c) in criteria.iter().enumerate() {
            per_dfc.push(DfcRow {
                dfc: info.name.to_string(),
                coupled: info.coupled,
                channels: reference.dfcs[d].len(),
                criterion: c.name.to_string(),
                spearman: rho_per_dfc[k][d],
                kendall: kendall_per_dfc[k][d],
            });
        }
    }
    let everyone: Vec<&Scoring> = std::iter::once(reference)
        .chain(criteria)
        .chain(extra)
        .collect();
    let all: Vec<Vec<f64>> = everyone.iter().map(|s| pooled(s.dfcs)).collect();
    let mut rho = vec![vec![f64::NAN; all.len()]; all.len()];
    for i in 0..all.len() {
        for j in i..all.len() {
            let r = spearman(&all[i], &all[j]);
            rho[i][j] = r;
            rho[j][i] = r;
        }
    }
    let null = (!null.is_empty()).then(|| {
        let per_layer: Vec<f64> = null.iter().map(|s| mean_defined(per_dfc_rho(s))).collect();
        let all_layers: Vec<f64> = null.iter().map(|s| spearman(&pooled(s), &oracle)).collect();
        let (low, high) =
            super::percentile_interval(all_layers.iter().copied(), settings.confidence);
        NullDistribution {
            seeds: null.len(),
            per_layer_mean: mean(&per_layer),
            per_layer_sd: sd(&per_layer),
            all_layers_mean: mean(&all_layers),
            all_layers_sd: sd(&all_layers),
            all_layers_low: low,
            all_layers_high: high,
            per_layer,
            all_layers,
        }
    });
    Ok(Study {
        schema: 1,
        reference: reference.name.to_string(),
        settings: settings.clone(),
        rows,
        per_dfc,
        matrix: Matrix {
            names: everyone.iter().map(|s| s.name.to_string()).collect(),
            rho,
        },
        null,
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The sample standard deviation (n − 1); NaN for fewer than two values.
fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn check(
    reference: &Scoring,
    criteria: &[Scoring],
    extra: &[Scoring],
    dfcs: &[DfcInfo],
    null: &[Vec<Vec<f64>>],
    settings: &StudySettings,
) -> Result<(), String> {
    if !(settings.confidence > 0.0 && settings.confidence < 1.0) {
        return Err(format!(
            "confidence must be in (0, 1) (got {})",
            settings.confidence
        ));
    }
    if dfcs.len() != reference.dfcs.len() {
        return Err(format!(
            "{} DFCs are named but the reference `{}` scores {}",
            dfcs.len(),
            reference.name,
            reference.dfcs.len()
        ));
    }
    let shape = |name: &str, scoring: &[Vec<f64>]| -> Result<(), String> {
        if scoring.len() != reference.dfcs.len() {
            return Err(format!(
                "{name}: scores {} DFCs, the reference `{}` {}",
                scoring.len(),
                reference.name,
                reference.dfcs.len()
            ));
        }
        for (d, (scores, expected)) in scoring.iter().zip(reference.dfcs).enumerate() {
            let dfc = dfcs[d].name;
            if scores.len() != expected.len() {
                return Err(format!(
                    "{name}: DFC {dfc} has {} channels, the reference `{}` {}",
                    scores.len(),
                    reference.name,
                    expected.len()
                ));
            }
            if let Some(c) = scores.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "{name}: DFC {dfc}, channel {c}: score {}",
                    scores[c]
                ));
            }
        }
        Ok(())
    };
    let mut names = std::collections::BTreeSet::new();
    for s in std::iter::once(reference).chain(criteria).chain(extra) {
        shape(&format!("`{}`", s.name), s.dfcs)?;
        if !names.insert(s.name) {
            return Err(format!("two scorings are named `{}`", s.name));
        }
    }
    for (k, s) in null.iter().enumerate() {
        shape(&format!("null scoring {k}"), s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const DFCS: [DfcInfo; 2] = [
        DfcInfo {
            name: "a",
            coupled: false,
        },
        DfcInfo {
            name: "b",
            coupled: true,
        },
    ];

    fn settings(bootstrap: usize) -> StudySettings {
        StudySettings {
            bootstrap,
            confidence: 0.95,
            seed: 7,
        }
    }

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() < 1e-12
    }

    #[test]
    fn the_three_rows_differ_as_computed_by_hand() {
        let oracle = vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]];
        let criterion = vec![vec![10.0, 20.0, 30.0], vec![6.0, 1.0, 2.0]];
        let signed = vec![vec![-1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]];
        let reference = Scoring {
            name: "oracle-abs",
            dfcs: &oracle,
        };
        let criteria = [Scoring {
            name: "l1",
            dfcs: &criterion,
        }];
        let extra = [Scoring {
            name: "oracle-signed",
            dfcs: &signed,
        }];
        let s = study(&reference, &criteria, &extra, &DFCS, &[], &settings(0)).unwrap();
        let row = &s.rows[0];
        // Per layer: DFC a ranks alike, ρ = 1; DFC b ranks [3, 1, 2] against [1, 2, 3]:
        // Σd² = 4 + 1 + 1 = 6, ρ = 1 - 6·6/(3·8) = -1/2. Mean 1/4.
        assert!(close(row.per_layer.value, 0.25), "{row:?}");
        // All layers: the criterion ranks the six channels [4, 5, 6, 3, 1, 2] against
        // [1, ..., 6]: Σd² = 9 + 9 + 9 + 1 + 16 + 16 = 60, ρ = 1 - 6·60/(6·35) = -5/7.
        assert!(close(row.all_layers.value, -5.0 / 7.0), "{row:?}");
        // ℓ2: a / √1400 = [.267, .535, .802], b / √41 = [.937, .156, .312]: ranks
        // [2, 4, 5, 6, 1, 3], Σd² = 1 + 4 + 4 + 4 + 16 + 9 = 38, ρ = 1 - 6·38/210 = -3/35.
        assert!(close(row.all_layers_l2.value, -3.0 / 35.0), "{row:?}");
        // τ-b: a 1, b (1 - 2)/3 = -1/3, mean 1/3; all layers 4 concordant, 11 discordant of
        // 15: -7/15; ℓ2 8 concordant, 7 discordant: 1/15.
        assert!(close(row.kendall_per_layer, 1.0 / 3.0));
        assert!(close(row.kendall_all_layers, -7.0 / 15.0));
        assert!(close(row.kendall_all_layers_l2, 1.0 / 15.0));
        assert_eq!(row.undefined_dfcs, 0);
        assert!(row.per_layer.low.is_nan() && row.all_layers_l2.high.is_nan());
        let dfc_b = &s.per_dfc[1];
        assert_eq!(
            (dfc_b.dfc.as_str(), dfc_b.coupled, dfc_b.channels),
            ("b", true, 3)
        );
        assert!(close(dfc_b.spearman, -0.5) && close(dfc_b.kendall, -1.0 / 3.0));
        assert_eq!(s.matrix.names, ["oracle-abs", "l1", "oracle-signed"]);
        assert_eq!(s.matrix.rho[1][0], row.all_layers.value);
        assert_eq!(s.matrix.rho[0][2], s.matrix.rho[2][0]);
        assert!((0..3).all(|i| s.matrix.rho[i][i] == 1.0));
        assert!(s.null.is_none());
    }

    #[test]
    fn constant_and_single_channel_dfcs_are_left_out_of_the_mean() {
        let oracle = vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0], vec![7.0]];
        let criterion = vec![vec![3.0, 2.0, 1.0], vec![0.0, 0.0], vec![1.0]];
        let dfcs = [
            DFCS[0],
            DFCS[1],
            DfcInfo {
                name: "c",
                coupled: false,
            },
        ];
        let reference = Scoring {
            name: "oracle-abs",
            dfcs: &oracle,
        };
        let criteria = [Scoring {
            name: "dead",
            dfcs: &criterion,
        }];
        let s = study(&reference, &criteria, &[], &dfcs, &[], &settings(50)).unwrap();
        let row = &s.rows[0];
        assert_eq!(row.undefined_dfcs, 2);
        assert_eq!(row.per_layer.value, -1.0);
        assert_eq!(row.kendall_per_layer, -1.0);
        assert!(s.per_dfc[1].spearman.is_nan() && s.per_dfc[2].kendall.is_nan());
        // NaN survives JSON (as null).
        let json = serde_json::to_string(&s).unwrap();
        let back: Study = serde_json::from_str(&json).unwrap();
        assert!(back.per_dfc[1].spearman.is_nan());
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    fn correlated(
        seed: u64,
        dfcs: usize,
        channels: usize,
        noise: f64,
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let oracle: Vec<Vec<f64>> = (0..dfcs)
            .map(|d| {
                (0..channels)
                    .map(|_| (d + 1) as f64 * rng.random::<f64>())
                    .collect()
            })
            .collect();
        let criterion = oracle
            .iter()
            .map(|v| v.iter().map(|x| x + noise * rng.random::<f64>()).collect())
            .collect();
        (oracle, criterion)
    }

    #[test]
    fn the_bootstrap_is_seeded_and_its_interval_holds_the_value() {
        let (oracle, criterion) = correlated(1, 2, 150, 0.3);
        let (_, other) = correlated(2, 2, 150, 0.3);
        let reference = Scoring {
            name: "oracle-abs",
            dfcs: &oracle,
        };
        let criteria = [
            Scoring {
                name: "close",
                dfcs: &criterion,
            },
            Scoring {
                name: "other",
                dfcs: &other,
            },
        ];
        let run = |threads: usize, seed: u64| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let settings = StudySettings {
                seed,
                ..settings(300)
            };
            pool.install(|| study(&reference, &criteria, &[], &DFCS, &[], &settings).unwrap())
        };
        let s = run(1, 7);
        assert_eq!(s, run(3, 7), "the thread count changed the study");
        assert_ne!(s, run(1, 8), "the seed changed nothing");
        let row = &s.rows[0];
        for e in [row.per_layer, row.all_layers, row.all_layers_l2] {
            assert!(e.value > 0.7, "{e:?}");
            assert!(
                e.low < e.value && e.value < e.high && e.high - e.low < 0.3,
                "{e:?}"
            );
        }
    }

    #[test]
    fn the_null_distribution_summarises_the_seeds() {
        let (oracle, _) = correlated(1, 2, 100, 0.0);
        let null: Vec<Vec<Vec<f64>>> = (10..15)
            .map(|seed| correlated(seed, 2, 100, 0.0).0)
            .collect();
        let reference = Scoring {
            name: "oracle-abs",
            dfcs: &oracle,
        };
        let s = study(&reference, &[], &[], &DFCS, &null, &settings(0)).unwrap();
        let n = s.null.unwrap();
        assert_eq!((n.seeds, n.all_layers.len(), n.per_layer.len()), (5, 5, 5));
        assert!(close(
            n.all_layers_mean,
            n.all_layers.iter().sum::<f64>() / 5.0
        ));
        assert!(n.all_layers_low <= n.all_layers_mean && n.all_layers_mean <= n.all_layers_high);
        assert!(n.all_layers_mean.abs() < 0.3 && n.per_layer_sd > 0.0);
        assert!(close(
            n.all_layers[0],
            spearman(&null[0].concat(), &oracle.concat())
        ));
    }

    #[test]
    fn shapes_that_disagree_are_refused() {
        let oracle = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let short = vec![vec![1.0, 2.0], vec![3.0]];
        let nan = vec![vec![1.0, f64::NAN], vec![3.0, 4.0]];
        let reference = Scoring {
            name: "oracle-abs",
            dfcs: &oracle,
        };
        let one = |c: &Vec<Vec<f64>>, name| {
            study(
                &reference,
                &[Scoring { name, dfcs: c }],
                &[],
                &DFCS,
                &[],
                &settings(0),
            )
        };
        assert!(one(&short, "l1")
            .unwrap_err()
            .contains("`l1`: DFC b has 1 channels"));
        assert!(one(&nan, "l1")
            .unwrap_err()
            .contains("channel 1: score NaN"));
        assert!(one(&oracle, "oracle-abs")
            .unwrap_err()
            .contains("two scorings"));
        assert!(study(&reference, &[], &[], &DFCS[..1], &[], &settings(0)).is_err());
        let bad = StudySettings {
            confidence: 1.0,
            ..settings(0)
        };
        assert!(study(&reference, &[], &[], &DFCS, &[], &bad).is_err());
        assert!(study(&reference, &[], &[], &DFCS, &[short.clone()], &settings(0)).is_err());
    }
}
