//! One seeded model gives the same forward output on the `flex` and `ndarray`
//! CPU backends (the runner's `--device flex` and `--device ndarray`), with
//! pixel (patch) and detector-region inputs.

use burn::backend::{Flex, NdArray};
use burn::module::Module;
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp::data::synthetic::{DetectorConfig, Split, SyntheticDetector, SyntheticWorld};
use vlp::data::{MlmMasking, PretrainBatcher, TextTokenizer};
use vlp::features::{PatchEmbeddingsConfig, RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp::models::{SingleStreamConfig, TransformerSize};
use vlp::objectives::{
    Pretrainer, RetrievalModel, UniterObjectives, UniterPretrainer, UniterPretrainerConfig,
};

fn config(vocab_size: usize, regions: bool) -> UniterPretrainerConfig {
    let visual = if regions {
        VisualEmbeddingsConfig::Regions(
            RegionEmbeddingsConfig::new(DetectorConfig::default().feature_size, 32)
                .with_dropout(0.0),
        )
    } else {
        VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(32, 8, 32).with_dropout(0.0))
    };
    let model = SingleStreamConfig::new(vocab_size, visual)
        .with_transformer(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0));
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
    let world = SyntheticWorld::new(7, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(200), 200).unwrap();
    let batcher = PretrainBatcher {
        world,
        tokenizer,
        max_text_len: 40,
        masking: MlmMasking::default(),
        itm_negative_probability: 0.5,
        fused_pairs: None,
        detector: regions.then(|| SyntheticDetector::new(7, DetectorConfig::default())),
        region_masking: None,
        patch_masking: None,
        vqa_answers: None,
    };
    let device = Default::default();
    <NdArray as Backend>::seed(&device, 11);
    let model: UniterPretrainer<NdArray> = config(batcher.tokenizer.vocab_size(), regions)
        .init(&device)
        .unwrap();
    let weights = BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.into_record(), ())
        .unwrap();

    let on_ndarray = outputs::<NdArray>(&weights, &batcher);
    let on_flex = outputs::<Flex>(&weights, &batcher);
    assert_eq!(on_ndarray.len(), on_flex.len());
    let worst = on_ndarray
        .iter()
        .zip(&on_flex)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4,
        "largest difference between backends: {worst}"
    );
    assert!(on_ndarray.iter().all(|v| v.is_finite()));
}

/// MLM, ITM and ITC summed, as `cargo xtask pretrain` trains by default.
fn mlm_itm_itc() -> UniterObjectives {
    UniterObjectives::new()
        .with_mlm(1.0)
        .with_itm(1.0)
        .with_itc(1.0)
}
