//! SimVLM learns: both layouts (encoder-decoder and one PrefixLM stack),
//! tiny, trained for a hundred steps on a fixed set of synthetic scenes,
//! drive the PrefixLM loss well below its start, and then caption images
//! from `[CLS]` alone. (Caption quality, BLEU-4 on held-out images, needs a
//! longer run: the pre-training run measures it.)

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::{Split, SyntheticWorld};
use vlp_data::{MlmMasking, PretrainBatcher, TextTokenizer};
use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{EncoderDecoderConfig, PrefixLmConfig, TransformerSize};
use vlp_objectives::{Pretrainer, SimVlmArchitecture, SimVlmPretrainer, SimVlmPretrainerConfig};

use super::serial;

type B = Autodiff<NdArray>;

fn visual() -> VisualEmbeddingsConfig {
    VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(32, 8, 32).with_dropout(0.0))
}

#[test]
fn encoder_decoder_prefix_lm_loss_falls() {
    loss_falls(|vocab| {
        SimVlmArchitecture::EncoderDecoder(
            EncoderDecoderConfig::new(vocab, visual())
                .with_transformer(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0)),
        )
    });
}

#[test]
fn prefix_lm_stack_loss_falls() {
    loss_falls(|vocab| {
        SimVlmArchitecture::PrefixLm(
            PrefixLmConfig::new(vocab, visual())
                .with_transformer(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0)),
        )
    });
}

fn loss_falls(architecture: impl Fn(usize) -> SimVlmArchitecture) {
    let world = SyntheticWorld::new(1, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(200), 200).unwrap();
    let special = tokenizer.special();
    let batcher = PretrainBatcher {
        world,
        tokenizer,
        max_text_len: 40,
        masking: MlmMasking::default(),
        itm_negative_probability: 0.5,
        fused_pairs: None,
        detector: None,
        region_masking: None,
        patch_masking: None,
        vqa_answers: None,
    };
    let device = Default::default();
    let _serial = serial();
    B::seed(&device, 0);
    let config = SimVlmPretrainerConfig::new(
        architecture(batcher.tokenizer.vocab_size()),
        special.cls,
        special.sep,
    );
    let mut model: SimVlmPretrainer<B> = config.init(&device);
    let mut optimizer = AdamWConfig::new().init::<B, SimVlmPretrainer<B>>();
    let indices: Vec<usize> = (0..16).collect();
    let mut history = Vec::new();
    for step in 0..100 {
        let host = batcher
            .batch(Split::Train, &indices, &mut ChaCha8Rng::seed_from_u64(step))
            .unwrap();
        let output = model.forward(&host.to_device(&device));
        history.push(output.loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        model = optimizer.step(2e-3, model, grads);
    }
    let mean = |steps: &[f32]| steps.iter().sum::<f32>() / steps.len() as f32;
    let (start, end) = (mean(&history[..5]), mean(&history[history.len() - 10..]));
    let vocab = batcher.tokenizer.vocab_size() as f32;
    assert!(start > 0.8 * vocab.ln(), "starts near chance: {start}");
    assert!(end < 0.4 * start, "PrefixLM loss: {start} -> {end}");

    // Trained, it captions from [CLS] alone: words, no special tokens.
    let host = batcher
        .batch(
            Split::Train,
            &indices[..4],
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
    let captions = model
        .valid()
        .caption(&host.visual.to_device::<NdArray>(&device), 30, 2);
    for caption in &captions {
        assert!(!caption.is_empty(), "a caption is generated");
        assert!(
            caption
                .iter()
                .all(|&id| id != special.cls && id != special.pad && id != special.mask),
            "caption {caption:?}"
        );
    }
    println!("PrefixLM loss {start:.3} -> {end:.3}; captions {captions:?}");
}
