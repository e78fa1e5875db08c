//! Reading a node's attributes and constant inputs.

use std::path::Path;

use super::{Refusal, Value};
use crate::onnx::proto::attribute_proto::AttributeType;
use crate::onnx::proto::AttributeProto;
use crate::onnx::tensors::{decode, Constant, Values};

/// The node attributes, read by name and type.
pub(super) struct Attributes<'a>(pub(super) &'a [AttributeProto]);

impl Attributes<'_> {
    pub(super) fn get(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&AttributeProto>, Refusal> {
        match self.0.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) if a.r#type == want as i32 => Ok(Some(a)),
            Some(a) => Err(format!(
                "attribute {name} has type {}, expected {}",
                a.r#type,
                format!("{want:?}").to_uppercase()
            )
            .into()),
        }
    }

    pub(super) fn int(&self, name: &str) -> Result<Option<i64>, Refusal> {
        Ok(self.get(name, AttributeType::Int)?.map(|a| a.i))
    }

    pub(super) fn float(&self, name: &str) -> Result<Option<f32>, Refusal> {
        Ok(self.get(name, AttributeType::Float)?.map(|a| a.f))
    }

    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, Refusal> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    pub(super) fn string(&self, name: &str) -> Result<Option<String>, Refusal> {
        Ok(self
            .get(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// A `Constant` node's value, from whichever attribute holds it.
    pub(super) fn constant(&self) -> Result<Constant, Refusal> {
        if let Some(t) = self
            .get("value", AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref())
        {
            return Ok(decode(t, Path::new(""))?);
        }
        if let Some(v) = self.float("value_float")? {
            return Ok(Constant {
                dims: vec![],
                values: Values::Floats(vec![v]),
            });
        }
        if let Some(v) = self.int("value_int")? {
            return Ok(Constant {
                dims: vec![],
                values: Values::Ints(vec![Some(v)]),
            });
        }
        if let Some(a) = self.get("value_floats", AttributeType::Floats)? {
            return Ok(Constant {
                dims: vec![a.floats.len()],
                values: Values::Floats(a.floats.clone()),
            });
        }
        if let Some(v) = self.ints("value_ints")? {
            return Ok(ints(vec![v.len()], v.into_iter().map(Some).collect()).constant());
        }
        Err("holds no value prunelab reads (a tensor, float(s) or int(s))".into())
    }
}

impl Value {
    fn constant(self) -> Constant {
        match self {
            Value::Constant(c) => c,
            _ => unreachable!("built as a constant"),
        }
    }
}

pub(super) fn ints(dims: Vec<usize>, values: Vec<Option<i64>>) -> Value {
    Value::Constant(Constant {
        dims,
        values: Values::Ints(values),
    })
}

pub(super) fn constant(v: &Value) -> Result<Constant, Refusal> {
    match v {
        Value::Constant(c) => Ok(c.clone()),
        Value::Node(_) => {
            Err("reads an activation where a constant (a weight or shape) is needed".into())
        }
        Value::Refused | Value::Absent => Err("misses an input".into()),
    }
}

/// Both entries of a 2-D attribute, which must be equal.
pub(super) fn square(values: Option<Vec<i64>>, what: &str) -> Result<Option<usize>, Refusal> {
    match values.as_deref() {
        None => Ok(None),
        Some(&[a, b]) if a == b && a > 0 => Ok(Some(a as usize)),
        Some(v) => Err(format!("{what} {v:?} is not square and positive (not supported)").into()),
    }
}

pub(super) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

/// A float attribute as the decimal it was written from (`1e-5`, not 9.99999974e-6), so that
/// an imported BatchNorm matches one built here.
pub(super) fn as_written(v: f32) -> f64 {
    v.to_string().parse().expect("a float prints as a float")
}
