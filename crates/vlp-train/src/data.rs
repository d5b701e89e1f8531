//! A run's data, as its configuration describes it: the synthetic world
//! (survey §5's pre-training corpus stand-in) or the datasets on disk of
//! `[[data.sources]]`, the world's frozen detector for region models, the
//! tokenizer and the batcher with the masking and targets that the chosen
//! objectives need (survey §4).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vlp_data::regions::{open_regions, SharedRegions};
use vlp_data::source::{
    CorruptBudget, DatasetSpec, OpenedDataset, SampleList, SampleSource, ShardSplit, SkipLimit,
    WebDatasetOptions,
};
use vlp_data::synthetic::{Split, SyntheticDetector, SyntheticWorld};
use vlp_data::{
    AnswerVocabulary, DataError, DatasetPairs, MlmMasking, PatchMasking, PretrainBatcher,
    RegionMasking, TargetSlots, TextPadding, TextTokenizer, WeightedDataset,
};

use crate::config::{Architecture, PretrainConfig, VisualKind};
use crate::error::Result;
use crate::ConfigError;

/// The world a configuration describes.
pub fn world(config: &PretrainConfig) -> SyntheticWorld {
    SyntheticWorld::new(config.seed, config.data.image_size)
}

/// The world's frozen detector, when the model reads regions.
pub fn detector(config: &PretrainConfig) -> Option<SyntheticDetector> {
    config
        .detector()
        .map(|detector| SyntheticDetector::new(config.seed, detector))
}

/// Loads the tokenizer from `path` (else from `data.tokenizer`), or trains a
/// WordPiece of `data.tokenizer_vocab_size` on the captions of the first
/// `data.tokenizer_corpus_scenes` training samples (of each dataset, or of
/// the world with its questions).
pub fn tokenizer(config: &PretrainConfig, path: Option<&Path>) -> Result<TextTokenizer> {
    let configured = config.data.tokenizer.as_deref().filter(|_| path.is_none());
    if let Some(missing) = configured.filter(|file| !file.exists()) {
        return Err(ConfigError::Invalid {
            key: "data.tokenizer".into(),
            message: format!(
                "data.tokenizer {} does not exist: fetch the assets with `cargo xtask \
                 assets` and run from the workspace root, or give --tokenizer FILE",
                missing.display()
            ),
        }
        .into());
    }
    Ok(match path.or(configured) {
        Some(path) => TextTokenizer::from_file(path)?,
        None => {
            let corpus = match config.data.uses_datasets() {
                true => dataset_corpus(config)?,
                false if config.model.visual == VisualKind::Frames => world(config)
                    .clip_corpus(config.data.tokenizer_corpus_scenes, config.data.num_frames),
                false => world(config).corpus(config.data.tokenizer_corpus_scenes),
            };
            TextTokenizer::train_wordpiece(&corpus, config.data.tokenizer_vocab_size)?
        }
    })
}

/// The captions of the first `data.tokenizer_corpus_scenes` samples of
/// each training dataset.
fn dataset_corpus(config: &PretrainConfig) -> Result<Vec<String>> {
    let (n, budget) = (config.data.tokenizer_corpus_scenes, budget(config));
    let mut corpus = Vec::new();
    for spec in &config.data.sources {
        match spec.open(Split::Train, &budget)? {
            OpenedDataset::Indexed(source) => {
                for index in 0..n.min(source.len()) {
                    corpus.extend(source.get(index)?.captions);
                }
            }
            OpenedDataset::Shards(shards) => {
                let stream =
                    shards.stream(ShardSplit::all(), WebDatasetOptions::default(), &budget)?;
                for sample in stream.take(n) {
                    corpus.extend(sample?.captions);
                }
            }
        }
    }
    Ok(corpus)
}

/// The run's budget of corrupt samples (`data.max_skipped`).
pub(crate) fn budget(config: &PretrainConfig) -> CorruptBudget {
    CorruptBudget::new(SkipLimit {
        max_share: config.data.max_skipped,
        ..SkipLimit::default()
    })
}

/// The datasets of `[[data.sources]]` and `[data.held_out]`, opened (their
/// annotations parsed; images are read as batches need them); `None` for
/// the synthetic world.
pub fn datasets(config: &PretrainConfig) -> Result<Option<DatasetPairs>> {
    let data = &config.data;
    if !data.uses_datasets() {
        return Ok(None);
    }
    let budget = budget(config);
    // A folder or TSV file named by several datasets (the held-out set is
    // often the training set's other split) is opened and indexed once.
    let mut opened = HashMap::new();
    let mut train = Vec::with_capacity(data.sources.len());
    for spec in &data.sources {
        train.push(WeightedDataset {
            dataset: spec.open(Split::Train, &budget)?,
            weight: spec.weight,
            regions: regions(config, spec, &mut opened)?,
        });
    }
    let (held_out, held_out_regions) = match data.held_out_spec() {
        Some(spec) => (
            Some(held_out_source(&spec, &budget)?),
            regions(config, &spec, &mut opened)?,
        ),
        None => (None, None),
    };
    Ok(Some(DatasetPairs {
        train,
        held_out,
        held_out_regions,
        pipeline: data.image_transform().init()?,
        budget,
        seed: config.seed,
        shuffle_buffer: data.shuffle_buffer,
    }))
}

/// The region features of `spec`, opened when the model reads regions
/// (once per path: `opened` keeps those already opened); their width must
/// be `data.region_feature_size` (checked on the first record).
fn regions(
    config: &PretrainConfig,
    spec: &DatasetSpec,
    opened: &mut HashMap<PathBuf, SharedRegions>,
) -> Result<Option<SharedRegions>> {
    let (Some(path), VisualKind::Regions) = (&spec.regions, config.model.visual) else {
        return Ok(None);
    };
    if let Some(regions) = opened.get(path) {
        return Ok(Some(regions.clone()));
    }
    let regions = open_regions(path)?;
    let first = regions.ids().first().ok_or_else(|| DataError::RegionIo {
        path: path.clone(),
        reason: "holds no region features".into(),
    })?;
    let width = regions.get(first)?.feature_dim;
    let expected = config.data.region_feature_size;
    if width != expected {
        return Err(ConfigError::invalid(
            "data.region_feature_size",
            format!(
                "{} holds {width}-d region features; data.region_feature_size is {expected}",
                path.display()
            ),
        )
        .into());
    }
    opened.insert(path.clone(), regions.clone());
    Ok(Some(regions))
}

/// The held-out split of `spec` with random access: held-out shards are
/// read into memory once (a held-out set is a few thousand samples).
fn held_out_source(
    spec: &DatasetSpec,
    budget: &CorruptBudget,
) -> Result<Arc<dyn SampleSource>, DataError> {
    Ok(match spec.open(Split::Val, budget)? {
        OpenedDataset::Indexed(source) => source,
        OpenedDataset::Shards(shards) => {
            let samples = shards
                .stream(ShardSplit::all(), WebDatasetOptions::default(), budget)?
                .collect::<Result<Vec<_>, _>>()?;
            let origin = PathBuf::from(spec.shards.clone().unwrap_or_default());
            Arc::new(SampleList::new(origin, samples))
        }
    })
}

/// The batcher of a run: MLM masking and ITM pairs always; masked regions,
/// masked patches and VQA questions when the single-stream objectives need
/// them.
pub fn batcher(config: &PretrainConfig, tokenizer: TextTokenizer) -> Result<PretrainBatcher> {
    let objectives = config.objectives.uniter();
    let single_stream = matches!(config.model.architecture, Architecture::SingleStream {});
    let max_text_len = config.data.max_text_len;
    let batcher = match datasets(config)? {
        Some(datasets) => PretrainBatcher::from_datasets(datasets, tokenizer, max_text_len),
        None => PretrainBatcher::new(world(config), tokenizer, max_text_len)
            .with_detector(detector(config))
            .with_clips(
                (config.model.visual == VisualKind::Frames).then_some(config.data.num_frames),
            )
            .with_vqa_answers(
                (single_stream && objectives.vqa > 0.0).then(AnswerVocabulary::synthetic),
            ),
    };
    Ok(batcher
        .with_masking(MlmMasking {
            probability: config.data.mlm_probability,
            ..MlmMasking::default()
        })
        .with_shapes(
            TextPadding::buckets(config.data.text_buckets),
            match config.data.pad_targets {
                true => TargetSlots::PowerOfTwo,
                false => TargetSlots::Exact,
            },
        )
        .with_itm_negative_probability(config.data.itm_negative_probability)
        .with_fused_pairs(Some(config.data.fused_pairs))
        .with_region_masking(
            (single_stream && objectives.masks_regions()).then(RegionMasking::uniter),
        )
        .with_patch_masking(
            (single_stream && objectives.mpp > 0.0)
                .then(|| PatchMasking::vilt(config.model.patch_size)),
        ))
}
