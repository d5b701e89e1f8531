//! MLM, ITC and ITM learn on a tiny single-stream model. A hundred steps on
//! a fixed set of synthetic scenes drive MLM and ITC well below their
//! starting values and MLM's accuracy above the majority-token baseline,
//! whether the model sees pixels (ViT patches) or the world's detector
//! regions; ITM, trained on fresh scenes, tells matching from random pairs
//! of held-out scenes well above chance.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::prelude::*;
use vlp_data::synthetic::Split;
use vlp_data::PretrainBatcher;
use vlp_objectives::{UniterObjectives, UniterPretrainer, UniterPretrainerConfig};
use vlp_test_support::training::{
    evaluate, mlm_itm_itc, mlm_majority_baseline, tiny_patches, tiny_regions, tiny_single_stream,
    train, Scenes,
};
use vlp_test_support::{tiny_region_batcher, tiny_world_batcher};

use super::{learning_seed, serial};

type B = Autodiff<NdArray>;

const SCENES: Scenes = Scenes::Fixed(16);
const STEPS: u64 = 120;

#[test]
fn mlm_and_itc_losses_fall_on_a_fixed_set_of_images() {
    losses_fall(tiny_world_batcher(1), tiny_patches(32));
}

#[test]
fn mlm_and_itc_losses_fall_on_a_fixed_set_of_regions() {
    losses_fall(tiny_region_batcher(1), tiny_regions(32));
}

fn losses_fall(batcher: PretrainBatcher, visual: vlp_features::VisualEmbeddingsConfig) {
    let device = Default::default();
    let _serial = serial();
    B::seed(&device, learning_seed());
    let model_config = tiny_single_stream(batcher.tokenizer.vocab_size(), visual, 2);
    let model: UniterPretrainer<B> = UniterPretrainerConfig::new(model_config, mlm_itm_itc())
        .with_itc_embed_dim(32)
        .init(&device);
    let (_, history) = train(model, &batcher, SCENES, STEPS, 1e-3, &device);
    let (mlm0, mlm1) = (history.start_loss("mlm", 5), history.end_loss("mlm", 20));
    let (itc0, itc1) = (history.start_loss("itc", 5), history.end_loss("itc", 20));
    let accuracy = history.end_metric("mlm", 20);
    let baseline = mlm_majority_baseline(&batcher, SCENES, STEPS - 20..STEPS);
    println!(
        "MLM {mlm0:.3} -> {mlm1:.3}, accuracy {accuracy:.3} (majority {baseline:.3}); \
         ITC {itc0:.3} -> {itc1:.3}"
    );
    // Before the first update ITC is at chance (ln 16): the model has not
    // aligned anything yet. (The mean of the first steps already falls.)
    let itc_first = history.losses_of("itc")[0];
    assert!(
        itc_first > 0.9 * (16f32).ln(),
        "ITC starts near chance: {itc_first}"
    );
    assert!(mlm1 < 0.75 * mlm0, "MLM: {mlm0} -> {mlm1}");
    assert!(
        accuracy > baseline + 0.15,
        "MLM accuracy {accuracy} vs majority-token baseline {baseline}"
    );
    assert!(itc1 < 0.5 * itc0, "ITC: {itc0} -> {itc1}");
}

/// ITM (with ITC) on regions, each step on fresh train scenes: on held-out
/// (validation) scenes, whose descriptions never occur in training, the
/// match accuracy ends well above the label prior (random negatives with
/// probability 0.5).
#[test]
fn itm_tells_matching_pairs_of_held_out_scenes() {
    let batcher = tiny_region_batcher(1);
    let device = Default::default();
    let _serial = serial();
    B::seed(&device, learning_seed());
    let model_config = tiny_single_stream(batcher.tokenizer.vocab_size(), tiny_regions(32), 2);
    let objectives = UniterObjectives::new().with_itm(1.0).with_itc(1.0);
    let model: UniterPretrainer<B> = UniterPretrainerConfig::new(model_config, objectives)
        .with_itc_embed_dim(32)
        .init(&device);
    let (model, history) = train(model, &batcher, Scenes::Random(32), 200, 2e-3, &device);
    let held_out = evaluate(&model.valid(), &batcher, Split::Val, 32, 8, 99, &device);
    let accuracy = held_out.end_metric("itm", held_out.len());
    println!(
        "ITM train accuracy {:.3} -> {:.3}, held-out {accuracy:.3}",
        history.start_metric("itm", 10),
        history.end_metric("itm", 20)
    );
    assert!(accuracy > 0.5 + 0.15, "held-out ITM accuracy {accuracy}");
}
