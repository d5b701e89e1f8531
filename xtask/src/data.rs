//! `cargo xtask data export | check`: the synthetic world written as a real
//! dataset, and a dataset's annotations and image files checked (issue 15).
//! The work is in [`vlp_data::source`]; this module parses and prints.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vlp_data::source::{check, export, ExportFormat, ExportOptions};
use vlp_data::synthetic::SyntheticWorld;

use crate::UsageError;

/// `cargo xtask data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the synthetic world as a dataset: PNG images with annotation
    /// files, or tar shards.
    Export(ExportArgs),
    /// Read every annotation of a dataset and check that each image file
    /// exists and is not empty; exit code 2 on problems.
    Check(CheckArgs),
}

/// `cargo xtask data export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// coco, karpathy, jsonl, lavis, csv, tsv, webdataset or vqa2.
    #[arg(long)]
    format: ExportFormat,
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
}

/// `cargo xtask data check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The dataset's folder, laid out as `data export` writes the format.
    path: PathBuf,
    /// The dataset's format (as for `data export`).
    #[arg(long)]
    format: ExportFormat,
}

/// Runs a `data` subcommand.
pub fn run(command: &DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Export(args) => {
            if args.shard_size == 0 {
                return Err(UsageError("--shard-size must be positive".into()).into());
            }
            let options = ExportOptions {
                format: args.format,
                scenes: args.scenes,
                held_out: args.held_out.unwrap_or((args.scenes / 10).max(1)),
                shard_size: args.shard_size,
            };
            let world = SyntheticWorld::new(args.seed, args.image_size);
            let summary =
                export(&world, &options, &args.out).map_err(|e| UsageError(e.to_string()))?;
            println!("{summary}");
            Ok(())
        }
        DataCommand::Check(args) => {
            let report = check(&args.path, args.format).map_err(|e| UsageError(e.to_string()))?;
            for problem in &report.problems {
                println!("{problem}");
            }
            let splits: Vec<String> = report
                .splits
                .iter()
                .map(|(split, count)| format!("{split} {count}"))
                .collect();
            let summary = format!(
                "{}: {} samples ({}), {} images, {} problems",
                args.path.display(),
                report.samples,
                splits.join(", "),
                report.images,
                report.problems.len()
            );
            if report.problems.is_empty() {
                println!("{summary}");
                Ok(())
            } else {
                Err(UsageError(summary).into())
            }
        }
    }
}
