//! MLM and ITC learn: a tiny single-stream model trained for a hundred steps
//! on a fixed set of synthetic scenes drives both losses well below their
//! starting values, whether the model sees pixels (ViT patches) or the
//! world's detector regions. (ITM needs longer: the pre-training run shows it.)

use burn::backend::{Autodiff, NdArray};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::{DetectorConfig, Split, SyntheticDetector, SyntheticWorld};
use vlp_data::{MlmMasking, PretrainBatcher, TextTokenizer};
use vlp_features::{PatchEmbeddingsConfig, RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{SingleStreamConfig, TransformerSize};
use vlp_objectives::{Pretrainer, UniterObjectives, UniterPretrainer, UniterPretrainerConfig};

use super::serial;

type B = Autodiff<NdArray>;

#[test]
fn mlm_and_itc_losses_fall_on_a_fixed_set_of_images() {
    losses_fall(VisualEmbeddingsConfig::Patches(
        PatchEmbeddingsConfig::new(32, 8, 32).with_dropout(0.0),
    ));
}

#[test]
fn mlm_and_itc_losses_fall_on_a_fixed_set_of_regions() {
    losses_fall(VisualEmbeddingsConfig::Regions(
        RegionEmbeddingsConfig::new(DetectorConfig::default().feature_size, 32).with_dropout(0.0),
    ));
}

fn losses_fall(visual: VisualEmbeddingsConfig) {
    let detector = matches!(visual, VisualEmbeddingsConfig::Regions(_))
        .then(|| SyntheticDetector::new(1, DetectorConfig::default()));
    let world = SyntheticWorld::new(1, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(200), 200).unwrap();
    let batcher = PretrainBatcher {
        world,
        tokenizer,
        max_text_len: 40,
        masking: MlmMasking::default(),
        itm_negative_probability: 0.5,
        fused_pairs: None,
        detector,
        region_masking: None,
        patch_masking: None,
        vqa_answers: None,
    };
    let device = Default::default();
    let _serial = serial();
    B::seed(&device, 0);
    let model_config = SingleStreamConfig::new(batcher.tokenizer.vocab_size(), visual)
        .with_transformer(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0));
    let mut model: UniterPretrainer<B> = UniterPretrainerConfig::new(model_config, mlm_itm_itc())
        .with_itc_embed_dim(32)
        .init(&device)
        .unwrap();
    let mut optimizer = AdamWConfig::new().init::<B, UniterPretrainer<B>>();
    let indices: Vec<usize> = (0..16).collect();
    let mut history = Vec::new();
    for step in 0..120 {
        let host = batcher
            .batch(Split::Train, &indices, &mut ChaCha8Rng::seed_from_u64(step))
            .unwrap();
        let output = model.forward(&host.to_device(&device));
        history.push(["mlm", "itc"].map(|name| {
            output
                .objective(name)
                .unwrap()
                .loss
                .clone()
                .into_scalar()
                .elem::<f32>()
        }));
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }
    let mean =
        |steps: &[[f32; 2]], k: usize| steps.iter().map(|l| l[k]).sum::<f32>() / steps.len() as f32;
    let (start, end) = (&history[..5], &history[history.len() - 20..]);
    // Before the first update ITC is at chance (ln 16): the model has not
    // aligned anything yet. (The mean of the first steps already falls.)
    assert!(
        history[0][1] > 0.9 * (16f32).ln(),
        "ITC starts near chance: {}",
        history[0][1]
    );
    assert!(
        mean(end, 0) < 0.75 * mean(start, 0),
        "MLM: {} -> {}",
        mean(start, 0),
        mean(end, 0)
    );
    assert!(
        mean(end, 1) < 0.5 * mean(start, 1),
        "ITC: {} -> {}",
        mean(start, 1),
        mean(end, 1)
    );
}

/// MLM, ITM and ITC summed, as `cargo xtask pretrain` trains by default.
fn mlm_itm_itc() -> UniterObjectives {
    UniterObjectives::new()
        .with_mlm(1.0)
        .with_itm(1.0)
        .with_itc(1.0)
}
