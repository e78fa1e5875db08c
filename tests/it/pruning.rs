//! Pruning schedules: the removal order's guarantees on a real ResNet's couplings, a one-shot
//! MAC target, and the prune stage end to end (export, `prunelab eval`, prune-log replay,
//! `prunelab report`, a killed sweep resumed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use prunelab::config::{CriterionName, Reduction, Target};
use prunelab::graph::{couplings, load_model, macs, prune, Graph, Params};
use prunelab::prune::{run_steps, Point, PruneLog, PruneResults, Remover, Stop, StopRule};
use prunelab::saliency::{score, CriterionScores, Inputs};

use crate::common::BIN;

fn resnet(arch: &str) -> (Graph, Params) {
    let graph = prunelab::models::build(arch, 3, 16, 10).unwrap();
    let params = Params::init(&graph, 1, &Device::Cpu).unwrap();
    (graph, params)
}

fn scores(graph: &Graph, params: &Params, name: CriterionName) -> CriterionScores {
    let shapes = graph.shapes().unwrap();
    let inputs = Inputs {
        graph,
        params,
        shapes: &shapes,
        seed: 5,
        observations: None,
    };
    score(&inputs, name, Reduction::Sum).unwrap().0
}

#[test]
fn a_sweep_keeps_every_dfcs_last_channel_removes_the_chunks_it_claims_and_uncoupled_touches_single_pairs(
) {
    let (graph, params) = resnet("resnet20");
    let found = couplings(&graph).unwrap();
    let single: Vec<bool> = found
        .iter()
        .map(|c| c.producers.len() == 1 && c.consumers.len() == 1)
        .collect();
    assert!(single.iter().any(|s| !s), "ResNet-20 has coupled DFCs");
    for name in [
        CriterionName::Dfpc,
        CriterionName::L1,
        CriterionName::Random,
    ] {
        let s = scores(&graph, &params, name);
        for coupled in [true, false] {
            let eligible: Vec<bool> = single.iter().map(|&one| coupled || one).collect();
            let mut present: usize = found
                .iter()
                .zip(&eligible)
                .filter(|(_, &e)| e)
                .map(|(c, _)| c.channels)
                .sum();
            let mut r = Remover::new(&s, &eligible, 0.07, 1);
            let mut removed_before = 0;
            loop {
                let claimed = r.next_chunk();
                assert_eq!(claimed, (0.07 * present as f64).ceil() as usize);
                let removed = r.step();
                let plan = r.plan();
                let total: usize = plan.remove.values().map(Vec::len).sum();
                assert_eq!(total, removed_before + removed, "the plan is cumulative");
                for (c, keep) in found.iter().zip(&eligible) {
                    let gone = plan.remove.get(c.name(&graph)).map_or(0, Vec::len);
                    assert!(
                        gone < c.channels,
                        "{}: last channel removed",
                        c.name(&graph)
                    );
                    assert!(*keep || gone == 0, "{} is not eligible", c.name(&graph));
                }
                if removed == 0 {
                    break;
                }
                // Exactly the claimed chunk, unless only last channels were left to take.
                let left: usize = r
                    .left()
                    .iter()
                    .zip(&eligible)
                    .filter(|(_, &e)| e)
                    .map(|(l, _)| l - 1)
                    .sum();
                assert!(removed == claimed || left == 0, "{removed} of {claimed}");
                present -= removed;
                removed_before += removed;
                let (g, _) = prune(&graph, &params, &plan).unwrap();
                let left_now: usize = couplings(&g).unwrap().iter().map(|c| c.channels).sum();
                let all: usize = found.iter().map(|c| c.channels).sum();
                assert_eq!(left_now, all - removed_before);
            }
            assert!(eligible.iter().zip(r.left()).all(|(&e, &l)| !e || l == 1));
        }
    }
}

/// With `round_to = 8`, every step of a sweep on ResNet-20 leaves the pruned network with
/// every DFC's width a multiple of 8 (at least 8), as the network itself shows, and the sweep
/// goes on until every DFC is down to 8.
#[test]
fn round_to_keeps_every_pruned_width_a_multiple() {
    let (graph, params) = resnet("resnet20");
    let s = scores(&graph, &params, CriterionName::L1);
    let mut r = Remover::new(&s, &vec![true; s.dfcs.len()], 0.05, 8);
    let mut steps = 0;
    while r.step() > 0 {
        steps += 1;
        let (g, _) = prune(&graph, &params, &r.plan()).unwrap();
        for c in couplings(&g).unwrap() {
            assert!(
                c.channels % 8 == 0 && c.channels >= 8,
                "step {steps}: {} has {} channels",
                c.name(&g),
                c.channels
            );
        }
    }
    assert!(steps > 5, "{steps} steps");
    assert!(r.left().iter().all(|&l| l == 8), "{:?}", r.left());
}

#[test]
fn a_one_shot_mac_target_lands_within_one_chunk() {
    let (graph, params) = resnet("resnet20");
    let s = scores(&graph, &params, CriterionName::L1);
    let eligible = vec![true; s.dfcs.len()];
    let measure = |r: &Remover, chunk: usize, _: bool| -> Result<Point, String> {
        let (g, _) = prune(&graph, &params, &r.plan()).map_err(|e| e.to_string())?;
        Ok(Point {
            step: r.steps(),
            chunk,
            channels: r.left().iter().sum(),
            parameters: g.parameter_count(),
            macs: macs(&g).unwrap(),
            validation: None,
            test: None,
            latency: Vec::new(),
            model: None,
        })
    };
    let mut remover = Remover::new(&s, &eligible, 0.03, 1);
    let mut points = vec![measure(&remover, 0, false).unwrap()];
    let channels: usize = s.dfcs.iter().map(|d| d.scores.len()).sum();
    let stop = run_steps(
        &mut remover,
        &mut points,
        StopRule::Target(Target::Macs(0.4)),
        channels,
        measure,
        |_| Ok(()),
        |step| format!("step {step}"),
    )
    .unwrap();
    assert_eq!(stop, Stop::Target);
    let reduction = |p: &Point| 1.0 - p.macs as f64 / points[0].macs as f64;
    let n = points.len();
    assert!(reduction(&points[n - 1]) >= 0.4);
    assert!(
        reduction(&points[n - 2]) < 0.4,
        "it stopped at the first step past the target"
    );
    assert_eq!(
        points[n - 1].channels + points[n - 1].chunk,
        points[n - 2].channels
    );
}

/// A three-epoch synthetic ResNet-8 (about 70% accurate) with 128 validation images and this
/// tail.
fn experiment(dir: &Path, name: &str, tail: &str) -> PathBuf {
    let text = format!(
        "name = {name:?}\nseed = 7\n\n[data]\ndataset = \"synthetic\"\nvalidation = 128\n\n[data.synthetic]\ntrain = 512\ntest = 96\nimage_size = 16\n\n[model]\narch = \"resnet8\"\n\n[train]\nepochs = 3\nbatch_size = 16\nlr = 0.02\n\n{tail}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn prunelab(args: &[&std::ffi::OsStr], crash: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    if let Some(point) = crash {
        command.env("PRUNELAB_CRASH_AT", point);
    }
    command.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(config: &Path, results: &Path, crash: Option<&str>) -> Output {
    prunelab(
        &[
            config.as_os_str(),
            "--results".as_ref(),
            results.as_os_str(),
        ],
        crash,
    )
}

fn results_of(run_dir: &Path) -> PruneResults {
    prunelab::report::read_prune(&run_dir.join("prune")).unwrap()
}

/// The results without what depends on the clock.
fn untimed(mut r: PruneResults) -> PruneResults {
    for v in &mut r.variants {
        for p in &mut v.points {
            p.latency.clear();
        }
    }
    r
}

#[test]
fn the_prune_stage_exports_models_that_eval_reproduces_and_replay_rebuilds_and_report_regenerates()
{
    // The sweep of two criteria with the study, run once for every test that needs it.
    let (dir, config, results) = crate::common::full_run();
    let out = ok(run(&config, &results, None));
    assert!(out.contains("| criterion | coupled |"), "{out}");
    let run_dir = results.join("full");
    let r = results_of(&run_dir);
    assert_eq!(r.variants.len(), 4);
    assert_eq!((r.validation_images, r.test_images), (128, 96));
    let (original, original_params) =
        load_model(&run_dir.join("model/model"), &Device::Cpu).unwrap();
    let mut exported = 0;
    for v in &r.variants {
        let label = format!(
            "{}-{}",
            v.criterion.as_str(),
            if v.coupled { "coupled" } else { "uncoupled" }
        );
        for p in v.points.iter().filter(|p| p.model.is_some()) {
            let folder = run_dir
                .join("prune")
                .join(&label)
                .join(p.model.as_ref().unwrap());
            assert!(p.test.is_some() && (p.step == 0 || !p.latency.is_empty()));
            let said = ok(prunelab(
                &["eval".as_ref(), folder.as_os_str(), config.as_os_str()],
                None,
            ));
            assert!(said.contains("reproduced exactly"), "{said}");
            // The prune log, replayed from the trained model, gives the same tensors.
            let log = PruneLog::from_json(&std::fs::read(folder.join("prune_log.json")).unwrap())
                .unwrap();
            let (g, params) = log.replay(&original, &original_params).unwrap();
            let (saved_graph, saved) = load_model(&folder.join("model"), &Device::Cpu).unwrap();
            assert_eq!(g, saved_graph);
            for (name, t) in saved.tensors() {
                let replayed = params.tensors()[&name]
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                assert_eq!(
                    t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    replayed,
                    "{name}"
                );
            }
            exported += 1;
        }
        assert!(v.points.len() >= 2, "{label} took a step");
        // Headline points are within their drop on the validation images.
        let base = v.points[0].validation.unwrap().accuracy;
        for h in &v.headline {
            if let Some(step) = h.step {
                let a = v.point(step).unwrap().validation.unwrap().accuracy;
                assert!(base - a <= h.drop + 1e-9);
            }
        }
    }
    assert!(exported >= 6);
    assert!(r.variants.iter().any(|v| v.points.len() > 5));

    // The report from the run folder, then from the report itself: the same files.
    let first = dir.path().join("figures");
    let second = dir.path().join("again");
    ok(prunelab(
        &[
            "report".as_ref(),
            run_dir.as_os_str(),
            "--out".as_ref(),
            first.as_os_str(),
        ],
        None,
    ));
    ok(prunelab(
        &[
            "report".as_ref(),
            first.join("full").as_os_str(),
            "--out".as_ref(),
            second.as_os_str(),
        ],
        None,
    ));
    let relative = |root: PathBuf| -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        crate::common::snapshot(&root)
            .into_iter()
            .map(|(path, bytes)| (path.strip_prefix(&root).unwrap().to_path_buf(), bytes))
            .collect()
    };
    let a = relative(first.join("full"));
    assert_eq!(a, relative(second.join("full")));
    for file in [
        "headline.md",
        "headline.tex",
        "headline.csv",
        "points.csv",
        "accuracy_speedup.svg",
        "accuracy_macs.png",
    ] {
        assert!(a.contains_key(Path::new(file)), "{file}");
    }
    assert_eq!(
        std::fs::read(run_dir.join("prune/headline.md")).unwrap(),
        a[Path::new("headline.md")]
    );
}

#[test]
fn a_killed_sweep_resumes_to_the_same_points() {
    // The full run's sweep is the uninterrupted one; its copy sweeps again, killed twice.
    let (_dir, config, results) = crate::common::full_run();
    let run_dir = results.join("full");
    let whole = untimed(results_of(&run_dir));
    std::fs::remove_dir_all(run_dir.join("prune")).unwrap();
    for crash in ["prune-step:3", "prune-report:0"] {
        let out = run(&config, &results, Some(crash));
        assert!(!out.status.success(), "{crash} stops the run");
        assert!(!run_dir.join("prune/stage.json").exists());
    }
    let resumed = run(&config, &results, None);
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("resuming after step"));
    ok(resumed);
    assert_eq!(untimed(results_of(&run_dir)), whole);
}

#[test]
fn pruning_needs_a_validation_split_and_scored_criteria() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name = \"x\"\n[data]\ndataset = \"synthetic\"\n[model]\narch = \"resnet8\"\n[saliency]\ncriteria = [\"l1\"]\n[prune]\nschedule = \"sweep\"\ncriteria = [\"l1\", \"taylor\"]\n";
    let path = dir.path().join("x.toml");
    std::fs::write(&path, text).unwrap();
    let out = prunelab(&[path.as_os_str(), "--dry-run".as_ref()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[data] validation"), "{err}");
    assert!(err.contains("taylor is not scored"), "{err}");
}

const ITERATIVE: &str = "[saliency]\ncriteria = [\"l1\", \"taylor\"]\n\n[saliency.images]\ncount = 64\n\n[latency]\nbatch_sizes = [4]\nwarmup = 1\nrepeats = 2\n\n[prune]\nschedule = \"iterative\"\ncriteria = [\"taylor\"]\ncoupled = [true]\nchunk = 0.1\n\n[prune.target]\nchannels = 0.25\n\n[prune.fine_tune]\nstep_lrs = [1e-3, 1e-4]\nfinal_epochs = 2\nimages = 200\n";

#[test]
fn a_killed_iterative_schedule_resumes_to_the_same_final_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = experiment(dir.path(), "iterative", ITERATIVE);
    // The plan counts the fine-tuning in: 0.9³ < 0.75 < 0.9², two epochs per step, then two.
    let plan = ok(prunelab(&[config.as_os_str(), "--dry-run".as_ref()], None));
    for expected in [
        "2 fine-tuning epochs of about",
        "removes 25% of the eligible channels takes 3 steps",
        "a final fine-tune of 2 epochs",
    ] {
        assert!(plan.contains(expected), "{expected:?} not in {plan}");
    }
    let (killed, whole) = (dir.path().join("killed"), dir.path().join("whole"));
    // Killed after the second step, then in the final fine-tune's second epoch.
    for crash in ["prune-step:2", "after-checkpoint:2"] {
        let out = run(&config, &killed, Some(crash));
        assert!(!out.status.success(), "{crash} stops the run");
    }
    ok(run(&config, &killed, None));
    ok(run(&config, &whole, None));
    let (a, b) = (
        untimed(results_of(&killed.join("iterative"))),
        untimed(results_of(&whole.join("iterative"))),
    );
    let v = &a.variants[0].clone();
    let f = v.fine_tuned.as_ref().expect("a final fine-tune");
    assert_eq!((v.chosen, f.epochs.len()), (Some(v.points.len() - 1), 2));
    assert!(v.points.len() >= 3);
    let strip = |mut r: PruneResults| {
        for v in &mut r.variants {
            if let Some(f) = &mut v.fine_tuned {
                f.last.latency.clear();
                f.best.latency.clear();
            }
        }
        r
    };
    assert_eq!(strip(a), strip(b));
    for model in [
        "models/last_step",
        "models/fine_tuned_last",
        "models/fine_tuned_best",
    ] {
        let file = |root: &Path| {
            std::fs::read(
                root.join("iterative/prune/taylor-coupled")
                    .join(model)
                    .join("model.safetensors"),
            )
            .unwrap()
        };
        assert_eq!(file(&killed), file(&whole), "{model}");
    }
    // The log of an iterative schedule replays, step plan by step plan, to the exported model.
    let folder = killed.join("iterative/prune/taylor-coupled/models/last_step");
    let log = PruneLog::from_json(&std::fs::read(folder.join("prune_log.json")).unwrap()).unwrap();
    assert_eq!(log.plans.len(), v.points.len() - 1);
    let (g, p) = load_model(&killed.join("iterative/model/model"), &Device::Cpu).unwrap();
    let (replayed, _) = log.replay(&g, &p).unwrap();
    let (saved, _) = load_model(&folder.join("model"), &Device::Cpu).unwrap();
    assert_eq!(replayed, saved);
}

#[test]
fn a_one_shot_schedule_reports_the_one_network_that_reaches_its_target() {
    // The full run's model and scores, pruned again one-shot to 20% fewer MACs.
    let (_dir, config, results) = crate::common::full_run();
    let one_shot = crate::common::FULL_RUN.replace(
        "schedule = \"sweep\"\ncriteria = [\"dfpc\", \"l1\"]\nchunk = 0.05\nmax_drop = 0.25\nreport_every = 4\n",
        "schedule = \"one-shot\"\ncriteria = [\"dfpc\", \"l1\"]\nchunk = 0.05\n\n[prune.target]\nmacs = 0.2\n",
    );
    assert_ne!(one_shot, crate::common::FULL_RUN);
    std::fs::write(&config, one_shot).unwrap();
    let out = ok(run(&config, &results, None));
    assert!(out.contains("stage model  finished earlier"), "{out}");
    let r = results_of(&results.join("full"));
    assert_eq!(r.variants.len(), 4);
    for v in &r.variants {
        assert!(v.headline.is_empty());
        let chosen = v.point(v.chosen.unwrap()).unwrap();
        assert_eq!(chosen.step, v.points.last().unwrap().step);
        let unpruned = v.points[0].macs as f64;
        assert!(1.0 - chosen.macs as f64 / unpruned >= 0.2);
        let before = &v.points[v.points.len() - 2];
        assert!(
            1.0 - before.macs as f64 / unpruned < 0.2,
            "it stopped at the target"
        );
        assert!(chosen.test.is_some() && chosen.model.is_some());
    }
}
