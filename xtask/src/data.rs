//! `cargo xtask data export | check`: the synthetic world written as a real
//! dataset, and a dataset's annotations and image files checked (issue 15).
//! The work is in [`vlp_data::source`]; this module parses and prints.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Subcommand};
use vlp_data::source::{
    check, check_spec, export, export_msrvtt, export_regions, DatasetSpec, ExportFormat,
    ExportOptions, VideoExportOptions,
};
use vlp_data::synthetic::{DetectorConfig, SyntheticDetector, SyntheticWorld};
use vlp_train::config::DataConfig;

use crate::UsageError;

/// `cargo xtask data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the synthetic world as a dataset: PNG images with annotation
    /// files, or tar shards; or its motion clips as MSR-VTT videos.
    Export(ExportArgs),
    /// Read every annotation of a dataset and decode every image; print
    /// each problem with its file; exit code 2 on problems.
    Check(CheckArgs),
}

/// What `data export` writes: an image-text format, or MSR-VTT's layout
/// of the world's motion clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportTarget {
    /// Captioned images (or VQA v2's questions).
    Images(ExportFormat),
    /// `videodatainfo.json`, `frames/<video_id>/`, `features/<video_id>.npy`.
    MsrVtt,
}

impl FromStr for ExportTarget {
    type Err = UsageError;

    fn from_str(text: &str) -> Result<Self, UsageError> {
        match text {
            "msrvtt" => Ok(ExportTarget::MsrVtt),
            _ => ExportFormat::from_str(text)
                .map(ExportTarget::Images)
                .map_err(|e| UsageError(format!("{e}, msrvtt"))),
        }
    }
}

/// `cargo xtask data export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// coco, karpathy, jsonl, lavis, csv, tsv, webdataset, vqa2, or msrvtt
    /// (the world's motion clips: frame folders and .npy frame features).
    #[arg(long)]
    format: ExportTarget,
    /// Folder to write (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Training scenes.
    #[arg(long, default_value_t = 1000)]
    scenes: usize,
    /// Validation and test scenes each (default: a tenth of --scenes, at least 1).
    #[arg(long)]
    held_out: Option<usize>,
    /// The world's seed (the runner's `seed`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image side in pixels (the runner's `data.image_size`).
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Samples per tar shard (webdataset).
    #[arg(long, default_value_t = 1000)]
    shard_size: usize,
    /// Frames per clip (msrvtt).
    #[arg(long, default_value_t = 8)]
    frames: usize,
    /// Motion twins beside each held-out clip: same objects and first
    /// frame, one object moving another way (msrvtt).
    #[arg(long, default_value_t = 1)]
    twins: usize,
    /// Also write each image's detector regions (the runner's default
    /// detector, 64-d features) as `regions/<key>.npz`, for `--regions`.
    #[arg(long)]
    regions: bool,
}

/// `cargo xtask data check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The dataset's folder, laid out as `data export` writes the format
    /// (or name the files with --annotations/--images or --shards).
    path: Option<PathBuf>,
    /// The dataset's format (as for `data export`).
    #[arg(long)]
    format: ExportFormat,
    /// The files, instead of a folder.
    #[command(flatten)]
    files: DatasetFiles,
}

/// A dataset's files on the command line (`data check`, and `pretrain`'s
/// training set).
#[derive(Debug, Args)]
pub struct DatasetFiles {
    /// The annotation file (captions_train2017.json, dataset_coco.json, train.jsonl, ...).
    #[arg(long)]
    annotations: Option<PathBuf>,
    /// The image folder the annotations name files in (coco, karpathy, lavis).
    #[arg(long)]
    images: Option<PathBuf>,
    /// WebDataset shards, a brace pattern such as `data-{00000..00099}.tar`.
    #[arg(long)]
    shards: Option<String>,
    /// The images' region features, read in their place by a model on
    /// regions: a folder of per-image .npz files or a BUTD TSV file.
    #[arg(long)]
    regions: Option<PathBuf>,
}

impl DatasetFiles {
    fn any(&self) -> bool {
        let files = [&self.annotations, &self.images, &self.regions];
        files.iter().any(|file| file.is_some()) || self.shards.is_some()
    }

    /// The dataset of `format` these files make, paths made absolute.
    fn spec(&self, format: ExportFormat) -> DatasetSpec {
        let files = [&self.annotations, &self.images, &self.regions];
        spec(format, files, &self.shards)
    }
}

/// The runner's dataset flags (`pretrain --format F --annotations FILE
/// --images DIR`, or `--shards PATTERN`; the held-out set likewise with
/// `--val-…`), which replace `[[data.sources]]` and `[data.held_out]`.
#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// Train on a dataset of this format instead of the synthetic world:
    /// coco, karpathy, lavis, jsonl, csv, tsv or webdataset [config: data.sources].
    #[arg(long)]
    format: Option<ExportFormat>,
    /// The training set's files.
    #[command(flatten)]
    train: DatasetFiles,
    /// The held-out annotation file (a Karpathy file's own `val` split when not given) [config: data.held_out].
    #[arg(long)]
    val_annotations: Option<PathBuf>,
    /// The held-out images' folder.
    #[arg(long)]
    val_images: Option<PathBuf>,
    /// Held-out WebDataset shards.
    #[arg(long)]
    val_shards: Option<String>,
    /// The held-out images' region features.
    #[arg(long)]
    val_regions: Option<PathBuf>,
}

/// `path` made absolute, so that a run folder's configuration still names
/// the dataset from another working directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The dataset of `format` with the files `[annotations, images, regions]`
/// and `shards`, paths made absolute.
fn spec(
    format: ExportFormat,
    files: [&Option<PathBuf>; 3],
    shards: &Option<String>,
) -> DatasetSpec {
    let [annotations, images, regions] = files.map(|file| file.as_deref().map(absolute));
    DatasetSpec {
        annotations,
        images,
        regions,
        shards: shards
            .as_deref()
            .map(|pattern| absolute(Path::new(pattern)).display().to_string()),
        ..DatasetSpec::new(format)
    }
}

impl DatasetArgs {
    /// Writes the flags given into `data`; dataset flags without `--format`
    /// are a usage error.
    pub fn apply(&self, data: &mut DataConfig) -> Result<(), UsageError> {
        let Some(format) = self.format else {
            let any = self.train.any()
                || self.val_annotations.is_some()
                || self.val_images.is_some()
                || self.val_shards.is_some()
                || self.val_regions.is_some();
            return match any {
                true => Err(UsageError(
                    "dataset flags need --format (coco, karpathy, lavis, jsonl, csv, tsv, webdataset)"
                        .into(),
                )),
                false => Ok(()),
            };
        };
        data.sources = vec![self.train.spec(format)];
        if self.val_annotations.is_some() || self.val_shards.is_some() {
            let files = [&self.val_annotations, &self.val_images, &self.val_regions];
            data.held_out = Some(spec(format, files, &self.val_shards));
        }
        Ok(())
    }
}

/// Runs a `data` subcommand.
pub fn run(command: &DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Export(args) => {
            if args.shard_size == 0 {
                return Err(UsageError("--shard-size must be positive".into()).into());
            }
            let held_out = args.held_out.unwrap_or((args.scenes / 10).max(1));
            let world = SyntheticWorld::new(args.seed, args.image_size);
            let usage = |e: vlp_data::DataError| UsageError(e.to_string());
            let format = match args.format {
                ExportTarget::Images(format) => format,
                ExportTarget::MsrVtt => {
                    if args.regions {
                        return Err(UsageError("--regions is for image formats".into()).into());
                    }
                    let options = VideoExportOptions {
                        scenes: args.scenes,
                        held_out,
                        twins: args.twins,
                        num_frames: args.frames,
                    };
                    println!(
                        "{}",
                        export_msrvtt(&world, &options, &args.out).map_err(usage)?
                    );
                    return Ok(());
                }
            };
            let options = ExportOptions {
                format,
                scenes: args.scenes,
                held_out,
                shard_size: args.shard_size,
            };
            let summary = export(&world, &options, &args.out).map_err(usage)?;
            println!("{summary}");
            if args.regions {
                let detector = SyntheticDetector::new(args.seed, DetectorConfig::default());
                let dir = export_regions(&world, &detector, &summary).map_err(usage)?;
                println!("region features: {}", dir.display());
            }
            Ok(())
        }
        DataCommand::Check(args) => {
            let files = &args.files;
            let (name, report) = match (
                &args.path,
                files.annotations.is_some() || files.shards.is_some(),
            ) {
                (Some(path), false) => (path.display().to_string(), check(path, args.format)),
                (None, true) => {
                    let spec = files.spec(args.format);
                    let name = spec.annotations.as_ref().map(|p| p.display().to_string());
                    (
                        name.or(spec.shards.clone()).unwrap_or_default(),
                        check_spec(&spec),
                    )
                }
                _ => {
                    let both =
                        "data check takes a dataset folder or --annotations/--shards, not both";
                    return Err(UsageError(both.into()).into());
                }
            };
            let report = report.map_err(|e| UsageError(e.to_string()))?;
            for problem in &report.problems {
                println!("{problem}");
            }
            if !report.problems.is_empty() {
                return Err(UsageError(format!("{name}: {report}")).into());
            }
            println!("{name}: {report}");
            Ok(())
        }
    }
}
