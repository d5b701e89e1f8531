//! Files of a run folder, written atomically (temporary file, then rename),
//! so an interrupted run never leaves a half-written file behind.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;

pub const CONFIG_FILE: &str = "config.toml";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CURVES_FILE: &str = "curves.png";
pub const EVAL_FILE: &str = "eval.json";
/// Checkpoint file stem; Burn's recorder adds `.mpk`.
pub const CHECKPOINT_STEM: &str = "model";

/// Writes `contents` to `path` through a temporary file in the same folder.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let partial = partial_path(path);
    std::fs::write(&partial, contents)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move {} into place", path.display()))
}

fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// The checkpoint path (with extension).
pub fn checkpoint_path(run: &Path) -> PathBuf {
    run.join(format!("{CHECKPOINT_STEM}.mpk"))
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

/// Saves `module` as `run/model.mpk`, atomically.
pub fn save_checkpoint<B: Backend, M: Module<B>>(module: M, run: &Path) -> anyhow::Result<()> {
    let partial = run.join(format!(".{CHECKPOINT_STEM}-partial"));
    module
        .save_file(&partial, &recorder())
        .with_context(|| format!("cannot write checkpoint in {}", run.display()))?;
    let written = partial.with_extension("mpk");
    std::fs::rename(&written, checkpoint_path(run)).with_context(|| {
        format!(
            "cannot move checkpoint into {}",
            checkpoint_path(run).display()
        )
    })
}

/// Loads `run/model.mpk` into `module`.
pub fn load_checkpoint<B: Backend, M: Module<B>>(
    module: M,
    run: &Path,
    device: &B::Device,
) -> anyhow::Result<M> {
    let path = checkpoint_path(run);
    if !path.is_file() {
        anyhow::bail!("checkpoint {} not found", path.display());
    }
    module
        .load_file(path.clone(), &recorder(), device)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))
}
