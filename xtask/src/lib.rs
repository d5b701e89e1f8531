//! The vlp runner: `cargo xtask pretrain | eval | presets | test | bench | assets`.
//!
//! Library crates are generic over the Burn backend; this crate alone names
//! backends (cargo features `ndarray`, `flex`, `wgpu`, `cuda`) and picks one
//! at run time (`--device`) through [`device::dispatch`].

pub mod ablate;
pub mod ablate_video;
pub mod assets;
pub mod bench;
pub mod config;
pub mod device;
pub mod eval;
pub mod heldout;
pub mod micro_batch;
pub mod model;
pub mod objectives_config;
pub mod plot;
pub mod presets;
pub mod presets_command;
pub mod run_dir;
pub mod test_command;
pub mod train;

use std::path::PathBuf;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use vlp_data::TextTokenizer;
use vlp_objectives::Pretrainer;

use config::PretrainConfig;
use device::BackendJob;
use eval::{EvalReport, Evaluate};
use model::{with_model, ModelTask};
use run_dir::{CONFIG_FILE, TOKENIZER_FILE};

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

/// Re-evaluates a saved run folder.
#[derive(Debug, Clone)]
pub struct EvalJob {
    pub run: PathBuf,
}

impl EvalJob {
    /// The run's configuration; errors name the missing or invalid file.
    pub fn config(&self) -> Result<PretrainConfig, UsageError> {
        let path = self.run.join(CONFIG_FILE);
        if !path.is_file() {
            return Err(UsageError(format!(
                "{} is not a run folder: {} not found",
                self.run.display(),
                path.display()
            )));
        }
        PretrainConfig::from_file(&path).map_err(UsageError)
    }
}

impl BackendJob for EvalJob {
    type Output = anyhow::Result<EvalReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let config = self.config()?;
        let tokenizer = train::tokenizer(&config, Some(&self.run.join(TOKENIZER_FILE)))?;
        let task = Reevaluation {
            run: self.run,
            config: config.clone(),
            tokenizer: tokenizer.clone(),
            device: device.clone(),
        };
        with_model::<B, _>(
            &config,
            tokenizer.vocab_size(),
            tokenizer.special(),
            None,
            &device,
            task,
        )?
    }
}

/// Loads a run's checkpoint into a freshly built model and evaluates it.
struct Reevaluation<B: AutodiffBackend> {
    run: PathBuf,
    config: PretrainConfig,
    tokenizer: TextTokenizer,
    device: B::Device,
}

impl<B: AutodiffBackend> ModelTask<B> for Reevaluation<B> {
    type Output = anyhow::Result<EvalReport>;

    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let model = run_dir::load_checkpoint(model.valid(), &self.run, &self.device)?;
        eprintln!(
            "evaluating {} ({:.2} M parameters) on {:?}",
            self.run.display(),
            model::millions(&model),
            self.device
        );
        let report = train::evaluate(&model, &self.config, &self.tokenizer, &self.device)?;
        report.write(&self.run.join(run_dir::EVAL_FILE))?;
        Ok(report)
    }
}
