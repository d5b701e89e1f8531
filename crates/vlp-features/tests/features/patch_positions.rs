//! `PatchEmbeddings::positions` against Hugging Face ViT's
//! `interpolate_pos_encoding` (PyTorch bicubic, `align_corners=False`).
//! Fixture: `tests/fixtures/gen_positions.py`.

use burn::backend::NdArray;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use vlp_features::PatchEmbeddingsConfig;
use vlp_test_support::fixtures::read_safetensors;
use vlp_test_support::{assert_close, fixture_path, Tol};

#[test]
fn positions_match_hugging_face_vit() {
    let state = read_safetensors(fixture_path!("positions.safetensors"));
    let device = Default::default();
    <NdArray as Backend>::seed(&device, 0);
    let tensor = |name: &str| {
        let (shape, values) = &state[name];
        Tensor::<NdArray, 3>::from_data(TensorData::new(values.clone(), shape.clone()), &device)
    };
    let mut embeddings = PatchEmbeddingsConfig::new(16, 4, 3).init::<NdArray>(&device);
    embeddings.position_embeddings = Param::from_tensor(tensor("table"));
    for [rows, cols] in [[6, 6], [7, 5], [3, 3], [2, 8]] {
        let expected = tensor(&format!("grid_{rows}x{cols}"));
        let positions = embeddings.positions(rows, cols);
        assert_close(
            format!("{rows}×{cols}"),
            positions,
            expected,
            Tol::abs(1e-5),
        );
    }
}
