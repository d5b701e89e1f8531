//! The three objectives learn: a tiny single-stream model trained for a few
//! dozen steps on the synthetic world drives each loss well below its value
//! at chance.

use burn::backend::{Autodiff, NdArray};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::{Split, SyntheticWorld};
use vlp_data::{MlmMasking, PretrainBatcher, TextTokenizer};
use vlp_models::SingleStreamConfig;
use vlp_objectives::{SingleStreamPretrainer, SingleStreamPretrainerConfig};

type B = Autodiff<NdArray>;

#[test]
fn mlm_itm_and_itc_losses_fall_on_a_fixed_set() {
    let world = SyntheticWorld::new(1, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(200), 200).unwrap();
    let batcher = PretrainBatcher {
        world,
        tokenizer,
        max_text_len: 40,
        masking: MlmMasking::default(),
        itm_negative_probability: 0.5,
    };
    let device = Default::default();
    B::seed(&device, 0);
    let model_config = SingleStreamConfig::new(batcher.tokenizer.vocab_size())
        .with_image_size(32)
        .with_patch_size(8)
        .with_hidden_size(32)
        .with_num_layers(2)
        .with_num_heads(4)
        .with_intermediate_size(64)
        .with_dropout(0.0);
    let mut model: SingleStreamPretrainer<B> = SingleStreamPretrainerConfig::new(model_config)
        .with_itc_embed_dim(32)
        .init(&device);
    let mut optimizer = AdamWConfig::new().init::<B, SingleStreamPretrainer<B>>();
    let indices: Vec<usize> = (0..16).collect();
    let losses = |output: &vlp_objectives::PretrainOutput<B>| {
        [&output.mlm.loss, &output.itm.loss, &output.itc.loss].map(|l| l.clone().into_scalar().elem::<f32>())
    };
    let mut first = None;
    let mut last = [0.0; 3];
    for step in 0..80 {
        let host = batcher.batch(Split::Train, &indices, &mut ChaCha8Rng::seed_from_u64(step)).unwrap();
        let output = model.forward(&host.to_device(&device));
        last = losses(&output);
        first.get_or_insert(last);
        eprintln!("step {step}: mlm {:.3} itm {:.3} itc {:.3}", last[0], last[1], last[2]);
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        model = optimizer.step(2e-3, model, grads);
    }
    let first = first.unwrap();
    assert!(first[2] > 0.9 * (16f32).ln(), "ITC starts near chance: {first:?}");
    assert!(last[0] < 0.5 * first[0], "MLM: {first:?} -> {last:?}");
    assert!(last[1] < 0.6, "ITM: {first:?} -> {last:?}");
    assert!(last[2] < 0.3 * first[2], "ITC: {first:?} -> {last:?}");
}
