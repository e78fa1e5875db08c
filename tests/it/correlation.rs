//! The correlation study's outputs: every file written, the study read back as written, and
//! the same bytes on a second writing.

use std::path::Path;

use prunelab::report::{read_study, write_study};
use prunelab::stats::{study, DfcInfo, Scoring, Study, StudySettings};

const FILES: [&str; 16] = [
    "table.md",
    "table.tex",
    "table.csv",
    "table.parquet",
    "per_dfc.csv",
    "per_dfc.parquet",
    "matrix.csv",
    "matrix.parquet",
    "null.csv",
    "study.json",
    "heatmap.png",
    "heatmap.svg",
    "per_dfc.png",
    "per_dfc.svg",
    "scatter.png",
    "scatter.svg",
];

/// Deterministic scores: DFC `d` has `8 + 3d` channels; `noise` mixes a second pattern in.
fn scoring(dfcs: usize, phase: f64, noise: f64) -> Vec<Vec<f64>> {
    (0..dfcs)
        .map(|d| {
            (0..8 + 3 * d)
                .map(|c| {
                    let x = (c as f64 + 1.0) * (d as f64 + 1.0);
                    x + noise * ((x * 1.7 + phase).sin() * 10.0).round()
                })
                .collect()
        })
        .collect()
}

struct Inputs {
    oracle: Vec<Vec<f64>>,
    criteria: Vec<(String, Vec<Vec<f64>>)>,
    signed: Vec<Vec<f64>>,
    null: Vec<Vec<Vec<f64>>>,
    names: Vec<String>,
}

fn inputs() -> Inputs {
    let dfcs = 4;
    Inputs {
        oracle: scoring(dfcs, 0.0, 0.0),
        criteria: vec![
            ("l1-norm".into(), scoring(dfcs, 0.3, 1.0)),
            ("bn_scale".into(), scoring(dfcs, 1.1, 3.0)),
            ("dfpc".into(), scoring(dfcs, 2.0, 0.5)),
        ],
        signed: scoring(dfcs, 0.7, 2.0),
        null: (0..5)
            .map(|k| scoring(dfcs, k as f64 * 1.3, 40.0))
            .collect(),
        names: (0..dfcs)
            .map(|d| format!("layer{}.{d}", d % 2 + 1))
            .collect(),
    }
}

fn run(inputs: &Inputs) -> Study {
    let reference = Scoring {
        name: "oracle-abs",
        dfcs: &inputs.oracle,
    };
    let criteria: Vec<Scoring> = inputs
        .criteria
        .iter()
        .map(|(name, dfcs)| Scoring { name, dfcs })
        .collect();
    let extra = [Scoring {
        name: "oracle-signed",
        dfcs: &inputs.signed,
    }];
    let dfcs: Vec<DfcInfo> = inputs
        .names
        .iter()
        .enumerate()
        .map(|(d, name)| DfcInfo {
            name,
            coupled: d % 2 == 1,
        })
        .collect();
    let settings = StudySettings {
        bootstrap: 200,
        confidence: 0.95,
        seed: 3,
    };
    study(
        &reference,
        &criteria,
        &extra,
        &dfcs,
        &inputs.null,
        &settings,
    )
    .unwrap()
}

fn write(inputs: &Inputs, study: &Study, dir: &Path) {
    let reference = Scoring {
        name: "oracle-abs",
        dfcs: &inputs.oracle,
    };
    let scorings: Vec<Scoring> = inputs
        .criteria
        .iter()
        .map(|(name, dfcs)| Scoring { name, dfcs })
        .chain([Scoring {
            name: "oracle-signed",
            dfcs: &inputs.signed,
        }])
        .collect();
    write_study(study, &scorings, &reference, "Test net", dir).unwrap();
}

#[test]
fn write_study_writes_every_file_and_reads_back() {
    let inputs = inputs();
    let study = run(&inputs);
    let first = tempfile::tempdir().unwrap();
    write(&inputs, &study, first.path());
    for file in FILES {
        let path = first.path().join(file);
        assert!(path.is_file(), "{file} missing");
        assert!(std::fs::metadata(&path).unwrap().len() > 0, "{file} empty");
    }
    assert_eq!(read_study(first.path()).unwrap(), study);

    let table = std::fs::read_to_string(first.path().join("table.md")).unwrap();
    for label in ["| Per layer |", "| All layers |", "| (w/ ℓ2-norm) |"] {
        assert_eq!(table.matches(label).count(), 2, "{label} in\n{table}");
    }
    assert!(table.contains("random over 5 seeds"), "{table}");
    assert!(table.contains("4 DFCs, 50 channels"), "{table}");
    let tex = std::fs::read_to_string(first.path().join("table.tex")).unwrap();
    assert!(
        tex.contains("(w/ $\\ell_2$-norm)") && tex.contains("bn\\_scale"),
        "{tex}"
    );

    // The same study written again (into another folder) gives the same bytes.
    let second = tempfile::tempdir().unwrap();
    write(&inputs, &run(&inputs), second.path());
    for file in FILES {
        let (a, b) = (
            std::fs::read(first.path().join(file)).unwrap(),
            std::fs::read(second.path().join(file)).unwrap(),
        );
        assert!(a == b, "{file} differs between two writings");
    }
}

#[test]
fn read_study_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_study(dir.path()).unwrap_err();
    assert!(err.to_string().contains("study.json"), "{err}");
}
