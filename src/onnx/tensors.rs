//! The values an ONNX graph holds as data: initializers and `Constant` outputs (floats for
//! weights, integers for shapes), decoded from raw, typed or external storage.

use std::path::Path;

use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::TensorProto;

/// A constant tensor: its dimensions and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Values,
}

/// Floats (weights), or integers where `None` stands for the batch size (a shape read from
/// an activation: only where it flows is known, not its value).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Floats(Vec<f32>),
    Ints(Vec<Option<i64>>),
}

impl Constant {
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Floats(v) => v.len(),
            Values::Ints(v) => v.len(),
        }
    }

    /// The values as floats (integers converted), or why not.
    pub fn floats(&self) -> Result<Vec<f32>, String> {
        match &self.values {
            Values::Floats(v) => Ok(v.clone()),
            Values::Ints(v) => v
                .iter()
                .map(|i| {
                    i.map(|i| i as f32)
                        .ok_or("depends on the batch size".to_string())
                })
                .collect(),
        }
    }

    /// The values as integers (the batch size as `None`), or why not.
    pub fn ints(&self) -> Result<Vec<Option<i64>>, String> {
        match &self.values {
            Values::Ints(v) => Ok(v.clone()),
            Values::Floats(v) => v
                .iter()
                .map(|&f| match f.fract() == 0.0 {
                    true => Ok(Some(f as i64)),
                    false => Err(format!("{f} is not an integer")),
                })
                .collect(),
        }
    }

    /// Integer values with no batch size among them.
    pub fn known_ints(&self) -> Result<Vec<i64>, String> {
        self.ints()?
            .into_iter()
            .map(|i| i.ok_or("depends on the batch size".to_string()))
            .collect()
    }
}

/// Decodes a tensor of the model in `dir` (where its external data files lie).
pub fn decode(tensor: &TensorProto, dir: &Path) -> Result<Constant, String> {
    let dims = tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} is negative")))
        .collect::<Result<Vec<usize>, String>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("its size overflows")?;
    let external;
    let raw: &[u8] = if tensor.data_location == DataLocation::External as i32 {
        external = external_data(tensor, dir)?;
        &external
    } else {
        &tensor.raw_data
    };
    let data_type = DataType::try_from(tensor.data_type)
        .map_err(|_| format!("unknown data type {}", tensor.data_type))?;
    let values = match data_type {
        DataType::Float => Values::Floats(match raw.is_empty() {
            true => tensor.float_data.clone(),
            false => from_le::<4, f32>(raw, f32::from_le_bytes)?,
        }),
        DataType::Double => Values::Floats(match raw.is_empty() {
            true => tensor.double_data.iter().map(|&v| v as f32).collect(),
            false => from_le::<8, f64>(raw, f64::from_le_bytes)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        }),
        DataType::Int64 => Values::Ints(
            match raw.is_empty() {
                true => tensor.int64_data.clone(),
                false => from_le::<8, i64>(raw, i64::from_le_bytes)?,
            }
            .into_iter()
            .map(Some)
            .collect(),
        ),
        DataType::Int32 => Values::Ints(
            match raw.is_empty() {
                true => tensor
                    .int32_data
                    .iter()
                    .map(|&v| i64::from(v))
                    .collect::<Vec<_>>(),
                false => from_le::<4, i32>(raw, i32::from_le_bytes)?
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            }
            .into_iter()
            .map(Some)
            .collect(),
        ),
        other => {
            return Err(format!(
                "data type {} is not supported (float, double, int32 and int64 are)",
                format!("{other:?}").to_uppercase()
            ))
        }
    };
    let constant = Constant { dims, values };
    if constant.len() != count {
        return Err(format!(
            "holds {} values for dimensions {:?} ({count})",
            constant.len(),
            constant.dims
        ));
    }
    Ok(constant)
}

/// Little-endian values of `N` bytes each.
fn from_le<const N: usize, T>(raw: &[u8], read: fn([u8; N]) -> T) -> Result<Vec<T>, String> {
    if !raw.len().is_multiple_of(N) {
        return Err(format!(
            "raw data of {} bytes is not whole {N}-byte values",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| read(c.try_into().expect("chunks of N")))
        .collect())
}

/// The bytes of a tensor stored outside the model: `location` (relative to the model's
/// folder), from `offset`, `length` long.
fn external_data(tensor: &TensorProto, dir: &Path) -> Result<Vec<u8>, String> {
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("its external data names no location")?;
    let number = |key: &str| -> Result<Option<usize>, String> {
        entry(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("external data {key} {v:?} is not a size"))
            })
            .transpose()
    };
    let path = dir.join(location);
    if Path::new(location).is_absolute() || location.split(['/', '\\']).any(|p| p == "..") {
        return Err(format!(
            "external data location {location:?} lies outside the model's folder"
        ));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| format!("its external data file {}: {e}", path.display()))?;
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(bytes.len().saturating_sub(offset));
    let end = offset.checked_add(length).filter(|&end| end <= bytes.len());
    match end {
        Some(end) => Ok(bytes[offset..end].to_vec()),
        None => Err(format!(
            "its external data file {} has {} bytes, fewer than offset {offset} + length {length}",
            path.display(),
            bytes.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_typed_and_external_storage_decode_alike() {
        let dir = std::env::temp_dir().join(format!("prunelab-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw = floats(&[2, 2], &[1.0, -2.0, 3.5, 0.25]);
        let typed = TensorProto {
            raw_data: vec![],
            float_data: vec![1.0, -2.0, 3.5, 0.25],
            ..raw.clone()
        };
        let mut file = vec![7u8; 3];
        file.extend(&raw.raw_data);
        std::fs::write(dir.join("w.bin"), &file).unwrap();
        let entry = |key: &str, value: &str| super::super::proto::StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        };
        let external = TensorProto {
            raw_data: vec![],
            data_location: DataLocation::External as i32,
            external_data: vec![
                entry("location", "w.bin"),
                entry("offset", "3"),
                entry("length", "16"),
            ],
            ..raw.clone()
        };
        let want = Constant {
            dims: vec![2, 2],
            values: Values::Floats(vec![1.0, -2.0, 3.5, 0.25]),
        };
        for t in [&raw, &typed, &external] {
            assert_eq!(decode(t, &dir).unwrap(), want);
        }
        let missing = TensorProto {
            external_data: vec![entry("location", "gone.bin")],
            ..external.clone()
        };
        let err = decode(&missing, &dir).unwrap_err();
        assert!(err.contains("gone.bin"), "{err}");
        let short = TensorProto {
            external_data: vec![entry("location", "w.bin"), entry("offset", "11")],
            ..external
        };
        assert_eq!(
            decode(&short, &dir).unwrap_err(),
            "holds 2 values for dimensions [2, 2] (4)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn counts_and_types_are_checked() {
        let err = decode(&floats(&[3], &[1.0, 2.0]), Path::new(".")).unwrap_err();
        assert_eq!(err, "holds 2 values for dimensions [3] (3)");
        let half = TensorProto {
            data_type: DataType::Float16 as i32,
            ..floats(&[1], &[1.0])
        };
        let err = decode(&half, Path::new(".")).unwrap_err();
        assert!(err.contains("FLOAT16 is not supported"), "{err}");
    }
}
