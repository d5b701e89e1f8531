//! vlp's side of `bench step`: the `uniter-bench` model is
//! [`UniterPretrainer`] with MLM + ITM, driven through
//! [`Pretrainer::forward`] on the seeded batch and timed step by step —
//! training (forward, backward, AdamW; in micro-batches side by side) or
//! forward only. The runner calls [`StepSettings::measure`] in a child process of its own
//! so that the peak RSS is that measurement's alone.

use std::time::Instant;

use anyhow::Result;
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use vlp_data::PretrainBatch;
use vlp_features::{RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{SingleStreamConfig, TransformerSize};
use vlp_objectives::{
    PretrainOutput, Pretrainer, UniterObjectives, UniterPretrainer, UniterPretrainerConfig,
};

use vlp_train::MicroBatchPools;

use super::inputs::{Inputs, Shape, FEATURE_SIZE, VOCAB_SIZE};
use super::Mode;
use crate::stats::median;

/// `uniter-bench`'s hidden width.
pub const HIDDEN_SIZE: usize = 256;

/// Parameters vlp's `uniter-bench` has beyond the PyTorch reference's: the
/// region embeddings' mask embedding (`F`) and their own image type
/// embedding (`H`), where UNITER reuses token type 1.
pub const ONLY_IN_VLP: usize = FEATURE_SIZE + HIDDEN_SIZE;

/// `uniter-bench`: the single-stream backbone (BERT post-norm layers L = 4,
/// H = 256, 4 heads, FFN 1024, dropout 0.1) over text and 2048-d regions,
/// with MLM and ITM at weight 1 (loss = MLM CE + ITM CE); the position table
/// covers at least 32 tokens.
pub fn model_config(text_len: usize) -> UniterPretrainerConfig {
    let regions = RegionEmbeddingsConfig::new(FEATURE_SIZE, HIDDEN_SIZE).with_dropout(0.1);
    let backbone = SingleStreamConfig::new(VOCAB_SIZE, VisualEmbeddingsConfig::Regions(regions))
        .with_transformer(
            TransformerSize::of(HIDDEN_SIZE, 4, 1024, 4)
                .with_dropout(0.1)
                .with_norm_first(false),
        )
        .with_max_text_len(text_len.max(32));
    UniterPretrainerConfig::new(
        backbone,
        UniterObjectives::new().with_mlm(1.0).with_itm(1.0),
    )
}

fn init_model<B: Backend>(text_len: usize, device: &B::Device) -> Result<UniterPretrainer<B>> {
    Ok(model_config(text_len).init(device)?)
}

/// The MLM and ITM losses of a step, each `[1]`.
fn mlm_itm<B: Backend>(output: &PretrainOutput<B>) -> [Tensor<B, 1>; 2] {
    ["mlm", "itm"].map(|name| {
        output
            .objective(name)
            .expect("uniter-bench trains MLM and ITM")
            .loss
            .clone()
    })
}

/// What one measurement (a vlp worker or the PyTorch script) reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Pairs per second over the median repetition.
    pub samples_per_s: f64,
    /// Milliseconds per step over the median repetition.
    pub ms_per_step: f64,
    /// Seconds of each repetition of the timed steps.
    pub rep_seconds: Vec<f64>,
    /// The first step's MLM loss (near `ln V` at initialisation).
    pub first_mlm_loss: f64,
    /// The first step's ITM loss (near `ln 2` at initialisation).
    pub first_itm_loss: f64,
    /// Peak resident set size of the measuring process.
    pub peak_rss_mib: Option<f64>,
    /// Trainable parameters.
    pub parameters: usize,
    /// Mean ms per timed step in forward (with the losses), backward and the
    /// optimiser update. With micro-batches the forward and backward passes
    /// overlap: `forward` is 0 and `backward` holds both.
    pub phases_ms: Phases,
}

/// Milliseconds spent in each phase of a step.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Forward pass with the losses.
    pub forward: f64,
    /// Backward pass.
    pub backward: f64,
    /// AdamW's update.
    pub optimizer: f64,
}

/// The peak RSS of this process in MiB (`VmHWM`, the figure `/usr/bin/time -v`
/// reports); `None` off Linux.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One timed step: adds its phase times, returns the MLM and ITM losses.
type StepFn = dyn FnMut(&mut Phases) -> Result<[f64; 2]>;

/// What one vlp measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    /// The batch's shape.
    pub shape: Shape,
    /// Training or forward only.
    pub mode: Mode,
    /// Seed of the inputs, the initialisation and dropout.
    pub seed: u64,
    /// Untimed steps first (the first one reports the losses).
    pub warmup: usize,
    /// Timed steps per repetition.
    pub steps: usize,
    /// Repetitions; the figures are their median.
    pub reps: usize,
    /// Training micro-batches run side by side (1: the whole batch at once).
    pub micro_batches: usize,
}

impl StepSettings {
    /// Measures on `device`; the peak RSS is left to the caller (see
    /// [`peak_rss_mib`]), whose process it is.
    pub fn measure<B: AutodiffBackend>(self, device: B::Device) -> Result<Measurement> {
        B::seed(&device, self.seed);
        let inputs = Inputs::generate(self.shape, self.seed);
        let model = init_model::<B>(self.shape.text_len, &device)?;
        let parameters = model.num_params();
        let mut step: Box<StepFn> = match self.mode {
            Mode::Train if self.micro_batches > 1 => {
                micro_batch_step(model, &inputs, self.micro_batches, device)?
            }
            Mode::Train => single_pass_step(model, &inputs, device),
            Mode::Infer => {
                let batch = inputs.to_batch::<B::InnerBackend>(&device);
                let model = model.valid();
                Box::new(move |phases: &mut Phases| {
                    let start = Instant::now();
                    let values = mlm_itm(&model.forward(&batch)).map(scalar);
                    phases.forward += start.elapsed().as_secs_f64() * 1e3;
                    Ok(values)
                })
            }
        };
        let mut phases = Phases::default();
        let first = step(&mut phases)?;
        for _ in 1..self.warmup {
            step(&mut phases)?;
        }
        phases = Phases::default();
        let mut rep_seconds = Vec::with_capacity(self.reps);
        for _ in 0..self.reps {
            let start = Instant::now();
            for _ in 0..self.steps {
                step(&mut phases)?;
            }
            rep_seconds.push(start.elapsed().as_secs_f64());
        }
        let timed = (self.reps * self.steps) as f64;
        let median = median(&rep_seconds);
        Ok(Measurement {
            samples_per_s: (self.shape.batch * self.steps) as f64 / median,
            ms_per_step: median / self.steps as f64 * 1e3,
            rep_seconds,
            first_mlm_loss: first[0],
            first_itm_loss: first[1],
            peak_rss_mib: None,
            parameters,
            phases_ms: Phases {
                forward: phases.forward / timed,
                backward: phases.backward / timed,
                optimizer: phases.optimizer / timed,
            },
        })
    }
}

/// A training step on the whole batch in one pass.
fn single_pass_step<B: AutodiffBackend>(
    model: UniterPretrainer<B>,
    inputs: &Inputs,
    device: B::Device,
) -> Box<StepFn> {
    let batch = inputs.to_batch::<B>(&device);
    let mut optimizer = adamw().init::<B, UniterPretrainer<B>>();
    let mut model = Some(model);
    Box::new(move |phases: &mut Phases| {
        let current = model.take().expect("the model is put back after each step");
        let start = Instant::now();
        let output = current.forward(&batch);
        let values = mlm_itm(&output).map(scalar);
        let forward = Instant::now();
        let grads = GradientsParams::from_grads(output.loss.backward(), &current);
        sync::<B>(&device)?;
        let backward = Instant::now();
        model = Some(optimizer.step(1e-4, current, grads));
        sync::<B>(&device)?;
        phases.forward += (forward - start).as_secs_f64() * 1e3;
        phases.backward += (backward - forward).as_secs_f64() * 1e3;
        phases.optimizer += backward.elapsed().as_secs_f64() * 1e3;
        Ok(values)
    })
}

/// A training step on `count` micro-batches side by side, each loss weighted
/// by the micro-batch's share of the masked tokens (MLM) and of the pairs
/// (ITM), so that the summed gradient is the whole batch's.
fn micro_batch_step<B: AutodiffBackend>(
    model: UniterPretrainer<B>,
    inputs: &Inputs,
    count: usize,
    device: B::Device,
) -> Result<Box<StepFn>> {
    let parts: Vec<(PretrainBatch<B>, [f32; 2])> = inputs
        .split(count)?
        .into_iter()
        .map(|(part, shares)| (part.to_batch::<B>(&device), shares))
        .collect();
    let sizes: Vec<usize> = parts
        .iter()
        .map(|(part, _)| part.text_ids.dims()[0])
        .collect();
    let pools = MicroBatchPools::new(count)?;
    let mut optimizer = adamw().init::<B, UniterPretrainer<B>>();
    let mut model = Some(model);
    Ok(Box::new(move |phases: &mut Phases| {
        let current = model.take().expect("the model is put back after each step");
        let start = Instant::now();
        // Forward and backward overlap across micro-batches: one phase.
        let (grads, values) = pools.accumulate_gradients(
            &current,
            std::slice::from_ref(&device),
            parts.iter().collect(),
            &sizes,
            // MLM and ITM only: nothing to gather across micro-batches.
            |copy, (part, [mlm_share, itm_share]), _| {
                let [mlm, itm] = mlm_itm(&copy.forward(part));
                let (mlm, itm) = (mlm * *mlm_share, itm * *itm_share);
                let values = [scalar(mlm.clone()), scalar(itm.clone())];
                Ok((mlm + itm, values))
            },
        )?;
        sync::<B>(&device)?;
        let backward = Instant::now();
        model = Some(optimizer.step(1e-4, current, grads));
        sync::<B>(&device)?;
        phases.backward += (backward - start).as_secs_f64() * 1e3;
        phases.optimizer += backward.elapsed().as_secs_f64() * 1e3;
        Ok(values
            .iter()
            .fold([0.0; 2], |sum, v| [sum[0] + v[0], sum[1] + v[1]]))
    }))
}

/// Waits for the device's queued work, so that phase times are its own.
fn sync<B: Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|err| anyhow::anyhow!("backend error: {err:?}"))
}

/// The reference script's AdamW (BERT's epsilon, weight decay 0.01).
fn adamw() -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-6)
        .with_weight_decay(0.01)
}

fn scalar<B: Backend>(loss: Tensor<B, 1>) -> f64 {
    loss.into_scalar().elem::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_start_from_chance_level_losses_with_the_reference_parameters() {
        use burn::backend::{Autodiff, NdArray};
        // benches/reference/uniter_step.py's model at T <= 32, layer by
        // layer: text embeddings V·H + 32·H + 2·H + LN 2H; regions
        // (F + 1)·H + LN + (7 + 1)·H + LN + LN; 4 × (4 (H² + H) + LN +
        // (H + 1)·1024 + (1024 + 1)·H + LN); pooler H² + H; MLM transform
        // H² + H + LN and its bias V; ITM 2H + 2.
        const REFERENCE_PARAMETERS: usize = 11_673_148;
        let shape = Shape::parse("b4-t8-r3").unwrap();
        for (mode, micro_batches) in [(Mode::Train, 1), (Mode::Train, 2), (Mode::Infer, 1)] {
            let job = StepSettings {
                shape,
                mode,
                seed: 1,
                warmup: 1,
                steps: 2,
                reps: 1,
                micro_batches,
            };
            let m = job
                .measure::<Autodiff<NdArray>>(Default::default())
                .unwrap();
            assert_eq!(m.parameters, REFERENCE_PARAMETERS + ONLY_IN_VLP);
            // Small initial logits: cross-entropies start near uniform guessing.
            assert!(
                (m.first_mlm_loss - (VOCAB_SIZE as f64).ln()).abs() < 0.3,
                "{mode:?} MLM {}",
                m.first_mlm_loss
            );
            assert!(
                (m.first_itm_loss - 2f64.ln()).abs() < 0.3,
                "{mode:?} ITM {}",
                m.first_itm_loss
            );
            let p = m.phases_ms;
            assert!(m.samples_per_s > 0.0 && p.forward + p.backward > 0.0);
            assert_eq!(p.optimizer > 0.0, mode == Mode::Train);
            assert_eq!(p.forward == 0.0, micro_batches > 1);
        }
    }

    #[test]
    fn micro_batch_losses_weighted_by_their_shares_sum_to_the_batch_losses() {
        // Flex: NdArray's global generator is seeded by the other test here.
        use burn::backend::Flex;
        let shape = Shape::parse("b6-t8-r3").unwrap();
        let device = Default::default();
        Flex::seed(&device, 3);
        let inputs = Inputs::generate(shape, 3);
        // Without autodiff dropout is off: the losses are deterministic.
        let model = init_model::<Flex>(shape.text_len, &device).unwrap();
        let losses = |inputs: &Inputs| mlm_itm(&model.forward(&inputs.to_batch(&device)));
        let [mlm, itm] = losses(&inputs).map(scalar);
        let parts = inputs.split(3).unwrap();
        assert_eq!(parts.iter().map(|(p, _)| p.shape.batch).sum::<usize>(), 6);
        let (mut mlm_sum, mut itm_sum, mut shares) = (0.0, 0.0, [0.0; 2]);
        for (part, [mlm_share, itm_share]) in &parts {
            let [part_mlm, part_itm] = losses(part).map(scalar);
            mlm_sum += part_mlm * f64::from(*mlm_share);
            itm_sum += part_itm * f64::from(*itm_share);
            shares = [shares[0] + mlm_share, shares[1] + itm_share];
        }
        assert!((shares[0] - 1.0).abs() < 1e-6 && (shares[1] - 1.0).abs() < 1e-6);
        assert!((mlm_sum - mlm).abs() < 1e-4, "{mlm_sum}");
        assert!((itm_sum - itm).abs() < 1e-5, "{itm_sum}");
        let error = inputs.split(4).err().unwrap().to_string();
        assert!(error.contains("--micro-batches 4"), "{error}");
    }
}
