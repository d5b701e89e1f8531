//! The tiny synthetic-world batchers of the learning and parity tests:
//! 32-pixel images, a 200-token WordPiece vocabulary, captions of at most
//! 40 tokens.

use vlp_data::synthetic::{DetectorConfig, SyntheticDetector, SyntheticWorld};
use vlp_data::{PretrainBatcher, TextTokenizer};

/// Side of the tiny worlds' images, in pixels.
pub const IMAGE_SIZE: usize = 32;
/// The tiny tokenizer's vocabulary size (specials included).
pub const VOCAB_SIZE: usize = 200;
/// Longest caption of the tiny batchers, `[CLS]` and `[SEP]` included.
pub const MAX_TEXT_LEN: usize = 40;

/// A WordPiece tokenizer trained on 200 scenes' captions of `world`.
pub fn tiny_tokenizer(world: &SyntheticWorld) -> TextTokenizer {
    TextTokenizer::train_wordpiece(&world.corpus(200), VOCAB_SIZE)
        .expect("the synthetic corpus trains a tokenizer")
}

/// The pixel batcher of world `seed` ([`PretrainBatcher::new`]'s defaults).
pub fn tiny_world_batcher(seed: u64) -> PretrainBatcher {
    let world = SyntheticWorld::new(seed, IMAGE_SIZE);
    let tokenizer = tiny_tokenizer(&world);
    PretrainBatcher::new(world, tokenizer, MAX_TEXT_LEN)
}

/// [`tiny_world_batcher`] with the world's detector regions instead of pixels.
pub fn tiny_region_batcher(seed: u64) -> PretrainBatcher {
    tiny_world_batcher(seed).with_detector(Some(SyntheticDetector::new(
        seed,
        DetectorConfig::default(),
    )))
}
