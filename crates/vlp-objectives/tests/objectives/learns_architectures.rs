//! Every architecture's pre-trainer learns: a tiny model trained for a
//! hundred steps on a fixed set of synthetic scenes drives its losses well
//! below their starting values (the single-stream model's test,
//! `learns.rs`, for dual-stream, ALBEF and CLIP models).

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::{DetectorConfig, Split, SyntheticDetector, SyntheticWorld};
use vlp_data::{MlmMasking, PretrainBatcher, TextTokenizer};
use vlp_features::{PatchEmbeddingsConfig, RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{
    DualEncoderConfig, DualStreamConfig, DualStreamKind, FusionConfig, TransformerSize,
};
use vlp_objectives::{
    AlbefPretrainerConfig, ClipPretrainerConfig, DualStreamPretrainerConfig, Pretrainer,
    RetrievalModel,
};

use super::serial;

type B = Autodiff<NdArray>;

const STEPS: u64 = 120;
const EXAMPLES: usize = 16;

fn batcher(regions: bool) -> PretrainBatcher {
    let world = SyntheticWorld::new(1, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(200), 200).unwrap();
    PretrainBatcher {
        world,
        tokenizer,
        max_text_len: 40,
        masking: MlmMasking::default(),
        itm_negative_probability: 0.5,
        fused_pairs: None,
        detector: regions.then(|| SyntheticDetector::new(1, DetectorConfig::default())),
        region_masking: None,
        patch_masking: None,
        vqa_answers: None,
    }
}

fn patches(width: usize) -> VisualEmbeddingsConfig {
    VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(32, 8, width).with_dropout(0.0))
}

/// Per step, the losses of `names`; checks the retrieval embeddings are unit vectors.
fn train<M>(mut model: M, batcher: &PretrainBatcher, names: &[&str]) -> Vec<Vec<f32>>
where
    M: Pretrainer<B> + RetrievalModel<B> + AutodiffModule<B>,
{
    let device = Default::default();
    let mut optimizer = AdamWConfig::new().init::<B, M>();
    let indices: Vec<usize> = (0..EXAMPLES).collect();
    let mut history = Vec::new();
    for step in 0..STEPS {
        let batch = batcher
            .batch(Split::Train, &indices, &mut ChaCha8Rng::seed_from_u64(step))
            .unwrap()
            .to_device(&device);
        let output = model.forward(&batch);
        history.push(
            names
                .iter()
                .map(|&name| {
                    output
                        .objective(name)
                        .unwrap_or_else(|| panic!("no {name} objective"))
                        .loss
                        .clone()
                        .into_scalar()
                        .elem::<f32>()
                })
                .collect(),
        );
        if step + 1 == STEPS {
            let text = model.embed_text(batch.text_ids.clone(), batch.text_padding.clone());
            let image = model.embed_image(&batch.visual);
            for embeddings in [text, image] {
                let norms = embeddings.powi_scalar(2).sum_dim(1).sqrt();
                let off = (norms - 1.0).abs().max().into_scalar().elem::<f32>();
                assert!(off < 1e-4, "retrieval embeddings are unit vectors ({off})");
            }
        }
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }
    history
}

fn mean(history: &[Vec<f32>], k: usize) -> f32 {
    history.iter().map(|l| l[k]).sum::<f32>() / history.len() as f32
}

/// ITC (index `itc`) starts near chance and falls below 40% of its first
/// steps' mean; MLM (index 0, when present) below 75%.
fn assert_learns(history: &[Vec<f32>], itc: usize, mlm: bool) {
    let (start, end) = (&history[..5], &history[history.len() - 20..]);
    for k in 0..history[0].len() {
        println!("loss {k}: {:.3} -> {:.3}", mean(start, k), mean(end, k));
    }
    assert!(
        history[0][itc] > 0.9 * (EXAMPLES as f32).ln(),
        "ITC starts near chance: {}",
        history[0][itc]
    );
    assert!(
        mean(end, itc) < 0.4 * mean(start, itc),
        "ITC: {} -> {}",
        mean(start, itc),
        mean(end, itc)
    );
    if mlm {
        assert!(
            mean(end, 0) < 0.75 * mean(start, 0),
            "MLM: {} -> {}",
            mean(start, 0),
            mean(end, 0)
        );
    }
}

fn dual_stream(kind: DualStreamKind, visual: VisualEmbeddingsConfig, regions: bool) {
    let _serial = serial();
    let batcher = batcher(regions);
    let device = Default::default();
    B::seed(&device, 0);
    let v_hidden = visual.hidden_size();
    let config = DualStreamConfig::new(batcher.tokenizer.vocab_size(), visual)
        .with_kind(kind)
        .with_text(
            TransformerSize::of(32, 4, 64, 2)
                .with_norm_first(false)
                .with_dropout(0.0),
        )
        .with_vision(
            TransformerSize::of(v_hidden, 4, 64, 2)
                .with_norm_first(false)
                .with_dropout(0.0),
        )
        .with_bi_hidden_size(32)
        .with_bi_num_heads(4)
        .with_num_cross_layers(1);
    let model = DualStreamPretrainerConfig::new(config)
        .with_itc_embed_dim(32)
        .init::<B>(&device);
    let history = train(model, &batcher, &["mlm", "itm", "itc"]);
    assert_learns(&history, 2, true);
}

#[test]
fn vilbert_learns_on_regions_with_a_wider_visual_stream() {
    let feature_size = DetectorConfig::default().feature_size;
    dual_stream(
        DualStreamKind::Vilbert,
        VisualEmbeddingsConfig::Regions(
            RegionEmbeddingsConfig::new(feature_size, 48).with_dropout(0.0),
        ),
        true,
    );
}

#[test]
fn lxmert_learns_on_patches() {
    dual_stream(DualStreamKind::Lxmert, patches(32), false);
}

#[test]
fn albef_learns_on_patches() {
    let _serial = serial();
    let batcher = batcher(false);
    let device = Default::default();
    B::seed(&device, 0);
    let config = FusionConfig::new(batcher.tokenizer.vocab_size(), patches(32))
        .with_text(
            TransformerSize::of(32, 4, 64, 1)
                .with_norm_first(false)
                .with_dropout(0.0),
        )
        .with_num_fusion_layers(1)
        .with_vision(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0));
    let model = AlbefPretrainerConfig::new(config)
        .with_itc_embed_dim(32)
        .init::<B>(&device)
        .unwrap();
    let history = train(model, &batcher, &["mlm", "itm", "itc"]);
    assert_learns(&history, 2, true);
}

#[test]
fn clip_learns_on_patches() {
    let _serial = serial();
    let batcher = batcher(false);
    let device = Default::default();
    B::seed(&device, 0);
    let config = DualEncoderConfig::new(batcher.tokenizer.vocab_size(), patches(32))
        .with_text(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0))
        .with_vision(TransformerSize::of(32, 4, 64, 2).with_dropout(0.0))
        .with_projection_dim(32);
    let model = ClipPretrainerConfig::new(config).init::<B>(&device);
    let history = train(model, &batcher, &["itc"]);
    assert_learns(&history, 0, false);
}
