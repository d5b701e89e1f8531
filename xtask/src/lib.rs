//! The vlp runner: `cargo xtask pretrain | finetune | answer | eval |
//! presets | ablate | test | bench | assets | data | embed | search |
//! classify`: argument
//! parsing, progress bars, plots, benchmarks.
//!
//! The logic lives in the library crates: a run is
//! [`vlp_train::PretrainRun`], evaluation [`vlp_train::reevaluate`],
//! fine-tuning [`vlp_train::finetune`]. This
//! crate alone names backends (cargo features `ndarray`, `flex`, `wgpu`,
//! `cuda`) and picks one at run time (`--device`) through
//! [`device::dispatch`].

pub mod ablate;
pub mod assets;
pub mod bench;
pub mod data;
pub mod device;
pub mod explain;
pub mod finetune;
pub mod inference;
pub mod plot;
pub mod presets_command;
pub mod progress;
pub mod test_command;

use vlp_train::TrainError;

/// An error in what the user asked for (flags, files, devices): reported as
/// one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A library error as the runner reports it: a usage error (exit code 2)
/// when it is about what the user asked for.
pub fn report(err: TrainError) -> anyhow::Error {
    if err.is_usage() {
        UsageError(err.to_string()).into()
    } else {
        err.into()
    }
}
