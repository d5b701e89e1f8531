//! The ablation's video row, run "fom": frame order modelling (HERO FOM,
//! survey §4.7) alone, on the synthetic world's clips of moving objects.
//! A tiny [`VideoPretrainer`] (one patch per frame, a two-layer temporal
//! transformer) is scored on fixed test-split clips and shuffles at
//! initialisation and after training; it has no text, so no retrieval.

use std::time::Instant;

use super::{AblationSettings, RunResult};
use crate::eval::{HeldOutObjectives, ObjectiveScore};
use crate::{step_rng, PretrainConfig, Result, StepDraw, Trainer};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::{Split, SyntheticWorld};
use vlp_data::{FrameOrderShuffle, ShuffledFrameBatch};
use vlp_features::{FrameBackboneConfig, PatchEmbeddingsConfig, VideoEmbeddingsConfig};
use vlp_models::TransformerSize;
use vlp_objectives::{ObjectiveOutput, PretrainOutput, VideoPretrainer, VideoPretrainerConfig};

/// Frames of a clip.
pub const FRAMES: usize = 6;
/// Side of the frames in pixels.
pub const IMAGE_SIZE: usize = 16;
/// Held-out batches (of the run's batch size) scored before and after training.
const HELD_OUT_BATCHES: usize = 4;

/// The tiny model: one patch per frame, so the frame vector is a learned
/// linear map of the whole frame and keeps where the objects are (the
/// backbone mean-pools its tokens); a two-layer pre-norm temporal encoder.
pub fn config() -> VideoPretrainerConfig {
    let hidden = 64;
    let patches = PatchEmbeddingsConfig::new(IMAGE_SIZE, IMAGE_SIZE, hidden).with_dropout(0.0);
    let video = VideoEmbeddingsConfig::new(FrameBackboneConfig::Patch(patches), hidden)
        .with_max_frames(FRAMES)
        .with_dropout(0.0);
    VideoPretrainerConfig::new(video)
        .with_temporal(TransformerSize::of(hidden, 4, 2 * hidden, 2).with_dropout(0.0))
}

/// Mean FOM loss and accuracy over the first `HELD_OUT_BATCHES ·
/// batch_size` test-split clips, shuffled from `seed`: the same clips and
/// shuffles at every call.
fn held_out<B: Backend>(
    model: &VideoPretrainer<B>,
    world: &SyntheticWorld,
    shuffle: &FrameOrderShuffle,
    batch_size: usize,
    seed: u64,
    device: &B::Device,
) -> Result<HeldOutObjectives> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut loss, mut metric) = (0.0, 0.0);
    let mut metric_name = "";
    for batch in 0..HELD_OUT_BATCHES {
        let first = batch * batch_size;
        let (clips, shuffled) = shuffle.synthetic_batch(
            world,
            Split::Test,
            first..first + batch_size,
            FRAMES,
            &mut rng,
            device,
        );
        let output = model.forward(clips, &shuffled)?;
        metric += output.metric_value();
        loss += output.loss.into_scalar().elem::<f32>();
        metric_name = output.metric_name;
    }
    let n = HELD_OUT_BATCHES as f32;
    let score = ObjectiveScore {
        loss: loss / n,
        metric: metric / n,
        metric_name: metric_name.to_string(),
    };
    Ok(HeldOutObjectives::from([("fom".to_string(), score)]))
}

/// Trains the tiny video model on FOM for `steps` AdamW steps of
/// `batch_size` fresh training clips (learning rate 2e-3, linear warm-up
/// over the first tenth, then linear decay, as the other runs) and scores
/// it on held-out clips before and after (no text: no retrieval).
pub fn fom_run<B: AutodiffBackend>(
    settings: &AblationSettings,
    device: &B::Device,
) -> Result<RunResult> {
    let AblationSettings {
        steps,
        batch_size,
        seed,
    } = *settings;
    let schedule = PretrainConfig {
        steps,
        learning_rate: 2e-3,
        warmup_steps: (steps / 10).max(1),
        ..PretrainConfig::default()
    };
    let config = config();
    let shuffle = config.frame_shuffle()?;
    let world = SyntheticWorld::new(seed, IMAGE_SIZE);
    B::seed(device, seed);
    let mut model: VideoPretrainer<B> = config.init(device);
    let score = |model: &VideoPretrainer<B::InnerBackend>| {
        held_out(model, &world, &shuffle, batch_size, seed, device)
    };
    crate::materialize(&model);
    let init = score(&model.valid())?;
    let mut trainer = Trainer::<B, VideoPretrainer<B>>::new(&schedule, device)?;
    let started = Instant::now();
    for step in 0..steps {
        let mut rng = step_rng(seed, step, StepDraw::Batch);
        let first = step * batch_size;
        let batch = shuffle.synthetic_batch(
            &world,
            Split::Train,
            first..first + batch_size,
            FRAMES,
            &mut rng,
            device,
        );
        let forward = |model: &VideoPretrainer<B>,
                       (clips, shuffled): (Tensor<B, 5>, ShuffledFrameBatch),
                       _| {
            let output = model.forward(clips, &shuffled)?;
            Ok(PretrainOutput {
                loss: output.loss.clone(),
                objectives: vec![ObjectiveOutput {
                    name: "fom",
                    loss: output.loss,
                    metric: output.metric,
                    metric_name: output.metric_name,
                }],
                momentum_embeddings: None,
            })
        };
        model = trainer
            .step(
                model,
                step,
                vec![batch],
                &[batch_size],
                forward,
                |model, _| Ok(model),
            )?
            .0;
    }
    let seconds = started.elapsed().as_secs_f32();
    let trained = score(&model.valid())?;
    Ok(RunResult {
        name: "fom".to_string(),
        steps,
        seconds,
        init,
        trained,
        retrieval: None,
        captioning: None,
    })
}
