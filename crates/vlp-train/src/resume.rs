//! Resumable checkpoints (survey §5's pre-training runs last hours to days,
//! so a run must survive being stopped): every `checkpoint_every` steps and
//! after the last one the trainer writes `checkpoints/step-NNNNNNN/` in the
//! run folder, holding the model, AdamW's moments and the training state
//! (step, seed, the metrics averaged since the last line). The learning
//! rate, the batches and the backend's draws are functions of the seed and
//! the step ([`crate::schedule`]), so nothing else is needed to continue
//! exactly where the run stopped.
//!
//! A checkpoint is written whole into a hidden `.step-NNNNNNN.partial`
//! folder, then renamed into place, and only then are older ones removed: a
//! crash at any point leaves the previous checkpoint complete and loadable,
//! and a partial folder is never read (the next write replaces it).

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, Optimizer};
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{recorder, write_atomic, CHECKPOINT_STEM};
use crate::error::{Result, TrainError};
use crate::metrics::Accumulator;
use crate::trainer::materialize;

/// The run folder's sub-folder of resumable checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The training state of a checkpoint ([`TrainingState`]).
pub const STATE_FILE: &str = "state.json";
/// The optimiser's record file stem; Burn's recorder adds `.mpk`.
pub const OPTIMIZER_STEM: &str = "optimizer";

/// What a resumed run needs besides the model's and optimiser's records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Steps done; the resumed run starts with this (0-based) step.
    pub step: usize,
    /// The run's seed (checked against the configuration on resume).
    pub seed: u64,
    /// Seconds trained before the checkpoint (the metrics' clock goes on).
    pub elapsed_seconds: f32,
    /// The values of the steps since the last metrics line.
    pub pending_metrics: Accumulator,
}

/// A complete checkpoint on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRef {
    /// Its folder.
    pub path: PathBuf,
    /// Steps done when it was written.
    pub step: usize,
}

/// The folder of the checkpoint after `step` steps.
pub fn checkpoint_dir(run: &Path, step: usize) -> PathBuf {
    run.join(CHECKPOINTS_DIR).join(format!("step-{step:07}"))
}

/// The optimiser record of `model`'s AdamW adaptor.
type AdamWRecord<B, M> = <OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record;

/// Writes the checkpoint after `state.step` steps into `run`, atomically,
/// then removes the older ones. Returns it.
pub fn save_resumable<B, M>(
    run: &Path,
    model: &M,
    optimizer: &OptimizerAdaptor<AdamW, M, B>,
    state: &TrainingState,
) -> Result<CheckpointRef>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let path = checkpoint_dir(run, state.step);
    let name = path.file_name().expect("a step folder").to_string_lossy();
    let partial = path.with_file_name(format!(".{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let cannot = |what: &str, err: burn::record::RecorderError| {
        TrainError::file(&partial, format!("cannot write the {what}: {err}"))
    };
    // A clone of a parameter Burn has not drawn yet would draw its own.
    materialize(model);
    model
        .clone()
        .save_file(partial.join(CHECKPOINT_STEM), &recorder())
        .map_err(|err| cannot("model", err))?;
    Recorder::<B>::record(
        &recorder(),
        optimizer.to_record(),
        partial.join(OPTIMIZER_STEM),
    )
    .map_err(|err| cannot("optimiser state", err))?;
    let json = serde_json::to_vec_pretty(state).expect("a state of plain values serialises");
    write_atomic(&partial.join(STATE_FILE), &json)?;
    if path.exists() {
        std::fs::remove_dir_all(&path).map_err(io(&path))?;
    }
    std::fs::rename(&partial, &path)
        .map_err(|err| TrainError::file(&path, format!("cannot move into place: {err}")))?;
    remove_stale(run, state.step)?;
    Ok(CheckpointRef {
        path,
        step: state.step,
    })
}

/// A failed file operation on `at`.
fn io(at: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |err| TrainError::file(at, err)
}

/// The folders in `run`'s checkpoint folder (none without one).
fn checkpoint_folders(run: &Path) -> Result<Vec<PathBuf>> {
    let dir = run.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&dir).map_err(io(&dir))?;
    entries
        .map(|entry| Ok(entry.map_err(io(&dir))?.path()))
        .collect()
}

/// The step of a complete checkpoint's folder name (`step-N`).
fn step_of(path: &Path) -> Option<usize> {
    path.file_name()?
        .to_str()?
        .strip_prefix("step-")?
        .parse()
        .ok()
}

/// The complete checkpoints of `run` (named `step-N`, not hidden partial
/// folders), in no particular order.
fn complete_checkpoints(run: &Path) -> Result<Vec<CheckpointRef>> {
    let folders = checkpoint_folders(run)?.into_iter();
    Ok(folders
        .filter(|path| path.join(STATE_FILE).is_file())
        .filter_map(|path| step_of(&path).map(|step| CheckpointRef { path, step }))
        .collect())
}

/// Removes `run`'s checkpoints of other steps than `step` (older ones, and
/// newer ones an earlier run into the same folder left) and the partial
/// folders of writes that did not finish.
fn remove_stale(run: &Path, step: usize) -> Result<()> {
    for path in checkpoint_folders(run)? {
        let name = path.file_name().and_then(|name| name.to_str());
        let partial = name.is_some_and(|name| name.starts_with(".step-"));
        if partial || step_of(&path).is_some_and(|other| other != step) {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Removes `run`'s checkpoint folder, if any: a run that starts over in a
/// folder must not leave an earlier run's checkpoints to a later resume.
pub fn remove_checkpoints(run: &Path) -> Result<()> {
    let dir = run.join(CHECKPOINTS_DIR);
    match dir.is_dir() {
        true => std::fs::remove_dir_all(&dir).map_err(io(&dir)),
        false => Ok(()),
    }
}

/// The checkpoint of `run` with the most steps, if any.
pub fn latest_checkpoint(run: &Path) -> Result<Option<CheckpointRef>> {
    Ok(complete_checkpoints(run)?
        .into_iter()
        .max_by_key(|checkpoint| checkpoint.step))
}

/// Loads `checkpoint` into `model` and `optimizer`; returns them with the
/// training state.
pub fn load_resumable<B, M>(
    checkpoint: &CheckpointRef,
    model: M,
    optimizer: OptimizerAdaptor<AdamW, M, B>,
    device: &B::Device,
) -> Result<(M, OptimizerAdaptor<AdamW, M, B>, TrainingState)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let dir = &checkpoint.path;
    let cannot = |what: &str, err: burn::record::RecorderError| {
        TrainError::file(dir, format!("cannot read the {what}: {err}"))
    };
    let model = model
        .load_file(dir.join(CHECKPOINT_STEM), &recorder(), device)
        .map_err(|err| cannot("model", err))?;
    let record: AdamWRecord<B, M> =
        Recorder::<B>::load(&recorder(), dir.join(OPTIMIZER_STEM), device)
            .map_err(|err| cannot("optimiser state", err))?;
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read(&state_path).map_err(|err| TrainError::file(&state_path, err))?;
    let state = serde_json::from_slice(&text)
        .map_err(|err| TrainError::file(&state_path, format!("invalid training state: {err}")))?;
    Ok((model, optimizer.load_record(record), state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::AdamWConfig;
    use burn::tensor::backend::Backend;

    type B = Autodiff<Flex>;

    fn state(step: usize) -> TrainingState {
        TrainingState {
            step,
            seed: 1,
            elapsed_seconds: 0.5,
            pending_metrics: Accumulator::default(),
        }
    }

    /// A write that died half-way (a partial folder with a truncated model,
    /// no state) is ignored: the previous checkpoint is the latest and
    /// loads; the next complete write removes the partial folder.
    #[test]
    fn an_interrupted_write_leaves_the_previous_checkpoint_loadable() {
        let run = std::env::temp_dir().join(format!("vlp-resume-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        let device = Default::default();
        B::seed(&device, 4);
        let model = LinearConfig::new(3, 2).init::<B>(&device);
        let optimizer = AdamWConfig::new().init::<B, Linear<B>>();
        let weights = |m: &Linear<B>| m.weight.val().into_data().to_vec::<f32>().unwrap();
        let saved = save_resumable(&run, &model, &optimizer, &state(4)).unwrap();
        assert_eq!(saved.path, checkpoint_dir(&run, 4));

        let partial = run.join(CHECKPOINTS_DIR).join(".step-0000012.partial");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("model.mpk"), b"trunc").unwrap();
        assert_eq!(latest_checkpoint(&run).unwrap(), Some(saved.clone()));
        let fresh = LinearConfig::new(3, 2).init::<B>(&device);
        let (loaded, _, loaded_state) =
            load_resumable(&saved, fresh, optimizer.clone(), &device).unwrap();
        assert_eq!(weights(&loaded), weights(&model));
        assert_eq!(loaded_state, state(4));

        let newer = save_resumable(&run, &model, &optimizer, &state(8)).unwrap();
        assert_eq!(latest_checkpoint(&run).unwrap(), Some(newer.clone()));
        // A diverged run names the checkpoint to resume from.
        let diverged = TrainError::NonFiniteLoss {
            step: 8,
            loss: f32::NAN,
            last_checkpoint: Some(newer),
        };
        let message = diverged.to_string();
        assert!(
            message.contains("at step 9") && message.contains("step-0000008 (after step 8)"),
            "{message}"
        );
        let left: Vec<_> = std::fs::read_dir(run.join(CHECKPOINTS_DIR))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["step-0000008"], "older and partial folders go");
        // A new run into the folder writes step 4 again: the other run's
        // step 8 goes too, so a resume cannot pick it.
        let again = save_resumable(&run, &model, &optimizer, &state(4)).unwrap();
        assert_eq!(latest_checkpoint(&run).unwrap(), Some(again));
        remove_checkpoints(&run).unwrap();
        assert_eq!(latest_checkpoint(&run).unwrap(), None);
        std::fs::remove_dir_all(&run).unwrap();
    }
}
