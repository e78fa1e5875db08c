//! The dataset readers on files written here in the exact on-disk formats, and on the real
//! Fashion-MNIST files when they are installed.

use std::io::Write;
use std::path::Path;

use prunelab::data::{DataError, Dataset};
use prunelab::Experiment;

/// Loads `[data]` from a TOML snippet (dir, dataset, subsets …).
fn load(data_toml: &str) -> Result<Dataset, DataError> {
    let text = format!("[data]\n{data_toml}\n[model]\narch = \"resnet8\"\n");
    let e = Experiment::parse(Path::new("test.toml"), &text).unwrap();
    e.data.load(e.synthetic(), e.seed)
}

/// A CIFAR record: label byte(s) then 3,072 pixel bytes, R plane, G plane, B plane.
fn cifar_record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072u32).map(|p| (p as u8).wrapping_mul(7).wrapping_add(seed)));
    r
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cifar10_binary_files_are_read_in_channel_major_order() {
    let dir = tempfile::tempdir().unwrap();
    for (b, name) in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
    ]
    .iter()
    .enumerate()
    {
        let bytes: Vec<u8> = (0..3)
            .flat_map(|i| cifar_record(&[(b * 3 + i) as u8 % 10], (b * 3 + i) as u8))
            .collect();
        write(&dir.path().join(format!("{name}.bin")), &bytes);
    }
    write(
        &dir.path().join("test_batch.bin"),
        &[cifar_record(&[9], 200), cifar_record(&[4], 201)].concat(),
    );
    let data = load(&format!("dataset = \"cifar10\"\ndir = {:?}", dir.path())).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (15, 2));
    assert_eq!(
        (
            data.train.channels,
            data.train.height,
            data.train.width,
            data.train.classes
        ),
        (3, 32, 32, 10)
    );
    assert_eq!(data.train.labels[..6], [0, 1, 2, 3, 4, 5]);
    assert_eq!(data.test.labels, [9, 4]);
    // Image 4 came from record 1 of data_batch_2: pixel p = 7p + 4 (mod 256); the green plane
    // starts at 1024, so green (0, 1) is p = 1025.
    let image = data.train.image(4);
    assert_eq!(image[0], 4);
    assert_eq!(image[1025], (1025u32 as u8).wrapping_mul(7).wrapping_add(4));
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("train.bin"),
        &[cifar_record(&[3, 77], 1), cifar_record(&[19, 99], 2)].concat(),
    );
    write(&dir.path().join("test.bin"), &cifar_record(&[0, 42], 3));
    let data = load(&format!("dataset = \"cifar100\"\ndir = {:?}", dir.path())).unwrap();
    assert_eq!(data.train.labels, [77, 99]);
    assert_eq!(data.test.labels, [42]);
    assert_eq!(data.train.classes, 100);
    assert_eq!(data.test.image(0)[5], 5 * 7 + 3);
}

#[test]
fn a_truncated_cifar_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("train.bin"), &cifar_record(&[1, 2], 0));
    let mut test = cifar_record(&[1, 2], 0);
    test.truncate(2000);
    write(&dir.path().join("test.bin"), &test);
    let err = load(&format!("dataset = \"cifar100\"\ndir = {:?}", dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test.bin") && err.contains("2000 bytes") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn a_missing_cifar_folder_says_where_it_looked_and_how_to_get_the_data() {
    let err = load("dataset = \"cifar10\"\ndir = \"/nonexistent/cifar\"\ndownload = false")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("data.download: is false")
            && err.contains("/nonexistent/cifar")
            && err.contains("scripts/get_data.sh"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = load(&format!("dataset = \"cifar10\"\ndir = {:?}", dir.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("data_batch_1.bin"), "{err}");
}

fn idx(magic: u32, dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(values);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// 28×28 pixels: image i holds the values `i·784 + p` (mod 256) at position p.
fn fashion_pixels(images: usize) -> Vec<u8> {
    (0..images * 784).map(|v| v as u8).collect()
}

/// Writes a 3-train / 2-test Fashion-MNIST set of 28×28 images, gzipped or raw.
fn write_fashion(dir: &Path, gz: bool) {
    let files = [
        (
            "train-images-idx3-ubyte",
            idx(0x803, &[3, 28, 28], &fashion_pixels(3)),
        ),
        ("train-labels-idx1-ubyte", idx(0x801, &[3], &[7, 0, 9])),
        (
            "t10k-images-idx3-ubyte",
            idx(0x803, &[2, 28, 28], &fashion_pixels(2)),
        ),
        ("t10k-labels-idx1-ubyte", idx(0x801, &[2], &[1, 2])),
    ];
    for (name, bytes) in files {
        if gz {
            write(&dir.join(format!("{name}.gz")), &gzip(&bytes));
        } else {
            write(&dir.join(name), &bytes);
        }
    }
}

#[test]
fn fashion_mnist_idx_files_are_read_gzipped_or_raw() {
    for gz in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_fashion(dir.path(), gz);
        let data = load(&format!(
            "dataset = \"fashion-mnist\"\ndir = {:?}",
            dir.path()
        ))
        .unwrap();
        assert_eq!(data.train.labels, [7, 0, 9]);
        assert_eq!(data.test.labels, [1, 2]);
        assert_eq!(
            (data.train.channels, data.train.height, data.train.width),
            (1, 28, 28)
        );
        let third: Vec<u8> = (2 * 784..3 * 784).map(|v| v as u8).collect();
        assert_eq!(data.train.image(2), &third[..]);
    }
}

#[test]
fn a_wrong_magic_number_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion(dir.path(), false);
    write(
        &dir.path().join("t10k-labels-idx1-ubyte"),
        &idx(0x803, &[2], &[1, 2]),
    );
    let err = load(&format!(
        "dataset = \"fashion-mnist\"\ndir = {:?}",
        dir.path()
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte") && err.contains("wrong magic number"),
        "{err}"
    );
}

#[test]
fn a_corrupt_gzip_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion(dir.path(), true);
    let mut bad = gzip(&idx(0x801, &[3], &[7, 0, 9]));
    bad.truncate(bad.len() / 2);
    write(&dir.path().join("train-labels-idx1-ubyte.gz"), &bad);
    let err = load(&format!(
        "dataset = \"fashion-mnist\"\ndir = {:?}",
        dir.path()
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("train-labels-idx1-ubyte.gz") && err.contains("gzip"),
        "{err}"
    );
}

#[test]
fn the_real_fashion_mnist_files_when_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.exists() {
        eprintln!(
            "skipped: {} is absent (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let data = load("dataset = \"fashion-mnist\"").unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!((data.train.height, data.train.width), (28, 28));
    let mut counts = [0usize; 10];
    data.test
        .labels
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [1000; 10], "the test split is balanced");
    // Mean pixel of the training set, the constant the normaliser uses (0.2860).
    let mean = data.train.images.iter().map(|&p| p as f64).sum::<f64>()
        / data.train.images.len() as f64
        / 255.0;
    assert!((mean - 0.2860).abs() < 5e-4, "{mean}");
}

#[test]
fn subsets_take_the_first_images_or_balanced_classes() {
    let data =
        load("dataset = \"synthetic\"\ntrain_subset = 40\nsubset_mode = \"per-class\"").unwrap();
    let mut counts = [0usize; 10];
    data.train
        .labels
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [4; 10]);
    let full = load("dataset = \"synthetic\"").unwrap();
    let first = load("dataset = \"synthetic\"\ntrain_subset = 7").unwrap();
    assert_eq!(first.train.labels, full.train.labels[..7]);
    assert_eq!(
        first.train.images,
        full.train.images[..7 * full.train.image_len()]
    );
}

#[test]
fn the_synthetic_dataset_is_deterministic() {
    let a = load("dataset = \"synthetic\"").unwrap();
    let b = load("dataset = \"synthetic\"").unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!(
        (a.train.len(), a.test.len(), a.train.height),
        (512, 256, 16)
    );
}

/// Fashion-MNIST files where the training images are replaced by `images`.
fn fashion_with_train_images(images: Vec<u8>) -> String {
    let dir = tempfile::tempdir().unwrap().keep();
    write_fashion(&dir, false);
    write(&dir.join("train-images-idx3-ubyte"), &images);
    load(&format!("dataset = \"fashion-mnist\"\ndir = {dir:?}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn fashion_mnist_images_of_another_size_are_refused_naming_the_file() {
    let err = fashion_with_train_images(idx(0x803, &[3, 14, 14], &[0; 3 * 196]));
    assert!(
        err.contains("train-images-idx3-ubyte: images are 14×14; Fashion-MNIST images are 28×28"),
        "{err}"
    );
}

#[test]
fn an_idx_file_without_images_is_refused_naming_the_file() {
    let err = fashion_with_train_images(idx(0x803, &[0, 28, 28], &[]));
    assert!(
        err.contains("train-images-idx3-ubyte: holds no images"),
        "{err}"
    );
    // 60000 images of 0×0 pixels: no payload, no division by zero.
    let err = fashion_with_train_images(idx(0x803, &[60000, 0, 0], &[]));
    assert!(
        err.contains("train-images-idx3-ubyte: images are 0×0"),
        "{err}"
    );
    let err = fashion_with_train_images(idx(0x803, &[u32::MAX; 3], &[]));
    assert!(
        err.contains("train-images-idx3-ubyte: header sizes"),
        "{err}"
    );
}

#[test]
fn a_subset_the_data_cannot_provide_is_refused() {
    let err = load("dataset = \"synthetic\"\ntrain_subset = 513")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "data.train_subset: asks for 513 images, but the generated data holds 512"
    );
    // 512 synthetic training images, about 51 per class: 600 per class is more than there are.
    let err = load("dataset = \"synthetic\"\ntrain_subset = 6000\nsubset_mode = \"per-class\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "data.train_subset: asks for 600 images of class 0, but the generated data holds "
        ),
        "{err}"
    );
}

#[test]
fn a_per_class_subset_has_exactly_the_size_asked() {
    let data =
        load("dataset = \"synthetic\"\ntrain_subset = 43\nsubset_mode = \"per-class\"").unwrap();
    let mut counts = [0usize; 10];
    data.train
        .labels
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [5, 5, 5, 4, 4, 4, 4, 4, 4, 4]);
}

#[test]
fn a_file_given_as_the_data_folder_is_named_as_a_file() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = load(&format!("dataset = \"cifar10\"\ndir = {:?}", file.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a file, not a folder"), "{err}");
}
