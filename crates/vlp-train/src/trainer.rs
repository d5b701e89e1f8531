//! The training loop (survey §5: pre-training with a mix of objectives):
//! one optimiser step function for every model, whatever its architecture
//! or batch, and [`Trainer::fit`], which feeds it the synthetic world's
//! batches, reports through a [`TrainObserver`], writes resumable
//! checkpoints ([`crate::resume`]) and continues from one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use vlp_data::{DataError, HostPretrainBatch, PretrainBatch, PretrainBatcher, ShardGather};
use vlp_objectives::{ObjectiveMix, PretrainOutput, Pretrainer};

use crate::checkpoint::MetricsFile;
use crate::clip::clip_global_norm;
use crate::config::PretrainConfig;
use crate::error::{ConfigError, Result, TrainError};
use crate::metrics::{step_values, MetricsRecord, PendingValues, StepValues};
use crate::micro_batch::MicroBatchPools;
use crate::resume::{
    latest_checkpoint, load_resumable, remove_checkpoints, save_resumable, CheckpointRef,
    TrainingState, CHECKPOINTS_DIR,
};
use crate::schedule::{backend_seed, step_rng, StepDraw, WarmupSchedule};

/// What leaves the trainer while it runs: progress, metrics, the end.
/// Every method does nothing by default; `()` observes nothing.
pub trait TrainObserver {
    /// Training is about to start.
    fn started(&mut self, _start: &TrainStart) {}

    /// Step `step` (0-based) is done.
    fn stepped(&mut self, _step: usize) {}

    /// A metrics record: every `log_every` steps and after the last step.
    fn logged(&mut self, _record: &MetricsRecord) -> Result<()> {
        Ok(())
    }

    /// Training is over.
    fn finished(&mut self, _end: &TrainEnd) {}
}

impl TrainObserver for () {}

/// Two observers, each told everything, the first first.
impl<X: TrainObserver + ?Sized, Y: TrainObserver + ?Sized> TrainObserver for (&mut X, &mut Y) {
    fn started(&mut self, start: &TrainStart) {
        self.0.started(start);
        self.1.started(start);
    }

    fn stepped(&mut self, step: usize) {
        self.0.stepped(step);
        self.1.stepped(step);
    }

    fn logged(&mut self, record: &MetricsRecord) -> Result<()> {
        self.0.logged(record)?;
        self.1.logged(record)
    }

    fn finished(&mut self, end: &TrainEnd) {
        self.0.finished(end);
        self.1.finished(end);
    }
}

/// What a training run is about to do.
#[derive(Debug, Clone)]
pub struct TrainStart {
    /// Parameters of the model (trainable or not).
    pub parameters: usize,
    /// Optimiser steps of the whole run.
    pub steps: usize,
    /// The first (0-based) step this call trains: 0, or the steps done by
    /// the checkpoint a resumed run continues from.
    pub first_step: usize,
    /// Image-text pairs per step.
    pub batch_size: usize,
    /// Micro-batches per step, run side by side.
    pub micro_batches: usize,
    /// The per-step task sampling, when `strategy = "sample"`.
    pub task_mix: Option<ObjectiveMix>,
}

/// How a training run (or its resumed part) went.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainEnd {
    /// Seconds of training, those before a resume included.
    pub seconds: f32,
    /// Distinct batch shapes ([`TrainTask::shape`]) the steps of this call
    /// trained on: each is a set of kernels a GPU backend compiles and
    /// autotunes (`data.text_buckets` bounds the text lengths).
    pub batch_shapes: usize,
}

/// AdamW with the run's learning-rate schedule, and the thread pools its
/// micro-batches run in (one pool: the whole batch in one pass); where it
/// writes checkpoints and the state it resumes from.
pub struct Trainer<B: AutodiffBackend, M: AutodiffModule<B>> {
    config: PretrainConfig,
    schedule: WarmupSchedule,
    optimizer: OptimizerAdaptor<AdamW, M, B>,
    pools: MicroBatchPools,
    /// The main device (the model's, the optimiser's).
    device: B::Device,
    /// The micro-batches' devices, the main one first.
    devices: Vec<B::Device>,
    /// The run folder resumable checkpoints go to (`None`: none written).
    checkpoints: Option<PathBuf>,
    /// The last checkpoint written or resumed from.
    last_checkpoint: Option<CheckpointRef>,
    /// The state [`Self::fit`] continues from.
    resumed: Option<TrainingState>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Trainer<B, M> {
    /// A trainer for `config`'s schedule, weight decay and micro-batches.
    pub fn new(config: &PretrainConfig, device: &B::Device) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
            schedule: WarmupSchedule {
                peak: config.learning_rate,
                warmup_steps: config.warmup_steps,
                steps: config.steps,
                decay: config.schedule,
            },
            optimizer: AdamWConfig::new()
                .with_weight_decay(config.weight_decay as f32)
                .init::<B, M>(),
            pools: MicroBatchPools::new(config.micro_batches)?,
            device: device.clone(),
            devices: vec![device.clone()],
            checkpoints: None,
            last_checkpoint: None,
            resumed: None,
        })
    }

    /// Trains data-parallel across `devices` (the first the main one, where
    /// the model and the optimiser live): micro-batch `i` of each step runs
    /// on `devices[i % devices.len()]`, its gradients summed on the main
    /// device, its contrastive negatives the whole step's. Errors unless
    /// the configuration's `micro_batches` is a multiple of the device count.
    pub fn on_devices(mut self, devices: Vec<B::Device>) -> Result<Self> {
        let (count, micro_batches) = (devices.len(), self.config.micro_batches);
        if count == 0 || !micro_batches.is_multiple_of(count) {
            return Err(ConfigError::invalid(
                "micro_batches",
                format!(
                    "micro_batches ({micro_batches}) must be a multiple of the {count} devices"
                ),
            )
            .into());
        }
        self.device = devices[0].clone();
        self.devices = devices;
        Ok(self)
    }

    /// Makes [`Self::fit`] write a resumable checkpoint into the run folder
    /// `run` every `checkpoint_every` steps and after the last step.
    pub fn checkpoint_into(&mut self, run: &Path) {
        self.checkpoints = Some(run.to_path_buf());
    }

    /// Loads the latest checkpoint of the run folder `run` into `model` and
    /// the optimiser; [`Self::fit`] then continues after its step. Errors
    /// when the run has no checkpoint, or one of another seed or beyond
    /// the configured steps.
    pub fn resume(&mut self, model: M, run: &Path) -> Result<M> {
        let checkpoint = latest_checkpoint(run)?.ok_or_else(|| {
            TrainError::file(run.join(CHECKPOINTS_DIR), "no checkpoint to resume from")
        })?;
        let (model, optimizer, state) =
            load_resumable(&checkpoint, model, self.optimizer.clone(), &self.device)?;
        if state.seed != self.config.seed || state.step > self.config.steps {
            return Err(ConfigError::invalid(
                "seed",
                format!(
                    "the checkpoint {} (seed {}, step {}) is not of this run (seed {}, {} steps)",
                    checkpoint.path.display(),
                    state.seed,
                    state.step,
                    self.config.seed,
                    self.config.steps
                ),
            )
            .into());
        }
        self.optimizer = optimizer;
        self.resumed = Some(state);
        self.last_checkpoint = Some(checkpoint);
        Ok(model)
    }

    /// Writes checkpoints into the run folder `out` ([`Self::checkpoint_into`])
    /// and, when `resume`, continues from its latest one ([`Self::resume`]):
    /// the model to train and the run's metrics file, continued after the
    /// checkpoint's step or new (an earlier run's checkpoints removed).
    pub fn open_run(&mut self, model: M, out: &Path, resume: bool) -> Result<(M, MetricsFile)> {
        self.checkpoint_into(out);
        if !resume {
            remove_checkpoints(out)?;
            return Ok((model, MetricsFile::create(out)?));
        }
        let model = self.resume(model, out)?;
        let done = self.resumed_step().unwrap_or(0);
        Ok((model, MetricsFile::resume(out, done)?))
    }

    /// The steps done by the checkpoint [`Self::resume`] loaded, until
    /// [`Self::fit`] continues from it.
    pub fn resumed_step(&self) -> Option<usize> {
        self.resumed.as_ref().map(|state| state.step)
    }

    /// The learning rate of step `step`.
    pub fn learning_rate(&self, step: usize) -> f64 {
        self.schedule.learning_rate(step)
    }

    /// The one optimiser step: `forward` on each of `micro_batches` (as many
    /// as the configuration's `micro_batches`), each on a copy of `model` in
    /// its own thread pool; the gradients of the losses summed (each
    /// micro-batch's weighted `1 / k`, so the step minimises the mean of
    /// the micro-batch losses), clipped to the global norm `max_grad_norm`
    /// when set; one AdamW update at step `step`'s learning rate; then
    /// `after` with each micro-batch's output, in order (ALBEF's momentum
    /// update and queue: [`Pretrainer::after_step`]). The step's values
    /// ([`step_values`]) stay on the device: nothing is read back.
    pub fn step<T, F, A>(
        &mut self,
        model: M,
        step: usize,
        micro_batches: Vec<T>,
        sizes: &[usize],
        forward: F,
        mut after: A,
    ) -> Result<(M, StepValues<B::InnerBackend>)>
    where
        T: Send,
        F: Fn(&M, T, Option<Arc<dyn ShardGather<B>>>) -> Result<PretrainOutput<B>> + Sync,
        A: FnMut(M, &PretrainOutput<B>) -> Result<M>,
    {
        // Burn initialises parameters on first use, and a clone of an
        // uninitialised parameter initialises on its own: without this the
        // micro-batches' copies and the optimiser would each draw their own
        // weights at the first step.
        materialize(&model);
        let parts = micro_batches.len();
        let (grads, outputs) = self.pools.accumulate_gradients(
            &model,
            &self.devices,
            micro_batches,
            sizes,
            |copy: &M, batch, shard| {
                let output = forward(copy, batch, shard)?;
                let values = step_values(&output);
                let loss = match parts {
                    1 => output.loss.clone(),
                    _ => output.loss.clone() * (1.0 / parts as f32),
                };
                Ok((loss, (output, values)))
            },
        )?;
        sync_running_states(&model);
        let grads = match self.config.max_grad_norm {
            max if max > 0.0 => clip_global_norm(&model, grads, max).0,
            _ => grads,
        };
        let mut model = self
            .optimizer
            .step(self.schedule.learning_rate(step), model, grads);
        let mut values = Vec::with_capacity(outputs.len());
        for (output, output_values) in outputs {
            model = after(model, &output)?;
            values.push(output_values);
        }
        Ok((model, values))
    }
}

/// What [`Trainer::fit_task`] trains a model on: the micro-batches a loader
/// builds on the host and how the model trains on one. Pre-training
/// ([`Trainer::fit`]) and fine-tuning ([`crate::finetune`]) are two of them.
pub trait TrainTask<B: AutodiffBackend, M>: Sync {
    /// One micro-batch as the loader builds it.
    type Batch: Send;

    /// Samples (pairs, questions) in `batch`, for the samples/s figure.
    fn samples(batch: &Self::Batch) -> usize;

    /// The sizes of `batch`'s tensors that may change between batches
    /// ([`HostPretrainBatch::shape`]): the run counts the distinct ones.
    fn shape(batch: &Self::Batch) -> Vec<usize>;

    /// The output of `model` on `batch` at (0-based) step `step`; `shard`
    /// reaches the step's other micro-batches when there are several.
    fn forward(
        &self,
        model: &M,
        batch: Self::Batch,
        step: usize,
        shard: Option<Arc<dyn ShardGather<B>>>,
        device: &B::Device,
    ) -> Result<PretrainOutput<B>>;

    /// Runs after the optimiser update, once per micro-batch's output.
    fn after_step(&self, model: M, _output: &PretrainOutput<B>) -> Result<M> {
        Ok(model)
    }

    /// The learnt temperature the metrics line reports, if any.
    fn temperature(&self, _model: &M) -> Option<f32> {
        None
    }

    /// The per-step objective sampling, when there is one.
    fn task_mix(&self) -> Option<ObjectiveMix> {
        None
    }
}

/// Each step's micro-batches, built ahead of training on another thread
/// (`None`: none of the step's samples could be read, and the step trains
/// nothing).
pub type StepBatches<T> = Receiver<Result<Option<Vec<T>>>>;

/// Pre-training: the pre-trainer's objectives, summed or one sampled per
/// step (`mix`, drawn from the seed and the step).
struct Pretraining {
    mix: Option<ObjectiveMix>,
    seed: u64,
}

impl<B: AutodiffBackend, M: Pretrainer<B>> TrainTask<B, M> for Pretraining {
    type Batch = HostPretrainBatch;

    fn samples(batch: &HostPretrainBatch) -> usize {
        batch.len()
    }

    fn shape(batch: &HostPretrainBatch) -> Vec<usize> {
        batch.shape()
    }

    fn forward(
        &self,
        model: &M,
        host: HostPretrainBatch,
        step: usize,
        shard: Option<Arc<dyn ShardGather<B>>>,
        device: &B::Device,
    ) -> Result<PretrainOutput<B>> {
        let batch = PretrainBatch {
            shard,
            ..host.to_device::<B>(device)
        };
        Ok(match &self.mix {
            Some(mix) => {
                let objectives = mix.step(&mut step_rng(self.seed, step, StepDraw::Objectives));
                model.forward_step(&batch, &objectives)?
            }
            None => model.forward(&batch),
        })
    }

    fn after_step(&self, model: M, output: &PretrainOutput<B>) -> Result<M> {
        Ok(model.after_step(output)?)
    }

    fn temperature(&self, model: &M) -> Option<f32> {
        model.temperature()
    }

    fn task_mix(&self) -> Option<ObjectiveMix> {
        self.mix.clone()
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B> + Pretrainer<B>> Trainer<B, M> {
    /// Trains `model` for the configuration's steps (from the resumed
    /// checkpoint's on, after [`Self::resume`]) on batches of `batcher`
    /// (built on a background thread; each step's draws, the backend's
    /// dropout masks included, depend only on the seed and the step), with
    /// the configured objectives summed or one sampled per step, reporting
    /// to `observer` and checkpointing after [`Self::checkpoint_into`]. A
    /// loss that is not finite stops it with the step and the last
    /// checkpoint named.
    pub fn fit(
        &mut self,
        model: M,
        batcher: &PretrainBatcher,
        observer: &mut dyn TrainObserver,
    ) -> Result<M> {
        let first_step = self.resumed_step().unwrap_or(0);
        let batches = spawn_loader(batcher.clone(), &self.config, first_step)?;
        let task = Pretraining {
            mix: self.config.objectives.sampled_mix(),
            seed: self.config.seed,
        };
        self.fit_task(model, &task, batches, observer)
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Trainer<B, M> {
    /// Trains `model` on `task` for the configuration's steps (from the
    /// resumed checkpoint's on, after [`Self::resume`]): step by step, the
    /// micro-batches of `batches` (one entry per step from the first step
    /// on), the backend reseeded from the seed and the step (dropout), a
    /// metrics line every `log_every` steps to `observer`, a resumable
    /// checkpoint every `checkpoint_every` steps and after the last after
    /// [`Self::checkpoint_into`]. The steps' values are read back only for
    /// a metrics line or a checkpoint ([`PendingValues`]); a loss that is
    /// not finite stops the run there, naming its step and the last
    /// checkpoint (written before it).
    pub fn fit_task<T: TrainTask<B, M>>(
        &mut self,
        mut model: M,
        task: &T,
        batches: StepBatches<T::Batch>,
        observer: &mut dyn TrainObserver,
    ) -> Result<M> {
        let config = self.config.clone();
        let resumed = self.resumed.take();
        let first_step = resumed.as_ref().map_or(0, |state| state.step);
        observer.started(&TrainStart {
            parameters: model.num_params(),
            steps: config.steps,
            first_step,
            batch_size: config.batch_size,
            micro_batches: config.micro_batches,
            task_mix: task.task_mix(),
        });
        let (mut accumulator, trained_before) = resumed.map_or_else(Default::default, |state| {
            (state.pending_metrics, state.elapsed_seconds)
        });
        let mut pending = PendingValues::default();
        let started = Instant::now();
        let elapsed = || trained_before + started.elapsed().as_secs_f32();
        let mut window = (Instant::now(), 0usize);
        let mut shapes = HashSet::new();
        for step in first_step..config.steps {
            let hosts = batches.recv().map_err(|_| TrainError::LoaderStopped)??;
            if let Some(hosts) = hosts {
                shapes.extend(hosts.iter().map(T::shape));
                B::seed(&self.device, backend_seed(config.seed, step));
                window.1 += hosts.iter().map(T::samples).sum::<usize>();
                let device = self.device.clone();
                let sizes: Vec<usize> = hosts.iter().map(T::samples).collect();
                let trained = self.step(
                    model,
                    step,
                    hosts,
                    &sizes,
                    |model: &M, host, shard| task.forward(model, host, step, shard, &device),
                    |model, output| task.after_step(model, output),
                );
                let (trained, values) = trained?;
                model = trained;
                pending.push(step, values);
            }
            observer.stepped(step);

            let done = step + 1;
            let every = config.checkpoint_every;
            let checkpoint = self.checkpoints.is_some()
                && ((every > 0 && done.is_multiple_of(every)) || done == config.steps);
            let log = done % config.log_every == 0 || done == config.steps;
            if log || checkpoint {
                // The one read of the steps' values: a loss that is not
                // finite stops the run before a checkpoint can keep it.
                pending
                    .read_into(&mut accumulator)
                    .map_err(|err| match err {
                        TrainError::NonFiniteLoss { step, loss, .. } => TrainError::NonFiniteLoss {
                            step,
                            loss,
                            last_checkpoint: self.last_checkpoint.clone(),
                        },
                        err => err,
                    })?;
            }
            if log {
                let mut objectives = accumulator.take();
                let record = MetricsRecord {
                    step: done,
                    loss: objectives.remove("loss").unwrap_or(f32::NAN),
                    objectives,
                    temperature: task.temperature(&model),
                    learning_rate: self.learning_rate(step),
                    samples_per_second: window.1 as f32 / window.0.elapsed().as_secs_f32(),
                    elapsed_seconds: elapsed(),
                };
                window = (Instant::now(), 0);
                observer.logged(&record)?;
            }
            // After the metrics line, so that the pending values saved are
            // those of no line yet written.
            if let (Some(run), true) = (&self.checkpoints, checkpoint) {
                let state = TrainingState {
                    step: done,
                    seed: config.seed,
                    elapsed_seconds: elapsed(),
                    pending_metrics: accumulator.clone(),
                };
                let saved = save_resumable(run, &model, &self.optimizer, &state)?;
                self.last_checkpoint = Some(saved);
            }
        }
        observer.finished(&TrainEnd {
            seconds: elapsed(),
            batch_shapes: shapes.len(),
        });
        Ok(model)
    }
}

/// Initialises every parameter of `model` that is still lazy, in the order
/// the module visits them (the order `Module::num_params` initialises them
/// in). Burn draws a parameter's initial value on first use, and a clone (or
/// `valid()` copy) of a lazy parameter draws its own: materialise a model
/// before copying it when the copies must share its weights.
pub fn materialize<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) {
    struct Materialize;
    impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<burn::Tensor<B, D>>) {
            let _ = param.val();
        }

        fn visit_int<const D: usize>(
            &mut self,
            param: &Param<burn::Tensor<B, D, burn::tensor::Int>>,
        ) {
            let _ = param.val();
        }

        fn visit_bool<const D: usize>(
            &mut self,
            param: &Param<burn::Tensor<B, D, burn::tensor::Bool>>,
        ) {
            let _ = param.val();
        }
    }
    model.visit(&mut Materialize);
}

/// Folds this step's running-statistics updates (BatchNorm's running mean
/// and variance) into their values. Burn keeps a running state's updates
/// per thread and merges them only when the same thread updates again (or
/// at `valid()`), so without this the statistics would depend on which
/// pool thread ran each step's forward, and a seeded run's evaluation
/// would differ from run to run. After it, one micro-batch gives the
/// sequential update `(1 - momentum) · old + momentum · batch`, whichever
/// thread ran it, and several give the mean of their updates (Burn's
/// data-parallel rule). Running states share their storage with their
/// clones, and `into_record` merges it.
pub fn sync_running_states<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) {
    let _ = model.clone().into_record();
}

/// The micro-batches of steps `first_step..steps`, built on a background
/// thread (at most [`PREFETCH_STEPS`] steps ahead of training, images
/// decoded in parallel on rayon's pool): `micro_batches` batches of
/// `batch_size / micro_batches` pairs each, drawn one after the other, with
/// `data.fused_pairs` shared among them. Each step's batches depend only on
/// the seed and the step number (and, for shards, on the steps before:
/// those the loader draws again and drops, to reach the stream's position
/// at `first_step`).
fn spawn_loader(
    mut batcher: PretrainBatcher,
    config: &PretrainConfig,
    first_step: usize,
) -> Result<StepBatches<HostPretrainBatch>> {
    let mut state = batcher.train_draws()?;
    let (sender, receiver) = sync_channel(PREFETCH_STEPS);
    let (seed, steps, parts, twins) = (
        config.seed,
        config.steps,
        config.micro_batches,
        config.data.hard_negative_twins,
    );
    let size = config.batch_size / parts;
    batcher.fused_pairs = Some(config.data.fused_pairs.div_ceil(parts));
    let replay_from = match state.follows_past() {
        true => 0,
        false => first_step,
    };
    std::thread::spawn(move || {
        for step in replay_from..steps {
            let mut rng = step_rng(seed, step, StepDraw::Batch);
            let batches: Result<Vec<_>, DataError> = (0..parts)
                .map(|_| batcher.train_batch(&mut state, size, twins, step as u64, &mut rng))
                .collect();
            if step < first_step && batches.is_ok() {
                continue;
            }
            if sender.send(batches.map(Some).map_err(Into::into)).is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}

/// Steps the loader may build ahead of training: enough to hide a slow
/// batch (a large image decoded late), few enough to bound the memory.
const PREFETCH_STEPS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use vlp_objectives::ObjectiveOutput;

    type B = Autodiff<Flex>;

    fn output(model: &Linear<B>, x: Tensor<B, 2>, scale: f32) -> PretrainOutput<B> {
        let loss = (model.forward(x).powi_scalar(2).mean() * scale).reshape([1]);
        PretrainOutput {
            loss: loss.clone(),
            objectives: vec![ObjectiveOutput {
                name: "square",
                metric: Tensor::from_floats([0.5], &loss.device()),
                loss,
                metric_name: "half",
            }],
            momentum_embeddings: None,
        }
    }

    fn weights(model: &Linear<B>) -> Vec<f32> {
        model.weight.val().into_data().to_vec().unwrap()
    }

    /// The one-pool path (a fork of the model in a pool of its own) makes
    /// exactly the update of a plain AdamW step on the model itself, and
    /// calls `after` once with the step's output.
    #[test]
    fn one_micro_batch_is_a_plain_adamw_step_then_after() {
        let device = Default::default();
        B::seed(&device, 7);
        let model = LinearConfig::new(4, 3).init::<B>(&device);
        // Draw the lazy weights once, so the clone below and the reference
        // share them.
        assert_eq!(model.num_params(), 15);
        let x = Tensor::<B, 2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
        let config = PretrainConfig {
            steps: 10,
            warmup_steps: 2,
            learning_rate: 0.1,
            ..PretrainConfig::default()
        };
        let mut trainer = Trainer::<B, Linear<B>>::new(&config, &device).unwrap();
        let mut after_calls = 0;
        let (stepped, values) = trainer
            .step(
                model.clone(),
                0,
                vec![x.clone()],
                &[6],
                |model, x, _| Ok(output(model, x, 1.0)),
                |model, output| {
                    after_calls += 1;
                    assert_eq!(output.objectives[0].name, "square");
                    Ok(model)
                },
            )
            .unwrap();
        assert_eq!(after_calls, 1);
        let names: Vec<&str> = values[0].iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["loss", "square_loss", "square_half"]);

        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init::<B, Linear<B>>();
        let loss = output(&model, x, 1.0).loss;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // Step 0 of a 2-step warm-up: half the peak rate.
        let expected = optimizer.step(0.05, model, grads);
        assert_eq!(weights(&stepped), weights(&expected));
    }

    /// BatchNorm's running mean after two training forwards, each on a
    /// thread of its own, with or without a sync after each.
    fn running_mean_on_two_threads(sync: bool) -> Vec<f32> {
        let device = Default::default();
        let norm = burn::nn::BatchNormConfig::new(2).init::<B>(&device);
        for batch in [[[1.0f32], [2.0]], [[5.0], [-4.0]]] {
            let x = Tensor::<B, 3>::from_floats([batch, [[3.0], [6.0]]], &device);
            std::thread::scope(|scope| {
                scope.spawn(|| norm.forward(x)).join().unwrap();
            });
            if sync {
                sync_running_states(&norm);
            }
        }
        norm.valid()
            .running_mean
            .value()
            .into_data()
            .to_vec()
            .unwrap()
    }

    /// The running statistics follow the steps in order whichever thread
    /// runs them: momentum 0.1, channel means (2, 4) then (4, 1), so
    /// 0.9 · (0.1 · (2, 4)) + 0.1 · (4, 1) = (0.58, 0.46). Without the sync
    /// Burn averages the two threads' separate updates of the initial zeros
    /// instead: (0.3, 0.25).
    #[test]
    fn running_statistics_follow_the_steps_whichever_thread_runs_them() {
        let close = |got: Vec<f32>, expected: [f32; 2]| {
            let near = got.iter().zip(expected).all(|(g, e)| (g - e).abs() < 1e-6);
            assert!(near, "{got:?} vs {expected:?}");
        };
        close(running_mean_on_two_threads(true), [0.58, 0.46]);
        close(running_mean_on_two_threads(false), [0.3, 0.25]);
    }

    /// A step reads nothing back; the read of its values finds a loss
    /// that is not finite and names its step, after adding the values of
    /// the steps before it.
    #[test]
    fn a_loss_that_is_not_finite_is_found_at_the_read_and_named() {
        let device = Default::default();
        B::seed(&device, 8);
        let mut model = LinearConfig::new(2, 1).init::<B>(&device);
        let mut trainer =
            Trainer::<B, Linear<B>>::new(&PretrainConfig::default(), &device).unwrap();
        let mut pending = PendingValues::default();
        for (step, scale) in [(2, 1.0), (3, f32::NAN), (4, 1.0)] {
            let x = Tensor::<B, 2>::ones([2, 2], &device);
            let (stepped, values) = trainer
                .step(
                    model,
                    step,
                    vec![x],
                    &[2],
                    |m, x, _| Ok(output(m, x, scale)),
                    |m, _| Ok(m),
                )
                .expect("the step itself reads no value");
            model = stepped;
            pending.push(step, values);
        }
        let mut accumulator = Default::default();
        let err = pending
            .read_into(&mut accumulator)
            .expect_err("a NaN loss is an error");
        assert!(
            matches!(err, TrainError::NonFiniteLoss { step: 3, .. }),
            "{err}"
        );
        let means = accumulator.take();
        assert!(means["loss"].is_finite() && means["square_half"] == 0.5);
    }
}
