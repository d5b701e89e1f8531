//! `cargo xtask explain RUN IMAGE CAPTION`: the word-patch maps of
//! [`vlp_train::explain`] drawn over the image — `ot_plan.png` (UNITER's
//! WRA transport plan) and `attention.png` (the last layer's text→image
//! attention), one tile per word piece — and the numbers in
//! `explain.json`; this module parses arguments and draws.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use plotters::prelude::*;
use vlp_train::explain::{explain, Explanation};

use crate::device::{self, BackendJob, DeviceSpec};
use crate::{report, UsageError};

/// `cargo xtask explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A single-stream run folder written by `cargo xtask pretrain`.
    run: PathBuf,
    /// The image file.
    image: PathBuf,
    /// The caption.
    caption: String,
    /// Where the pictures go (default: RUN/explain).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `flex`, `ndarray`, `wgpu[:N]` or `cuda[:N]`.
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

impl BackendJob for ExplainArgs {
    type Output = vlp_train::Result<Explanation>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        explain::<B::InnerBackend>(&self.run, &self.image, &self.caption, &device)
    }
}

/// Pixels of a tile's side.
pub const TILE: u32 = 128;
/// Pixels of the label above a tile.
pub const LABEL: u32 = 22;
/// Tiles per row.
pub const COLUMNS: usize = 6;

/// Writes the two maps and `explain.json`, and prints where.
pub fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let device = device::chosen(args.device)?;
    let out = args.out.clone().unwrap_or_else(|| args.run.join("explain"));
    let explained = device::dispatch(device, args)
        .map_err(UsageError)?
        .map_err(report)?;
    std::fs::create_dir_all(&out)
        .map_err(|err| anyhow!("cannot create {}: {err}", out.display()))?;
    let plan_share: Vec<f32> = explained
        .plan
        .chunks(explained.grid * explained.grid)
        .flat_map(|row| {
            let sum: f32 = row.iter().sum();
            row.iter().map(move |v| v / sum.max(f32::MIN_POSITIVE))
        })
        .collect();
    let pictures = [
        (
            "ot_plan.png",
            &plan_share,
            "word-patch transport plan (WRA)",
        ),
        (
            "attention.png",
            &explained.attention,
            "last layer's text-to-image attention",
        ),
    ];
    for (name, values, title) in pictures {
        let path = out.join(name);
        heat_maps(&explained, values, title, &path)?;
        println!("{}", path.display());
    }
    let json = out.join("explain.json");
    std::fs::write(&json, serde_json::to_string_pretty(&explained)? + "\n")
        .map_err(|err| anyhow!("cannot write {}: {err}", json.display()))?;
    println!("{}", json.display());
    Ok(())
}

/// One tile per word: the image with the word's weights over the patch
/// grid (`values` `[words, grid²]`, from each row's minimum to its maximum)
/// laid over it, from clear through red to yellow.
fn heat_maps(
    explained: &Explanation,
    values: &[f32],
    title: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let draw_error = |err: &dyn std::fmt::Display| anyhow!("cannot draw {}: {err}", path.display());
    let (words, grid, image) = (&explained.words, explained.grid, &explained.image);
    let columns = words.len().clamp(1, COLUMNS);
    let rows = words.len().div_ceil(columns);
    let size = (columns as u32 * TILE, LABEL + rows as u32 * (TILE + LABEL));
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let with_text = crate::plot::register_font();
    let font = |size| ("sans-serif", size).into_font().color(&BLACK);
    if with_text {
        root.draw(&Text::new(title, (4, 3), font(16)))
            .map_err(|e| draw_error(&e))?;
    }
    let patches = grid * grid;
    for (i, word) in words.iter().enumerate() {
        let row = &values[i * patches..(i + 1) * patches];
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let min = row.iter().copied().fold(f32::MAX, f32::min);
        // Contrast within the word's row: its least-weighted patch shows
        // the image alone, its most-weighted one the most heat; a flat row
        // (nothing singled out) shows the image alone.
        let range = if max - min > 1e-6 * max.abs() {
            max - min
        } else {
            f32::INFINITY
        };
        let (x0, y0) = (
            (i % columns) as u32 * TILE,
            LABEL + (i / columns) as u32 * (TILE + LABEL),
        );
        if with_text {
            root.draw(&Text::new(
                word.as_str(),
                (x0 as i32 + 4, y0 as i32 + 3),
                font(15),
            ))
            .map_err(|e| draw_error(&e))?;
        }
        for y in 0..TILE {
            for x in 0..TILE {
                let (ix, iy) = (
                    x as usize * image.width / TILE as usize,
                    y as usize * image.height / TILE as usize,
                );
                let at = 3 * (iy * image.width + ix);
                let value = row[(y as usize * grid / TILE as usize) * grid
                    + x as usize * grid / TILE as usize];
                let weight = (value - min) / range;
                let heat = [1.0, weight, 0.0];
                let alpha = 0.65 * weight;
                let colour: Vec<u8> = (0..3)
                    .map(|c| {
                        let pixel = f32::from(image.pixels[at + c]);
                        (pixel * (1.0 - alpha) + 255.0 * heat[c] * alpha) as u8
                    })
                    .collect();
                root.draw_pixel(
                    ((x0 + x) as i32, (y0 + LABEL + y) as i32),
                    &RGBColor(colour[0], colour[1], colour[2]),
                )
                .map_err(|e| draw_error(&e))?;
            }
        }
    }
    root.present().map_err(|e| draw_error(&e))?;
    Ok(())
}
