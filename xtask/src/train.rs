//! `cargo xtask pretrain`: synthetic world → tokenizer → single-stream model
//! trained with MLM + ITM + ITC → checkpoint, curves and held-out retrieval.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

use anyhow::Context;
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use vlp_data::synthetic::{Split, SyntheticDetector, SyntheticWorld};
use vlp_data::{DataError, HostPretrainBatch, MlmMasking, PretrainBatcher, TextTokenizer};
use vlp_features::set_trainable;
use vlp_models::{BertModel, SingleStreamModel};
use vlp_objectives::{Pretrainer, SingleStreamPretrainer};

use crate::config::{Component, PretrainConfig};
use crate::device::BackendJob;
use crate::eval::{evaluate, RetrievalReport};
use crate::run_dir::{self, CONFIG_FILE, METRICS_FILE, TOKENIZER_FILE};
use crate::{plot, UsageError};

/// One line of `metrics.jsonl`: means over the steps since the previous line.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsRecord {
    pub step: usize,
    pub loss: f32,
    pub mlm_loss: f32,
    pub itm_loss: f32,
    pub itc_loss: f32,
    /// Masked-token accuracy.
    pub mlm_accuracy: f32,
    /// Match / no-match accuracy.
    pub itm_accuracy: f32,
    /// In-batch text→image accuracy.
    pub itc_accuracy: f32,
    pub temperature: f32,
    pub learning_rate: f64,
    pub samples_per_second: f32,
    pub elapsed_seconds: f32,
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

/// Batches for steps `first_step..steps`, built on a background thread.
/// Each step's batch depends only on the seed and the step number.
fn spawn_loader(
    batcher: PretrainBatcher,
    config: &PretrainConfig,
    first_step: usize,
) -> Receiver<Result<HostPretrainBatch, DataError>> {
    let (sender, receiver) = sync_channel(4);
    let (seed, steps, batch_size, twins) = (
        config.seed,
        config.steps,
        config.batch_size,
        config.data.hard_negative_twins,
    );
    std::thread::spawn(move || {
        for step in first_step..steps {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let samples = batcher.draw(Split::Train, batch_size, twins, &mut rng);
            if sender.send(batcher.batch_of(samples, &mut rng)).is_err() {
                break;
            }
        }
    });
    receiver
}

#[derive(Default)]
struct Accumulator {
    steps: usize,
    sums: [f32; 7],
}

impl Accumulator {
    fn add(&mut self, values: [f32; 7]) {
        self.steps += 1;
        for (sum, value) in self.sums.iter_mut().zip(values) {
            *sum += value;
        }
    }

    fn take(&mut self) -> [f32; 7] {
        let n = self.steps.max(1) as f32;
        let means = self.sums.map(|s| s / n);
        *self = Self::default();
        means
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
    type Output = anyhow::Result<RetrievalReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let config = self.config;
        let tokenizer = tokenizer(&config, self.tokenizer.as_deref())?;
        let out = &self.out;
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create run folder {}", out.display()))?;
        tokenizer.save(out.join(TOKENIZER_FILE))?;
        run_dir::write_atomic(&out.join(CONFIG_FILE), config.to_toml().as_bytes())?;

        B::seed(&device, config.seed);
        let mut model: SingleStreamPretrainer<B> =
            config.pretrainer(tokenizer.vocab_size()).init(&device);
        if let Some(dir) = &self.init_text {
            model.backbone = init_text_from_bert(model.backbone, &dir.join("model.safetensors"))?;
        }
        let mut model = freeze(model, &config.model.frozen);
        print_parameters(&model, &config.model.frozen);
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init::<B, SingleStreamPretrainer<B>>();

        let batcher = PretrainBatcher {
            world: world(&config),
            tokenizer: tokenizer.clone(),
            max_text_len: config.data.max_text_len,
            masking: MlmMasking {
                probability: config.data.mlm_probability,
                ..MlmMasking::default()
            },
            itm_negative_probability: config.data.itm_negative_probability,
            fused_pairs: Some(config.data.fused_pairs),
            detector: detector(&config),
        };
        let batches = spawn_loader(batcher, &config, 0);
        let metrics_path = out.join(METRICS_FILE);
        let mut metrics_file = std::fs::File::create(&metrics_path)
            .with_context(|| format!("cannot create {}", metrics_path.display()))?;
        let mut records = Vec::new();
        let bar = progress_bar(config.steps);
        let interactive = !bar.is_hidden();
        let started = Instant::now();
        let mut window = (Instant::now(), 0usize);
        let mut accumulator = Accumulator::default();

        eprintln!(
            "pre-training {} steps of {} pairs on {:?} (run folder {})",
            config.steps,
            config.batch_size,
            device,
            out.display()
        );
        for step in 0..config.steps {
            let host = batches.recv().context("batch loader stopped")??;
            let batch = host.to_device::<B>(&device);
            let output = model.forward(&batch);
            let objective = |name| output.objective(name).expect("single-stream objective");
            let values = [
                output.loss.clone().into_scalar().elem::<f32>(),
                objective("mlm").loss.clone().into_scalar().elem::<f32>(),
                objective("itm").loss.clone().into_scalar().elem::<f32>(),
                objective("itc").loss.clone().into_scalar().elem::<f32>(),
                objective("mlm").accuracy,
                objective("itm").accuracy,
                objective("itc").accuracy,
            ];
            if !values[0].is_finite() {
                anyhow::bail!(
                    "loss became {} at step {step}; lower learning_rate",
                    values[0]
                );
            }
            accumulator.add(values);
            let lr = learning_rate(&config, step);
            let grads = GradientsParams::from_grads(output.loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            window.1 += host.len();
            bar.inc(1);

            let done = step + 1;
            if done % config.log_every == 0 || done == config.steps {
                let [loss, mlm_loss, itm_loss, itc_loss, mlm_accuracy, itm_accuracy, itc_accuracy] =
                    accumulator.take();
                let record = MetricsRecord {
                    step: done,
                    loss,
                    mlm_loss,
                    itm_loss,
                    itc_loss,
                    mlm_accuracy,
                    itm_accuracy,
                    itc_accuracy,
                    temperature: model.itc_head.temperature().into_scalar().elem::<f32>(),
                    learning_rate: lr,
                    samples_per_second: window.1 as f32 / window.0.elapsed().as_secs_f32(),
                    elapsed_seconds: started.elapsed().as_secs_f32(),
                };
                window = (Instant::now(), 0);
                use std::io::Write;
                writeln!(metrics_file, "{}", serde_json::to_string(&record)?)?;
                let message = format!(
                    "loss {:.3} (mlm {:.3} itm {:.3} itc {:.3}) {:.0} samples/s",
                    record.loss,
                    record.mlm_loss,
                    record.itm_loss,
                    record.itc_loss,
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

        let report = evaluate(
            &model.valid(),
            &world(&config),
            &tokenizer,
            &config,
            &device,
        )?;
        report.write(&out.join(run_dir::EVAL_FILE))?;
        Ok(report)
    }
}

/// Loads a BERT checkpoint into the text embeddings, transformer and
/// pooler of `backbone`; errors list missing, unexpected and mis-shaped keys.
fn init_text_from_bert<B: Backend>(
    backbone: SingleStreamModel<B>,
    path: &Path,
) -> anyhow::Result<SingleStreamModel<B>> {
    let mut bert = BertModel {
        embeddings: backbone.embeddings,
        encoder: backbone.encoder,
        pooler: Some(backbone.pooler),
    };
    let report = bert
        .load_safetensors(path)
        .map_err(|err| UsageError(format!("cannot initialise the text tower: {err}")))?;
    eprintln!(
        "text tower initialised from {} ({} tensors)",
        path.display(),
        report.loaded
    );
    Ok(SingleStreamModel {
        embeddings: bert.embeddings,
        encoder: bert.encoder,
        pooler: bert.pooler.expect("the pooler was given"),
        visual: backbone.visual,
    })
}

/// Stops the gradient of every parameter of the `frozen` components.
fn freeze<B: Backend>(
    mut model: SingleStreamPretrainer<B>,
    frozen: &[Component],
) -> SingleStreamPretrainer<B> {
    for component in frozen {
        let backbone = model.backbone;
        model.backbone = match component {
            Component::TextEmbeddings => SingleStreamModel {
                embeddings: set_trainable(backbone.embeddings, false),
                ..backbone
            },
            Component::Visual => SingleStreamModel {
                visual: set_trainable(backbone.visual, false),
                ..backbone
            },
            Component::Encoder => SingleStreamModel {
                encoder: set_trainable(backbone.encoder, false),
                ..backbone
            },
        };
    }
    model
}

fn print_parameters<B: Backend>(model: &SingleStreamPretrainer<B>, frozen: &[Component]) {
    let millions = |n: usize| n as f64 / 1e6;
    if !frozen.is_empty() {
        eprintln!("frozen (no gradient): {frozen:?}");
    }
    eprintln!(
        "parameters: {:.2} M (text embeddings {:.2} M, visual embeddings {:.2} M, encoder {:.2} M, heads {:.2} M)",
        millions(model.num_params()),
        millions(model.backbone.embeddings.num_params()),
        millions(model.backbone.visual.num_params()),
        millions(model.backbone.encoder.num_params()),
        millions(model.mlm_head.num_params() + model.itm_head.num_params() + model.itc_head.num_params() + model.backbone.pooler.num_params()),
    );
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
