//! CIFAR from the Hugging Face hub: parquet files written here in the hub's format (PNG images in
//! `img.bytes`, integer labels) are converted into the binary layout, which the CIFAR reader
//! then reads; a conversion that fails leaves nothing behind; offline, the run stops with a
//! clear message and writes nothing.
#![cfg(feature = "download")]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::SerializedFileReader;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use prunelab::data::download::install;
use prunelab::data::{CifarVariant, DataError, Dataset};
use prunelab::Experiment;

/// A picture whose rows, columns and colours all differ: red follows the row, green the
/// column, blue both, so a transposed or channel-swapped copy cannot pass for it.
fn asymmetric(seed: u8) -> [[[u8; 3]; 32]; 32] {
    let mut image = [[[0u8; 3]; 32]; 32];
    for (y, row) in image.iter_mut().enumerate() {
        for (x, pixel) in row.iter_mut().enumerate() {
            let (y, x) = (y as u8, x as u8);
            *pixel = [
                y * 7 + seed,
                x * 5 + 1,
                y.wrapping_mul(31) ^ x.wrapping_add(seed),
            ];
        }
    }
    image
}

fn png(pixels: &[[[u8; 3]; 32]; 32]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb(pixels[y as usize][x as usize]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The binary layout of a picture: the red, green and blue planes, each row-major.
fn planes(pixels: &[[[u8; 3]; 32]; 32]) -> Vec<u8> {
    (0..3)
        .flat_map(|c| {
            pixels
                .iter()
                .flat_map(move |row| row.iter().map(move |p| p[c]))
        })
        .collect()
}

/// One row of the hub's table: the PNG bytes and the label column(s), by name.
struct Row {
    png: Vec<u8>,
    labels: Vec<(&'static str, i64)>,
}

/// A parquet file with the hub's schema: `img` a struct of `bytes` and `path` (null here, as
/// on the hub), then the integer label columns.
fn write_parquet(path: &Path, rows: &[Row]) {
    let label_names: Vec<&str> = rows[0].labels.iter().map(|(n, _)| *n).collect();
    let labels: String = label_names
        .iter()
        .map(|n| format!("optional int64 {n};"))
        .collect();
    let schema = format!(
        "message schema {{ optional group img {{ optional binary bytes; optional binary path (STRING); }} {labels} }}"
    );
    let schema = Arc::new(parse_message_type(&schema).unwrap());
    let mut writer = SerializedFileWriter::new(
        File::create(path).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let n = rows.len();
    let bytes: Vec<ByteArray> = rows
        .iter()
        .map(|r| ByteArray::from(r.png.clone()))
        .collect();
    // Definition levels: 2 for a present `img.bytes`; `path` is null (level 1: its struct is
    // present, the value is not); 1 for a present label.
    write_column::<ByteArrayType>(&mut group, &bytes, &vec![2; n]);
    write_column::<ByteArrayType>(&mut group, &[], &vec![1; n]);
    for k in 0..label_names.len() {
        let values: Vec<i64> = rows.iter().map(|r| r.labels[k].1).collect();
        write_column::<Int64Type>(&mut group, &values, &vec![1; n]);
    }
    group.close().unwrap();
    writer.close().unwrap();
}

fn write_column<T: DataType>(
    group: &mut SerializedRowGroupWriter<'_, File>,
    values: &[T::T],
    definitions: &[i16],
) {
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<T>()
        .write_batch(values, Some(definitions), None)
        .unwrap();
    column.close().unwrap();
}

fn reader(path: &Path) -> SerializedFileReader<File> {
    SerializedFileReader::new(File::open(path).unwrap()).unwrap()
}

/// Training rows then test rows of a variant, every image plain but the first and last of
/// each split, which are asymmetric (seeds 1, 2 for training, 3, 4 for test).
fn hub_files(dir: &Path, variant: CifarVariant, corrupt: impl Fn(&mut Vec<Row>)) -> Vec<PathBuf> {
    let plain = png(&[[[9, 9, 9]; 32]; 32]);
    let labels = |i: usize| match variant {
        CifarVariant::Cifar10 => vec![("label", (i % 10) as i64)],
        // The hub's column order: the fine label, then the coarse one.
        CifarVariant::Cifar100 => vec![
            ("fine_label", (i % 100) as i64),
            ("coarse_label", (i % 20) as i64),
        ],
    };
    let split = |n: usize, first: u8, last: u8| -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                png: match i {
                    0 => png(&asymmetric(first)),
                    i if i == n - 1 => png(&asymmetric(last)),
                    _ => plain.clone(),
                },
                labels: labels(i),
            })
            .collect()
    };
    let mut test = split(10_000, 3, 4);
    corrupt(&mut test);
    // The hub lists the test split first.
    let files = [
        (dir.join("test.parquet"), test),
        (dir.join("train.parquet"), split(50_000, 1, 2)),
    ];
    for (path, rows) in &files {
        write_parquet(path, rows);
    }
    files.into_iter().map(|(path, _)| path).collect()
}

/// Writes the hub's files of `variant` (after `corrupt`) and installs them as `dir`.
fn install_hub_files(
    work: &Path,
    variant: CifarVariant,
    dir: &Path,
    corrupt: impl Fn(&mut Vec<Row>),
) -> Result<(), String> {
    let files = hub_files(work, variant, corrupt);
    let readers: Vec<_> = files.iter().map(|p| reader(p)).collect();
    install(variant, &readers, dir)
}

fn load(dataset: &str, dir: &Path) -> Result<Dataset, DataError> {
    let text = format!(
        "[data]\ndataset = {dataset:?}\ndir = {dir:?}\ndownload = false\n[model]\narch = \"resnet8\"\n"
    );
    let e = Experiment::parse(Path::new("test.toml"), &text).unwrap();
    e.data.load(e.synthetic(), e.seed)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn cifar10_from_the_hub_lands_in_the_binary_layout_rows_columns_and_planes_in_place() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("data/cifar-10-batches-bin");
    install_hub_files(work.path(), CifarVariant::Cifar10, &dir, |_| {}).unwrap();
    assert_eq!(
        entries(&dir),
        [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin"
        ]
    );
    // The first record of the first file, byte for byte: label 0, then the planes.
    let first = std::fs::read(dir.join("data_batch_1.bin")).unwrap();
    assert_eq!(first.len(), 10_000 * 3073);
    assert_eq!(first[0], 0);
    assert_eq!(&first[1..3073], &planes(&asymmetric(1))[..]);
    let data = load("cifar10", &dir).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (50_000, 10_000));
    assert_eq!(data.train.image(0), &planes(&asymmetric(1))[..]);
    assert_eq!(data.train.image(49_999), &planes(&asymmetric(2))[..]);
    assert_eq!(data.test.image(0), &planes(&asymmetric(3))[..]);
    assert_eq!(data.test.image(9_999), &planes(&asymmetric(4))[..]);
    assert_eq!(data.train.image(1), &[9u8; 3072][..]);
    let expected: Vec<u8> = (0..50_000).map(|i| (i % 10) as u8).collect();
    assert_eq!(data.train.labels, expected);
    assert_eq!(data.test.labels[..12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    // Nothing but the folder itself is left beside it.
    assert_eq!(entries(&work.path().join("data")), ["cifar-10-batches-bin"]);
}

#[test]
fn cifar100_keeps_the_fine_label_and_writes_the_coarse_one_before_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cifar-100-binary");
    install_hub_files(work.path(), CifarVariant::Cifar100, &dir, |_| {}).unwrap();
    assert_eq!(entries(&dir), ["test.bin", "train.bin"]);
    let train = std::fs::read(dir.join("train.bin")).unwrap();
    let record = 2 + 3072;
    // Record 123: coarse 123 % 20 = 3, fine 23.
    assert_eq!(&train[123 * record..123 * record + 2], &[3, 23]);
    let data = load("cifar100", &dir).unwrap();
    let fine: Vec<u8> = (0..50_000).map(|i| (i % 100) as u8).collect();
    assert_eq!(data.train.labels, fine);
    assert_eq!(data.train.classes, 100);
    assert_eq!(data.test.image(9_999), &planes(&asymmetric(4))[..]);
}

#[test]
fn a_conversion_that_fails_half_way_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let parent = work.path().join("data");
    std::fs::create_dir(&parent).unwrap();
    // A writer killed earlier left its temporary (its process is gone: no pid is this high).
    let abandoned = parent.join(".cifar-10-batches-bin.999999999-0.tmp");
    std::fs::create_dir(&abandoned).unwrap();
    std::fs::write(abandoned.join("data_batch_1.bin"), b"half").unwrap();
    let dir = parent.join("cifar-10-batches-bin");
    let cases: [(&str, Box<dyn Fn(&mut Vec<Row>)>); 3] = [
        (
            "row 7: `label` is 10, outside 0..10",
            Box::new(|rows| rows[7].labels[0].1 = 10),
        ),
        (
            "row 9998: `img` does not decode",
            Box::new(|rows| rows[9_998].png.truncate(20)),
        ),
        (
            "expected one of 50000 (training) and one of 10000 (test)",
            Box::new(|rows| {
                rows.pop();
            }),
        ),
    ];
    for (message, corrupt) in cases {
        let err = install_hub_files(work.path(), CifarVariant::Cifar10, &dir, corrupt).unwrap_err();
        assert!(err.contains(message), "{err}");
        assert!(!dir.exists());
        // The abandoned temporary is not a dataset a run would read.
        assert!(load("cifar10", &dir).is_err());
    }
    // A conversion that fails leaves only what it found; a good one clears the abandoned one.
    assert_eq!(entries(&parent), [".cifar-10-batches-bin.999999999-0.tmp"]);
    install_hub_files(work.path(), CifarVariant::Cifar10, &dir, |_| {}).unwrap();
    assert_eq!(entries(&parent), ["cifar-10-batches-bin"]);
}

#[test]
fn offline_the_run_names_the_folder_the_script_and_the_setting_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("e.toml"),
        "name = \"c\"\n[data]\ndataset = \"cifar10\"\ndir = \"data/cifar10\"\n[model]\narch = \"resnet8\"\n[train]\nepochs = 1\n",
    )
    .unwrap();
    let hub_home = work.path().join("hub");
    // A hub address where nothing listens: the connection is refused at once, as offline.
    let out = Command::new(env!("CARGO_BIN_EXE_prunelab"))
        .arg("e.toml")
        .current_dir(work.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", &hub_home)
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for part in [
        "data.dir: CIFAR-10 not found: data/cifar10 does not exist, and downloading it failed",
        "scripts/get_data.sh cifar10",
        "[data] download = false",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
    assert_eq!(
        stderr.matches("http://127.0.0.1:9/api").count(),
        1,
        "the address is said once: {stderr}"
    );
    assert_eq!(entries(work.path()), ["e.toml"]);
}
