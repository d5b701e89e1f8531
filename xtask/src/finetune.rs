//! `cargo xtask finetune TASK` and `cargo xtask answer`: fine-tuning on
//! downstream data and answering with the result
//! ([`vlp_train::finetune`]); this module parses the flags and prints.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Subcommand};
use vlp_data::source::{ImagePattern, COCO_IMAGE_PATTERN};
use vlp_train::finetune::{
    PreparedVqa, VqaAnswerer, VqaFiles, VqaFinetune, VqaReport, VqaSettings,
};

use crate::device::{self, BackendJob, DeviceSpec};
use crate::progress::Progress;
use crate::{report, UsageError};

/// The tasks.
#[derive(Debug, Subcommand)]
pub enum FinetuneCommand {
    /// VQA on a dataset in the VQA v2 layout: answer classifier on the fused
    /// `[CLS]`, binary cross-entropy on soft scores, official accuracy.
    Vqa(VqaArgs),
}

/// Flags of `finetune vqa`.
#[derive(Debug, Args)]
pub struct VqaArgs {
    /// Training questions (`v2_OpenEnded_mscoco_train2014_questions.json`).
    #[arg(long)]
    questions: PathBuf,
    /// Training annotations (`v2_mscoco_train2014_annotations.json`).
    #[arg(long)]
    annotations: PathBuf,
    /// Training image folder.
    #[arg(long)]
    images: PathBuf,
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
    /// Optimiser steps [default: 4500].
    #[arg(long)]
    steps: Option<usize>,
    /// Questions per step [default: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate [default: 1e-3].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Seed of the head, the data order and dropout [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// The run folder to write.
    #[arg(long)]
    out: PathBuf,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// Runs a `finetune` command.
pub fn run(command: FinetuneCommand) -> anyhow::Result<()> {
    let FinetuneCommand::Vqa(args) = command;
    let pattern = ImagePattern::parse(&args.image_pattern)
        .map_err(|err| UsageError(format!("--image-pattern: {err}")))?;
    let files = |questions, annotations, images, split: &str| VqaFiles {
        questions,
        annotations,
        images,
        split: split.to_string(),
        image_pattern: pattern.clone(),
    };
    let defaults = VqaSettings::default();
    let settings = VqaSettings {
        steps: args.steps.unwrap_or(defaults.steps),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        learning_rate: args.learning_rate.unwrap_or(defaults.learning_rate),
        seed: args.seed.unwrap_or(defaults.seed),
        warmup_steps: args.steps.map_or(defaults.warmup_steps, |steps| steps / 10),
        ..defaults
    };
    let prepared = VqaFinetune {
        train: files(args.questions, args.annotations, args.images, "train"),
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
