//! Reading the committed fixtures that sit next to the tests
//! (`<crate>/tests/fixtures/`, written by the generator scripts there).

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use serde_json::Value;

/// `fixture!("objectives/itm.json")`: the JSON file at that path under the
/// calling crate's `tests/fixtures/`, parsed. (A macro so that the path is
/// resolved against the caller's `CARGO_MANIFEST_DIR`, not this crate's.)
#[macro_export]
macro_rules! fixture {
    ($path:expr) => {
        $crate::read_json($crate::fixture_path!($path))
    };
}

/// `fixture_path!("tiny_bert")`: that path under the calling crate's
/// `tests/fixtures/`.
#[macro_export]
macro_rules! fixture_path {
    ($path:expr) => {
        ::std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join($path)
    };
}

/// The JSON file at `path`; panics naming the file when it is missing or
/// malformed.
pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `shape` of a `{"shape": [...], "data": [...]}` fixture tensor.
pub fn shape(value: &Value) -> Vec<usize> {
    value["shape"]
        .as_array()
        .expect("a fixture tensor has a shape")
        .iter()
        .map(|d| d.as_u64().expect("shape entries are integers") as usize)
        .collect()
}

/// A JSON list of numbers (or a `{shape, data}` tensor's data) as `f64`.
pub fn f64s(value: &Value) -> Vec<f64> {
    list(value)
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}

/// A JSON list of numbers (or a `{shape, data}` tensor's data) as `f32`.
pub fn f32s(value: &Value) -> Vec<f32> {
    f64s(value).into_iter().map(|x| x as f32).collect()
}

fn list(value: &Value) -> &Vec<Value> {
    let list = value.get("data").unwrap_or(value);
    list.as_array().expect("a fixture list")
}

/// A `{shape, data}` fixture tensor of floats.
pub fn float_tensor<B: Backend, const D: usize>(value: &Value, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(f32s(value), shape(value)), device)
}

/// A `{shape, data}` fixture tensor of integers.
pub fn int_tensor<B: Backend, const D: usize>(
    value: &Value,
    device: &B::Device,
) -> Tensor<B, D, Int> {
    let data: Vec<i64> = list(value)
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("not an integer: {x}")))
        .collect();
    Tensor::from_data(TensorData::new(data, shape(value)), device)
}

/// A `{shape, data}` fixture tensor of booleans.
pub fn bool_tensor<B: Backend, const D: usize>(
    value: &Value,
    device: &B::Device,
) -> Tensor<B, D, Bool> {
    let data: Vec<bool> = list(value)
        .iter()
        .map(|x| x.as_bool().unwrap_or_else(|| panic!("not a boolean: {x}")))
        .collect();
    Tensor::from_data(TensorData::new(data, shape(value)), device)
}

/// `name → (shape, values)` of a safetensors file of f32 tensors.
pub fn read_safetensors(path: impl AsRef<Path>) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            assert_eq!(info["dtype"], "F32", "{}: {name}", path.display());
            let [start, end] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize);
            let values = data[start..end]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, (shape(&info), values))
        })
        .collect()
}
