//! `PatchEmbeddings::positions` against Hugging Face ViT's
//! `interpolate_pos_encoding` (PyTorch bicubic, `align_corners=False`).
//! Fixture: `tests/fixtures/gen_positions.py`.

use std::path::Path;

use burn::backend::NdArray;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use vlp_features::PatchEmbeddingsConfig;

mod common;
use common::read_safetensors;

#[test]
fn positions_match_hugging_face_vit() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/positions.safetensors");
    let state = read_safetensors(&path);
    let device = Default::default();
    let tensor = |name: &str| {
        let (shape, values) = &state[name];
        Tensor::<NdArray, 3>::from_data(TensorData::new(values.clone(), shape.clone()), &device)
    };
    let mut embeddings = PatchEmbeddingsConfig::new(16, 4, 3).init::<NdArray>(&device);
    embeddings.position_embeddings = Param::from_tensor(tensor("table"));
    for [rows, cols] in [[6, 6], [7, 5], [3, 3], [2, 8]] {
        let expected = tensor(&format!("grid_{rows}x{cols}"));
        let positions = embeddings.positions(rows, cols);
        assert_eq!(positions.dims(), expected.dims());
        let gap = (positions - expected).abs().max().into_scalar();
        assert!(gap < 1e-5, "{rows}×{cols}: {gap}");
    }
}
