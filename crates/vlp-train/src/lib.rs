//! Pre-training as a library (survey §5): the configuration schema with its
//! presets and validation ([`config`], [`presets`]), model building from a
//! configuration for every architecture family ([`build`]), the [`Trainer`]
//! with one step function for every model ([`trainer`], [`micro_batch`];
//! contrastive negatives from the whole step's batch: [`gather`]),
//! the learning-rate schedule and per-step generators ([`schedule`]),
//! gradient clipping by global norm ([`clip`]), the run's float type
//! ([`precision`]), the run's data ([`data`]),
//! held-out evaluation ([`eval`]), parameter counts ([`params`]), run
//! folders and checkpoints ([`checkpoint`]), resumable checkpoints
//! ([`resume`]), whole runs ([`run`]), the objective ablation
//! ([`ablation`]), fine-tuning on downstream tasks ([`finetune`]),
//! captioning image files with a generative run ([`caption`]), sentence
//! embeddings from an imported BERT ([`embed`]) and inference on a run
//! folder: embedding, search and zero-shot classification in the model's
//! joint text-image space ([`inference`]).
//!
//! Generic over the Burn backend: nothing here names one. Progress and
//! metrics leave the trainer through a [`TrainObserver`]; the runner
//! (`cargo xtask`) draws progress bars and curves from it.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use vlp_train::{presets, PretrainConfig, PretrainRun};
//!
//! // The tiny UNITER preset, shortened to a smoke run.
//! let mut config = PretrainConfig::from_layers(Some(presets::find("uniter-tiny")?), None)?;
//! config.steps = 2;
//! config.batch_size = 8;
//! config.data.fused_pairs = 4;
//! config.eval_candidates = 8;
//! let out = std::env::temp_dir().join(format!("vlp-train-doc-{}", std::process::id()));
//! let run = PretrainRun { config, out: out.clone(), tokenizer: None, init_text: None, init: None };
//! let report = run.run::<Autodiff<NdArray>>(&Default::default(), &mut ())?;
//! let t2i = report.retrieval.expect("uniter-tiny ranks candidates").t2i;
//! assert!((0.0..=1.0).contains(&t2i.r1));
//! assert!(out.join("model.mpk").is_file());
//! # std::fs::remove_dir_all(&out).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ablation;
pub mod build;
pub mod caption;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod data;
pub mod embed;
pub mod error;
pub mod eval;
pub mod explain;
pub mod finetune;
pub mod gather;
pub mod inference;
pub mod metrics;
pub mod micro_batch;
pub mod params;
pub mod precision;
pub mod presets;
pub mod report;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use build::{with_model, ModelTask};
pub use config::PretrainConfig;
pub use error::{ConfigError, Result, TrainError};
pub use eval::{EvalReport, EvalSettings, Evaluate};
pub use gather::CollectiveGather;
pub use metrics::MetricsRecord;
pub use micro_batch::MicroBatchPools;
pub use params::ParameterCount;
pub use precision::Precision;
pub use resume::CheckpointRef;
pub use run::{reevaluate, run_config, PretrainRun};
pub use schedule::{backend_seed, step_rng, Decay, StepDraw, WarmupSchedule};
pub use trainer::{materialize, sync_running_states, TrainEnd, TrainObserver, TrainStart, Trainer};

/// Held by this crate's unit tests that build models on NdArray: its
/// generator is one global, and a test initialising a model while another
/// seeds or draws would start from unpredictable weights.
#[cfg(test)]
pub(crate) fn ndarray_draws() -> std::sync::MutexGuard<'static, ()> {
    static DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    DRAWS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
