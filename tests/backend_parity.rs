//! One seeded model gives the same forward output on the `flex` and `ndarray`
//! CPU backends (the runner's `--device flex` and `--device ndarray`), with
//! pixel (patch) and detector-region inputs.

use burn::backend::{Flex, NdArray};
use burn::module::Module;
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp::data::synthetic::Split;
use vlp::data::PretrainBatcher;
use vlp::objectives::{Pretrainer, RetrievalModel, UniterPretrainer, UniterPretrainerConfig};
use vlp_test_support::models::{mlm_itm_itc, tiny_patches, tiny_regions, tiny_single_stream};
use vlp_test_support::{assert_close, tiny_region_batcher, tiny_world_batcher, Tol};

fn config(vocab_size: usize, regions: bool) -> UniterPretrainerConfig {
    let visual = if regions {
        tiny_regions(32)
    } else {
        tiny_patches(32)
    };
    let model = tiny_single_stream(vocab_size, visual, 2);
    UniterPretrainerConfig::new(model, mlm_itm_itc()).with_itc_embed_dim(16)
}

/// Forward outputs of the model stored in `weights` on backend `B`: the
/// unimodal embeddings and the step's three losses.
fn outputs<B: Backend>(weights: &[u8], batcher: &PretrainBatcher) -> Vec<f32> {
    let device = B::Device::default();
    let record = BinBytesRecorder::<FullPrecisionSettings>::default()
        .load(weights.to_vec(), &device)
        .expect("weights load");
    let model: UniterPretrainer<B> =
        config(batcher.tokenizer.vocab_size(), batcher.detector.is_some())
            .init(&device)
            .unwrap()
            .load_record(record);
    let host = batcher
        .batch(
            Split::Train,
            &[0, 1, 2, 3, 4, 5],
            &mut ChaCha8Rng::seed_from_u64(3),
        )
        .unwrap();
    let batch = host.to_device::<B>(&device);
    let step = model.forward(&batch);
    let mut values: Vec<f32> = model
        .embed_text(batch.text_ids.clone(), batch.text_padding.clone())
        .into_data()
        .to_vec()
        .unwrap();
    values.extend(
        model
            .embed_image(&batch.visual)
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
    );
    for objective in step.objectives {
        values.push(objective.loss.into_scalar().elem());
    }
    values
}

#[test]
fn flex_and_ndarray_agree_on_one_seeded_patch_model() {
    backends_agree(false);
}

#[test]
fn flex_and_ndarray_agree_on_one_seeded_region_model() {
    backends_agree(true);
}

fn backends_agree(regions: bool) {
    let batcher = if regions {
        tiny_region_batcher(7)
    } else {
        tiny_world_batcher(7)
    };
    let device = Default::default();
    // The generator is global: the other test must not draw in between.
    let _serial = vlp_test_support::serial();
    <NdArray as Backend>::seed(&device, 11);
    let model: UniterPretrainer<NdArray> = config(batcher.tokenizer.vocab_size(), regions)
        .init(&device)
        .unwrap();
    let weights = BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.into_record(), ())
        .unwrap();

    let on_ndarray = outputs::<NdArray>(&weights, &batcher);
    let on_flex = outputs::<Flex>(&weights, &batcher);
    assert!(on_ndarray.iter().all(|v| v.is_finite()));
    assert_close("flex vs ndarray", on_flex, on_ndarray, Tol::abs(1e-4));
}
