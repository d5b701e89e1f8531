//! A whole pre-training run as a library call (survey §5): tokenizer,
//! model, training, checkpoints and held-out evaluation, in a run folder;
//! the resumption of a stopped run; and the re-evaluation of a saved run.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use vlp_data::{PretrainBatcher, TextTokenizer};
use vlp_objectives::Pretrainer;

use crate::build::{with_model, ModelTask};
use crate::checkpoint::{
    load_checkpoint, save_checkpoint, write_atomic, CONFIG_FILE, EVAL_FILE, TOKENIZER_FILE,
};
use crate::config::PretrainConfig;
use crate::data::{batcher, tokenizer};
use crate::error::{ConfigError, Result, TrainError};
use crate::eval::{data_report, evaluate, EvalReport, EvalSettings, Evaluate};
use crate::report::{shown_pairs, write_held_out_thumbnails, write_report};
use crate::resume::{latest_checkpoint, CHECKPOINTS_DIR};
use crate::trainer::{TrainObserver, Trainer};

/// A pre-training run: what to train, where to write it.
#[derive(Debug, Clone)]
pub struct PretrainRun {
    /// The validated configuration.
    pub config: PretrainConfig,
    /// The run folder (created if missing).
    pub out: PathBuf,
    /// A `tokenizer.json` to use instead of training one on the world's corpus.
    pub tokenizer: Option<PathBuf>,
    /// A Hugging Face BERT folder whose `model.safetensors` initialises the
    /// text embeddings, the transformer and the pooler.
    pub init_text: Option<PathBuf>,
    /// A run folder whose `model.mpk` starts the whole model (fine-tuning
    /// a run on other data; `config.model` must be that run's).
    pub init: Option<PathBuf>,
}

impl PretrainRun {
    /// Trains on `device` and evaluates on held-out data, writing the run
    /// folder: `config.toml`, `tokenizer.json`, `metrics.jsonl`,
    /// `checkpoints/` (resumable, every `checkpoint_every` steps and at the
    /// end), `model.mpk`, `eval.json`, `report.html` with its thumbnails
    /// ([`crate::report`]). Progress and metrics go to `observer` too.
    pub fn run<B: AutodiffBackend>(
        &self,
        device: &B::Device,
        observer: &mut dyn TrainObserver,
    ) -> Result<EvalReport> {
        self.run_on::<B>(std::slice::from_ref(device), observer)
    }

    /// [`Self::run`], data-parallel across `devices` (the first the main
    /// one: [`Trainer::on_devices`]; `micro_batches` a multiple of their
    /// count). The held-out evaluation runs on the main device.
    pub fn run_on<B: AutodiffBackend>(
        &self,
        devices: &[B::Device],
        observer: &mut dyn TrainObserver,
    ) -> Result<EvalReport> {
        let tokenizer = tokenizer(&self.config, self.tokenizer.as_deref())?;
        let out = &self.out;
        std::fs::create_dir_all(out)
            .map_err(|err| TrainError::file(out, format!("cannot create the run folder: {err}")))?;
        tokenizer.save(out.join(TOKENIZER_FILE))?;
        write_atomic(&out.join(CONFIG_FILE), self.config.to_toml().as_bytes())?;
        self.train::<B>(&tokenizer, false, devices, observer)
    }

    /// A run writing `out` that starts from the run folder `init`: its
    /// configuration, tokenizer and whole model. Change `config` (its data,
    /// steps, learning rate) to fine-tune it or continue its pre-training.
    pub fn starting_from(init: &Path, out: PathBuf) -> Result<Self> {
        Ok(Self {
            config: run_config(init)?,
            out,
            tokenizer: Some(init.join(TOKENIZER_FILE)),
            init_text: None,
            init: Some(init.to_path_buf()),
        })
    }

    /// The run of the folder `run` (its `config.toml` and `tokenizer.json`),
    /// to [`Self::resume`].
    pub fn resuming(run: &Path) -> Result<Self> {
        let config = run_config(run)?;
        if latest_checkpoint(run)?.is_none() {
            return Err(ConfigError::invalid(
                "resume",
                format!(
                    "{} has no checkpoint to resume from (none in {CHECKPOINTS_DIR}/)",
                    run.display()
                ),
            )
            .into());
        }
        Ok(Self {
            config,
            out: run.to_path_buf(),
            tokenizer: Some(run.join(TOKENIZER_FILE)),
            // The checkpoint holds the whole model.
            init_text: None,
            init: None,
        })
    }

    /// Continues the stopped run of the run folder from its latest
    /// checkpoint, exactly as if it had not stopped (the same batches,
    /// learning rates, dropout masks and optimiser state; with one
    /// micro-batch, the same losses): `metrics.jsonl` loses the lines
    /// logged after the checkpoint and gets the rest; then as [`Self::run`].
    pub fn resume<B: AutodiffBackend>(
        &self,
        device: &B::Device,
        observer: &mut dyn TrainObserver,
    ) -> Result<EvalReport> {
        self.resume_on::<B>(std::slice::from_ref(device), observer)
    }

    /// [`Self::resume`], data-parallel across `devices` as [`Self::run_on`].
    pub fn resume_on<B: AutodiffBackend>(
        &self,
        devices: &[B::Device],
        observer: &mut dyn TrainObserver,
    ) -> Result<EvalReport> {
        let tokenizer = tokenizer(&self.config, self.tokenizer.as_deref())?;
        self.train::<B>(&tokenizer, true, devices, observer)
    }

    /// Builds the model, trains it (from the latest checkpoint when
    /// `resume`) and evaluates it.
    fn train<B: AutodiffBackend>(
        &self,
        tokenizer: &TextTokenizer,
        resume: bool,
        devices: &[B::Device],
        observer: &mut dyn TrainObserver,
    ) -> Result<EvalReport> {
        let Some(device) = devices.first() else {
            return Err(ConfigError::invalid("devices", "no device to train on").into());
        };
        for device in devices {
            self.config.precision.apply::<B>(device)?;
        }
        with_model::<B, _>(
            &self.config,
            tokenizer.vocab_size(),
            tokenizer.special(),
            self.init_text.as_deref(),
            device,
            Training {
                run: self,
                tokenizer,
                resume,
                devices,
                observer,
            },
        )?
    }
}

/// Trains the freshly built (or resumed) model, saves it and evaluates it.
struct Training<'a, B: AutodiffBackend> {
    run: &'a PretrainRun,
    tokenizer: &'a TextTokenizer,
    resume: bool,
    /// The main device first.
    devices: &'a [B::Device],
    observer: &'a mut dyn TrainObserver,
}

impl<B: AutodiffBackend> ModelTask<B> for Training<'_, B> {
    type Output = Result<EvalReport>;

    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let (config, out) = (&self.run.config, &self.run.out);
        let device = &self.devices[0];
        let batcher = batcher(config, self.tokenizer.clone())?;
        let model = match &self.run.init {
            Some(run) if !self.resume => load_checkpoint(model, run, device)?,
            _ => model,
        };
        let mut trainer = Trainer::new(config, device)?.on_devices(self.devices.to_vec())?;
        let (model, mut metrics) = trainer.open_run(model, out, self.resume)?;
        let model = trainer.fit(model, &batcher, &mut (&mut metrics, self.observer))?;
        save_checkpoint(model.clone(), out)?;
        evaluate_into(&model.valid(), &batcher, config, out, device)
    }
}

/// Evaluates `model` on held-out data and writes `run/eval.json` and
/// `run/report.html`.
fn evaluate_into<B, M>(
    model: &M,
    batcher: &PretrainBatcher,
    config: &PretrainConfig,
    run: &Path,
    device: &B::Device,
) -> Result<EvalReport>
where
    B: burn::tensor::backend::Backend,
    M: Evaluate<B> + Pretrainer<B>,
{
    let mut report = evaluate(model, batcher, &EvalSettings::of(config), device)?;
    report.data = data_report(batcher);
    report.write(&run.join(EVAL_FILE))?;
    let shown = shown_pairs(report.retrieval.as_ref(), report.captioning.as_ref());
    if let Some(&last) = shown.last() {
        // Held-out pairs are drawn in a fixed order, so the first `last + 1`
        // are the evaluation's own.
        let pairs = batcher.held_out_pairs(last + 1)?;
        write_held_out_thumbnails(run, &pairs.visual, &shown)?;
    }
    write_report(run)?;
    Ok(report)
}

/// The configuration of a saved run; errors name the missing or invalid file.
pub fn run_config(run: &Path) -> Result<PretrainConfig> {
    let path = run.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(ConfigError::Read {
            path,
            message: format!("{} is not a run folder", run.display()),
        }
        .into());
    }
    Ok(PretrainConfig::from_file(&path)?)
}

/// Loads a saved run's checkpoint into a freshly built model, evaluates it
/// on held-out data on `device`, in the run's precision, and rewrites its
/// `eval.json`.
pub fn reevaluate<B: AutodiffBackend>(run: &Path, device: &B::Device) -> Result<EvalReport> {
    let config = run_config(run)?;
    config.precision.apply::<B>(device)?;
    let tokenizer = tokenizer(&config, Some(&run.join(TOKENIZER_FILE)))?;
    with_model::<B, _>(
        &config,
        tokenizer.vocab_size(),
        tokenizer.special(),
        None,
        device,
        Reevaluation {
            run,
            config: &config,
            tokenizer: &tokenizer,
            device,
        },
    )?
}

/// Loads a run's checkpoint into a freshly built model and evaluates it.
struct Reevaluation<'a, B: AutodiffBackend> {
    run: &'a Path,
    config: &'a PretrainConfig,
    tokenizer: &'a TextTokenizer,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> ModelTask<B> for Reevaluation<'_, B> {
    type Output = Result<EvalReport>;

    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let model = load_checkpoint(model.valid(), self.run, self.device)?;
        let batcher = batcher(self.config, self.tokenizer.clone())?;
        evaluate_into(&model, &batcher, self.config, self.run, self.device)
    }
}
