//! `cargo xtask search` and `classify`, and `embed --run`: inference in a
//! pre-training run's joint text-image space ([`vlp_train::inference`]);
//! this module parses arguments and prints.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use vlp_train::inference::run_embed::{embed_run, RunEmbedded};
use vlp_train::inference::search::{search, SearchResult};
use vlp_train::inference::zero_shot::{
    classify, read_templates, ZeroShotReport, CLASSIFY_FILE, DEFAULT_TEMPLATES,
};

use crate::device::{self, BackendJob, DeviceSpec};
use crate::{report, UsageError};

/// `cargo xtask search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A run folder written by `cargo xtask pretrain` (a model with a joint space).
    #[arg(long)]
    run: PathBuf,
    /// The folder of images to search (its image files, not sub-folders).
    #[arg(long)]
    images: PathBuf,
    /// The query.
    query: String,
    /// How many images to list.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

impl BackendJob for SearchArgs {
    type Output = vlp_train::Result<SearchResult>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        search::<B>(&self.run, &self.images, &self.query, self.top, &device)
    }
}

/// Prints the best images for the query, one `score  path` line each.
pub fn search_images(args: SearchArgs) -> anyhow::Result<()> {
    let device = device::chosen(args.device)?;
    let found = device::dispatch(device, args).map_err(UsageError)?;
    let found = found.map_err(report)?;
    println!("{}", found.lines());
    if let Some(first) = found.data.reasons.first() {
        eprintln!(
            "{} unreadable images skipped (first: {first})",
            found.data.skipped
        );
    }
    Ok(())
}

/// `cargo xtask classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// A run folder written by `cargo xtask pretrain` (a model with a joint space).
    #[arg(long)]
    run: PathBuf,
    /// A folder with one sub-folder of images per class (its name, `_` read
    /// as a space, is the class name).
    #[arg(long)]
    images: PathBuf,
    /// Prompt templates, one per line, `{}` for the class name (default:
    /// "a photo of a {}.", "a picture of a {}", "{}").
    #[arg(long)]
    templates: Option<PathBuf>,
    /// The k of top-k accuracy.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print the report as JSON instead of the table (and write no classify.json).
    #[arg(long)]
    json: bool,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// The arguments with their templates read.
struct ClassifyJob(ClassifyArgs, Vec<String>);

impl BackendJob for ClassifyJob {
    type Output = vlp_train::Result<ZeroShotReport>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let ClassifyJob(args, templates) = self;
        classify::<B>(&args.run, &args.images, &templates, args.top, &device)
    }
}

/// Prints the zero-shot accuracy table (and writes `RUN/classify.json`) or
/// the report as JSON.
pub fn classify_images(args: ClassifyArgs) -> anyhow::Result<()> {
    let device = device::chosen(args.device)?;
    let templates = match &args.templates {
        Some(path) => read_templates(path).map_err(report)?,
        None => DEFAULT_TEMPLATES.map(String::from).to_vec(),
    };
    let (json, run) = (args.json, args.run.clone());
    let result = device::dispatch(device, ClassifyJob(args, templates)).map_err(UsageError)?;
    let result = result.map_err(report)?;
    if json {
        println!("{}", result.json());
    } else {
        let path = run.join(CLASSIFY_FILE);
        result.write(&path).map_err(report)?;
        println!("{}\nreport: {}", result.table(), path.display());
    }
    Ok(())
}

/// `embed --run`: texts and/or images embedded by a run's model.
pub struct RunEmbedJob {
    /// The run folder.
    pub run: PathBuf,
    /// The texts file.
    pub texts: Option<PathBuf>,
    /// The image folder.
    pub images: Option<PathBuf>,
    /// The `.npy` to write.
    pub out: PathBuf,
    /// Texts or images per pass.
    pub batch_size: usize,
}

impl BackendJob for RunEmbedJob {
    type Output = vlp_train::Result<RunEmbedded>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (texts, images) = (self.texts.as_deref(), self.images.as_deref());
        embed_run::<B>(
            &self.run,
            texts,
            images,
            &self.out,
            self.batch_size,
            &device,
        )
    }
}
