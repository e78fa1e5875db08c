//! ONNX export checked by others: `onnx.checker` passes on every export, and onnxruntime's
//! logits equal prunelab's on a fixed batch, for unpruned and pruned networks of each family,
//! BatchNorm kept or folded. The check is `scripts/onnx_check.py`, which imports nothing of
//! prunelab: the exported file is all it reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use prunelab::exec::{forward, Mode};
use prunelab::graph::{prune, save_model, ChannelPlan, Params};
use prunelab::models::build;

use crate::common::{refused, BIN};

/// A Python with onnx and onnxruntime (`.ci/run` makes `.venv`), or `None` where there is none
/// outside CI (the check is then skipped, saying so).
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("PRUNELAB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import onnx, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    match (works, std::env::var_os("CI").is_some()) {
        (true, _) => Some(python),
        (false, true) => panic!(
            "{} cannot import onnx and onnxruntime (.ci/run installs them)",
            python.display()
        ),
        (false, false) => {
            eprintln!(
                "skipped the onnxruntime check: no .venv with onnx and onnxruntime (see .ci/run)"
            );
            None
        }
    }
}

fn write_f32(path: &Path, t: &Tensor) {
    let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn onnxruntime_reads_every_export_and_computes_prunelabs_logits() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_check.py");
    for (arch, [c, size]) in [
        ("resnet20", [1, 28]),
        ("resnet50", [3, 32]),
        ("mobilenetv2", [3, 32]),
    ] {
        let graph = build(arch, c, size, 10).unwrap();
        let params = Params::init(&graph, 3, &Device::Cpu).unwrap();
        let plan = ChannelPlan::random(&graph, 0.4, 5).unwrap();
        let (pruned, pruned_params) = prune(&graph, &params, &plan).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, c, size, size), &Device::Cpu).unwrap();
        for (label, g, p) in [
            ("unpruned", &graph, &params),
            ("pruned", &pruned, &pruned_params),
        ] {
            let folder = dir.path().join(format!("{arch}-{label}"));
            std::fs::create_dir_all(&folder).unwrap();
            save_model(g, p, &folder.join("model"), Default::default()).unwrap();
            write_f32(&folder.join("input.f32"), &x);
            let logits = forward(g, p, &x, Mode::EVAL).unwrap().output;
            write_f32(&folder.join("expected.f32"), &logits);
            for fold in [false, true] {
                let onnx = folder.join(format!("model-fold-{fold}.onnx"));
                let mut export = Command::new(BIN);
                export.arg("export").arg(&folder).arg("--onnx").arg(&onnx);
                if fold {
                    export.arg("--fold-batchnorm");
                }
                let out = export.output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let check = Command::new(&python)
                    .arg(&script)
                    .arg(&onnx)
                    .arg(folder.join("input.f32"))
                    .arg(format!("2,{c},{size},{size}"))
                    .arg(folder.join("expected.f32"))
                    .output()
                    .unwrap();
                let said = String::from_utf8_lossy(&check.stdout).into_owned()
                    + &String::from_utf8_lossy(&check.stderr);
                assert!(check.status.success(), "{arch} {label} fold {fold}: {said}");
                assert!(said.contains("checker passed (IR 8, opset 17)"), "{said}");
            }
        }
    }
}

#[test]
fn export_refuses_what_is_not_a_model_folder_or_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    std::fs::create_dir_all(&folder).unwrap();
    let graph = build("resnet8", 1, 16, 10).unwrap();
    let params = Params::init(&graph, 3, &Device::Cpu).unwrap();
    save_model(&graph, &params, &folder.join("model"), Default::default()).unwrap();
    let out = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let missing = dir.path().join("nothing");
    let folder = folder.to_string_lossy().into_owned();
    let missing = missing.to_string_lossy().into_owned();
    refused(
        &["export", &missing, "--onnx", &out("m.onnx")],
        dir.path(),
        &["does not exist", "model.json"],
    );
    refused(
        &["export", &out(""), "--onnx", &out("m.onnx")],
        dir.path(),
        &["not a model's folder"],
    );
    refused(
        &["export", &folder, "--onnx", &out("no/such/m.onnx")],
        dir.path(),
        &["--onnx", "does not exist"],
    );
    refused(
        &["export", &folder, "--onnx", &folder],
        dir.path(),
        &["--onnx", "is a folder"],
    );
}

/// A synthetic-data experiment on the ONNX model `onnx` (`model` holds any extra keys).
fn onnx_experiment(dir: &Path, onnx: &Path, model: &str, epochs: usize) -> PathBuf {
    let config = dir.join("onnx.toml");
    let text = format!(
        "name = \"onnx\"\nseed = 3\n\n[data]\ndataset = \"synthetic\"\nvalidation = 64\n\n[data.synthetic]\ntrain = 256\ntest = 64\n\n[model]\nonnx = {:?}\n{model}\n[train]\nepochs = {epochs}\nbatch_size = 32\nlr = 0.02\n\n[saliency]\ncriteria = [\"dfpc\", \"l1\"]\n\n[latency]\nbatch_sizes = [2]\nwarmup = 1\nrepeats = 2\n\n[prune]\nschedule = \"sweep\"\ncriteria = [\"dfpc\"]\nchunk = 0.1\nmax_drop = 0.3\n",
        onnx.to_string_lossy()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn resnet8_onnx(path: &Path, classes: usize) -> (prunelab::graph::Graph, Params) {
    let graph = build("resnet8", 3, 16, classes).unwrap();
    let params = Params::init(&graph, 11, &Device::Cpu).unwrap();
    let model = prunelab::onnx::to_onnx(&graph, &params, false).unwrap();
    prunelab::onnx::write(path, &model).unwrap();
    (graph, params)
}

#[test]
fn an_imported_model_is_evaluated_like_its_weights_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("net.onnx");
    let (graph, params) = resnet8_onnx(&onnx, 10);
    let results = dir.path().join("results");
    let config = onnx_experiment(dir.path(), &onnx, "", 0);
    let out = crate::common::run(&config, &results, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same weights as a state dict, in the built-in network: the same test metrics.
    let weights = dir.path().join("w.safetensors");
    prunelab::graph::write_safetensors(&weights, &params.tensors(), Default::default()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("onnx = {:?}", onnx.to_string_lossy()),
        &format!(
            "arch = \"resnet8\"\nweights = {:?}",
            weights.to_string_lossy()
        ),
    );
    let builtin = dir.path().join("builtin.toml");
    std::fs::write(
        &builtin,
        text.replace("name = \"onnx\"", "name = \"builtin\""),
    )
    .unwrap();
    let out = crate::common::run(&builtin, &results, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = |name: &str| {
        std::fs::read_to_string(results.join(name).join("model/train_metrics.csv")).unwrap()
    };
    assert_eq!(metrics("onnx"), metrics("builtin"));
    let pruned = results.join("onnx/prune/results.json");
    assert!(pruned.is_file(), "the sweep ran on the imported network");
    assert_eq!(
        graph.nodes.len(),
        build("resnet8", 3, 16, 10).unwrap().nodes.len()
    );
}

#[test]
fn bad_onnx_models_are_refused_naming_the_file_and_what_was_expected() {
    use prost::Message;
    use prunelab::onnx::proto::{ModelProto, NodeProto};
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let good = dir.path().join("good.onnx");
    resnet8_onnx(&good, 10);
    let bytes = std::fs::read(&good).unwrap();
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    let write = |name: &str, m: &ModelProto| {
        let path = dir.path().join(name);
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        path
    };
    let edit = |name: &str, f: &dyn Fn(&mut ModelProto)| {
        let mut m = model.clone();
        f(&mut m);
        write(name, &m)
    };
    let text = dir.path().join("text.onnx");
    std::fs::write(&text, "name = \"not a model\"\n").unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let two_inputs = edit("two.onnx", &|m| {
        let g = m.graph.as_mut().unwrap();
        let mut second = g.input[0].clone();
        second.name = "mask".into();
        g.input.push(second);
    });
    let dynamic = edit("dynamic.onnx", &|m| {
        let g = m.graph.as_mut().unwrap();
        if let Some(prunelab::onnx::proto::type_proto::Value::TensorType(t)) =
            g.input[0].r#type.as_mut().unwrap().value.as_mut()
        {
            for d in &mut t.shape.as_mut().unwrap().dim[2..] {
                d.value = Some(
                    prunelab::onnx::proto::tensor_shape_proto::dimension::Value::DimParam(
                        "side".into(),
                    ),
                );
            }
        }
    });
    let external = edit("external.onnx", &|m| {
        let g = m.graph.as_mut().unwrap();
        let t = &mut g.initializer[0];
        t.raw_data.clear();
        t.data_location = prunelab::onnx::proto::tensor_proto::DataLocation::External as i32;
        t.external_data = vec![prunelab::onnx::proto::StringStringEntryProto {
            key: "location".into(),
            value: "weights.bin".into(),
        }];
    });
    let unsupported = edit("elu.onnx", &|m| {
        let g = m.graph.as_mut().unwrap();
        let relu: &mut NodeProto = g.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
        relu.op_type = "Elu".into();
    });
    let missing = dir.path().join("missing.onnx");
    let hundred = dir.path().join("hundred.onnx");
    resnet8_onnx(&hundred, 100);
    let cases: Vec<(&Path, &str, Vec<&str>)> = vec![
        (&text, "", vec!["text.onnx", "not an ONNX model"]),
        (
            &truncated,
            "",
            vec!["truncated.onnx", "not an ONNX model, or cut short"],
        ),
        (
            &two_inputs,
            "",
            vec!["two.onnx", "has 2 inputs (input, mask)", "one image batch"],
        ),
        (
            &dynamic,
            "",
            vec![
                "dynamic.onnx",
                "dynamic size ([?, 3, ?, ?])",
                "[model] input = [C, H, W]",
            ],
        ),
        (
            &dynamic,
            "input = [3, 32, 32]\n",
            vec!["dynamic.onnx", "[3, 32, 32]", "the data's are [3, 16, 16]"],
        ),
        (
            &external,
            "",
            vec!["external.onnx", "weights.bin", "No such file"],
        ),
        (
            &unsupported,
            "",
            vec!["elu.onnx", "Elu (1 node(s): ", "not supported"],
        ),
        (
            &hundred,
            "",
            vec![
                "hundred.onnx",
                "the classifier has 100 outputs, the data has 10 classes",
            ],
        ),
        (
            &good,
            "arch = \"resnet8\"\n",
            vec!["model.onnx", "give model.arch or model.onnx, not both"],
        ),
        (&missing, "", vec!["model.onnx", "missing.onnx"]),
    ];
    for (onnx, model, expected) in cases {
        let config = onnx_experiment(dir.path(), onnx, model, 1);
        let config = config.to_string_lossy().into_owned();
        let results = results.to_string_lossy().into_owned();
        for extra in [&["--dry-run"][..], &[]] {
            let mut args = vec![config.as_str(), "--results", results.as_str()];
            args.extend(extra);
            refused(&args, dir.path(), &expected);
        }
    }
    // The dynamic model runs once its size is given.
    let config = onnx_experiment(dir.path(), &dynamic, "input = [3, 16, 16]\n", 1);
    let out = crate::common::run(&config, &results, &["--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_run_writes_model_onnx_beside_its_network_and_every_pruned_one() {
    let (_dir, _config, results) = crate::common::full_run();
    let run = results.join("full");
    let mut folders = vec![run.join("model")];
    for variant in std::fs::read_dir(run.join("prune")).unwrap() {
        let models = variant.unwrap().path().join("models");
        if models.is_dir() {
            folders.extend(
                std::fs::read_dir(models)
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            );
        }
    }
    assert!(folders.len() > 2, "{folders:?}");
    for folder in &folders {
        assert!(folder.join("model.onnx").is_file(), "{}", folder.display());
    }
    let Some(python) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_check.py");
    for folder in [&folders[0], folders.last().unwrap()] {
        let (graph, params) =
            prunelab::graph::load_model(&folder.join("model"), &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 3, 16, 16), &Device::Cpu).unwrap();
        let logits = forward(&graph, &params, &x, Mode::EVAL).unwrap().output;
        let (input, expected) = (folder.join("input.f32"), folder.join("expected.f32"));
        write_f32(&input, &x);
        write_f32(&expected, &logits);
        let check = Command::new(&python)
            .arg(&script)
            .arg(folder.join("model.onnx"))
            .args([&input, &Path::new("3,3,16,16").to_path_buf(), &expected])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            folder.display(),
            String::from_utf8_lossy(&check.stdout)
        );
    }
}
