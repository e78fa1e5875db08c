//! CIFAR as the Hugging Face hub stores it (`uoft-cs/cifar10`, `uoft-cs/cifar100`, in their
//! parquet conversion): one row per image, the image as PNG bytes in `img.bytes`, the class in
//! `label` (CIFAR-10) or `fine_label` and `coarse_label` (CIFAR-100). Rows become records of the
//! standard binary layout, label byte(s) then the red, green and blue 32×32 planes.

use parquet::file::reader::FileReader;
use parquet::record::{Field, Row};

use super::cifar::{Variant, PIXELS};

/// The labels a variant reads, in the order its binary records store them.
fn label_columns(variant: Variant) -> &'static [&'static str] {
    match variant {
        Variant::Cifar10 => &["label"],
        Variant::Cifar100 => &["coarse_label", "fine_label"],
    }
}

/// Every row of one parquet file as binary records, concatenated; the error names the row.
pub fn records(file: &dyn FileReader, variant: Variant) -> Result<Vec<u8>, String> {
    let rows = file
        .get_row_iter(None)
        .map_err(|e| format!("not a readable parquet file: {e}"))?;
    let expected = file.metadata().file_metadata().num_rows();
    let mut out = Vec::with_capacity(expected.max(0) as usize * record_len(variant));
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| format!("row {i}: {e}"))?;
        append_record(&row, variant, &mut out).map_err(|e| format!("row {i}: {e}"))?;
    }
    Ok(out)
}

pub fn record_len(variant: Variant) -> usize {
    label_columns(variant).len() + PIXELS
}

fn append_record(row: &Row, variant: Variant, out: &mut Vec<u8>) -> Result<(), String> {
    let field = |name: &str| {
        row.get_column_iter()
            .find(|(column, _)| column.as_str() == name)
            .map(|(_, field)| field)
            .ok_or_else(|| format!("has no `{name}` column"))
    };
    for &name in label_columns(variant) {
        let label = match field(name)? {
            Field::Long(v) => *v,
            Field::Int(v) => i64::from(*v),
            other => return Err(format!("`{name}` is `{other}`, not an integer")),
        };
        let classes = if name == "coarse_label" {
            20
        } else {
            variant.classes()
        };
        if !(0..classes as i64).contains(&label) {
            return Err(format!("`{name}` is {label}, outside 0..{classes}"));
        }
        out.push(label as u8);
    }
    let png = match field("img")? {
        Field::Group(image) => image
            .get_column_iter()
            .find_map(|(name, value)| match (name.as_str(), value) {
                ("bytes", Field::Bytes(bytes)) => Some(bytes.data()),
                _ => None,
            })
            .ok_or("`img` has no `bytes`")?,
        other => return Err(format!("`img` is `{other}`, not an image")),
    };
    let image = image::load_from_memory(png)
        .map_err(|e| format!("`img` does not decode: {e}"))?
        .to_rgb8();
    if image.dimensions() != (32, 32) {
        let (w, h) = image.dimensions();
        return Err(format!("`img` is {w}×{h} pixels, not 32×32"));
    }
    // The decoded pixels are rows of interleaved RGB; the binary layout stores one plane per
    // colour, each row-major.
    for channel in 0..3 {
        out.extend(image.as_raw().iter().skip(channel).step_by(3));
    }
    Ok(())
}
