//! `cargo xtask bench step`: one training step (and one forward-only pass) of
//! the `uniter-bench` model in vlp and in PyTorch, on the same seeded inputs,
//! in one run.
//!
//! `uniter-bench` is a UNITER-style single-stream transformer: BERT post-norm
//! layers (L = 4, H = 256, 4 heads, FFN 1024, GELU, dropout 0.1, vocabulary
//! 30 522), text embeddings (word + position + type), UNITER's region
//! embeddings (2048-d detector features and 7-d box geometry), merged
//! attention over `[text; regions]` with the text padding masked, a pooler,
//! BERT's MLM head (transform + decoder tied to the word embeddings) on the
//! masked positions only and a 2-way ITM head; loss = MLM CE + ITM CE,
//! AdamW (lr 1e-4, weight decay 0.01).
//!
//! The runner generates one batch from the seed (32 pairs of 32 tokens with
//! 12–32 real tokens, 15% of them masked with BERT's recipe, 36 regions of
//! ReLU'd Gaussian features with random boxes, half of the ITM pairs
//! negative), writes it as `.npy` files and measures, each in a process of
//! its own so that the process's peak RSS is that measurement's alone: vlp
//! training (a child `cargo xtask bench step --worker train`), the PyTorch
//! reference training (`benches/reference/uniter_step.py`), then both
//! forward-only. The vlp child regenerates the same batch from the seed.
//! Weights are each framework's own seeded initialisation: the compute is
//! compared, not the loss values (both start near ln 30522 and ln 2).
//!
//! vlp trains the batch as `--micro-batches` (default 2) micro-batches run
//! side by side ([`crate::micro_batch`]), each loss weighted by its share of
//! the masked tokens and pairs so that the summed gradient is the whole
//! batch's; PyTorch trains the whole batch with intra-op threads.
//! `--micro-batches 1` measures vlp's single-pass step.
//!
//! vlp runs on a rayon pool of `--threads` threads, PyTorch with
//! `torch.set_num_threads(--threads)`, the BLAS/OpenMP variables set to the
//! same number and `OMP_WAIT_POLICY=PASSIVE`. Each figure is the median over `--reps` repetitions of
//! `--steps` steps after `--warmup` steps.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use vlp_data::{MlmMasking, RegionTensors, SpecialTokens, VisualBatch};
use vlp_features::{RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{SingleStreamConfig, SingleStreamModel};
use vlp_objectives::{
    gather_positions, itm_loss, mlm_loss, ItmHead, ItmHeadConfig, MlmHead, MlmHeadConfig,
};

use crate::bench_ot::{cpu_snapshot, normals, others_share, python, repo_root, write_npy};
use crate::device::{self, BackendJob, DeviceSpec};
use vlp_train::MicroBatchPools;

/// BERT's uncased vocabulary size.
const VOCAB_SIZE: usize = 30_522;
/// Width of a bottom-up-attention detector feature.
const FEATURE_SIZE: usize = 2048;
/// BERT uncased ids of `[PAD] [UNK] [CLS] [SEP] [MASK]`.
const SPECIAL: SpecialTokens = SpecialTokens {
    pad: 0,
    unk: 100,
    cls: 101,
    sep: 102,
    mask: 103,
};
/// First id of BERT uncased's whole words (below are specials and `[unused]`).
const FIRST_WORD_ID: i64 = 1996;
/// The headline case.
const HEADLINE: Shape = Shape {
    batch: 32,
    text_len: 32,
    regions: 36,
};

fn parse_device(text: &str) -> Result<DeviceSpec, String> {
    DeviceSpec::parse(text)
}

/// Arguments of `cargo xtask bench step`.
#[derive(clap::Args, Debug)]
pub struct BenchStepArgs {
    /// Also write the result rows as JSON: a list of {"benchmark", "vlp_ms",
    /// "reference", "reference_ms", "speedup", "vlp_samples_per_s",
    /// "reference_samples_per_s", "vlp_rss_mib", "reference_rss_mib"}.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Backend and device of vlp: ndarray, flex, wgpu[:N], cuda[:N] (default: flex if compiled in).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<DeviceSpec>,
    /// Threads for vlp (rayon pool) and for PyTorch.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Steps per timed repetition.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// vlp training splits the batch into this many micro-batches whose
    /// forward and backward passes run concurrently (the runner's
    /// `micro_batches`); each loss is weighted by its share of the masked
    /// tokens and pairs, so the summed gradient is the whole batch's.
    #[arg(long, default_value_t = 2)]
    pub micro_batches: usize,
    /// Also measure training with the batch, the text length and the region
    /// count doubled (b64, t64, r72), one at a time.
    #[arg(long)]
    pub scaling: bool,
    /// Measure vlp only (skip the PyTorch reference).
    #[arg(long)]
    pub no_reference: bool,
    /// Python with numpy and torch (default: ./.venv/bin/python, created on demand).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Seed of the inputs and of both initialisations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the inputs into this folder and keep them (default: a temporary folder).
    #[arg(long)]
    pub keep_inputs: Option<PathBuf>,
    /// Internal: measure vlp in this process (`train` or `infer`) and write the result to --out.
    #[arg(long, hide = true)]
    pub worker: Option<Mode>,
    /// Internal: the worker's shape, e.g. b32-t32-r36.
    #[arg(long, hide = true)]
    pub shape: Option<String>,
    /// Internal: where the worker writes its result.
    #[arg(long, hide = true)]
    pub out: Option<PathBuf>,
}

/// What one measurement runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward, backward and AdamW update.
    Train,
    /// Forward only, no autodiff, dropout off.
    Infer,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Infer => "infer",
        }
    }
}

/// Batch size, text length and region count of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    batch: usize,
    text_len: usize,
    regions: usize,
}

impl Shape {
    fn name(&self) -> String {
        format!("b{}-t{}-r{}", self.batch, self.text_len, self.regions)
    }

    fn parse(text: &str) -> Result<Shape> {
        let field = |prefix: char, part: Option<&str>| -> Result<usize> {
            part.and_then(|p| p.strip_prefix(prefix))
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .with_context(|| format!("invalid shape '{text}', expected e.g. b32-t32-r36"))
        };
        let mut parts = text.split('-');
        let shape = Shape {
            batch: field('b', parts.next())?,
            text_len: field('t', parts.next())?,
            regions: field('r', parts.next())?,
        };
        if parts.next().is_some() || shape.text_len < 3 {
            bail!("invalid shape '{text}', expected e.g. b32-t32-r36 with t >= 3");
        }
        Ok(shape)
    }

    /// The JSON / table row name: what differs from the headline shape.
    fn benchmark(&self, mode: Mode) -> String {
        let mut name = format!("uniter-bench-{}-b{}", mode.name(), self.batch);
        if self.text_len != HEADLINE.text_len {
            write!(name, "-t{}", self.text_len).expect("writing to a String");
        }
        if self.regions != HEADLINE.regions {
            write!(name, "-r{}", self.regions).expect("writing to a String");
        }
        name
    }
}

/// One step's inputs on the host; every step of a measurement reuses them.
struct Inputs {
    shape: Shape,
    /// `[B, T]` masked text: `[CLS]` words `[SEP]` then `[PAD]`.
    input_ids: Vec<i64>,
    /// `[B, T]` 1 at real tokens, 0 at padding.
    attention_mask: Vec<i64>,
    /// `[N]` flat positions `b * T + t` of the masked tokens.
    mlm_positions: Vec<i64>,
    /// `[N]` their original ids.
    mlm_labels: Vec<i64>,
    /// `[B, R, F]` detector features.
    region_features: Vec<f32>,
    /// `[B, R, 4]` boxes `x1, y1, x2, y2` normalised by the image size.
    region_boxes: Vec<f32>,
    /// `[B]` 1 = matching pair, 0 = negative; exactly half are negative.
    itm_labels: Vec<i64>,
}

impl Inputs {
    /// A deterministic function of `shape` and `seed`.
    fn generate(shape: Shape, seed: u64) -> Inputs {
        let Shape {
            batch,
            text_len,
            regions,
        } = shape;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let masking = MlmMasking::default();
        let (mut input_ids, mut attention_mask) = (Vec::new(), Vec::new());
        let (mut mlm_positions, mut mlm_labels) = (Vec::new(), Vec::new());
        for row in 0..batch {
            // Caption lengths as in COCO: 3/8 of the maximum to all of it (12–32 at T = 32).
            let len = rng.random_range((text_len * 3 / 8).max(3)..=text_len);
            let mut ids = vec![SPECIAL.cls];
            ids.extend((2..len).map(|_| rng.random_range(FIRST_WORD_ID..VOCAB_SIZE as i64) as u32));
            ids.push(SPECIAL.sep);
            let masked = masking.apply(&ids, SPECIAL, VOCAB_SIZE, &mut rng);
            for (t, label) in masked.labels.iter().enumerate() {
                if let Some(label) = label {
                    mlm_positions.push((row * text_len + t) as i64);
                    mlm_labels.push(i64::from(*label));
                }
            }
            input_ids.extend(masked.input_ids.iter().map(|&id| i64::from(id)));
            input_ids.extend(std::iter::repeat_n(i64::from(SPECIAL.pad), text_len - len));
            attention_mask.extend((0..text_len).map(|t| i64::from(t < len)));
        }
        // Pooled detector features are post-ReLU: non-negative and sparse.
        let region_features = normals(seed, batch * regions * FEATURE_SIZE)
            .into_iter()
            .map(|x| x.max(0.0))
            .collect();
        let mut region_boxes = Vec::with_capacity(batch * regions * 4);
        for _ in 0..batch * regions {
            let x1: f32 = rng.random_range(0.0..0.8);
            let y1: f32 = rng.random_range(0.0..0.8);
            let x2 = rng.random_range(x1 + 0.05..=1.0);
            let y2 = rng.random_range(y1 + 0.05..=1.0);
            region_boxes.extend([x1, y1, x2, y2]);
        }
        let mut itm_labels: Vec<i64> = (0..batch).map(|i| i64::from(i < batch / 2)).collect();
        itm_labels.shuffle(&mut rng);
        Inputs {
            shape,
            input_ids,
            attention_mask,
            mlm_positions,
            mlm_labels,
            region_features,
            region_boxes,
            itm_labels,
        }
    }

    /// Writes the `.npy` files `benches/reference/uniter_step.py` reads.
    fn write(&self, dir: &Path) -> Result<()> {
        let Shape {
            batch: b,
            text_len: t,
            regions: r,
        } = self.shape;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let n = self.mlm_positions.len();
        write_npy(&dir.join("input_ids.npy"), &self.input_ids, &[b, t])?;
        write_npy(
            &dir.join("attention_mask.npy"),
            &self.attention_mask,
            &[b, t],
        )?;
        write_npy(&dir.join("mlm_positions.npy"), &self.mlm_positions, &[n])?;
        write_npy(&dir.join("mlm_labels.npy"), &self.mlm_labels, &[n])?;
        write_npy(
            &dir.join("region_features.npy"),
            &self.region_features,
            &[b, r, FEATURE_SIZE],
        )?;
        write_npy(
            &dir.join("region_boxes.npy"),
            &self.region_boxes,
            &[b, r, 4],
        )?;
        write_npy(&dir.join("itm_labels.npy"), &self.itm_labels, &[b])
    }

    /// `parts` consecutive row ranges of the batch, each with its share of the
    /// masked tokens and of the pairs (`[mlm, itm]`): the weights that make
    /// the parts' mean losses sum to the whole batch's.
    fn split(&self, parts: usize) -> Result<Vec<(Inputs, [f32; 2])>> {
        let Shape {
            batch,
            text_len,
            regions,
        } = self.shape;
        if parts > batch / 2 {
            bail!("--micro-batches {parts}: a batch of {batch} needs at least 2 pairs per micro-batch");
        }
        let total_masked = self.mlm_positions.len();
        let mut split = Vec::with_capacity(parts);
        for part in 0..parts {
            let rows = part * batch / parts..(part + 1) * batch / parts;
            let tokens = rows.start * text_len..rows.end * text_len;
            let (masked_positions, masked_labels): (Vec<i64>, Vec<i64>) = self
                .mlm_positions
                .iter()
                .zip(&self.mlm_labels)
                .filter(|(&position, _)| tokens.contains(&(position as usize)))
                .map(|(&position, &label)| (position - tokens.start as i64, label))
                .unzip();
            let features = rows.start * regions * FEATURE_SIZE..rows.end * regions * FEATURE_SIZE;
            let boxes = rows.start * regions * 4..rows.end * regions * 4;
            let shares = [
                masked_positions.len() as f32 / total_masked as f32,
                rows.len() as f32 / batch as f32,
            ];
            split.push((
                Inputs {
                    shape: Shape {
                        batch: rows.len(),
                        ..self.shape
                    },
                    input_ids: self.input_ids[tokens.clone()].to_vec(),
                    attention_mask: self.attention_mask[tokens].to_vec(),
                    mlm_positions: masked_positions,
                    mlm_labels: masked_labels,
                    region_features: self.region_features[features].to_vec(),
                    region_boxes: self.region_boxes[boxes].to_vec(),
                    itm_labels: self.itm_labels[rows].to_vec(),
                },
                shares,
            ));
        }
        Ok(split)
    }

    fn to_device<B: Backend>(&self, device: &B::Device) -> StepBatch<B> {
        let Shape {
            batch: b,
            text_len: t,
            regions: r,
        } = self.shape;
        let ints = |v: &[i64], shape: Vec<usize>| TensorData::new(v.to_vec(), shape);
        let n = self.mlm_positions.len();
        let padding: Vec<bool> = self.attention_mask.iter().map(|&m| m == 0).collect();
        StepBatch {
            input_ids: Tensor::from_data(ints(&self.input_ids, vec![b, t]), device),
            text_padding: Tensor::from_data(TensorData::new(padding, [b, t]), device),
            mlm_positions: Tensor::from_data(ints(&self.mlm_positions, vec![n]), device),
            mlm_labels: Tensor::from_data(ints(&self.mlm_labels, vec![n]), device),
            // Every image has all its regions: no region padding.
            regions: VisualBatch::Regions(RegionTensors {
                features: Tensor::from_data(
                    TensorData::new(self.region_features.clone(), [b, r, FEATURE_SIZE]),
                    device,
                ),
                boxes: Tensor::from_data(
                    TensorData::new(self.region_boxes.clone(), [b, r, 4]),
                    device,
                ),
                padding: Tensor::from_data(TensorData::new(vec![false; b * r], [b, r]), device),
                soft_labels: None,
            }),
            itm_labels: Tensor::from_data(ints(&self.itm_labels, vec![b]), device),
        }
    }
}

/// [`Inputs`] on a device.
struct StepBatch<B: Backend> {
    input_ids: Tensor<B, 2, Int>,
    text_padding: Tensor<B, 2, Bool>,
    mlm_positions: Tensor<B, 1, Int>,
    mlm_labels: Tensor<B, 1, Int>,
    regions: VisualBatch<B>,
    itm_labels: Tensor<B, 1, Int>,
}

/// The `uniter-bench` model: the single-stream backbone with region
/// features, BERT's MLM head and the ITM head.
#[derive(Module, Debug)]
pub struct UniterBench<B: Backend> {
    pub backbone: SingleStreamModel<B>,
    pub mlm_head: MlmHead<B>,
    pub itm_head: ItmHead<B>,
}

/// `uniter-bench`'s configuration for a text length (the position table
/// covers at least 32 tokens).
fn model_config(text_len: usize) -> SingleStreamConfig {
    let regions = RegionEmbeddingsConfig::new(FEATURE_SIZE, 256).with_dropout(0.1);
    SingleStreamConfig::new(VOCAB_SIZE, VisualEmbeddingsConfig::Regions(regions))
        .with_hidden_size(256)
        .with_num_layers(4)
        .with_num_heads(4)
        .with_intermediate_size(1024)
        .with_max_text_len(text_len.max(32))
        .with_dropout(0.1)
        .with_norm_first(false)
}

fn init_model<B: Backend>(text_len: usize, device: &B::Device) -> UniterBench<B> {
    let config = model_config(text_len);
    UniterBench {
        mlm_head: MlmHeadConfig::new(config.hidden_size, VOCAB_SIZE).init(device),
        itm_head: ItmHeadConfig::new(config.hidden_size).init(device),
        backbone: config.init(device),
    }
}

impl<B: Backend> UniterBench<B> {
    /// MLM and ITM losses of one batch, each `[1]`.
    fn losses(&self, batch: &StepBatch<B>) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let backbone = &self.backbone;
        let text = backbone.embed_text(batch.input_ids.clone());
        // UNITER's 7-d geometry is computed from the boxes inside the step.
        let regions = backbone.embed_image(&batch.regions);
        let fused = backbone.fuse(text, batch.text_padding.clone(), regions);
        let masked = gather_positions(fused.text, batch.mlm_positions.clone());
        let mlm_logits = self
            .mlm_head
            .forward(masked, backbone.embeddings.word_embedding_weight());
        let itm_logits = self.itm_head.forward(fused.pooled);
        (
            mlm_loss(mlm_logits, batch.mlm_labels.clone()),
            itm_loss(itm_logits, batch.itm_labels.clone()),
        )
    }
}

/// What one measurement (a vlp worker or the PyTorch script) reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measurement {
    samples_per_s: f64,
    ms_per_step: f64,
    rep_seconds: Vec<f64>,
    first_mlm_loss: f64,
    first_itm_loss: f64,
    /// Peak resident set size of the measuring process.
    peak_rss_mib: Option<f64>,
    parameters: usize,
    /// Mean ms per timed step in forward (with the losses), backward and the
    /// optimiser update. With micro-batches the forward and backward passes
    /// overlap: `forward` is 0 and `backward` holds both.
    phases_ms: Phases,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Phases {
    forward: f64,
    backward: f64,
    optimizer: f64,
}

/// Runs the benchmark (or, with `--worker`, one vlp measurement); see the module docs.
pub fn run(args: &BenchStepArgs) -> Result<()> {
    if args.threads == 0 || args.reps == 0 || args.steps == 0 || args.micro_batches == 0 {
        bail!("--threads, --steps, --reps and --micro-batches must be >= 1");
    }
    if let Some(mode) = args.worker {
        return worker(args, mode);
    }
    let root = repo_root();
    let (dir, keep) = match &args.keep_inputs {
        Some(dir) => (dir.clone(), true),
        None => (
            std::env::temp_dir().join(format!("vlp-bench-step-{}", std::process::id())),
            false,
        ),
    };
    let result = run_in(args, &root, &dir);
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The peak RSS of this process in MiB (`VmHWM`, the figure `/usr/bin/time -v`
/// reports); `None` off Linux.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn worker(args: &BenchStepArgs, mode: Mode) -> Result<()> {
    let shape = Shape::parse(args.shape.as_deref().context("--worker needs --shape")?)?;
    let out = args.out.as_ref().context("--worker needs --out")?;
    // The global pool serves Burn's CPU kernels (Flex's gemm uses it too).
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .context("building the rayon pool")?;
    let spec = args
        .device
        .or_else(device::default_device)
        .context("this build has no backend")?;
    let job = StepJob {
        shape,
        mode,
        seed: args.seed,
        warmup: args.warmup,
        steps: args.steps,
        reps: args.reps,
        micro_batches: args.micro_batches,
    };
    let mut measurement = device::dispatch(spec, job).map_err(anyhow::Error::msg)??;
    measurement.peak_rss_mib = peak_rss_mib();
    std::fs::write(out, serde_json::to_string(&measurement)?)
        .with_context(|| format!("writing {}", out.display()))
}

/// One timed step: adds its phase times, returns the MLM and ITM losses.
type StepFn = dyn FnMut(&mut Phases) -> Result<[f64; 2]>;

/// One vlp measurement on a backend.
struct StepJob {
    shape: Shape,
    mode: Mode,
    seed: u64,
    warmup: usize,
    steps: usize,
    reps: usize,
    micro_batches: usize,
}

impl BackendJob for StepJob {
    type Output = Result<Measurement>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        B::seed(&device, self.seed);
        let inputs = Inputs::generate(self.shape, self.seed);
        let model = init_model::<B>(self.shape.text_len, &device);
        let parameters = model.num_params();
        let mut phases = Phases::default();
        let sync = |device: &B::Device| {
            B::sync(device).map_err(|err| anyhow::anyhow!("backend error: {err:?}"))
        };
        let mut step: Box<StepFn> = match self.mode {
            Mode::Train if self.micro_batches > 1 => {
                let parts: Vec<(StepBatch<B>, [f32; 2])> = inputs
                    .split(self.micro_batches)?
                    .into_iter()
                    .map(|(part, shares)| (part.to_device::<B>(&device), shares))
                    .collect();
                let pools = MicroBatchPools::new(self.micro_batches)?;
                let mut optimizer = adamw().init::<B, UniterBench<B>>();
                let mut model = Some(model);
                let device = device.clone();
                Box::new(move |phases: &mut Phases| {
                    let current = model.take().expect("the model is put back after each step");
                    let start = Instant::now();
                    // Forward and backward overlap across micro-batches: one phase.
                    let (grads, values) = pools.accumulate_gradients(
                        &current,
                        &device,
                        parts.iter().collect(),
                        |copy, (part, [mlm_share, itm_share])| {
                            let (mlm, itm) = copy.losses(part);
                            let (mlm, itm) = (mlm * *mlm_share, itm * *itm_share);
                            let values = [scalar(mlm.clone()), scalar(itm.clone())];
                            Ok((mlm + itm, values))
                        },
                    )?;
                    sync(&device)?;
                    let backward = Instant::now();
                    model = Some(optimizer.step(1e-4, current, grads));
                    sync(&device)?;
                    phases.backward += (backward - start).as_secs_f64() * 1e3;
                    phases.optimizer += backward.elapsed().as_secs_f64() * 1e3;
                    Ok(values
                        .iter()
                        .fold([0.0; 2], |sum, v| [sum[0] + v[0], sum[1] + v[1]]))
                })
            }
            Mode::Train => {
                let batch = inputs.to_device::<B>(&device);
                let mut optimizer = adamw().init::<B, UniterBench<B>>();
                let mut model = Some(model);
                let device = device.clone();
                Box::new(move |phases: &mut Phases| {
                    let current = model.take().expect("the model is put back after each step");
                    let start = Instant::now();
                    let (mlm, itm) = current.losses(&batch);
                    let values = [scalar(mlm.clone()), scalar(itm.clone())];
                    let forward = Instant::now();
                    let grads = GradientsParams::from_grads((mlm + itm).backward(), &current);
                    sync(&device)?;
                    let backward = Instant::now();
                    model = Some(optimizer.step(1e-4, current, grads));
                    sync(&device)?;
                    phases.forward += (forward - start).as_secs_f64() * 1e3;
                    phases.backward += (backward - forward).as_secs_f64() * 1e3;
                    phases.optimizer += backward.elapsed().as_secs_f64() * 1e3;
                    Ok(values)
                })
            }
            Mode::Infer => {
                let batch = inputs.to_device::<B::InnerBackend>(&device);
                let model = model.valid();
                Box::new(move |phases: &mut Phases| {
                    let start = Instant::now();
                    let (mlm, itm) = model.losses(&batch);
                    let values = [scalar(mlm), scalar(itm)];
                    phases.forward += start.elapsed().as_secs_f64() * 1e3;
                    Ok(values)
                })
            }
        };
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

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        0.5 * (sorted[mid - 1] + sorted[mid])
    }
}

/// One measured case: vlp's and the reference's measurements.
struct Case {
    shape: Shape,
    mode: Mode,
    vlp: Measurement,
    vlp_others: Option<f64>,
    reference: Option<Measurement>,
    reference_others: Option<f64>,
    reference_versions: Option<serde_json::Value>,
}

/// One JSON result row (bench ot's columns plus throughput and memory).
#[derive(Debug, Serialize)]
struct Row {
    benchmark: String,
    /// Median ms per step.
    vlp_ms: f64,
    reference: String,
    reference_ms: Option<f64>,
    /// `reference_ms / vlp_ms` (= vlp samples/s over PyTorch samples/s).
    speedup: Option<f64>,
    vlp_samples_per_s: f64,
    reference_samples_per_s: Option<f64>,
    vlp_rss_mib: Option<f64>,
    reference_rss_mib: Option<f64>,
}

const REFERENCE_LABEL: &str = "PyTorch eager";

fn run_in(args: &BenchStepArgs, root: &Path, dir: &Path) -> Result<()> {
    let python = if args.no_reference {
        None
    } else {
        Some(python(args.python.as_deref(), root)?)
    };
    let spec = args
        .device
        .or_else(device::default_device)
        .context("this build has no backend")?;
    let mut plan = vec![(HEADLINE, Mode::Train), (HEADLINE, Mode::Infer)];
    if args.scaling {
        for shape in [
            Shape {
                batch: 64,
                ..HEADLINE
            },
            Shape {
                text_len: 64,
                ..HEADLINE
            },
            Shape {
                regions: 72,
                ..HEADLINE
            },
        ] {
            plan.push((shape, Mode::Train));
        }
    }
    eprintln!(
        "uniter-bench step: vlp on {spec}, {} threads, training in {} micro-batches, {} warm-up + {} × {} timed steps, seed {}",
        args.threads, args.micro_batches, args.warmup, args.reps, args.steps, args.seed
    );
    let mut cases = Vec::new();
    for (shape, mode) in plan {
        let case_dir = dir.join(shape.name());
        if !case_dir.join("itm_labels.npy").exists() {
            Inputs::generate(shape, args.seed).write(&case_dir)?;
        }
        let before = cpu_snapshot();
        let vlp = run_vlp_worker(args, spec, shape, mode, dir)?;
        let vlp_others = others_share(before, cpu_snapshot());
        eprintln!(
            "  vlp     {:<28} {:>7.2} samples/s, peak RSS {}",
            shape.benchmark(mode),
            vlp.samples_per_s,
            mib(vlp.peak_rss_mib)
        );
        let (mut reference, mut reference_others, mut reference_versions) = (None, None, None);
        if let Some(py) = &python {
            let before = cpu_snapshot();
            let (m, versions) = run_reference(py, root, args, &case_dir, mode, dir)?;
            reference_others = others_share(before, cpu_snapshot());
            eprintln!(
                "  PyTorch {:<28} {:>7.2} samples/s, peak RSS {}",
                shape.benchmark(mode),
                m.samples_per_s,
                mib(m.peak_rss_mib)
            );
            reference = Some(m);
            reference_versions = versions;
        }
        cases.push(Case {
            shape,
            mode,
            vlp,
            vlp_others,
            reference,
            reference_others,
            reference_versions,
        });
    }
    let rows = report(&cases, args, spec)?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn mib(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.0} MiB"))
}

/// Thread-count variables for a child process: rayon, ndarray's
/// matrixmultiply, OpenMP, MKL and OpenBLAS.
fn thread_env(command: &mut Command, threads: usize) {
    let threads = threads.to_string();
    for var in [
        "RAYON_NUM_THREADS",
        "MATMUL_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
    ] {
        command.env(var, &threads);
    }
}

fn run_vlp_worker(
    args: &BenchStepArgs,
    spec: DeviceSpec,
    shape: Shape,
    mode: Mode,
    dir: &Path,
) -> Result<Measurement> {
    let out = dir.join(format!("vlp-{}-{}.json", mode.name(), shape.name()));
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut command = Command::new(exe);
    command
        .args(["bench", "step", "--worker", mode.name(), "--shape"])
        .arg(shape.name())
        .arg("--out")
        .arg(&out)
        .arg("--device")
        .arg(spec.to_string());
    for (flag, value) in [
        ("--threads", args.threads as u64),
        ("--warmup", args.warmup as u64),
        ("--steps", args.steps as u64),
        ("--reps", args.reps as u64),
        ("--micro-batches", args.micro_batches as u64),
        ("--seed", args.seed),
    ] {
        command.arg(flag).arg(value.to_string());
    }
    thread_env(&mut command, args.threads);
    let status = command.status().context("running the vlp worker")?;
    if !status.success() {
        bail!(
            "the vlp worker ({} {}) failed ({status})",
            mode.name(),
            shape.name()
        );
    }
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", out.display()))
}

fn run_reference(
    py: &Path,
    root: &Path,
    args: &BenchStepArgs,
    inputs: &Path,
    mode: Mode,
    dir: &Path,
) -> Result<(Measurement, Option<serde_json::Value>)> {
    let script = root.join("benches/reference/uniter_step.py");
    let out = dir.join(format!(
        "reference-{}-{}.json",
        mode.name(),
        inputs
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("case")
    ));
    let mut command = Command::new(py);
    command
        .arg(&script)
        .arg("--inputs")
        .arg(inputs)
        .args(["--mode", mode.name()])
        .arg("--out")
        .arg(&out);
    for (flag, value) in [
        ("--threads", args.threads as u64),
        ("--warmup", args.warmup as u64),
        ("--steps", args.steps as u64),
        ("--reps", args.reps as u64),
        ("--seed", args.seed),
    ] {
        command.arg(flag).arg(value.to_string());
    }
    thread_env(&mut command, args.threads);
    // Older-OpenBLAS workarounds slow a current numpy down (as in bench ot).
    // OpenMP threads that spin while waiting collapse when other processes
    // share the cores (3-6× slower steps here, 1-2 s spent in AdamW alone);
    // passive waiting gives PyTorch its best figure on a shared machine.
    command
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .env("OMP_WAIT_POLICY", "PASSIVE");
    let status = command
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("the reference script failed ({status})");
    }
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", out.display()))?;
    let versions = value.get("versions").cloned();
    let measurement =
        serde_json::from_value(value).with_context(|| format!("parsing {}", out.display()))?;
    Ok((measurement, versions))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

fn report(cases: &[Case], args: &BenchStepArgs, spec: DeviceSpec) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut out = String::new();
    writeln!(
        out,
        "\n## Training step: vlp ({spec}) vs {REFERENCE_LABEL} (uniter-bench, {} threads, vlp training in {} micro-batches, median of {} × {} steps after {} warm-up)\n",
        args.threads, args.micro_batches, args.reps, args.steps, args.warmup
    )?;
    writeln!(
        out,
        "| benchmark | vlp samples/s | PyTorch samples/s | vlp / PyTorch | vlp peak RSS (MiB) | PyTorch peak RSS (MiB) | vlp / PyTorch RSS |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for case in cases {
        let reference = case.reference.as_ref();
        let row = Row {
            benchmark: case.shape.benchmark(case.mode),
            vlp_ms: case.vlp.ms_per_step,
            reference: REFERENCE_LABEL.to_string(),
            reference_ms: reference.map(|r| r.ms_per_step),
            speedup: reference.map(|r| r.ms_per_step / case.vlp.ms_per_step),
            vlp_samples_per_s: case.vlp.samples_per_s,
            reference_samples_per_s: reference.map(|r| r.samples_per_s),
            vlp_rss_mib: case.vlp.peak_rss_mib,
            reference_rss_mib: reference.and_then(|r| r.peak_rss_mib),
        };
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} | {} |",
            row.benchmark,
            row.vlp_samples_per_s,
            opt(row.reference_samples_per_s, 1),
            ratio(Some(row.vlp_samples_per_s), row.reference_samples_per_s),
            opt(row.vlp_rss_mib, 0),
            opt(row.reference_rss_mib, 0),
            ratio(row.vlp_rss_mib, row.reference_rss_mib),
        )?;
        rows.push(row);
    }

    // How cost grows when one dimension doubles (training, ms per step).
    let train: Vec<&Case> = cases.iter().filter(|c| c.mode == Mode::Train).collect();
    if let Some(base) = train.iter().find(|c| c.shape == HEADLINE) {
        if train.len() > 1 {
            writeln!(
                out,
                "\n### Scaling (training, ms per step; × = cost relative to b32-t32-r36)\n"
            )?;
            writeln!(
                out,
                "| shape | vlp ms/step | × | PyTorch ms/step | × | vlp / PyTorch samples/s |"
            )?;
            writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
            for c in &train {
                let growth = |m: Option<&Measurement>, b: Option<&Measurement>| match (m, b) {
                    (Some(m), Some(b)) => format!(
                        "{:.0} | {:.2}",
                        m.ms_per_step,
                        m.ms_per_step / b.ms_per_step
                    ),
                    _ => "- | -".into(),
                };
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    c.shape.name(),
                    growth(Some(&c.vlp), Some(&base.vlp)),
                    growth(c.reference.as_ref(), base.reference.as_ref()),
                    ratio(
                        Some(c.vlp.samples_per_s),
                        c.reference.as_ref().map(|r| r.samples_per_s)
                    ),
                )?;
            }
        }
    }

    writeln!(
        out,
        "\n### Where a step's time goes (ms per step, mean of the timed steps)\n"
    )?;
    writeln!(
        out,
        "| benchmark | side | forward + losses | backward | AdamW |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|")?;
    for case in cases {
        let sides = [
            ("vlp", Some(&case.vlp)),
            ("PyTorch", case.reference.as_ref()),
        ];
        for (side, m) in sides {
            if let Some(m) = m {
                let p = m.phases_ms;
                let (forward, backward) = if p.forward == 0.0 && p.backward > 0.0 {
                    (
                        "(overlapped)".to_string(),
                        format!("{:.0} (with forward)", p.backward),
                    )
                } else {
                    (format!("{:.0}", p.forward), format!("{:.0}", p.backward))
                };
                writeln!(
                    out,
                    "| {} | {side} | {forward} | {backward} | {:.0} |",
                    case.shape.benchmark(case.mode),
                    p.optimizer
                )?;
            }
        }
    }

    let head = &cases[0];
    writeln!(
        out,
        "\nSanity ({}): first-step losses vlp MLM {:.3} ITM {:.3}{}; ln 30522 = {:.3}, ln 2 = {:.3}. \
         Parameters: vlp {}{}.",
        head.shape.benchmark(head.mode),
        head.vlp.first_mlm_loss,
        head.vlp.first_itm_loss,
        head.reference.as_ref().map_or(String::new(), |r| format!(
            ", PyTorch MLM {:.3} ITM {:.3}",
            r.first_mlm_loss, r.first_itm_loss
        )),
        (VOCAB_SIZE as f64).ln(),
        2f64.ln(),
        head.vlp.parameters,
        head.reference
            .as_ref()
            .map_or(String::new(), |r| format!(", PyTorch {}", r.parameters)),
    )?;
    let mut noisy = Vec::new();
    for c in cases {
        for (side, share) in [("vlp", c.vlp_others), ("PyTorch", c.reference_others)] {
            if let Some(share) = share.filter(|&s| s > 0.1) {
                noisy.push(format!(
                    "{} ({side}, {:.0}%)",
                    c.shape.benchmark(c.mode),
                    share * 100.0
                ));
            }
        }
    }
    if noisy.is_empty() {
        writeln!(
            out,
            "Other processes used < 10% of the CPU during every measurement."
        )?;
    } else {
        writeln!(
            out,
            "WARNING: other processes used > 10% of the CPU while measuring {}; \
             rerun on an idle machine before quoting those cells.",
            noisy.join(", ")
        )?;
    }
    if let Some(v) = cases.iter().find_map(|c| c.reference_versions.as_ref()) {
        writeln!(out, "Reference: {v}")?;
    }
    print!("{out}");
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_round_trip_and_bad_ones_are_named() {
        let shape = Shape::parse("b64-t32-r72").unwrap();
        assert_eq!(
            shape,
            Shape {
                batch: 64,
                text_len: 32,
                regions: 72
            }
        );
        assert_eq!(shape.name(), "b64-t32-r72");
        assert_eq!(shape.benchmark(Mode::Train), "uniter-bench-train-b64-r72");
        assert_eq!(HEADLINE.benchmark(Mode::Infer), "uniter-bench-infer-b32");
        for bad in ["b32-t32", "x32-t32-r36", "b0-t32-r36", "b32-t32-r36-x"] {
            let err = Shape::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn inputs_follow_the_recipe() {
        let shape = Shape {
            batch: 8,
            text_len: 32,
            regions: 4,
        };
        let inputs = Inputs::generate(shape, 3);
        let again = Inputs::generate(shape, 3);
        assert_eq!(inputs.input_ids, again.input_ids);
        assert_eq!(inputs.region_features, again.region_features);
        assert_eq!(inputs.itm_labels.iter().sum::<i64>(), 4, "half negatives");
        for row in 0..8 {
            let mask = &inputs.attention_mask[row * 32..(row + 1) * 32];
            let len = mask.iter().sum::<i64>() as usize;
            assert!((12..=32).contains(&len));
            assert!(mask[..len].iter().all(|&m| m == 1));
            let ids = &inputs.input_ids[row * 32..(row + 1) * 32];
            assert_eq!(ids[0], 101);
            assert!(ids[len..].iter().all(|&id| id == 0));
        }
        assert_eq!(inputs.mlm_positions.len(), inputs.mlm_labels.len());
        for (&p, &label) in inputs.mlm_positions.iter().zip(&inputs.mlm_labels) {
            let (row, t) = (p as usize / 32, p as usize % 32);
            assert!(
                inputs.attention_mask[p as usize] == 1 && t > 0,
                "row {row} t {t}"
            );
            assert!((FIRST_WORD_ID..VOCAB_SIZE as i64).contains(&label));
        }
        assert!(inputs.region_features.iter().all(|&x| x >= 0.0));
        for b in inputs.region_boxes.chunks(4) {
            assert!(
                b[0] < b[2] && b[1] < b[3] && b[2] <= 1.0 && b[3] <= 1.0,
                "{b:?}"
            );
        }
    }

    #[test]
    fn steps_start_from_chance_level_losses() {
        use burn::backend::{Autodiff, NdArray};
        let shape = Shape {
            batch: 4,
            text_len: 8,
            regions: 3,
        };
        for (mode, micro_batches) in [(Mode::Train, 1), (Mode::Train, 2), (Mode::Infer, 1)] {
            let job = StepJob {
                shape,
                mode,
                seed: 1,
                warmup: 1,
                steps: 2,
                reps: 1,
                micro_batches,
            };
            let m = job.run::<Autodiff<NdArray>>(Default::default()).unwrap();
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
        let shape = Shape {
            batch: 6,
            text_len: 8,
            regions: 3,
        };
        let device = Default::default();
        let inputs = Inputs::generate(shape, 3);
        // Without autodiff dropout is off: the losses are deterministic.
        let model = init_model::<Flex>(shape.text_len, &device);
        let (mlm, itm) = model.losses(&inputs.to_device(&device));
        let parts = inputs.split(3).unwrap();
        assert_eq!(parts.iter().map(|(p, _)| p.shape.batch).sum::<usize>(), 6);
        let (mut mlm_sum, mut itm_sum, mut shares) = (0.0, 0.0, [0.0; 2]);
        for (part, [mlm_share, itm_share]) in &parts {
            let (part_mlm, part_itm) = model.losses(&part.to_device(&device));
            mlm_sum += scalar(part_mlm) * f64::from(*mlm_share);
            itm_sum += scalar(part_itm) * f64::from(*itm_share);
            shares = [shares[0] + mlm_share, shares[1] + itm_share];
        }
        assert!((shares[0] - 1.0).abs() < 1e-6 && (shares[1] - 1.0).abs() < 1e-6);
        assert!((mlm_sum - scalar(mlm)).abs() < 1e-4, "{mlm_sum}");
        assert!((itm_sum - scalar(itm)).abs() < 1e-5, "{itm_sum}");
        let error = inputs.split(4).err().unwrap().to_string();
        assert!(error.contains("--micro-batches 4"), "{error}");
    }

    #[test]
    fn npy_files_have_numpy_headers() {
        let dir = std::env::temp_dir().join(format!("vlp-bench-step-test-{}", std::process::id()));
        let inputs = Inputs::generate(
            Shape {
                batch: 2,
                text_len: 4,
                regions: 1,
            },
            0,
        );
        inputs.write(&dir).unwrap();
        let bytes = std::fs::read(dir.join("input_ids.npy")).unwrap();
        let header = String::from_utf8_lossy(&bytes[10..]);
        assert!(header.contains("'descr': '<i8'") && header.contains("'shape': (2, 4,)"));
        assert_eq!((bytes.len() - 8 * 8) % 64, 0);
        let features = std::fs::read(dir.join("region_features.npy")).unwrap();
        assert_eq!(features.len() - 2 * FEATURE_SIZE * 4, 128);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
