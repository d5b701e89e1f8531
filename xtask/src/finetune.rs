//! `cargo xtask finetune TASK`, `cargo xtask eval TASK`, `cargo xtask
//! answer` and `cargo xtask caption`: fine-tuning on downstream data,
//! evaluating and answering with the result ([`vlp_train::finetune`]), and
//! captioning images with a generative run ([`vlp_train::caption`]); this
//! module parses the flags and prints.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Subcommand};
use vlp_data::source::{ImagePattern, COCO_IMAGE_PATTERN};
use vlp_train::caption::{generative, CaptionSettings, Captioner};
use vlp_train::finetune::{
    PreparedVqa, VqaAnswerer, VqaFiles, VqaFinetune, VqaReport, VqaSettings,
};
use vlp_train::PretrainRun;

use crate::device::{self, BackendJob, DeviceSpec};
use crate::progress::Progress;
use crate::{report, UsageError};

/// The tasks.
#[derive(Debug, Subcommand)]
pub enum FinetuneCommand {
    /// VQA on a dataset in the VQA v2 layout: answer classifier on the fused
    /// `[CLS]`, binary cross-entropy on soft scores, official accuracy.
    Vqa(VqaArgs),
    /// Captioning: a generative run (encoder_decoder, prefix_lm) trained on
    /// a caption dataset with PrefixLM, held-out BLEU-1..4 and CIDEr-D.
    Caption(CaptionFinetuneArgs),
}

/// Flags of `finetune caption`.
#[derive(Debug, Args)]
pub struct CaptionFinetuneArgs {
    /// The generative pre-training run to start from (its model, tokenizer
    /// and configuration).
    #[arg(long)]
    init: PathBuf,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Beam size of the held-out captions, 1: greedy [default: the run's].
    #[arg(long)]
    beam_size: Option<usize>,
    /// α of the beam's ranking `log_prob / len^α` [default: the run's].
    #[arg(long)]
    length_penalty: Option<f64>,
    #[command(flatten)]
    data: crate::data::DatasetArgs,
    /// The run folder to write (`pretrain --resume` continues it).
    #[arg(long)]
    out: PathBuf,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    pub device: Option<DeviceSpec>,
}

/// The optimisation flags of every task; unset, they keep the task's
/// defaults (VQA: 4,500 steps of 64 questions at 1e-3, seed 42; captioning:
/// the init run's).
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Optimiser steps, the warm-up a tenth of them.
    #[arg(long)]
    steps: Option<usize>,
    /// Samples (questions, image-caption pairs) per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Seed of the data order, dropout and any new head.
    #[arg(long)]
    seed: Option<u64>,
}

/// The run `finetune caption` trains: the init run with the flags' data,
/// schedule and decoding.
pub fn caption_run(args: &CaptionFinetuneArgs) -> anyhow::Result<PretrainRun> {
    let mut run = PretrainRun::starting_from(&args.init, args.out.clone()).map_err(report)?;
    generative(&run.config, &args.init).map_err(report)?;
    let config = &mut run.config;
    let schedule = &args.schedule;
    if let Some(steps) = schedule.steps {
        (config.steps, config.warmup_steps) = (steps, steps / 10);
    }
    config.batch_size = schedule.batch_size.unwrap_or(config.batch_size);
    config.learning_rate = schedule.learning_rate.unwrap_or(config.learning_rate);
    config.seed = schedule.seed.unwrap_or(config.seed);
    config.caption_beam_size = args.beam_size.unwrap_or(config.caption_beam_size);
    config.caption_length_penalty = args.length_penalty.unwrap_or(config.caption_length_penalty);
    args.data.apply(&mut config.data)?;
    config
        .validate()
        .map_err(|err| UsageError(err.to_string()))?;
    Ok(run)
}

/// One split of a dataset in the VQA v2 layout.
#[derive(Debug, Args)]
pub struct VqaSplitArgs {
    /// The questions (`v2_OpenEnded_mscoco_{train,val}2014_questions.json`).
    #[arg(long)]
    questions: PathBuf,
    /// Their annotations (`v2_mscoco_{train,val}2014_annotations.json`).
    #[arg(long)]
    annotations: PathBuf,
    /// The image folder.
    #[arg(long)]
    images: PathBuf,
}

/// Flags of `finetune vqa`.
#[derive(Debug, Args)]
pub struct VqaArgs {
    /// The training split.
    #[command(flatten)]
    train: VqaSplitArgs,
    /// Held-out questions.
    #[arg(long)]
    val_questions: PathBuf,
    /// Held-out annotations.
    #[arg(long)]
    val_annotations: PathBuf,
    /// Held-out image folder.
    #[arg(long)]
    val_images: PathBuf,
    /// Image file names: `{split}` (train, val), `{image_id}`, `{image_id:012}`.
    #[arg(long, default_value = COCO_IMAGE_PATTERN)]
    image_pattern: String,
    /// A pre-training run folder to start from (default: from scratch).
    #[arg(long)]
    init: Option<PathBuf>,
    /// A `tokenizer.json` when starting from scratch (default: a WordPiece
    /// trained on the training questions).
    #[arg(long, conflicts_with = "init")]
    tokenizer: Option<PathBuf>,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// The run folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its latest checkpoint (give the same
    /// data, --init and settings).
    #[arg(long)]
    resume: bool,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// Runs `finetune vqa`.
pub fn run(args: VqaArgs) -> anyhow::Result<()> {
    let pattern = ImagePattern::parse(&args.image_pattern)
        .map_err(|err| UsageError(format!("--image-pattern: {err}")))?;
    let files = |questions, annotations, images, split: &str| VqaFiles {
        questions,
        annotations,
        images,
        split: split.to_string(),
        image_pattern: pattern.clone(),
    };
    let (defaults, schedule) = (VqaSettings::default(), &args.schedule);
    let settings = VqaSettings {
        steps: schedule.steps.unwrap_or(defaults.steps),
        batch_size: schedule.batch_size.unwrap_or(defaults.batch_size),
        learning_rate: schedule.learning_rate.unwrap_or(defaults.learning_rate),
        seed: schedule.seed.unwrap_or(defaults.seed),
        warmup_steps: schedule
            .steps
            .map_or(defaults.warmup_steps, |steps| steps / 10),
        ..defaults
    };
    let prepared = VqaFinetune {
        train: files(
            args.train.questions,
            args.train.annotations,
            args.train.images,
            "train",
        ),
        val: files(
            args.val_questions,
            args.val_annotations,
            args.val_images,
            "val",
        ),
        init: args.init,
        tokenizer: args.tokenizer,
        out: args.out.clone(),
        settings,
        resume: args.resume,
    }
    .prepare()
    .map_err(report)?;
    let (train, val) = prepared.questions();
    eprintln!(
        "VQA: {train} training and {val} held-out questions, {} answers; \
         unknown word pieces in the training questions: {:.2}%",
        prepared.num_answers(),
        100.0 * prepared.unknown_token_rate
    );
    let device = device::chosen(args.device)?;
    let job = VqaJob {
        prepared,
        out: args.out.clone(),
        device: device.to_string(),
    };
    let report = device::dispatch(device, job).map_err(UsageError)??;
    println!("{}", report.vqa.summary());
    println!("run folder: {}", args.out.display());
    println!(
        "report: {}",
        args.out.join(vlp_train::report::REPORT_FILE).display()
    );
    Ok(())
}

/// A VQA fine-tuning on the chosen backend, with progress on stderr.
struct VqaJob {
    prepared: PreparedVqa,
    out: PathBuf,
    device: String,
}

impl BackendJob for VqaJob {
    type Output = anyhow::Result<VqaReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let config = self.prepared.schedule();
        let mut progress = Progress::new(&config, &self.device, Some(self.out))
            .with_task("fine-tuning", "questions");
        self.prepared
            .run::<B>(&device, &mut progress)
            .map_err(report)
    }
}

/// Flags of `answer`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// A run folder written by `finetune vqa`.
    #[arg(long)]
    run: PathBuf,
    /// The image file.
    image: PathBuf,
    /// The question.
    question: String,
    /// How many answers to list.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// Prints the most likely answers to a question about an image.
pub fn answer(args: AnswerArgs) -> anyhow::Result<()> {
    let device = device::chosen(args.device)?;
    let answers = device::dispatch(device, AnswerJob(args)).map_err(UsageError)??;
    for (answer, probability) in answers {
        println!("{probability:.3}  {answer}");
    }
    Ok(())
}

/// One question on the chosen backend (its inference backend: no dropout).
struct AnswerJob(AnswerArgs);

impl BackendJob for AnswerJob {
    type Output = anyhow::Result<Vec<(String, f32)>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let args = self.0;
        let answerer = VqaAnswerer::<B::InnerBackend>::load(&args.run, &device).map_err(report)?;
        answerer
            .answer(&args.image, &args.question, args.top, &device)
            .map_err(report)
    }
}

/// The downstream evaluations of `cargo xtask eval`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// The official VQA accuracy of a `finetune vqa` run on a split in the
    /// VQA v2 layout, overall and per answer type.
    Vqa(VqaEvalArgs),
}

/// Flags of `eval vqa`.
#[derive(Debug, Args)]
pub struct VqaEvalArgs {
    /// A run folder written by `finetune vqa`.
    #[arg(long)]
    run: PathBuf,
    /// The split to score.
    #[command(flatten)]
    split_files: VqaSplitArgs,
    /// Image file names: `{split}`, `{image_id}`, `{image_id:012}`.
    #[arg(long, default_value = COCO_IMAGE_PATTERN)]
    image_pattern: String,
    /// The split's name in image file names (`{split}`).
    #[arg(long, default_value = "val")]
    split: String,
    /// Also write `{"vqa": …}` (as `eval.json` has it) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// Runs an `eval TASK` command.
pub fn eval(command: EvalCommand) -> anyhow::Result<()> {
    let EvalCommand::Vqa(args) = command;
    let image_pattern = ImagePattern::parse(&args.image_pattern)
        .map_err(|err| UsageError(format!("--image-pattern: {err}")))?;
    let split = args.split_files;
    let files = VqaFiles {
        questions: split.questions,
        annotations: split.annotations,
        images: split.images,
        split: args.split.clone(),
        image_pattern,
    };
    let device = device::chosen(args.device)?;
    let job = VqaEvalJob {
        run: args.run.clone(),
        files,
    };
    let report = device::dispatch(device, job).map_err(UsageError)??;
    println!("{}", report.vqa.summary());
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(out, json + "\n")
            .map_err(|err| UsageError(format!("--out {}: {err}", out.display())))?;
    }
    Ok(())
}

/// A fine-tuned run's accuracy on the chosen backend (its inference
/// backend: no dropout).
struct VqaEvalJob {
    run: PathBuf,
    files: VqaFiles,
}

impl BackendJob for VqaEvalJob {
    type Output = anyhow::Result<VqaReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        eprintln!(
            "evaluating {} on {}",
            self.run.display(),
            self.files.questions.display()
        );
        let answerer = VqaAnswerer::<B::InnerBackend>::load(&self.run, &device).map_err(report)?;
        answerer.evaluate(&self.files, &device).map_err(report)
    }
}

/// Flags of `caption`.
#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// A run folder of an encoder_decoder or prefix_lm model (e.g.
    /// `pretrain --preset simvlm-tiny`).
    #[arg(long)]
    run: PathBuf,
    /// The image files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Beam hypotheses, 1: greedy [default: the run's caption_beam_size].
    #[arg(long)]
    beam_size: Option<usize>,
    /// α of the beam's ranking `log_prob / len^α`, 0: by probability alone
    /// [default: the run's caption_length_penalty].
    #[arg(long)]
    length_penalty: Option<f64>,
    /// Most tokens per caption, `[SEP]` included [default: the run's
    /// data.max_text_len].
    #[arg(long)]
    max_len: Option<usize>,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// Prints one caption per image: `path<TAB>caption`.
pub fn caption(args: CaptionArgs) -> anyhow::Result<()> {
    let device = device::chosen(args.device)?;
    let images = args.images.clone();
    let captions = device::dispatch(device, CaptionJob(args)).map_err(UsageError)??;
    for (image, caption) in images.iter().zip(captions) {
        println!("{}\t{caption}", image.display());
    }
    Ok(())
}

/// Captions on the chosen backend (its inference backend: no dropout).
struct CaptionJob(CaptionArgs);

impl BackendJob for CaptionJob {
    type Output = anyhow::Result<Vec<String>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let args = self.0;
        let captioner = Captioner::<B::InnerBackend>::load(&args.run, &device).map_err(report)?;
        let run = captioner.settings;
        let settings = CaptionSettings {
            beam_size: args.beam_size.unwrap_or(run.beam_size),
            length_penalty: args.length_penalty.unwrap_or(run.length_penalty),
            max_len: args.max_len.unwrap_or(run.max_len),
            ..run
        };
        captioner
            .caption(&args.images, &settings, &device)
            .map_err(report)
    }
}
