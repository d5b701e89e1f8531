//! VQA fine-tuning as a library call (survey §6; UNITER's recipe, Chen et
//! al. 2020): a pre-training run's single-stream model (or a fresh one)
//! gets a two-layer answer classifier on the fused `[CLS]`, is trained with
//! binary cross-entropy on the VQA soft scores of the training split's
//! frequent answers, and is scored on held-out questions with the official
//! accuracy, overall and per answer type.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use vlp_data::source::{answer_vocabulary, CorruptBudget, SkipLimit};
use vlp_data::{
    vqa_soft_score, AnswerVocabulary, HostVisual, HostVqaBatch, ImageSample, ShardGather,
    TextPadding, TextTokenizer, TransformMode, VqaAccuracy,
};
use vlp_objectives::{PretrainOutput, UniterPretrainer, UniterVqa, VqaHeadConfig};

use super::vqa_data::{accuracy, read_examples, step_indices, VqaExample, VqaFiles, VqaInputs};
use crate::checkpoint::{
    load_checkpoint, save_checkpoint, write_atomic, CONFIG_FILE, EVAL_FILE, TOKENIZER_FILE,
};
use crate::config::{Architecture, PretrainConfig};
use crate::error::{ConfigError, Result, TrainError};
use crate::report::{answer_thumbnail, write_report, write_thumbnail};
use crate::run::run_config;
use crate::trainer::{TrainObserver, TrainTask, Trainer};

/// The answer vocabulary of a fine-tuned run, one answer per index.
pub const ANSWERS_FILE: &str = "answers.json";

/// A fine-tuned run's settings and start ([`VqaRunInfo`]).
pub const RUN_INFO_FILE: &str = "finetune.json";

/// How a VQA model is fine-tuned (docs/finetuning.md has the measurements).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqaSettings {
    /// Optimiser steps (4500, about six epochs of the exported world's
    /// 45k training questions).
    pub steps: usize,
    /// Questions per step (64).
    pub batch_size: usize,
    /// Peak learning rate (1e-3), reached after `warmup_steps`, then
    /// decayed linearly to zero.
    pub learning_rate: f64,
    /// Linear warm-up steps (450, a tenth of the steps as UNITER).
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay (0.01).
    pub weight_decay: f64,
    /// Answers of at least this many training questions form the answer
    /// vocabulary (9, as the bottom-up attention VQA models).
    pub min_answer_count: usize,
    /// Seed of the head's initialisation, the epochs' order and dropout (42).
    pub seed: u64,
    /// Steps between metrics lines (10).
    pub log_every: usize,
    /// Steps between resumable checkpoints (500; one more after the last
    /// step), which `resume` continues from.
    pub checkpoint_every: usize,
}

impl Default for VqaSettings {
    fn default() -> Self {
        Self {
            steps: 4500,
            batch_size: 64,
            learning_rate: 1e-3,
            warmup_steps: 450,
            weight_decay: 0.01,
            min_answer_count: 9,
            seed: 42,
            log_every: 10,
            checkpoint_every: 500,
        }
    }
}

/// A VQA fine-tuning run: data, where to start, where to write.
#[derive(Debug, Clone)]
pub struct VqaFinetune {
    /// The training split.
    pub train: VqaFiles,
    /// The held-out split the accuracy is reported on.
    pub val: VqaFiles,
    /// A pre-training run folder to start from (its model, tokenizer and
    /// architecture); `None`: the default architecture from scratch.
    pub init: Option<PathBuf>,
    /// A `tokenizer.json` for a run from scratch; `None`: a WordPiece
    /// trained on the training questions.
    pub tokenizer: Option<PathBuf>,
    /// The run folder to write.
    pub out: PathBuf,
    /// Optimisation settings.
    pub settings: VqaSettings,
    /// Continue the run in `out` from its latest checkpoint (the same data,
    /// `init` and settings; its tokenizer and answers are checked).
    pub resume: bool,
}

/// A fine-tuning run with its data read and its tokenizer chosen.
pub struct PreparedVqa {
    run: VqaFinetune,
    config: PretrainConfig,
    inputs: VqaInputs,
    train: Vec<VqaExample>,
    val: Vec<VqaExample>,
    /// Share of the training questions' word pieces that are `[UNK]`.
    pub unknown_token_rate: f64,
}

impl VqaFinetune {
    /// Reads both splits, builds the answer vocabulary and picks the
    /// tokenizer (the init run's, the given one, or one trained on the
    /// training questions).
    pub fn prepare(self) -> Result<PreparedVqa> {
        let config = match &self.init {
            Some(run) => run_config(run)?,
            None => PretrainConfig::default(),
        };
        if !matches!(config.model.architecture, Architecture::SingleStream {}) {
            return Err(ConfigError::invalid(
                "model.architecture",
                format!(
                    "VQA fine-tuning needs a single_stream model, not {}",
                    config.model.architecture.name()
                ),
            )
            .into());
        }
        let budget = CorruptBudget::new(SkipLimit::default());
        let train = read_examples(&self.train, &budget)?;
        let val = read_examples(&self.val, &budget)?;
        if train.is_empty() || val.is_empty() {
            let empty = if train.is_empty() {
                &self.train
            } else {
                &self.val
            };
            return Err(TrainError::file(
                &empty.questions,
                "no annotated question to train or evaluate on",
            ));
        }
        let majority = train.iter().map(|e| e.answer.as_str());
        let answers = answer_vocabulary(majority, self.settings.min_answer_count)?;
        if self.resume {
            self.check_resumable(&answers)?;
        }
        let tokenizer = match (&self.init, &self.tokenizer) {
            _ if self.resume => TextTokenizer::from_file(self.out.join(TOKENIZER_FILE))?,
            (Some(run), _) => TextTokenizer::from_file(run.join(TOKENIZER_FILE))?,
            (None, Some(path)) => TextTokenizer::from_file(path)?,
            (None, None) => {
                let questions: Vec<String> = train.iter().map(|e| e.question.clone()).collect();
                TextTokenizer::train_wordpiece(&questions, config.data.tokenizer_vocab_size)?
            }
        };
        let unknown_token_rate = unknown_rate(&tokenizer, &train, config.data.max_text_len)?;
        let inputs = VqaInputs {
            max_text_len: config.data.max_text_len,
            text_padding: TextPadding::buckets(config.data.text_buckets),
            pipeline: config.data.image_transform().init()?,
            tokenizer,
            answers,
            budget,
        };
        Ok(PreparedVqa {
            run: self,
            config,
            inputs,
            train,
            val,
            unknown_token_rate,
        })
    }
}

impl VqaFinetune {
    /// Errors unless `out` is a fine-tuning run of these settings, start
    /// and answers (what [`Trainer::resume`] cannot check).
    fn check_resumable(&self, answers: &AnswerVocabulary) -> Result<()> {
        let read = |name: &str| {
            let path = self.out.join(name);
            let text = std::fs::read_to_string(&path).map_err(|err| {
                TrainError::file(
                    &path,
                    format!("cannot resume: no fine-tuning run here ({err})"),
                )
            })?;
            Ok::<_, TrainError>((path, text))
        };
        let (path, text) = read(RUN_INFO_FILE)?;
        let info: VqaRunInfo = serde_json::from_str(&text)
            .map_err(|err| TrainError::file(&path, format!("not a fine-tuning record: {err}")))?;
        if info.settings != self.settings || info.init != self.init {
            return Err(TrainError::file(
                &path,
                "cannot resume: the run was started with other settings or another --init",
            ));
        }
        let (path, text) = read(ANSWERS_FILE)?;
        let saved: Vec<String> = serde_json::from_str(&text)
            .map_err(|err| TrainError::file(&path, format!("not an answer list: {err}")))?;
        if saved != answers.answers() {
            return Err(TrainError::file(
                &path,
                "cannot resume: the training questions give other answers than the run's",
            ));
        }
        Ok(())
    }
}

/// Share of `[UNK]` among the word pieces of the training questions.
fn unknown_rate(tokenizer: &TextTokenizer, train: &[VqaExample], max_len: usize) -> Result<f64> {
    let questions: Vec<String> = train.iter().map(|e| e.question.clone()).collect();
    let tokens = tokenizer.encode(&questions, max_len)?;
    let special = tokenizer.special();
    let (mut unknown, mut total) = (0usize, 0usize);
    for (ids, &len) in tokens.ids.iter().zip(&tokens.lengths) {
        // `[CLS]` and `[SEP]` around the pieces.
        let pieces = &ids[1..len.saturating_sub(1).max(1)];
        unknown += pieces.iter().filter(|&&id| id == special.unk).count();
        total += pieces.len();
    }
    Ok(unknown as f64 / total.max(1) as f64)
}

/// What a fine-tuning run wrote besides the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VqaRunInfo {
    /// The settings it ran with.
    pub settings: VqaSettings,
    /// The pre-training run it started from.
    pub init: Option<PathBuf>,
    /// Training and held-out questions.
    pub questions: (usize, usize),
    /// Share of `[UNK]` word pieces in the training questions.
    pub unknown_token_rate: f64,
}

/// `eval.json` of a fine-tuned VQA run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VqaReport {
    /// Held-out accuracy.
    pub vqa: VqaAccuracy,
    /// The first [`ANSWER_EXAMPLES`] questions scored, with the model's answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<AnswerExample>,
}

/// Questions kept as examples for the run's `report.html`.
pub const ANSWER_EXAMPLES: usize = 5;

/// A held-out question with the model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerExample {
    /// The image (its file, member or size).
    pub image: String,
    /// The question.
    pub question: String,
    /// The model's arg-max answer.
    pub predicted: String,
    /// The humans' majority answer.
    pub answer: String,
    /// The official score of the prediction, min(#humans who gave it / 3, 1)
    /// averaged over the leave-one-out subsets.
    pub score: f32,
}

impl PreparedVqa {
    /// Training and held-out questions.
    pub fn questions(&self) -> (usize, usize) {
        (self.train.len(), self.val.len())
    }

    /// The backbone's configuration with the fine-tuning's steps, batch
    /// size, schedule and seed: what the [`Trainer`] and progress read.
    pub fn schedule(&self) -> PretrainConfig {
        let s = &self.run.settings;
        PretrainConfig {
            seed: s.seed,
            steps: s.steps,
            batch_size: s.batch_size,
            micro_batches: 1,
            learning_rate: s.learning_rate,
            warmup_steps: s.warmup_steps,
            weight_decay: s.weight_decay,
            log_every: s.log_every,
            checkpoint_every: s.checkpoint_every,
            ..self.config.clone()
        }
    }

    /// Answers in the vocabulary.
    pub fn num_answers(&self) -> usize {
        self.inputs.answers.len()
    }

    /// Fine-tunes on `device`, evaluates on the held-out questions and
    /// writes the run folder: `config.toml` (the backbone's), `tokenizer.json`,
    /// `answers.json`, `finetune.json`, `metrics.jsonl`, `model.mpk`,
    /// `eval.json`.
    pub fn run<B: AutodiffBackend>(
        &self,
        device: &B::Device,
        observer: &mut dyn TrainObserver,
    ) -> Result<VqaReport> {
        let out = &self.run.out;
        std::fs::create_dir_all(out)
            .map_err(|err| TrainError::file(out, format!("cannot create the run folder: {err}")))?;
        self.inputs.tokenizer.save(out.join(TOKENIZER_FILE))?;
        write_atomic(&out.join(CONFIG_FILE), self.config.to_toml().as_bytes())?;
        write_json(&out.join(ANSWERS_FILE), &self.inputs.answers.answers())?;
        let info = VqaRunInfo {
            settings: self.run.settings.clone(),
            init: self.run.init.clone(),
            questions: self.questions(),
            unknown_token_rate: self.unknown_token_rate,
        };
        write_json(&out.join(RUN_INFO_FILE), &info)?;

        let model = self.model::<B>(device)?;
        let model = self.train(model, device, observer)?;
        save_checkpoint(model.clone(), out)?;
        let (report, shown) = self.evaluate(&model.valid(), device)?;
        write_json(&out.join(EVAL_FILE), &report)?;
        self.write_answer_thumbnails(&shown)?;
        write_report(out)?;
        Ok(report)
    }

    /// The init run's backbone (or a fresh one) with a new answer head.
    fn model<B: AutodiffBackend>(&self, device: &B::Device) -> Result<UniterVqa<B>> {
        let backbone = self.run.init.as_deref();
        let seed = self.run.settings.seed;
        vqa_model(
            &self.config,
            &self.inputs.tokenizer,
            &self.inputs.answers,
            backbone,
            seed,
            device,
        )
    }

    /// Trains `model` with [`Trainer::fit_task`], each step's questions and
    /// images prepared ahead of it on another thread; resumes from the run
    /// folder's latest checkpoint when the run is resumed.
    fn train<B: AutodiffBackend>(
        &self,
        model: UniterVqa<B>,
        device: &B::Device,
        observer: &mut dyn TrainObserver,
    ) -> Result<UniterVqa<B>> {
        let s = &self.run.settings;
        let mut trainer = Trainer::<B, UniterVqa<B>>::new(&self.schedule(), device)?;
        let (model, mut metrics) = trainer.open_run(model, &self.run.out, self.run.resume)?;
        let first_step = trainer.resumed_step().unwrap_or(0);
        std::thread::scope(|scope| {
            let (sender, batches) = sync_channel(PREFETCH_STEPS);
            scope.spawn(move || {
                for step in first_step..s.steps {
                    let examples: Vec<&VqaExample> =
                        step_indices(self.train.len(), s.batch_size, s.seed, step)
                            .into_iter()
                            .map(|i| &self.train[i])
                            .collect();
                    // Every image of a step unreadable (and counted): no step.
                    let batch = self
                        .inputs
                        .batch(&examples)
                        .map(|(questions, visual, kept)| {
                            (!kept.is_empty()).then(|| vec![(questions, visual)])
                        });
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
            });
            trainer.fit_task(model, &VqaTask, batches, &mut (&mut metrics, observer))
        })
    }

    /// The official accuracy of the arg-max answers on the held-out
    /// questions, and the questions of its examples.
    fn evaluate<B: Backend>(
        &self,
        model: &UniterVqa<B>,
        device: &B::Device,
    ) -> Result<(VqaReport, Vec<VqaExample>)> {
        score(
            model,
            &self.inputs,
            &self.val,
            &self.run.val.questions,
            device,
        )
    }

    /// The images of the report's answer examples `shown`, as the model saw them.
    fn write_answer_thumbnails(&self, shown: &[VqaExample]) -> Result<()> {
        for (index, example) in shown.iter().enumerate() {
            let sample = ImageSample {
                index: index as u64,
                image: example.image.as_source(),
                caption: &example.question,
            };
            let (image, _) = self.inputs.pipeline.load(&sample, TransformMode::Eval)?;
            write_thumbnail(&self.run.out, &answer_thumbnail(index), &image)?;
        }
        Ok(())
    }
}

/// The official accuracy of `model`'s arg-max answers to `examples` (of
/// the questions file `source`), overall and per answer type, with the
/// first answers as examples, and those examples' questions (for their
/// pictures); questions whose image cannot be read are left out and
/// counted in the inputs' budget.
pub(crate) fn score<B: Backend>(
    model: &UniterVqa<B>,
    inputs: &VqaInputs,
    examples: &[VqaExample],
    source: &Path,
    device: &B::Device,
) -> Result<(VqaReport, Vec<VqaExample>)> {
    let mut predictions = Vec::with_capacity(examples.len());
    let mut scored = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(EVAL_BATCH) {
        let (questions, visual, kept) = inputs.batch(&chunk.iter().collect::<Vec<_>>())?;
        if kept.is_empty() {
            continue;
        }
        let questions = questions.to_device::<B>(device);
        let logits = model.logits(questions.ids, questions.padding, &visual.to_device(device));
        let best: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .map_err(|err| TrainError::file(source, format!("answer indices: {err:?}")))?;
        let answers = inputs.answers.answers();
        predictions.extend(best.into_iter().map(|i| answers[i as usize].clone()));
        scored.extend(kept.into_iter().map(|position| chunk[position].clone()));
    }
    let examples = scored
        .iter()
        .zip(&predictions)
        .take(ANSWER_EXAMPLES)
        .map(|(example, predicted)| AnswerExample {
            image: example.image.describe(),
            question: example.question.clone(),
            predicted: predicted.clone(),
            answer: example.answer.clone(),
            score: vqa_soft_score(predicted, &example.answers),
        })
        .collect();
    let report = VqaReport {
        vqa: accuracy(&scored, &predictions),
        examples,
    };
    scored.truncate(ANSWER_EXAMPLES);
    Ok((report, scored))
}

/// The single-stream model `config` describes with an answer head over
/// `answers`: the backbone from the pre-training run `backbone` when given
/// (else as initialised from `config.seed`), the head drawn from `seed`.
pub(crate) fn vqa_model<B: Backend>(
    config: &PretrainConfig,
    tokenizer: &TextTokenizer,
    answers: &AnswerVocabulary,
    backbone: Option<&Path>,
    seed: u64,
    device: &B::Device,
) -> Result<UniterVqa<B>> {
    B::seed(device, config.seed);
    let pretrainer: UniterPretrainer<B> = config.pretrainer(tokenizer.vocab_size()).init(device)?;
    let pretrainer = match backbone {
        Some(run) => load_checkpoint(pretrainer, run, device)?,
        None => pretrainer,
    };
    B::seed(device, seed);
    let head = VqaHeadConfig::new(config.model.hidden_size, answers.len());
    Ok(UniterVqa::new(pretrainer.backbone, &head, device))
}

/// Held-out questions per forward pass.
const EVAL_BATCH: usize = 256;

/// Steps whose batches are prepared ahead of training.
const PREFETCH_STEPS: usize = 4;

/// One step of VQA fine-tuning: the answer head's binary cross-entropy on
/// a batch of questions with their images.
struct VqaTask;

impl<B: AutodiffBackend> TrainTask<B, UniterVqa<B>> for VqaTask {
    type Batch = (HostVqaBatch, HostVisual);

    fn samples(batch: &Self::Batch) -> usize {
        batch.1.len()
    }

    fn shape(batch: &Self::Batch) -> Vec<usize> {
        let question = batch.0.tokens.ids.first().map_or(0, Vec::len);
        [batch.1.shape().as_slice(), &[question]].concat()
    }

    fn forward(
        &self,
        model: &UniterVqa<B>,
        (questions, visual): Self::Batch,
        _step: usize,
        _shard: Option<Arc<dyn ShardGather<B>>>,
        device: &B::Device,
    ) -> Result<PretrainOutput<B>> {
        Ok(model.forward(&questions.to_device(device), &visual.to_device(device))?)
    }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain values serialise");
    write_atomic(path, text.as_bytes())
}
