//! Forward + backward of a tiny single-stream model on Burn's WGPU backend
//! (on a machine without a GPU: Mesa's software Vulkan, lavapipe) agrees with
//! the ndarray CPU backend. Built only with `--features wgpu`; run by
//! `cargo xtask test` when a Vulkan driver is installed.
#![cfg(feature = "wgpu")]

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::module::Module;
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::{Split, SyntheticWorld};
use vlp_data::{MlmMasking, PretrainBatcher, TextTokenizer};
use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddings, VisualEmbeddingsConfig};
use vlp_models::{SingleStreamConfig, TransformerSize};
use vlp_objectives::{Pretrainer, UniterObjectives, UniterPretrainer, UniterPretrainerConfig};

fn config(vocab_size: usize) -> UniterPretrainerConfig {
    let visual =
        VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(32, 8, 32).with_dropout(0.0));
    let model = SingleStreamConfig::new(vocab_size, visual)
        .with_transformer(TransformerSize::of(32, 4, 64, 1).with_dropout(0.0));
    UniterPretrainerConfig::new(model, mlm_itm_itc()).with_itc_embed_dim(16)
}

/// The step's total loss and the gradient of the patch projection.
fn loss_and_gradient<B: AutodiffBackend>(
    weights: &[u8],
    batcher: &PretrainBatcher,
    device: B::Device,
) -> (f32, Vec<f32>) {
    let record = BinBytesRecorder::<FullPrecisionSettings>::default()
        .load(weights.to_vec(), &device)
        .expect("weights load");
    let model: UniterPretrainer<B> = config(batcher.tokenizer.vocab_size())
        .init(&device)
        .unwrap()
        .load_record(record);
    let host = batcher
        .batch(
            Split::Train,
            &[0, 1, 2, 3],
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
    let output = model.forward(&host.to_device::<B>(&device));
    let loss = output.loss.clone().into_scalar().elem::<f32>();
    let grads = output.loss.backward();
    let VisualEmbeddings::Patches(patches) = &model.backbone.visual else {
        unreachable!("the smoke test's model reads patches")
    };
    let gradient = patches
        .projection
        .weight
        .grad(&grads)
        .expect("gradient reaches the patches");
    (
        loss,
        gradient.into_data().convert::<f32>().to_vec().unwrap(),
    )
}

#[test]
fn wgpu_forward_and_backward_match_ndarray() {
    let world = SyntheticWorld::new(3, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 200).unwrap();
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
    let model: UniterPretrainer<NdArray> = config(batcher.tokenizer.vocab_size())
        .init(&Default::default())
        .unwrap();
    let weights = BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.into_record(), ())
        .unwrap();

    let (cpu_loss, cpu_grad) =
        loss_and_gradient::<Autodiff<NdArray>>(&weights, &batcher, Default::default());
    let (gpu_loss, gpu_grad) =
        loss_and_gradient::<Autodiff<Wgpu>>(&weights, &batcher, WgpuDevice::DefaultDevice);
    assert!(
        (cpu_loss - gpu_loss).abs() <= 1e-3 * cpu_loss.abs().max(1.0),
        "loss {cpu_loss} vs {gpu_loss}"
    );
    let scale = cpu_grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0);
    let worst = cpu_grad
        .iter()
        .zip(&gpu_grad)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-3 * scale,
        "gradient differs by {worst} (scale {scale})"
    );
}

/// MLM, ITM and ITC summed, as `cargo xtask pretrain` trains by default.
fn mlm_itm_itc() -> UniterObjectives {
    UniterObjectives::new()
        .with_mlm(1.0)
        .with_itm(1.0)
        .with_itc(1.0)
}
