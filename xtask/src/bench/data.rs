//! `cargo xtask bench data`: vlp's input pipeline against the one a PyTorch
//! user runs (PIL and Hugging Face `tokenizers` in worker processes,
//! `benches/reference/data_pipeline.py`), on the same generated files, in
//! one run; docs/benchmarks.md ("Input pipeline") says what both sides do.
//!
//! vlp runs `ImagePipeline::prepare` and `TextTokenizer::encode` on a rayon
//! pool of `--threads` threads in this process; the reference, a pool of
//! `--threads` worker processes. Runs alternate (vlp, reference, vlp, ...)
//! so that drift of the shared machine hits both; medians are reported, and
//! the first image's tensors of both sides compared.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use vlp_data::image::{
    ImageSample, ImageSource, ImageTransformConfig, Normalization, TransformMode,
};
use vlp_data::synthetic::SyntheticWorld;
use vlp_data::TextTokenizer;

use vlp_bench::stats::{contention_line, median, noisy, optional, ratio, watching_others};

use super::common::{
    in_scratch_dir, reference_command, repo_root, run_for_json, write_json_rows, ReferenceArgs, Row,
};

/// The headline row's name.
const HEADLINE: &str = "pipeline-jpeg640-224";
/// Images per batch (both sides).
const BATCH: usize = 64;
/// Tokens per caption.
const MAX_TOKENS: usize = 32;

/// Arguments of `cargo xtask bench data`.
#[derive(clap::Args, Debug)]
pub struct BenchDataArgs {
    /// Also write the result rows as JSON: a list of {"benchmark",
    /// "vlp_ms", "reference", "reference_ms", "speedup",
    /// "vlp_images_per_second", "reference_images_per_second"}.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Threads for vlp (rayon pool) and worker processes for the reference.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Generated images (a multiple of 64 keeps the batches whole).
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    /// Timed runs of each side, alternating.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// `--no-reference`, `--python`.
    #[command(flatten)]
    pub reference: ReferenceArgs,
    /// Seed of the generated images and captions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One JSON row: the common columns (ms per batch of 64) and the rates.
#[derive(Debug, Serialize)]
struct DataRow {
    #[serde(flatten)]
    row: Row,
    vlp_images_per_second: f64,
    reference_images_per_second: Option<f64>,
}

/// What the reference script writes.
#[derive(Debug, Deserialize)]
struct ReferenceResult {
    images_per_second: f64,
}

/// Runs the benchmark; see the module docs.
pub fn run(args: &BenchDataArgs) -> Result<()> {
    if args.threads == 0 || args.reps == 0 || args.images == 0 {
        bail!("--threads, --reps and --images must be >= 1");
    }
    let root = repo_root();
    let python = args.reference.interpreter(
        &root,
        "numpy, PIL, tokenizers",
        "benches/reference/requirements-data.txt",
    )?;
    in_scratch_dir("vlp-bench-data", None, |tmp| {
        run_in(args, &root, python.as_deref(), tmp)
    })
}

fn run_in(args: &BenchDataArgs, root: &Path, python: Option<&Path>, tmp: &Path) -> Result<()> {
    eprintln!(
        "writing {} 640x480 JPEGs to {} ...",
        args.images,
        tmp.display()
    );
    let pairs = write_inputs(tmp, args.images, args.seed)?;
    let tokenizer_path = tokenizer(root, tmp, &pairs)?;
    let tokenizer = TextTokenizer::from_file(&tokenizer_path)?;
    let pipeline = ImageTransformConfig::new()
        .with_image_size(224)
        .with_resize_to(256)
        .with_normalization(Normalization::Imagenet)
        .init()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("building the rayon pool")?;
    let vlp_pass = || -> Result<(f64, Vec<f32>)> {
        pool.install(|| {
            let started = Instant::now();
            let mut first = Vec::new();
            for (b, chunk) in pairs.chunks(BATCH).enumerate() {
                let samples: Vec<ImageSample> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (path, caption))| ImageSample {
                        index: (b * BATCH + i) as u64,
                        image: ImageSource::File(path),
                        caption,
                    })
                    .collect();
                let images = pipeline.prepare(&samples, TransformMode::Eval);
                if !images.skipped.is_empty() {
                    bail!("vlp skipped an image: {:?}", images.skipped[0].error);
                }
                let captions: Vec<String> = chunk.iter().map(|(_, c)| c.clone()).collect();
                std::hint::black_box(tokenizer.encode(&captions, MAX_TOKENS)?);
                if b == 0 {
                    first = images.images.pixels[..3 * 224 * 224].to_vec();
                }
            }
            Ok((pairs.len() as f64 / started.elapsed().as_secs_f64(), first))
        })
    };
    let manifest = tmp.join("manifest.json");
    std::fs::write(&manifest, serde_json::to_string(&pairs)?)?;
    let reference_pass = |python: &Path| -> Result<f64> {
        let out = tmp.join("reference.json");
        let mut command =
            reference_command(python, &root.join("benches/reference/data_pipeline.py"), 1);
        command
            .arg("--manifest")
            .arg(&manifest)
            .arg("--tokenizer")
            .arg(&tokenizer_path)
            .arg("--workers")
            .arg(args.threads.to_string())
            .arg("--batch-size")
            .arg(BATCH.to_string())
            .arg("--out")
            .arg(&out)
            .arg("--first-image")
            .arg(tmp.join("reference_first.f32"));
        let result: ReferenceResult = run_for_json(&mut command, "the reference pipeline", &out)?;
        Ok(result.images_per_second)
    };

    // Warm-up: the page cache and the pool.
    let (_, vlp_first) = vlp_pass()?;
    let (mut vlp_rates, mut reference_rates, mut flagged) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let ((rate, _), share) = watching_others(vlp_pass)?;
        vlp_rates.push(rate);
        flagged.extend(noisy(&format!("run {}", rep + 1), "vlp", share));
        if let Some(python) = python {
            let (rate, share) = watching_others(|| reference_pass(python))?;
            reference_rates.push(rate);
            flagged.extend(noisy(&format!("run {}", rep + 1), "reference", share));
        }
    }
    let vlp = median(&vlp_rates);
    let reference = (!reference_rates.is_empty()).then(|| median(&reference_rates));
    let difference = match python {
        Some(_) => Some(max_difference(
            &vlp_first,
            &tmp.join("reference_first.f32"),
        )?),
        None => None,
    };

    let per_batch = |rate: f64| 1e3 * BATCH as f64 / rate;
    let rows = [DataRow {
        row: Row {
            benchmark: HEADLINE.into(),
            vlp_ms: per_batch(vlp),
            reference: format!("PIL + tokenizers, {} processes", args.threads),
            reference_ms: reference.map(per_batch),
            speedup: reference.map(|r| vlp / r),
        },
        vlp_images_per_second: vlp,
        reference_images_per_second: reference,
    }];
    println!("## Input pipeline: 640×480 JPEG → normalised 224² tensor + 32 caption tokens\n");
    println!(
        "{} images in batches of {BATCH}, {} threads / worker processes, median of {} alternating runs.\n",
        args.images, args.threads, args.reps
    );
    println!("| benchmark | vlp images/s | reference images/s | vlp / reference |");
    println!("|---|---|---|---|");
    println!(
        "| {HEADLINE} | {vlp:.0} | {} | {} |",
        optional(reference, 0),
        ratio(Some(vlp), reference, 2)
    );
    println!(
        "\nvlp runs: {:?}; reference runs: {:?}",
        vlp_rates.iter().map(|v| v.round()).collect::<Vec<_>>(),
        reference_rates
            .iter()
            .map(|v| v.round())
            .collect::<Vec<_>>()
    );
    if let Some(difference) = difference {
        println!(
            "First image, vlp vs PIL: max |difference| {difference:.4} after normalisation \
             ({:.1} levels of 255).",
            difference * 0.226 * 255.0
        );
    }
    println!("{}", contention_line(&flagged));
    write_json_rows(args.json.as_deref(), &rows)
}

/// The max |difference| between vlp's first tensor and the reference's
/// (raw little-endian float32, `[3, 224, 224]`).
fn max_difference(vlp: &[f32], path: &Path) -> Result<f32> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() != 4 * vlp.len() {
        bail!(
            "{} holds {} bytes, not {}",
            path.display(),
            bytes.len(),
            4 * vlp.len()
        );
    }
    let reference = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    Ok(reference
        .zip(vlp)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max))
}

/// Writes `count` seeded 640×480 JPEGs (quality 90) with the synthetic
/// world's captions; returns `(path, caption)` pairs.
fn write_inputs(dir: &Path, count: usize, seed: u64) -> Result<Vec<(PathBuf, String)>> {
    let captions = SyntheticWorld::new(seed, 32).corpus(count.div_ceil(4));
    let (width, height) = (640usize, 480usize);
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64) << 20);
        let base: [f32; 6] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
        let shapes: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
            .map(|_| {
                (
                    rng.random_range(0.0..width as f32),
                    rng.random_range(0.0..height as f32),
                    rng.random_range(20.0..120.0),
                    std::array::from_fn(|_| rng.random_range(0.0..255.0)),
                )
            })
            .collect();
        let mut pixels = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
                let mut rgb: [f32; 3] =
                    std::array::from_fn(|c| base[c] * (1.0 - u) + base[c + 3] * v);
                for &(cx, cy, r, colour) in &shapes {
                    if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r {
                        rgb = colour;
                    }
                }
                let noise = rng.random_range(-12.0..12.0);
                pixels.extend(rgb.map(|c| (c + noise).clamp(0.0, 255.0) as u8));
            }
        }
        let path = dir.join(format!("{i:06}.jpg"));
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode(
                &pixels,
                width as u32,
                height as u32,
                ExtendedColorType::Rgb8,
            )
            .context("encoding a JPEG")?;
        std::fs::write(&path, jpeg).with_context(|| format!("writing {}", path.display()))?;
        pairs.push((path, captions[i % captions.len()].clone()));
    }
    Ok(pairs)
}

/// BERT's uncased tokenizer from the assets, or a WordPiece trained on the
/// captions, written to `dir`.
fn tokenizer(root: &Path, dir: &Path, pairs: &[(PathBuf, String)]) -> Result<PathBuf> {
    let bert = root.join("assets/all-minilm-l6-v2/tokenizer.json");
    if bert.is_file() {
        return Ok(bert);
    }
    let captions: Vec<String> = pairs.iter().map(|(_, c)| c.clone()).collect();
    let path = dir.join("tokenizer.json");
    TextTokenizer::train_wordpiece(&captions, 400)?.save(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_seeded_jpegs_of_640_by_480() {
        let dir = std::env::temp_dir().join(format!("vlp-bench-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pairs = write_inputs(&dir, 2, 7).unwrap();
        let again = std::fs::read(&pairs[1].0).unwrap();
        let image = vlp_data::image::decode_file(&pairs[1].0).unwrap();
        assert_eq!((image.width, image.height), (640, 480));
        write_inputs(&dir, 2, 7).unwrap();
        assert_eq!(std::fs::read(&pairs[1].0).unwrap(), again);
        assert!(!pairs[0].1.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
