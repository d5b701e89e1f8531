//! Subword tokenization through the `tokenizers` crate, from a
//! `tokenizer.json` file (e.g. BERT's uncased WordPiece) or trained on a corpus.

use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer, TokenizerImpl};

use crate::wordpiece_trainer::DeterministicWordPieceTrainer;
use crate::DataError;

/// How a batch of token rows is padded.
///
/// A CPU backend runs any shape at the same speed, so padding to the
/// batch's longest row costs least there. A GPU backend (CubeCL) compiles
/// and autotunes its kernels once per shape, so a run whose batches take a
/// new length every step keeps compiling: [`Self::Buckets`] bounds the
/// number of shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPadding {
    /// Pad to the longest row of the batch.
    Longest,
    /// Pad up to the next multiple of `ceil(max_len / n)`, capped at
    /// `max_len`: at most `n` distinct lengths (`Buckets(1)`: always
    /// `max_len`).
    Buckets(usize),
}

impl TextPadding {
    /// `n` buckets, or [`Self::Longest`] for `n = 0` (the configuration's
    /// spelling, `data.text_buckets`).
    pub fn buckets(n: usize) -> Self {
        match n {
            0 => Self::Longest,
            n => Self::Buckets(n),
        }
    }

    /// The padded length of a batch whose longest row has `longest` tokens
    /// (at most `max_len`).
    pub fn padded_length(self, longest: usize, max_len: usize) -> usize {
        match self {
            Self::Longest => longest,
            Self::Buckets(n) => {
                let width = max_len.div_ceil(n.max(1));
                (longest.div_ceil(width) * width).min(max_len)
            }
        }
    }
}

/// Ids of the special tokens vlp relies on (BERT's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `[PAD]`.
    pub pad: u32,
    /// `[UNK]`.
    pub unk: u32,
    /// `[CLS]`, first token of every sequence.
    pub cls: u32,
    /// `[SEP]`, last token of every sequence.
    pub sep: u32,
    /// `[MASK]`, the MLM mask token.
    pub mask: u32,
}

impl SpecialTokens {
    /// Whether `id` is one of the special tokens (never masked or sampled).
    pub fn contains(&self, id: u32) -> bool {
        [self.pad, self.unk, self.cls, self.sep, self.mask].contains(&id)
    }
}

const SPECIAL_NAMES: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// A batch of token ids, padded to its longest sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedBatch {
    /// `[batch][max_len]` ids, `[CLS] … [SEP]` then padding.
    pub ids: Vec<Vec<u32>>,
    /// Number of real (non-padding) tokens of each sequence.
    pub lengths: Vec<usize>,
    /// `[batch][max_len]` index of the word (pre-tokenizer piece) each token
    /// belongs to, `None` at special tokens and padding; the sub-tokens of
    /// one word share an index. Whole-word masking groups tokens by it.
    pub word_ids: Vec<Vec<Option<u32>>>,
}

/// A WordPiece-style tokenizer with BERT's special tokens.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
}

impl TextTokenizer {
    /// Loads a Hugging Face `tokenizer.json`. A missing file, a file that is not
    /// a tokenizer, or one without `[PAD] [UNK] [CLS] [SEP] [MASK]` is an error
    /// naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(DataError::TokenizerNotFound {
                path: path.to_path_buf(),
            });
        }
        let inner = Tokenizer::from_file(path).map_err(|err| DataError::TokenizerInvalid {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        Self::from_tokenizer(inner, &path.display().to_string())
    }

    fn from_tokenizer(mut inner: Tokenizer, source_name: &str) -> Result<Self, DataError> {
        // Published tokenizer.json files often pad and truncate to a fixed
        // length (all-MiniLM-L6-v2: 128); `encode` pads to the longest text
        // of each batch and truncates to its `max_len` itself, and reports
        // true lengths, which a file's fixed padding would hide.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|err| DataError::TokenizerInvalid {
                path: source_name.into(),
                reason: err.to_string(),
            })?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| DataError::MissingSpecialToken {
                    source_name: source_name.to_string(),
                    token: token.to_string(),
                })
        };
        let special = SpecialTokens {
            pad: id("[PAD]")?,
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            mask: id("[MASK]")?,
        };
        Ok(Self { inner, special })
    }

    /// Trains a lower-casing WordPiece tokenizer (BERT's normaliser,
    /// pre-tokenizer and `[CLS] … [SEP]` template) on `corpus`; the same
    /// corpus always gives the same vocabulary
    /// ([`DeterministicWordPieceTrainer`]).
    pub fn train_wordpiece(corpus: &[String], vocab_size: usize) -> Result<Self, DataError> {
        let training = |err: tokenizers::Error| DataError::TokenizerTraining(err.to_string());
        let mut trainer = DeterministicWordPieceTrainer::new(
            vocab_size,
            1,
            SPECIAL_NAMES
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        );
        let mut tokenizer: TokenizerImpl<
            WordPiece,
            BertNormalizer,
            BertPreTokenizer,
            BertProcessing,
            WordPieceDecoder,
        > = TokenizerImpl::new(WordPiece::default());
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_decoder(Some(WordPieceDecoder::default()));
        tokenizer
            .train(&mut trainer, corpus.iter())
            .map_err(training)?;
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .expect("trainer adds special tokens")
        };
        let processor =
            BertProcessing::new(("[SEP]".into(), id("[SEP]")), ("[CLS]".into(), id("[CLS]")));
        tokenizer.with_post_processor(Some(processor));
        Self::from_tokenizer(tokenizer.into(), "trained tokenizer")
    }

    /// Writes the tokenizer as a `tokenizer.json` that [`Self::from_file`] (and
    /// Python's `tokenizers`) can read.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DataError> {
        let path = path.as_ref();
        self.inner
            .save(path, true)
            .map_err(|err| DataError::TokenizerWrite {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })
    }

    /// The ids of the special tokens.
    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// Vocabulary size including special tokens: the size of the word embedding.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes `texts` as `[CLS] … [SEP]`, truncated to `max_len` tokens
    /// (keeping the final `[SEP]`) and padded with `[PAD]` to the longest.
    /// A `max_len` below 2 is an error. To fit a model, take `max_len` at most
    /// its `max_position_embeddings` (`vlp_features::TextEmbeddings::max_positions`);
    /// [`tokens_to_tensors`](crate::tokens_to_tensors) makes the model's input.
    pub fn encode(&self, texts: &[String], max_len: usize) -> Result<TokenizedBatch, DataError> {
        self.encode_padded(texts, max_len, TextPadding::Longest)
    }

    /// [`Self::encode`], padded as `padding` says: to the longest row, or up
    /// to the next of a few fixed lengths so that a GPU backend compiles each
    /// kernel for a handful of shapes instead of one per caption length.
    pub fn encode_padded(
        &self,
        texts: &[String],
        max_len: usize,
        padding: TextPadding,
    ) -> Result<TokenizedBatch, DataError> {
        if max_len < 2 {
            return Err(DataError::Tokenize {
                text: texts.first().cloned().unwrap_or_default(),
                reason: format!("max_len {max_len} leaves no room for [CLS] and [SEP]"),
            });
        }
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|err| DataError::Tokenize {
                text: texts.first().cloned().unwrap_or_default(),
                reason: err.to_string(),
            })?;
        let (mut ids, mut word_ids): (Vec<Vec<u32>>, Vec<Vec<Option<u32>>>) = encodings
            .iter()
            .map(|encoding| {
                let mut ids = encoding.get_ids().to_vec();
                let mut words = encoding.get_word_ids().to_vec();
                if ids.len() > max_len {
                    ids.truncate(max_len - 1);
                    ids.push(self.special.sep);
                    words.truncate(max_len - 1);
                    words.push(None);
                }
                (ids, words)
            })
            .unzip();
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let longest = padding.padded_length(lengths.iter().copied().max().unwrap_or(0), max_len);
        for (sequence, words) in ids.iter_mut().zip(&mut word_ids) {
            sequence.resize(longest, self.special.pad);
            words.resize(longest, None);
        }
        Ok(TokenizedBatch {
            ids,
            lengths,
            word_ids,
        })
    }

    /// Token strings of `ids`, for inspection and error messages.
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.inner
                    .id_to_token(id)
                    .unwrap_or_else(|| "[?]".to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        crate::synthetic::SyntheticWorld::new(0, 64).corpus(100)
    }

    #[test]
    fn trained_tokenizer_round_trips_through_a_file() {
        let tokenizer = TextTokenizer::train_wordpiece(&corpus(), 200).unwrap();
        let dir = std::env::temp_dir().join(format!("vlp-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        tokenizer.save(&path).unwrap();
        let loaded = TextTokenizer::from_file(&path).unwrap();
        let texts = vec![
            "a small red circle".to_string(),
            "there is a large blue square to the left of a cross".to_string(),
        ];
        assert_eq!(
            tokenizer.encode(&texts, 32).unwrap(),
            loaded.encode(&texts, 32).unwrap()
        );
        // A file that pads and truncates to a fixed length (as published
        // checkpoints' files do) still gives true lengths, padded per batch.
        let mut fixed = tokenizer.inner.clone();
        fixed.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(128),
            ..Default::default()
        }));
        fixed
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: 128,
                ..Default::default()
            }))
            .unwrap();
        let fixed_path = dir.join("fixed.json");
        fixed.save(&fixed_path, false).unwrap();
        let from_fixed = TextTokenizer::from_file(&fixed_path).unwrap();
        assert_eq!(
            from_fixed.encode(&texts, 32).unwrap(),
            tokenizer.encode(&texts, 32).unwrap()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn buckets_bound_the_padded_lengths_of_the_world_captions() {
        assert_eq!(TextPadding::buckets(0), TextPadding::Longest);
        // Width ceil(40 / 4) = 10: lengths 10, 20, 30, 40.
        let four = TextPadding::Buckets(4);
        let padded: Vec<usize> = [1, 10, 11, 29, 31, 40]
            .iter()
            .map(|&n| four.padded_length(n, 40))
            .collect();
        assert_eq!(padded, [10, 10, 20, 30, 40, 40]);
        // Widths that do not divide max_len still cap at it: ceil(41/4) = 11.
        assert_eq!(four.padded_length(39, 41), 41);
        assert_eq!(TextPadding::Buckets(1).padded_length(3, 40), 40);

        let tokenizer = TextTokenizer::train_wordpiece(&corpus(), 200).unwrap();
        let captions = crate::synthetic::SyntheticWorld::new(1, 64).corpus(400);
        let mut shapes = std::collections::BTreeSet::new();
        for batch in captions.chunks(8) {
            let longest = tokenizer.encode(batch, 40).unwrap();
            let bucketed = tokenizer.encode_padded(batch, 40, four).unwrap();
            assert_eq!(bucketed.lengths, longest.lengths);
            let width = bucketed.ids[0].len();
            assert!(width >= longest.ids[0].len() && bucketed.ids.iter().all(|r| r.len() == width));
            // The padding is [PAD] with no word behind it.
            for (row, words) in bucketed.ids.iter().zip(&bucketed.word_ids) {
                let real = &row[..longest.ids[0].len()];
                assert!(row[real.len()..]
                    .iter()
                    .all(|&id| id == tokenizer.special().pad));
                assert!(words[real.len()..].iter().all(Option::is_none));
            }
            shapes.insert(width);
        }
        assert!(!shapes.is_empty() && shapes.len() <= 4, "{shapes:?}");
    }

    #[test]
    fn encodes_with_special_tokens_padding_and_truncation() {
        let tokenizer = TextTokenizer::train_wordpiece(&corpus(), 200).unwrap();
        let special = tokenizer.special();
        let texts = vec![
            "A small RED circle".to_string(),
            "a small red circle above a large blue square".to_string(),
        ];
        let batch = tokenizer.encode(&texts, 32).unwrap();
        assert_eq!(
            tokenizer.tokens(&batch.ids[0][..batch.lengths[0]]),
            ["[CLS]", "a", "small", "red", "circle", "[SEP]"]
        );
        assert_eq!(batch.ids[0].len(), batch.ids[1].len());
        assert!(batch.ids[0][batch.lengths[0]..]
            .iter()
            .all(|&id| id == special.pad));
        assert_eq!(
            batch.word_ids[0],
            [
                None,
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        let truncated = tokenizer.encode(&texts, 4).unwrap();
        assert_eq!(truncated.word_ids[1], [None, Some(0), Some(1), None]);
        assert_eq!(truncated.ids[1].len(), 4);
        assert_eq!(truncated.ids[1][0], special.cls);
        assert_eq!(truncated.ids[1][3], special.sep);
        let err = tokenizer.encode(&texts, 1).unwrap_err();
        assert!(
            err.to_string().contains("max_len 1 leaves no room"),
            "{err}"
        );
    }

    #[test]
    fn sub_tokens_of_an_unseen_word_share_its_word_id() {
        let tokenizer = TextTokenizer::train_wordpiece(&corpus(), 200).unwrap();
        let batch = tokenizer
            .encode(&["a redcircle square".to_string()], 32)
            .unwrap();
        let tokens = tokenizer.tokens(&batch.ids[0]);
        let pieces = tokens.len() - 4;
        assert!(pieces >= 2, "the unseen word splits: {tokens:?}");
        let mut expected = vec![None, Some(0)];
        expected.extend(vec![Some(1); pieces]);
        expected.extend([Some(2), None]);
        assert_eq!(batch.word_ids[0], expected, "{tokens:?}");
    }

    #[test]
    fn missing_and_corrupt_files_name_the_file() {
        let err = TextTokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tokenizer.json"),
            "{err}"
        );
        let path = std::env::temp_dir().join(format!("vlp-corrupt-{}.json", std::process::id()));
        std::fs::write(&path, "{ not json").unwrap();
        let err = TextTokenizer::from_file(&path).unwrap_err();
        assert!(matches!(err, DataError::TokenizerInvalid { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        std::fs::remove_file(path).unwrap();
    }
}
