//! WordPiece vocabulary training (BERT's tokenizer, survey §2.1.3) that gives
//! the same vocabulary every time for one corpus.
//!
//! `tokenizers`' own `WordPieceTrainer` counts words in a hash map with a
//! per-process random seed, numbers the `##` continuation pieces in that
//! map's iteration order, and breaks ties between equally frequent merges by
//! those numbers: two trainings on one corpus give different vocabularies,
//! so two seeded runs differ. This trainer feeds the same BPE trainer a word
//! map with fixed hash seeds; everything else is the crate's algorithm.

use ahash::{AHashMap, RandomState};
use compact_str::CompactString;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{AddedToken, Result, Trainer};

/// Fixed seeds of the word map (any constants; only that they are fixed
/// matters).
const WORD_MAP_SEEDS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2545_f491_4f6c_dd1d,
];

/// A `tokenizers` [`Trainer`] for [`WordPiece`] with a deterministic result:
/// the BPE merges of the crate's `WordPieceTrainer` (continuation prefix
/// `##`), over word counts kept in insertion-ordered, fixed-seed storage.
pub struct DeterministicWordPieceTrainer {
    bpe: BpeTrainer,
    words: AHashMap<CompactString, u64>,
}

impl DeterministicWordPieceTrainer {
    /// A trainer for `vocab_size` entries (special tokens included) that
    /// keeps pieces seen at least `min_frequency` times.
    pub fn new(vocab_size: usize, min_frequency: u64, special_tokens: Vec<AddedToken>) -> Self {
        let [k0, k1, k2, k3] = WORD_MAP_SEEDS;
        Self {
            bpe: BpeTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(min_frequency)
                .show_progress(false)
                .special_tokens(special_tokens)
                .continuing_subword_prefix("##".into())
                .build(),
            words: AHashMap::with_hasher(RandomState::with_seeds(k0, k1, k2, k3)),
        }
    }
}

impl Trainer for DeterministicWordPieceTrainer {
    type Model = WordPiece;

    fn should_show_progress(&self) -> bool {
        false
    }

    fn train(&self, model: &mut WordPiece) -> Result<Vec<AddedToken>> {
        let mut bpe = BPE::default();
        let special_tokens = self.bpe.do_train(&self.words, &mut bpe)?;
        // What the crate's `WordPieceTrainer::train` transfers: the vocabulary
        // and the continuation prefix; `[UNK]` stays the model's unknown token.
        let mut trained = WordPiece::from_bpe(&bpe);
        trained.unk_token = std::mem::take(&mut model.unk_token);
        trained.max_input_chars_per_word = model.max_input_chars_per_word;
        *model = trained;
        Ok(special_tokens)
    }

    fn feed<I, S, F>(&mut self, iterator: I, process: F) -> Result<()>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
        F: Fn(&str) -> Result<Vec<String>> + Sync,
    {
        // Sequentially, so the map's insertion order (and with fixed seeds its
        // iteration order) is the corpus order.
        for sequence in iterator {
            for word in process(sequence.as_ref())? {
                *self.words.entry(CompactString::from(word)).or_insert(0) += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::TextTokenizer;

    /// A corpus full of ties (every letter and pair as frequent as the next)
    /// trains to one vocabulary however often it is trained; the crate's own
    /// trainer differed between processes on the synthetic world's captions.
    #[test]
    fn training_twice_gives_one_vocabulary() {
        let corpus: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    "the {} left of a dark picture background",
                    ["red", "blue", "green", "tiny"][i % 4]
                )
            })
            .collect();
        let vocab = || {
            let tokenizer = TextTokenizer::train_wordpiece(&corpus, 60).unwrap();
            let ids: Vec<u32> = (0..tokenizer.vocab_size() as u32).collect();
            tokenizer.tokens(&ids)
        };
        let first = vocab();
        assert!(first.len() > 40, "{} entries", first.len());
        for _ in 0..3 {
            assert_eq!(vocab(), first);
        }
    }
}
