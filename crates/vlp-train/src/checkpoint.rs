//! Files of a run folder (survey §5's pre-training runs, made reusable):
//! the resolved configuration, the tokenizer, the metrics lines, the
//! checkpoint and the held-out report, each written atomically (temporary
//! file, then rename) so an interrupted run never leaves a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;

use crate::error::{Result, TrainError};
use crate::metrics::MetricsRecord;
use crate::trainer::TrainObserver;

/// The resolved configuration (reusable with `--config`).
pub const CONFIG_FILE: &str = "config.toml";
/// The tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// One JSON [`MetricsRecord`] per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Loss curves (drawn by the runner).
pub const CURVES_FILE: &str = "curves.png";
/// The held-out [`crate::EvalReport`].
pub const EVAL_FILE: &str = "eval.json";
/// Checkpoint file stem; Burn's recorder adds `.mpk`.
pub const CHECKPOINT_STEM: &str = "model";

/// Writes `contents` to `path` through a temporary file in the same folder.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let partial = partial_path(path);
    std::fs::write(&partial, contents).map_err(|err| TrainError::file(&partial, err))?;
    std::fs::rename(&partial, path)
        .map_err(|err| TrainError::file(path, format!("cannot move into place: {err}")))
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

/// The recorder of checkpoints: Burn's named MessagePack, full precision.
pub(crate) fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::new()
}

/// Saves `module` as `run/model.mpk`, atomically.
pub fn save_checkpoint<B: Backend, M: Module<B>>(module: M, run: &Path) -> Result<()> {
    let partial = run.join(format!(".{CHECKPOINT_STEM}-partial"));
    module
        .save_file(&partial, &recorder())
        .map_err(|err| TrainError::file(run, format!("cannot write the checkpoint: {err}")))?;
    let written = partial.with_extension("mpk");
    let path = checkpoint_path(run);
    std::fs::rename(&written, &path)
        .map_err(|err| TrainError::file(&path, format!("cannot move into place: {err}")))
}

/// Loads `run/model.mpk` into `module`.
pub fn load_checkpoint<B: Backend, M: Module<B>>(
    module: M,
    run: &Path,
    device: &B::Device,
) -> Result<M> {
    let path = checkpoint_path(run);
    if !path.is_file() {
        return Err(TrainError::file(&path, "checkpoint not found"));
    }
    module
        .load_file(path.clone(), &recorder(), device)
        .map_err(|err| TrainError::file(&path, format!("cannot read the checkpoint: {err}")))
}

/// Appends each metrics record to `metrics.jsonl` as it is logged.
pub struct MetricsFile {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsFile {
    /// Creates (or truncates) `run/metrics.jsonl`.
    pub fn create(run: &Path) -> Result<Self> {
        let path = run.join(METRICS_FILE);
        let file = std::fs::File::create(&path).map_err(|err| TrainError::file(&path, err))?;
        Ok(Self { path, file })
    }

    /// Reopens `run/metrics.jsonl` to resume after `step` steps: the lines
    /// logged after that step (by the run that stopped) are dropped, the
    /// next ones appended.
    pub fn resume(run: &Path, step: usize) -> Result<Self> {
        let path = run.join(METRICS_FILE);
        let kept: Vec<String> = read_metrics(&path)?
            .iter()
            .filter(|record| record.step <= step)
            .map(|record| format!("{}\n", json_line(record)))
            .collect();
        write_atomic(&path, kept.concat().as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|err| TrainError::file(&path, err))?;
        Ok(Self { path, file })
    }
}

fn json_line(record: &MetricsRecord) -> String {
    serde_json::to_string(record).expect("a record of plain values serialises")
}

impl TrainObserver for MetricsFile {
    fn logged(&mut self, record: &MetricsRecord) -> Result<()> {
        writeln!(self.file, "{}", json_line(record))
            .map_err(|err| TrainError::file(&self.path, err))
    }
}

/// Reads the records of a `metrics.jsonl`; errors name the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRecord>> {
    let text = std::fs::read_to_string(path).map_err(|err| TrainError::file(path, err))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .map_err(|err| TrainError::file(path, format!("line {}: {err}", index + 1)))
        })
        .collect()
}
