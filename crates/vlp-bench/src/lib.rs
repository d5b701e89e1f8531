//! The benchmarks' workloads and statistics (docs/benchmarks.md): what
//! `cargo xtask bench` measures, kept out of the runner so that the binary
//! only parses flags, starts the reference scripts and prints.
//!
//! - [`step`]: the `uniter-bench` training and inference step (survey §5,
//!   UNITER's MLM + ITM) on a seeded detector-like batch, timed phase by
//!   phase ([`step::measure`]), and the batch written as `.npy` files for
//!   the PyTorch reference.
//! - [`stats`]: medians, ratios and the check that other processes left the
//!   CPU alone while a figure was measured.
//! - [`write_npy`] and [`normals`]: the seeded inputs every bench shares.

pub mod stats;
pub mod step;

use std::path::Path;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use vlp_data::regions::{npy_bytes, NpyElement};

/// Writes `values` (row-major, `shape`) as a `.npy` file for the Python
/// references.
pub fn write_npy<T: NpyElement>(path: &Path, values: &[T], shape: &[usize]) -> Result<()> {
    std::fs::write(path, npy_bytes(values, shape))
        .with_context(|| format!("writing {}", path.display()))
}

/// `len` standard normals from a ChaCha8 stream seeded with `seed`.
pub fn normals(seed: u64, len: usize) -> Vec<f32> {
    let rng = ChaCha8Rng::seed_from_u64(seed);
    rng.sample_iter(StandardNormal).take(len).collect()
}
