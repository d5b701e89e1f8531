//! Inference on a pre-training run folder (survey §6: a shared text-image
//! space, learnt by contrastive pre-training, serving retrieval and
//! zero-shot classification downstream, as CLIP uses its own): the run's
//! model loaded from `model.mpk` with its tokenizer and held-out image
//! pipeline ([`InferenceRun`]), and an [`Embedder`] of texts and image files
//! into its space, which `cargo xtask embed --run`, `search` and `classify`
//! use ([`run_embed`], [`search`], [`zero_shot`]).
//!
//! Only models that rank candidates by their unimodal embeddings
//! ([`RankBy::Embeddings`]: CLIP's dual encoder, ALBEF, the dual-stream
//! models, a single stream trained with ITC) have such a space; images are
//! read from files, so region-feature models are refused.

pub mod images;
pub mod run_embed;
pub mod search;
pub mod zero_shot;

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use vlp_data::source::CorruptBudget;
use vlp_data::{
    tokens_to_tensors, ImagePipeline, ImageSample, ImageSource, TextTokenizer, TransformMode,
    VisualBatch,
};
use vlp_objectives::{Pretrainer, RankBy, RetrievalModel};

use crate::build::{with_model, ModelTask};
use crate::checkpoint::{load_checkpoint, TOKENIZER_FILE};
use crate::config::{PretrainConfig, VisualKind};
use crate::data::{budget, tokenizer};
use crate::error::{ConfigError, Result};
use crate::eval::Evaluate;
use crate::run::run_config;

/// Texts or images per forward pass by default.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// A run folder opened for inference: its configuration, tokenizer and
/// held-out image pipeline (`config.data.image_transform()`, as evaluation
/// reads images).
#[derive(Debug, Clone)]
pub struct InferenceRun {
    /// The run folder.
    pub dir: PathBuf,
    /// Its `config.toml`.
    pub config: PretrainConfig,
    /// Its `tokenizer.json`.
    pub tokenizer: TextTokenizer,
    /// Image files to normalised `data.image_size` squares.
    pub pipeline: ImagePipeline,
}

impl InferenceRun {
    /// Opens the run folder `dir`. A folder without `config.toml` or
    /// `tokenizer.json` is an error naming the file; a model on region
    /// features (`model.visual = "regions"`) is an error too, since images
    /// here are files.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = run_config(dir)?;
        if config.model.visual == VisualKind::Regions {
            return Err(ConfigError::invalid(
                "model.visual",
                format!(
                    "{}: the model reads detector regions (model.visual = \"regions\"); \
                     inference reads image files: use a run on patches or a grid",
                    dir.display()
                ),
            )
            .into());
        }
        let tokenizer = tokenizer(&config, Some(&dir.join(TOKENIZER_FILE)))?;
        let pipeline = config.data.image_transform().init()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tokenizer,
            pipeline,
        })
    }

    /// The run's budget of unreadable images (`data.max_skipped` of those met).
    pub fn budget(&self) -> CorruptBudget {
        budget(&self.config)
    }

    /// Builds the run's model on backend `B`, loads `model.mpk` into it and
    /// runs `work` with an [`Embedder`] on `B`'s inference backend (no
    /// autodiff: no dropout), `batch_size` texts or images per pass. A model
    /// without a joint text-image space is an error naming its architecture
    /// and what to use instead; so is a zero batch size.
    pub fn with_embedder<B, T, F>(
        &self,
        batch_size: usize,
        device: &B::Device,
        work: F,
    ) -> Result<T>
    where
        B: AutodiffBackend,
        F: FnOnce(&Embedder<'_, B::InnerBackend>) -> Result<T>,
    {
        if batch_size == 0 {
            return Err(
                ConfigError::invalid("batch_size", "the batch size must be positive").into(),
            );
        }
        let task = Loaded {
            run: self,
            batch_size,
            device,
            work,
        };
        with_model::<B, _>(
            &self.config,
            self.tokenizer.vocab_size(),
            self.tokenizer.special(),
            None,
            device,
            task,
        )?
    }

    /// Why the run's model (of `rank_by`, `None` when it has no retrieval
    /// at all) cannot embed, and what to use instead.
    fn no_joint_space(&self, rank_by: Option<RankBy>) -> ConfigError {
        let why = match rank_by {
            Some(RankBy::Matching) => {
                "ranks image-text pairs with its matching head only (objectives.itc = 0)"
            }
            Some(_) => "was trained with neither a contrastive nor a matching objective",
            None => "is generative (it captions images; `cargo xtask eval` scores its captions)",
        };
        ConfigError::invalid(
            "run",
            format!(
                "{}: its {} model {why}, so it has no joint text-image space to embed into; \
                 use a run with one: clip-tiny, albef-tiny, vilbert-tiny, lxmert-tiny, or a \
                 single_stream run with objectives.itc > 0",
                self.dir.display(),
                self.config.model.architecture.name()
            ),
        )
    }
}

/// Loads the checkpoint into the freshly built model and runs the work.
struct Loaded<'a, B: AutodiffBackend, F> {
    run: &'a InferenceRun,
    batch_size: usize,
    device: &'a B::Device,
    work: F,
}

impl<B, T, F> ModelTask<B> for Loaded<'_, B, F>
where
    B: AutodiffBackend,
    F: FnOnce(&Embedder<'_, B::InnerBackend>) -> Result<T>,
{
    type Output = Result<T>;

    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let model = load_checkpoint(model.valid(), &self.run.dir, self.device)?;
        let retrieval = model.retrieval_model();
        let model = match retrieval.map(|m| (m, m.rank_by())) {
            Some((model, RankBy::Embeddings)) => model,
            other => return Err(self.run.no_joint_space(other.map(|(_, r)| r)).into()),
        };
        (self.work)(&Embedder {
            model,
            run: self.run,
            batch_size: self.batch_size,
            device: self.device,
        })
    }
}

/// Texts and image files into a run's joint space: unit rows `[N, D]`.
pub struct Embedder<'a, B: Backend> {
    model: &'a dyn RetrievalModel<B>,
    run: &'a InferenceRun,
    batch_size: usize,
    device: &'a B::Device,
}

/// What [`Embedder::images`] made of image files.
#[derive(Debug, Clone)]
pub struct EmbeddedImages<B: Backend> {
    /// `[N, D]` unit embeddings of the images that could be read.
    pub embeddings: Tensor<B, 2>,
    /// Their positions in the list of files, in order (`N` of them).
    pub kept: Vec<usize>,
}

impl<B: Backend> Embedder<'_, B> {
    /// `[N, D]` unit embeddings of `texts` (`N` ≥ 1 of them), tokenized as
    /// the run's captions were (`data.max_text_len` tokens at most).
    pub fn texts(&self, texts: &[String]) -> Result<Tensor<B, 2>> {
        let max_len = self.run.config.data.max_text_len;
        let mut batches = Vec::with_capacity(texts.len().div_ceil(self.batch_size));
        for batch in texts.chunks(self.batch_size) {
            let tokens = self.run.tokenizer.encode(batch, max_len)?;
            let (ids, padding) = tokens_to_tensors::<B>(&tokens, self.device);
            batches.push(self.model.embed_text(ids, padding));
        }
        Ok(Tensor::cat(batches, 0))
    }

    /// Unit embeddings of the image files `paths`, read and resized by the
    /// run's held-out pipeline. A file that cannot be read or decoded is
    /// skipped and counted against `budget` (an error once it allows no
    /// more); no readable image at all is an error.
    pub fn images(&self, paths: &[PathBuf], budget: &CorruptBudget) -> Result<EmbeddedImages<B>> {
        let mut batches = Vec::new();
        let mut kept = Vec::with_capacity(paths.len());
        for (start, chunk) in (0..paths.len())
            .step_by(self.batch_size)
            .zip(paths.chunks(self.batch_size))
        {
            let samples: Vec<ImageSample> = chunk
                .iter()
                .enumerate()
                .map(|(i, path)| ImageSample {
                    index: (start + i) as u64,
                    image: ImageSource::File(path),
                    caption: "",
                })
                .collect();
            let batch = self
                .run
                .pipeline
                .batch::<B>(&samples, TransformMode::Eval, self.device);
            batch.indices.iter().for_each(|_| budget.read());
            for skipped in &batch.skipped {
                budget.skip(skipped.error.to_string())?;
            }
            kept.extend(batch.indices.iter().map(|&i| i as usize));
            if !batch.is_empty() {
                batches.push(self.model.embed_image(&VisualBatch::Images(batch.images)));
            }
        }
        if batches.is_empty() {
            return Err(ConfigError::invalid(
                "images",
                format!(
                    "none of the {} image files could be read ({})",
                    paths.len(),
                    budget.report().reasons.join("; ")
                ),
            )
            .into());
        }
        Ok(EmbeddedImages {
            embeddings: Tensor::cat(batches, 0),
            kept,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use burn::backend::{Autodiff, NdArray};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use vlp_data::synthetic::{
        caption, render, RgbImage, SceneObject, Split, SyntheticWorld, COLOURS, SHAPES, SIZES,
    };

    use super::search::search;
    use super::zero_shot::classify;
    use crate::{presets, PretrainConfig, PretrainRun};

    type B = Autodiff<NdArray>;

    /// `clip-tiny`, shortened: one layer per tower, 32 wide, on 32-pixel
    /// images of 16 patches.
    const SHORT_CLIP: &str = r#"
steps = 120
batch_size = 32
warmup_steps = 10
log_every = 60
eval_candidates = 8
[data]
image_size = 32
tokenizer_corpus_scenes = 200
[model]
patch_size = 8
hidden_size = 32
num_heads = 2
intermediate_size = 64
[model.architecture]
kind = "dual_encoder"
text_layers = 1
image_layers = 1
projection_dim = 32
"#;

    fn write_png(path: &Path, image: &RgbImage) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = vlp_data::source::png(image, &path.display().to_string()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_tiny_clip_run_classifies_colours_zero_shot_and_finds_described_scenes() {
        let _draws = crate::ndarray_draws();
        let dir = std::env::temp_dir().join(format!("vlp-inference-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("clip.toml");
        std::fs::write(&file, SHORT_CLIP).unwrap();
        let preset = presets::find("clip-tiny").unwrap();
        let mut config = PretrainConfig::from_layers(Some(preset), Some(&file)).unwrap();
        // Seeds 7 (the default), 1, 2, 3 measured zero-shot top-1 0.94, 0.50,
        // 0.56, 0.94 (chance 0.25) and search hits 15, 9, 8, 13 of 16 (chance
        // 3 of 16); the margins below are about half the smallest gains.
        // VLP_LEARNING_SEED tries another seed.
        config.seed = std::env::var("VLP_LEARNING_SEED").map_or(7, |s| s.parse().unwrap());
        let world = SyntheticWorld::new(config.seed, config.data.image_size);
        let run = PretrainRun {
            config,
            out: dir.join("run"),
            tokenizer: None,
            init_text: None,
            init: None,
        };
        let device = Default::default();
        let started = std::time::Instant::now();
        run.run::<B>(&device, &mut ()).unwrap();
        eprintln!("trained in {:.1?}", started.elapsed());

        // Fresh renders of one object (any shape, size and place), a folder
        // per colour (4 colours).
        const CLASSES: usize = 4;
        const PER_CLASS: usize = 8;
        let classes = dir.join("classes");
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let side = world.image_size as f32;
        for (colour, (name, _)) in COLOURS.iter().enumerate().take(CLASSES) {
            for i in 0..PER_CLASS {
                let size = rng.random_range(0..SIZES.len());
                let radius = (SIZES[size].1 * side).round();
                let mut place = || rng.random_range(radius + 1.0..side - radius - 1.0);
                let centre = (place(), place());
                let object = SceneObject {
                    colour,
                    shape: rng.random_range(0..SHAPES.len()),
                    size,
                    centre,
                    radius,
                };
                let image = render(&[object], world.image_size, &mut rng);
                write_png(&classes.join(format!("{name}/{i}.png")), &image);
            }
        }
        let templates: Vec<String> = ["a small {} circle", "a large {} square", "a {} cross"]
            .map(String::from)
            .to_vec();
        let report = classify::<B>(&run.out, &classes, &templates, 2, &device).unwrap();
        eprintln!("{}", report.table());
        assert_eq!(report.data.read, CLASSES * PER_CLASS);
        let chance = 1.0 / CLASSES as f64;
        assert!(
            report.accuracy.top1 >= chance + 0.125,
            "top-1 {} vs chance {chance}",
            report.accuracy.top1
        );

        // Search: each of 16 held-out scenes by its first caption.
        const SCENES: usize = 16;
        const TOP: usize = 3;
        let gallery = dir.join("gallery");
        let samples: Vec<_> = (0..SCENES).map(|i| world.sample(Split::Test, i)).collect();
        for (i, sample) in samples.iter().enumerate() {
            write_png(&gallery.join(format!("{i:02}.png")), &sample.image);
        }
        let found = samples
            .iter()
            .enumerate()
            .filter(|(i, sample)| {
                let query = caption(&sample.scene, 0);
                let result = search::<B>(&run.out, &gallery, &query, TOP, &device).unwrap();
                let wanted = gallery.join(format!("{i:02}.png"));
                result.hits.iter().any(|hit| hit.path == wanted)
            })
            .count();
        let (rate, chance) = (found as f64 / SCENES as f64, TOP as f64 / SCENES as f64);
        eprintln!("search: {found} of {SCENES} scenes in the top {TOP} (chance {chance})");
        assert!(rate >= chance + 0.15, "{rate} vs chance {chance}");
        eprintln!("in {:.1?}", started.elapsed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
