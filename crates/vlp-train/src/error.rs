//! Errors of configuring, building, training and evaluating a run. Each names
//! what was wrong: the configuration key, the file, the step.

use std::path::PathBuf;

use thiserror::Error;
use vlp_data::DataError;
use vlp_objectives::{ObjectiveError, UniterConfigError};

use crate::resume::CheckpointRef;

/// A configuration that cannot be read or describes no valid run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A value out of range, or inconsistent with another value.
    #[error("{message}")]
    Invalid {
        /// The offending key, dotted (`model.num_heads`).
        key: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// `--preset NAME` names no shipped preset.
    #[error("unknown preset {name:?}; known presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The shipped presets' names, comma-separated.
        known: String,
    },
    /// `cargo xtask ablate --runs NAME` names no ablation run.
    #[error("unknown run {name:?}; known runs: {known}")]
    UnknownRun {
        /// The name asked for.
        name: String,
        /// The runs' names, comma-separated.
        known: String,
    },
    /// A configuration file that cannot be read.
    #[error("cannot read config file {}: {message}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        message: String,
    },
    /// A preset, file or merged configuration that is not valid TOML for
    /// this schema (unknown keys included), or whose values are invalid.
    #[error("invalid {origin}: {message}")]
    Parse {
        /// "preset NAME", "config file PATH" or "defaults".
        origin: String,
        /// The parser's or the validation's message, on one line.
        message: String,
    },
}

impl ConfigError {
    /// An invalid value of `key`.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Anything that stops a run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The configuration (or an option with the same role) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Data could not be drawn, tokenized or batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An objective refused its inputs.
    #[error(transparent)]
    Objective(#[from] ObjectiveError),
    /// An optimal-transport solve refused its inputs.
    #[error(transparent)]
    Transport(#[from] vlp_ot::OtError),
    /// The single-stream pre-trainer's objectives do not fit its model.
    #[error(transparent)]
    UniterConfig(#[from] UniterConfigError),
    /// A file of the run folder or a checkpoint could not be read or written.
    #[error("{}: {message}", .path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A Hugging Face checkpoint could not initialise the model.
    #[error("cannot initialise the text tower from {}: {message}", .path.display())]
    Import {
        /// The checkpoint.
        path: PathBuf,
        /// The import's report (missing, unexpected or misshapen keys).
        message: String,
    },
    /// The loss stopped being a finite number.
    #[error(
        "loss became {loss} at step {}; lower learning_rate (or set max_grad_norm); {}",
        .step + 1,
        last_good(.last_checkpoint)
    )]
    NonFiniteLoss {
        /// The 0-based step whose loss it was.
        step: usize,
        /// The value.
        loss: f32,
        /// The run's last checkpoint written before it, to resume from.
        last_checkpoint: Option<CheckpointRef>,
    },
    /// The background thread that builds batches stopped.
    #[error("the batch loader stopped")]
    LoaderStopped,
    /// A thread pool for micro-batches could not be built.
    #[error("cannot build a micro-batch thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// A step was given a different number of micro-batches than it has pools.
    #[error("{given} micro-batches for {pools} micro-batch pools")]
    MicroBatchCount {
        /// Micro-batches handed to the step.
        given: usize,
        /// Pools the step runs them in.
        pools: usize,
    },
}

impl TrainError {
    /// A failed read or write of `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Self::File {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// Whether the error is in what the user asked for (configuration,
    /// files named on the command line) rather than in the run itself.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::UniterConfig(_)
                | Self::Import { .. }
                | Self::Data(
                    DataError::TokenizerNotFound { .. }
                        | DataError::TokenizerInvalid { .. }
                        | DataError::MissingSpecialToken { .. }
                        | DataError::DatasetIo { .. }
                        | DataError::Annotation { .. }
                        | DataError::DatasetFormat(_)
                        | DataError::Shards { .. }
                )
        )
    }
}

fn last_good(checkpoint: &Option<CheckpointRef>) -> String {
    match checkpoint {
        Some(checkpoint) => format!(
            "last good checkpoint: {} (after step {})",
            checkpoint.path.display(),
            checkpoint.step
        ),
        None => "no checkpoint was written before it".into(),
    }
}

/// Results of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
