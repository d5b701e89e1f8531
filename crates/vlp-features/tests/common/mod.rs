//! Shared by the integration tests: reading the fixtures.

use std::collections::HashMap;
use std::path::Path;

/// `name → (shape, values)` of a safetensors file of f32 tensors.
pub fn read_safetensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            assert_eq!(info["dtype"], "F32", "{name}");
            let shape = info["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let [start, end] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize);
            let values = data[start..end]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, (shape, values))
        })
        .collect()
}
