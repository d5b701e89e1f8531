//! The pre-training run's configuration: a TOML file (`--config FILE`) over
//! a preset, overridden by flags, written back to `runs/<name>/config.toml`.
//! Every key has a default; unknown keys and invalid values are errors that
//! name the key ([`ConfigError`]).

mod model;
mod objectives;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vlp_data::image::{ImageTransformConfig, Normalization};
use vlp_data::source::{DatasetSpec, ExportFormat, SkipLimit};
use vlp_data::synthetic::DetectorConfig;
use vlp_models::BertConfig;

pub use model::{Architecture, Component, ModelConfig, VisualKind};
pub use objectives::{FixedWeights, ObjectiveSpec, ObjectivesConfig, Requirement, OBJECTIVES};

use crate::error::ConfigError;
use crate::precision::Precision;
use crate::presets::Preset;
use crate::schedule::Decay;

/// Everything a pre-training run depends on. Every field has a default; a
/// config file need only name what it changes. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Seed of the synthetic world, the initialisation, masking and sampling.
    pub seed: u64,
    /// Optimiser steps.
    pub steps: usize,
    /// Image-text pairs per step.
    pub batch_size: usize,
    /// Micro-batches per step (1: the whole batch in one pass). Their forward
    /// and backward passes run at the same time on the CPU threads, which
    /// Burn's CPU backends leave half idle outside matmuls (see
    /// docs/benchmarks.md); on a GPU keep 1. Each is drawn as a batch of
    /// `batch_size / micro_batches` pairs with its share of
    /// `data.fused_pairs`; the step's loss is the mean of theirs. Contrastive
    /// negatives come from the whole step (the micro-batches gather each
    /// other's embeddings, [`crate::gather`]); matching negatives from
    /// within a micro-batch.
    /// With dropout the masks' draws interleave across threads, so runs are
    /// not bit-for-bit reproducible.
    pub micro_batches: usize,
    /// Peak AdamW learning rate (after linear warm-up; then `schedule`'s
    /// decay to 0).
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    /// The decay after the warm-up: `"linear"` (default; BERT, UNITER) or
    /// `"cosine"` (CLIP, BLIP).
    pub schedule: Decay,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the gradients' global L2 norm (over all parameters together)
    /// to this before each update; 0 (default): no clipping. UNITER uses 2.0.
    pub max_grad_norm: f64,
    /// Log a metrics line every this many steps (default 10). The steps'
    /// losses and metrics stay on the device until then (or until a
    /// checkpoint), so a GPU does not wait for the host between lines.
    pub log_every: usize,
    /// Write a resumable checkpoint (model, optimiser, step) into the run
    /// folder every this many steps, and after the last step; 0: only after
    /// the last step.
    pub checkpoint_every: usize,
    /// Number of held-out test pairs in the retrieval evaluation, and of
    /// held-out images captioned by captioning models.
    pub eval_candidates: usize,
    /// ALBEF/BLIP's retrieval protocol: the contrastive similarity ranks
    /// every candidate, then the matching (ITM) head re-scores each query's
    /// top `k` and orders them (needs a model with both). 0 (default): off,
    /// because on the synthetic world it made R@1 worse: an ITM head
    /// trained on random negatives does not separate near twins (train it
    /// on hard ones, `objectives.itm_hard`, for ALBEF's setting).
    pub eval_rerank_top_k: usize,
    /// Captions per held-out image that retrieval ranks: 1 (default), the
    /// pair's own caption; 5 is the Karpathy-split protocol of COCO and
    /// Flickr30k (ALBEF, BLIP): every text query is one of up to 5 captions
    /// per image, and an image finds its text when any of its captions
    /// ranks. Ranked by the contrastive similarity (not with
    /// `eval_rerank_top_k` or a matching-only model).
    pub eval_captions_per_image: usize,
    /// Beam size of held-out captioning (1: greedy).
    pub caption_beam_size: usize,
    /// The float type the run trains in: `"f32"` (default), `"bf16"` or
    /// `"f16"` where the backend computes in it (Flex on CPU, CUDA; not
    /// NdArray). Burn has no autocast: parameters, activations, gradients
    /// and optimiser state all take it. bf16 needs no loss scaling and is
    /// the safe half precision on GPUs ([`Precision`]).
    pub precision: Precision,
    /// α of held-out captioning's beam ranking `log_prob / len^α` (1,
    /// Hugging Face's default; 0: by probability alone; larger favours
    /// longer captions).
    pub caption_length_penalty: f64,
    /// `[data]`: the synthetic world, tokenizer and batching.
    pub data: DataConfig,
    /// `[model]`: the architecture and its sizes.
    pub model: ModelConfig,
    /// `[objectives]`: which objectives train, with their weights.
    pub objectives: ObjectivesConfig,
}

/// Synthetic world, tokenizer and masking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Side of the square images (and clip frames) in pixels.
    pub image_size: usize,
    /// Frames per clip when the model sees clips (`model.visual =
    /// "frames"`). Default 8.
    pub num_frames: usize,
    /// Longest caption in tokens, `[CLS]`/`[SEP]` included.
    pub max_text_len: usize,
    /// Token rows are padded up to one of this many lengths (multiples of
    /// `ceil(max_text_len / text_buckets)`), so a GPU backend compiles and
    /// autotunes each kernel for at most that many text shapes; 0 pads to
    /// each batch's longest caption (the least work on a CPU, a new shape
    /// for nearly every batch on a GPU). Default 4.
    pub text_buckets: usize,
    /// Pad the MLM and masked-patch targets of each batch to the next power
    /// of two (padding rows are left out of the losses), so their number
    /// takes a handful of values per run instead of a new one nearly every
    /// step; `false` keeps exact counts (a little less work on a CPU).
    /// Default true.
    pub pad_targets: bool,
    /// Vocabulary size of the WordPiece tokenizer trained on the world's corpus.
    pub tokenizer_vocab_size: usize,
    /// Scenes whose captions and questions train the tokenizer.
    pub tokenizer_corpus_scenes: usize,
    /// A `tokenizer.json` to use instead of training a WordPiece of
    /// `tokenizer_vocab_size`; relative paths start at the working
    /// directory (the workspace root under `cargo xtask`). The BERT-family
    /// `-base` presets name BERT's uncased vocabulary,
    /// `assets/all-minilm-l6-v2/tokenizer.json` (`cargo xtask assets`).
    /// `--tokenizer` overrides it. Default: unset.
    pub tokenizer: Option<PathBuf>,
    /// Fraction of text tokens MLM predicts.
    pub mlm_probability: f64,
    /// Probability that an ITM example is turned into a negative pair.
    pub itm_negative_probability: f64,
    /// Examples of each batch that also go through the fused pass (ITM, and
    /// MLM on the matched ones); ITC always uses the whole batch.
    pub fused_pairs: usize,
    /// Fill half of each batch with hard-negative twins (same layout, one
    /// attribute changed) of the other half.
    pub hard_negative_twins: bool,
    /// Length of the synthetic detector's region features (`model.visual = "regions"`).
    pub region_feature_size: usize,
    /// Noise standard deviation of the synthetic detector's features.
    pub region_feature_noise: f32,
    /// Share of the samples met that may be skipped as corrupt (a broken
    /// image, a bad annotation record) before the run stops.
    pub max_skipped: f64,
    /// Samples each WebDataset stream holds for shuffling.
    pub shuffle_buffer: usize,
    /// Datasets on disk to train on instead of the synthetic world
    /// (`[[data.sources]]`: `format`, `annotations`, `images` or `shards`,
    /// `weight`), mixed by weight. Empty: the synthetic world.
    pub sources: Vec<DatasetSpec>,
    /// The held-out dataset of retrieval and the held-out objectives
    /// (`[data.held_out]`); unset with a Karpathy source: that file's `val`
    /// split.
    pub held_out: Option<DatasetSpec>,
    /// How dataset images become `image_size` squares (`[data.image]`).
    pub image: ImageSettings,
}

/// The image pipeline of dataset images (the synthetic world's renders are
/// used as they are). The output side is `data.image_size`; the pixels are
/// scaled to `[-1, 1]` as the world's are, since the runner's models learn
/// their visual embeddings from scratch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSettings {
    /// Held-out images: the shorter side is resized to this, then the
    /// centre `image_size` square is cropped; 0 (the default): resize to
    /// `image_size` itself (CLIP's evaluation transform: the whole image
    /// of a square picture).
    pub resize_to: usize,
    /// Training: the random resized crop's area as a fraction of the
    /// image's. Default `[1.0, 1.0]`: the whole image, as the synthetic
    /// world's batches take it. On the exported world (default run, 20,000
    /// images each seen about four times) BLIP's `[0.5, 1.0]` with flips
    /// lost 0.22 of held-out text→image R@1 and open_clip's `[0.9, 1.0]`
    /// 0.08 (docs/pretraining.md): captions that name sizes and positions
    /// do not survive a crop of a small image. Turn it on for several
    /// epochs of photographs.
    pub scale: (f64, f64),
    /// Training: the random crop's width / height range.
    pub ratio: (f64, f64),
    /// Training: probability of a horizontal flip, which swaps "left" and
    /// "right" in the caption (ALBEF and BLIP: 0.5). Default 0.
    pub flip_probability: f64,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            resize_to: 0,
            scale: (1.0, 1.0),
            ratio: ImageTransformConfig::new().ratio,
            flip_probability: 0.0,
        }
    }
}

impl DataConfig {
    /// The image pipeline's configuration for images of `image_size`.
    pub fn image_transform(&self) -> ImageTransformConfig {
        let resize_to = match self.image.resize_to {
            0 => self.image_size,
            n => n,
        };
        ImageTransformConfig::new()
            .with_image_size(self.image_size)
            .with_resize_to(resize_to)
            .with_scale(self.image.scale)
            .with_ratio(self.image.ratio)
            .with_flip_probability(self.image.flip_probability)
            .with_normalization(Normalization::Inception)
    }

    /// Whether the run trains on datasets on disk.
    pub fn uses_datasets(&self) -> bool {
        !self.sources.is_empty()
    }

    /// The held-out dataset: `held_out`, or a Karpathy source's own file
    /// (its `val` split is read).
    pub fn held_out_spec(&self) -> Option<DatasetSpec> {
        self.held_out.clone().or_else(|| {
            self.sources
                .iter()
                .find(|spec| spec.format == ExportFormat::Karpathy)
                .cloned()
        })
    }
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            steps: 850,
            batch_size: 96,
            micro_batches: 1,
            learning_rate: 2e-3,
            warmup_steps: 50,
            schedule: Decay::Linear,
            weight_decay: 0.01,
            max_grad_norm: 0.0,
            log_every: 10,
            checkpoint_every: 200,
            eval_candidates: 1000,
            eval_rerank_top_k: 0,
            eval_captions_per_image: 1,
            caption_beam_size: 3,
            caption_length_penalty: 1.0,
            precision: Precision::F32,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            objectives: ObjectivesConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            image_size: 64,
            num_frames: 8,
            max_text_len: 40,
            text_buckets: 4,
            pad_targets: true,
            tokenizer_vocab_size: 200,
            tokenizer_corpus_scenes: 2000,
            tokenizer: None,
            mlm_probability: 0.15,
            itm_negative_probability: 0.5,
            fused_pairs: 32,
            hard_negative_twins: false,
            region_feature_size: DetectorConfig::default().feature_size,
            region_feature_noise: DetectorConfig::default().feature_noise,
            max_skipped: SkipLimit::default().max_share,
            shuffle_buffer: 1000,
            sources: Vec::new(),
            held_out: None,
            image: ImageSettings::default(),
        }
    }
}

impl PretrainConfig {
    /// A preset, then a TOML file on top of it (each optional), validated;
    /// errors name the preset or file and the offending key.
    pub fn from_layers(preset: Option<&Preset>, file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut merged = toml::Table::new();
        if let Some(preset) = preset {
            let table: toml::Table =
                toml::from_str(preset.toml).map_err(|err| ConfigError::Parse {
                    origin: format!("preset {}", preset.name),
                    message: one_line(&err.to_string()),
                })?;
            merge(&mut merged, table);
        }
        let mut origin = preset.map(|p| format!("preset {}", p.name));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                path: path.to_path_buf(),
                message: err.to_string(),
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|err| ConfigError::Parse {
                origin: format!("config file {}", path.display()),
                message: one_line(&err.to_string()),
            })?;
            merge(&mut merged, table);
            origin = Some(format!("config file {}", path.display()));
        }
        let origin = origin.unwrap_or_else(|| "defaults".into());
        let config = PretrainConfig::deserialize(merged).map_err(|err| ConfigError::Parse {
            origin: origin.clone(),
            message: one_line(&err.to_string()),
        })?;
        config.validate().map_err(|err| ConfigError::Parse {
            origin,
            message: err.to_string(),
        })?;
        Ok(config)
    }

    /// Reads a TOML file; errors name the file and the offending key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_layers(None, Some(path))
    }

    /// The configuration as TOML, every key written out.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a configuration of plain values serialises")
    }

    /// Checks values that would otherwise fail deep inside a run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("eval_candidates", self.eval_candidates),
            ("eval_captions_per_image", self.eval_captions_per_image),
            ("caption_beam_size", self.caption_beam_size),
            ("data.fused_pairs", self.data.fused_pairs),
            ("model.hidden_size", self.model.hidden_size),
            ("model.num_layers", self.model.num_layers),
            ("model.num_heads", self.model.num_heads),
            ("model.patch_size", self.model.patch_size),
            ("data.region_feature_size", self.data.region_feature_size),
            ("model.cnn_base_width", self.model.cnn_base_width),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::invalid(
                *key,
                format!("{key} must be positive"),
            ));
        }
        if self.batch_size < 2 {
            return Err(ConfigError::invalid(
                "batch_size",
                "batch_size must be at least 2 (contrastive and matching objectives need negatives)",
            ));
        }
        if self.micro_batches == 0
            || !self.batch_size.is_multiple_of(self.micro_batches)
            || self.batch_size / self.micro_batches < 2
        {
            return Err(ConfigError::invalid(
                "micro_batches",
                format!(
                    "micro_batches ({}) must divide batch_size ({}) into micro-batches of at least 2 pairs",
                    self.micro_batches, self.batch_size
                ),
            ));
        }
        if !self.model.hidden_size.is_multiple_of(self.model.num_heads) {
            return Err(ConfigError::invalid(
                "model.num_heads",
                format!(
                    "model.hidden_size ({}) must be a multiple of model.num_heads ({})",
                    self.model.hidden_size, self.model.num_heads
                ),
            ));
        }
        if !self.data.image_size.is_multiple_of(self.model.patch_size) {
            return Err(ConfigError::invalid(
                "model.patch_size",
                format!(
                    "model.patch_size ({}) must divide data.image_size ({})",
                    self.model.patch_size, self.data.image_size
                ),
            ));
        }
        if self.model.visual == VisualKind::Frames {
            self.validate_clips()?;
        }
        if matches!(self.model.architecture, Architecture::Hero { .. })
            && self.model.visual != VisualKind::Frames
        {
            return Err(ConfigError::invalid(
                "model.visual",
                format!(
                    "the hero architecture reads clips: set model.visual = \"frames\", not \"{}\"",
                    self.model.visual.name()
                ),
            ));
        }
        if self.model.visual == VisualKind::Grid && !self.data.image_size.is_multiple_of(32) {
            return Err(ConfigError::invalid(
                "data.image_size",
                format!(
                    "data.image_size ({}) must be a multiple of 32 for grid features (ResNet stride)",
                    self.data.image_size
                ),
            ));
        }
        if let Some(rows) = self.model.max_position_embeddings {
            if rows < self.data.max_text_len {
                return Err(ConfigError::invalid(
                    "model.max_position_embeddings",
                    format!(
                        "model.max_position_embeddings ({rows}) must cover data.max_text_len ({})",
                        self.data.max_text_len
                    ),
                ));
            }
        }
        if self.data.max_text_len < 3 {
            return Err(ConfigError::invalid(
                "data.max_text_len",
                "data.max_text_len must be at least 3",
            ));
        }
        for (key, value) in [
            ("data.mlm_probability", self.data.mlm_probability),
            (
                "data.itm_negative_probability",
                self.data.itm_negative_probability,
            ),
            ("model.dropout", self.model.dropout),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{key} must be within [0, 1], got {value}"),
                ));
            }
        }
        for (key, value) in [
            ("learning_rate", self.learning_rate),
            ("model.itc_temperature", self.model.itc_temperature),
        ] {
            if value.is_nan() || value <= 0.0 {
                return Err(ConfigError::invalid(key, format!("{key} must be positive")));
            }
        }
        if !self.caption_length_penalty.is_finite() {
            let message = "caption_length_penalty must be a finite number";
            return Err(ConfigError::invalid("caption_length_penalty", message));
        }
        if !(self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            return Err(ConfigError::invalid(
                "max_grad_norm",
                format!(
                    "max_grad_norm must be 0 (off) or positive, got {}",
                    self.max_grad_norm
                ),
            ));
        }
        if let Some(albef) = self.fusion(self.data.tokenizer_vocab_size) {
            albef.validate().map_err(|err| {
                ConfigError::invalid("model.architecture", format!("model.architecture.{err}"))
            })?;
            if albef.queue_size > 0 && self.micro_batches > 1 {
                return Err(ConfigError::invalid(
                    "micro_batches",
                    format!(
                        "micro_batches ({}) needs model.architecture.queue_size = 0: the momentum \
                         model and queue are updated from one whole batch per step",
                        self.micro_batches
                    ),
                ));
            }
        }
        self.objectives
            .validate(&self.model.architecture, self.model.visual)?;
        self.validate_datasets()?;
        self.validate_model()
            .map_err(|err| ConfigError::invalid("model", format!("model: {err}")))
    }

    /// Checks the `[data]` settings of datasets on disk, and that what the
    /// run asks of its data (regions, questions, twins) a dataset has.
    fn validate_datasets(&self) -> Result<(), ConfigError> {
        let data = &self.data;
        if !(0.0..=1.0).contains(&data.max_skipped) {
            return Err(ConfigError::invalid(
                "data.max_skipped",
                format!(
                    "data.max_skipped must be within [0, 1], got {}",
                    data.max_skipped
                ),
            ));
        }
        data.image_transform()
            .validate()
            .map_err(|err| ConfigError::invalid("data.image", format!("data.image: {err}")))?;
        for (i, spec) in data.sources.iter().enumerate() {
            spec.validate().map_err(|err| {
                ConfigError::invalid("data.sources", format!("data.sources[{i}]: {err}"))
            })?;
        }
        if let Some(spec) = &data.held_out {
            spec.validate().map_err(|err| {
                ConfigError::invalid("data.held_out", format!("data.held_out: {err}"))
            })?;
        }
        if !data.uses_datasets() {
            return Ok(());
        }
        let regionless = data
            .sources
            .iter()
            .chain(&data.held_out)
            .any(|s| s.regions.is_none());
        if self.model.visual == VisualKind::Regions && regionless {
            return Err(ConfigError::invalid(
                "model.visual",
                "a model on regions (model.visual = \"regions\") reads each dataset's region \
                 features: set `regions` in every [[data.sources]] and [data.held_out] \
                 (--regions, --val-regions)",
            ));
        }
        let needs_world = [
            (
                data.hard_negative_twins,
                "data.hard_negative_twins",
                "hard-negative twins",
            ),
            (
                self.objectives.uniter().vqa > 0.0,
                "objectives.vqa",
                "VQA questions in pre-training",
            ),
        ];
        if let Some((_, key, what)) = needs_world.iter().find(|(on, _, _)| *on) {
            return Err(ConfigError::invalid(
                *key,
                format!("{what} come from the synthetic world; with data.sources, turn {key} off"),
            ));
        }
        if data.held_out_spec().is_none() {
            return Err(ConfigError::invalid(
                "data.held_out",
                "data.sources needs a held-out dataset for evaluation: set [data.held_out] \
                 (--val-annotations/--val-images or --val-shards), or use a Karpathy file",
            ));
        }
        Ok(())
    }

    /// What clips need: frames, the synthetic world, no VQA questions.
    fn validate_clips(&self) -> Result<(), ConfigError> {
        if self.data.num_frames == 0 {
            return Err(ConfigError::invalid(
                "data.num_frames",
                "data.num_frames must be positive for a model on clips",
            ));
        }
        if self.model.time_kernel.is_multiple_of(2) {
            return Err(ConfigError::invalid(
                "model.time_kernel",
                format!(
                    "model.time_kernel ({}) must be odd: a token sees its frame and as many \
                     frames before as after",
                    self.model.time_kernel
                ),
            ));
        }
        if self.data.uses_datasets() {
            return Err(ConfigError::invalid(
                "model.visual",
                "a model on clips (model.visual = \"frames\") trains on the synthetic world's \
                 clips; datasets on disk give images",
            ));
        }
        if self.objectives.uniter().vqa > 0.0 {
            return Err(ConfigError::invalid(
                "objectives.vqa",
                "VQA questions are about the world's images, not clips: set objectives.vqa = 0",
            ));
        }
        Ok(())
    }

    /// Takes the text tower's sizes from a Hugging Face BERT `config.json`
    /// (post-norm layers, its position table), so that the checkpoint loads.
    pub fn adopt_bert(&mut self, bert: &BertConfig) {
        let m = &mut self.model;
        m.hidden_size = bert.hidden_size;
        m.num_layers = bert.num_layers;
        m.num_heads = bert.num_heads;
        m.intermediate_size = bert.intermediate_size;
        m.norm_first = false;
        m.max_position_embeddings = Some(bert.max_position_embeddings);
    }

    /// The synthetic detector region-based models read, if the model uses regions.
    pub fn detector(&self) -> Option<DetectorConfig> {
        (self.model.visual == VisualKind::Regions).then(|| DetectorConfig {
            feature_size: self.data.region_feature_size,
            feature_noise: self.data.region_feature_noise,
            ..DetectorConfig::default()
        })
    }
}

/// Overlays `top` on `base`, table by table.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(top)) => merge(base, top),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
