//! `cargo xtask pretrain`: synthetic world → tokenizer → the configured
//! architecture trained with the `[objectives]` (summed, or one sampled per
//! step) → checkpoint, curves, held-out objectives and retrieval or captioning.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

use anyhow::Context;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use vlp_data::synthetic::{Split, SyntheticDetector, SyntheticWorld};
use vlp_data::{AnswerVocabulary, PatchMasking, RegionMasking};
use vlp_data::{
    DataError, HostPretrainBatch, MlmMasking, PretrainBatch, PretrainBatcher, TextTokenizer,
};
use vlp_objectives::{PretrainOutput, Pretrainer};

use crate::config::Architecture;
use crate::config::PretrainConfig;
use crate::device::BackendJob;
use crate::eval::{EvalReport, Evaluate};
use crate::heldout::heldout_objectives;
use crate::micro_batch::MicroBatchPools;
use crate::model::{millions, with_model, ModelTask};
use crate::run_dir::{self, CONFIG_FILE, METRICS_FILE, TOKENIZER_FILE};
use crate::{plot, UsageError};

/// One line of `metrics.jsonl`: means over the steps since the previous line.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsRecord {
    pub step: usize,
    /// The total (weighted) loss.
    pub loss: f32,
    /// `<objective>_loss` and `<objective>_<metric name>` of every objective
    /// (`mlm_loss`, `itm_accuracy`, `mrfr_mse`, …).
    #[serde(flatten)]
    pub objectives: BTreeMap<String, f32>,
    /// The contrastive temperature, for models with ITC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    pub learning_rate: f64,
    pub samples_per_second: f32,
    pub elapsed_seconds: f32,
}

impl MetricsRecord {
    /// The loss of objective `name`, if the run has it.
    pub fn objective_loss(&self, name: &str) -> Option<f32> {
        self.objectives.get(&format!("{name}_loss")).copied()
    }
}

/// A pre-training run.
#[derive(Debug, Clone)]
pub struct PretrainJob {
    pub config: PretrainConfig,
    /// The run folder.
    pub out: PathBuf,
    /// A `tokenizer.json` to use instead of training one on the world's corpus.
    pub tokenizer: Option<PathBuf>,
    /// A Hugging Face BERT folder whose `model.safetensors` initialises the
    /// text embeddings, the transformer and the pooler.
    pub init_text: Option<PathBuf>,
}

/// Linear warm-up to `peak`, then linear decay to zero at `steps`.
pub fn learning_rate(config: &PretrainConfig, step: usize) -> f64 {
    let warmup = config.warmup_steps.min(config.steps.saturating_sub(1));
    if step < warmup {
        config.learning_rate * (step + 1) as f64 / warmup as f64
    } else {
        let remaining = (config.steps - step) as f64 / (config.steps - warmup) as f64;
        config.learning_rate * remaining
    }
}

/// The world's frozen detector, when the model reads regions.
pub fn detector(config: &PretrainConfig) -> Option<SyntheticDetector> {
    config
        .detector()
        .map(|detector| SyntheticDetector::new(config.seed, detector))
}

/// The world a configuration describes.
pub fn world(config: &PretrainConfig) -> SyntheticWorld {
    SyntheticWorld::new(config.seed, config.data.image_size)
}

/// Loads the tokenizer from `path`, or trains one on the world's corpus.
pub fn tokenizer(config: &PretrainConfig, path: Option<&Path>) -> anyhow::Result<TextTokenizer> {
    match path {
        Some(path) => {
            Ok(TextTokenizer::from_file(path).map_err(|err| UsageError(err.to_string()))?)
        }
        None => {
            let corpus = world(config).corpus(config.data.tokenizer_corpus_scenes);
            Ok(TextTokenizer::train_wordpiece(
                &corpus,
                config.data.tokenizer_vocab_size,
            )?)
        }
    }
}

/// The batcher of a run: MLM masking and ITM pairs always; masked regions
/// and VQA questions when the single-stream objectives need them.
pub fn batcher(config: &PretrainConfig, tokenizer: TextTokenizer) -> PretrainBatcher {
    let objectives = config.objectives.uniter();
    let single_stream = matches!(config.model.architecture, Architecture::SingleStream {});
    PretrainBatcher {
        world: world(config),
        tokenizer,
        max_text_len: config.data.max_text_len,
        masking: MlmMasking {
            probability: config.data.mlm_probability,
            ..MlmMasking::default()
        },
        itm_negative_probability: config.data.itm_negative_probability,
        fused_pairs: Some(config.data.fused_pairs),
        detector: detector(config),
        region_masking: (single_stream && objectives.masks_regions()).then(RegionMasking::uniter),
        patch_masking: (single_stream && objectives.mpp > 0.0)
            .then(|| PatchMasking::vilt(config.model.patch_size)),
        vqa_answers: (single_stream && objectives.vqa > 0.0).then(AnswerVocabulary::synthetic),
    }
}

/// Held-out test batches scored at the end of a run.
const HELD_OUT_BATCHES: usize = 4;

/// What `eval.json` holds for a trained model: retrieval or captioning, and
/// every objective's loss and metric on held-out batches.
pub fn evaluate<B: Backend, M: Evaluate<B> + Pretrainer<B>>(
    model: &M,
    config: &PretrainConfig,
    tokenizer: &TextTokenizer,
    device: &B::Device,
) -> anyhow::Result<EvalReport> {
    let mut report = model.evaluate(&world(config), tokenizer, config, device)?;
    report.objectives = Some(heldout_objectives(
        model,
        &batcher(config, tokenizer.clone()),
        HELD_OUT_BATCHES,
        config.batch_size,
        config.seed,
        device,
    )?);
    Ok(report)
}

/// What a training step draws at random, each from a generator of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDraw {
    /// The step's examples, masks and negatives.
    Batch,
    /// The step's objectives under per-step task sampling.
    Objectives,
}

/// The generator of one of step `step`'s draws: it depends only on the seed,
/// the step and the draw, so a run draws the same whatever came before.
pub fn step_rng(seed: u64, step: usize, draw: StepDraw) -> ChaCha8Rng {
    let seed = match draw {
        StepDraw::Batch => seed,
        StepDraw::Objectives => !seed,
    };
    ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The micro-batches of steps `first_step..steps`, built on a background
/// thread: `micro_batches` batches of `batch_size / micro_batches` pairs
/// each, drawn one after the other, with `data.fused_pairs` shared among
/// them. Each step's batches depend only on the seed and the step number.
fn spawn_loader(
    mut batcher: PretrainBatcher,
    config: &PretrainConfig,
    first_step: usize,
) -> Receiver<Result<Vec<HostPretrainBatch>, DataError>> {
    let (sender, receiver) = sync_channel(4);
    let (seed, steps, parts, twins) = (
        config.seed,
        config.steps,
        config.micro_batches,
        config.data.hard_negative_twins,
    );
    let size = config.batch_size / parts;
    batcher.fused_pairs = Some(config.data.fused_pairs.div_ceil(parts));
    std::thread::spawn(move || {
        for step in first_step..steps {
            let mut rng = step_rng(seed, step, StepDraw::Batch);
            let batches = (0..parts)
                .map(|_| {
                    let samples = batcher.draw(Split::Train, size, twins, &mut rng);
                    batcher.batch_of(samples, &mut rng)
                })
                .collect();
            if sender.send(batches).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The named values a metrics line averages: the loss, and each objective's
/// loss and metric. Errors on a loss that is not finite.
fn step_values<B: Backend>(
    output: &PretrainOutput<B>,
    step: usize,
) -> anyhow::Result<Vec<(String, f32)>> {
    let loss = output.loss.clone().into_scalar().elem::<f32>();
    if !loss.is_finite() {
        anyhow::bail!("loss became {loss} at step {step}; lower learning_rate");
    }
    let mut values = vec![("loss".to_string(), loss)];
    for objective in &output.objectives {
        values.push((
            format!("{}_loss", objective.name),
            objective.loss.clone().into_scalar().elem::<f32>(),
        ));
        values.push((
            format!("{}_{}", objective.name, objective.metric_name),
            objective.metric,
        ));
    }
    Ok(values)
}

/// Running sums of named values between two metrics lines. Each value is
/// averaged over the steps that had it: with task sampling, an objective
/// appears only in the steps that drew it.
#[derive(Default)]
struct Accumulator {
    sums: BTreeMap<String, (f32, usize)>,
}

impl Accumulator {
    fn add(&mut self, values: impl IntoIterator<Item = (String, f32)>) {
        for (name, value) in values {
            let entry = self.sums.entry(name).or_default();
            entry.0 += value;
            entry.1 += 1;
        }
    }

    fn take(&mut self) -> BTreeMap<String, f32> {
        std::mem::take(&mut self.sums)
            .into_iter()
            .map(|(name, (sum, count))| (name, sum / count.max(1) as f32))
            .collect()
    }
}

fn progress_bar(steps: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:25}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

impl BackendJob for PretrainJob {
    type Output = anyhow::Result<EvalReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let tokenizer = tokenizer(&self.config, self.tokenizer.as_deref())?;
        let out = &self.out;
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create run folder {}", out.display()))?;
        tokenizer.save(out.join(TOKENIZER_FILE))?;
        run_dir::write_atomic(&out.join(CONFIG_FILE), self.config.to_toml().as_bytes())?;
        let (config, init_text) = (self.config.clone(), self.init_text.clone());
        with_model::<B, _>(
            &config,
            tokenizer.vocab_size(),
            tokenizer.special(),
            init_text.as_deref(),
            &device.clone(),
            Training {
                job: self,
                tokenizer,
                device,
            },
        )?
    }
}

/// The training loop, the same for every architecture.
struct Training<B: AutodiffBackend> {
    job: PretrainJob,
    tokenizer: TextTokenizer,
    device: B::Device,
}

impl<B: AutodiffBackend> ModelTask<B> for Training<B> {
    type Output = anyhow::Result<EvalReport>;

    fn run<M>(self, mut model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let Training {
            job,
            tokenizer,
            device,
        } = self;
        let (config, out) = (&job.config, &job.out);
        eprintln!(
            "model: {} architecture, {:.2} M parameters",
            config.model.architecture.name(),
            millions(&model)
        );
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init::<B, M>();

        let batcher = batcher(config, tokenizer.clone());
        let mix = config.objectives.sampled_mix();
        if let Some(mix) = &mix {
            eprintln!(
                "task sampling: one objective per step, {}",
                mix.objectives
                    .iter()
                    .map(|entry| format!(
                        "{:?} {:.0}%",
                        entry.objective,
                        100.0 * mix.probability(entry.objective)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let batches = spawn_loader(batcher.clone(), config, 0);
        let pools = match config.micro_batches {
            1 => None,
            count => Some(MicroBatchPools::new(count)?),
        };
        let metrics_path = out.join(METRICS_FILE);
        let mut metrics_file = std::fs::File::create(&metrics_path)
            .with_context(|| format!("cannot create {}", metrics_path.display()))?;
        let mut records = Vec::new();
        let bar = progress_bar(config.steps);
        let interactive = !bar.is_hidden();
        let started = Instant::now();
        let mut window = (Instant::now(), 0usize);
        let mut accumulator = Accumulator::default();

        let micro_batches = match config.micro_batches {
            1 => String::new(),
            parts => format!(
                " ({parts} micro-batches of {} at once)",
                config.batch_size / parts
            ),
        };
        eprintln!(
            "pre-training {} steps of {} pairs{micro_batches} on {:?} (run folder {})",
            config.steps,
            config.batch_size,
            device,
            out.display()
        );
        for step in 0..config.steps {
            let mut hosts = batches.recv().context("batch loader stopped")??;
            window.1 += hosts.iter().map(HostPretrainBatch::len).sum::<usize>();
            let objectives = mix
                .as_ref()
                .map(|mix| mix.step(&mut step_rng(config.seed, step, StepDraw::Objectives)));
            let losses = |model: &M, batch: &PretrainBatch<B>| match &objectives {
                Some(objectives) => model.forward_step(batch, objectives),
                None => Ok(model.forward(batch)),
            };
            let lr = learning_rate(config, step);
            if let Some(pools) = &pools {
                // Config validation rules out models with work in
                // `after_step` (ALBEF's queue), which needs one whole output.
                let share = 1.0 / hosts.len() as f32;
                let (grads, values) =
                    pools.accumulate_gradients(&model, &device, hosts, |copy: &M, host| {
                        let output = losses(copy, &host.to_device::<B>(&device))?;
                        let values = step_values(&output, step)?;
                        anyhow::Ok((output.loss * share, values))
                    })?;
                values
                    .into_iter()
                    .for_each(|values| accumulator.add(values));
                model = optimizer.step(lr, model, grads);
            } else {
                let batch = hosts.remove(0).to_device::<B>(&device);
                let output = losses(&model, &batch)?;
                accumulator.add(step_values(&output, step)?);
                let grads = GradientsParams::from_grads(output.loss.backward(), &model);
                model = optimizer.step(lr, model, grads);
                model = model.after_step(&output)?;
            }
            bar.inc(1);

            let done = step + 1;
            if done % config.log_every == 0 || done == config.steps {
                let mut objectives = accumulator.take();
                let record = MetricsRecord {
                    step: done,
                    loss: objectives.remove("loss").unwrap_or(f32::NAN),
                    objectives,
                    temperature: model.temperature(),
                    learning_rate: lr,
                    samples_per_second: window.1 as f32 / window.0.elapsed().as_secs_f32(),
                    elapsed_seconds: started.elapsed().as_secs_f32(),
                };
                window = (Instant::now(), 0);
                use std::io::Write;
                writeln!(metrics_file, "{}", serde_json::to_string(&record)?)?;
                let parts: Vec<String> = record
                    .objectives
                    .iter()
                    .filter_map(|(key, value)| {
                        key.strip_suffix("_loss")
                            .map(|name| format!("{name} {value:.3}"))
                    })
                    .collect();
                let message = format!(
                    "loss {:.3} ({}) {:.0} samples/s",
                    record.loss,
                    parts.join(" "),
                    record.samples_per_second
                );
                if interactive {
                    bar.set_message(message);
                } else if done % (config.log_every * 5) == 0 || done == config.steps {
                    eprintln!(
                        "step {done}/{} {message} elapsed {:.0}s",
                        config.steps, record.elapsed_seconds
                    );
                }
                records.push(record);
            }
        }
        bar.finish_and_clear();
        eprintln!(
            "trained {} steps in {:.1}s",
            config.steps,
            started.elapsed().as_secs_f32()
        );

        run_dir::save_checkpoint(model.clone(), out)?;
        plot::loss_curves(&records, &out.join(run_dir::CURVES_FILE))?;

        let report = evaluate(&model.valid(), config, &tokenizer, &device)?;
        report.write(&out.join(run_dir::EVAL_FILE))?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let config = PretrainConfig {
            steps: 100,
            warmup_steps: 10,
            learning_rate: 1.0,
            ..PretrainConfig::default()
        };
        assert!((learning_rate(&config, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&config, 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&config, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&config, 55) - 0.5).abs() < 1e-12);
        assert!(learning_rate(&config, 99) > 0.0 && learning_rate(&config, 99) < 0.02);
    }
}
