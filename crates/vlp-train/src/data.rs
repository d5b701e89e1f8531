//! A run's data, as its configuration describes it: the synthetic world
//! (survey §5's pre-training corpus stand-in), its frozen detector for
//! region models, the tokenizer and the batcher with the masking and
//! targets that the chosen objectives need (survey §4).

use std::path::Path;

use vlp_data::synthetic::{SyntheticDetector, SyntheticWorld};
use vlp_data::{
    AnswerVocabulary, MlmMasking, PatchMasking, PretrainBatcher, RegionMasking, TextTokenizer,
};

use crate::config::{Architecture, PretrainConfig};
use crate::error::Result;

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

/// Loads the tokenizer from `path`, or trains a WordPiece of
/// `data.tokenizer_vocab_size` on the world's corpus.
pub fn tokenizer(config: &PretrainConfig, path: Option<&Path>) -> Result<TextTokenizer> {
    Ok(match path {
        Some(path) => TextTokenizer::from_file(path)?,
        None => {
            let corpus = world(config).corpus(config.data.tokenizer_corpus_scenes);
            TextTokenizer::train_wordpiece(&corpus, config.data.tokenizer_vocab_size)?
        }
    })
}

/// The batcher of a run: MLM masking and ITM pairs always; masked regions,
/// masked patches and VQA questions when the single-stream objectives need them.
pub fn batcher(config: &PretrainConfig, tokenizer: TextTokenizer) -> PretrainBatcher {
    let objectives = config.objectives.uniter();
    let single_stream = matches!(config.model.architecture, Architecture::SingleStream {});
    PretrainBatcher::new(world(config), tokenizer, config.data.max_text_len)
        .with_masking(MlmMasking {
            probability: config.data.mlm_probability,
            ..MlmMasking::default()
        })
        .with_itm_negative_probability(config.data.itm_negative_probability)
        .with_fused_pairs(Some(config.data.fused_pairs))
        .with_detector(detector(config))
        .with_region_masking(
            (single_stream && objectives.masks_regions()).then(RegionMasking::uniter),
        )
        .with_patch_masking(
            (single_stream && objectives.mpp > 0.0)
                .then(|| PatchMasking::vilt(config.model.patch_size)),
        )
        .with_vqa_answers((single_stream && objectives.vqa > 0.0).then(AnswerVocabulary::synthetic))
}
