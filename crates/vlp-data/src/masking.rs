//! Masked language modelling: which tokens to hide and what to show instead.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::{DataError, SpecialTokens};

/// BERT's masking recipe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlmMasking {
    /// Fraction of (non-special) tokens to predict. Default 0.15.
    pub probability: f64,
    /// Of the predicted tokens, the fraction replaced by `[MASK]`. Default 0.8.
    pub mask_fraction: f64,
    /// Of the predicted tokens, the fraction replaced by a random token. Default 0.1.
    /// The rest are left unchanged.
    pub random_fraction: f64,
    /// Whole-word masking (BERT's `--do_whole_word_mask`): `probability`
    /// applies per word and all sub-tokens of a chosen word are predicted
    /// together, so the model cannot recover `##morphic` from `zygo`. Used by
    /// [`Self::apply_with_words`]; each chosen token still draws its own
    /// `[MASK]` / random / unchanged replacement, as in BERT. Default false.
    pub whole_word: bool,
}

impl Default for MlmMasking {
    fn default() -> Self {
        Self {
            probability: 0.15,
            mask_fraction: 0.8,
            random_fraction: 0.1,
            whole_word: false,
        }
    }
}

/// One masked sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedSequence {
    /// The ids the model sees.
    pub input_ids: Vec<u32>,
    /// `Some(original id)` at the positions to predict.
    pub labels: Vec<Option<u32>>,
}

impl MlmMasking {
    /// Checks that the settings are probabilities and that the replacement
    /// fractions sum to at most 1; [`Self::apply`] panics otherwise.
    pub fn validate(&self) -> Result<(), DataError> {
        DataError::check_probabilities(&[
            ("MLM probability", self.probability),
            ("MLM mask fraction", self.mask_fraction),
            ("MLM random fraction", self.random_fraction),
            (
                "MLM mask + random fraction",
                self.mask_fraction + self.random_fraction,
            ),
        ])
    }

    /// Masks `ids` token by token. Special tokens (`[CLS]`, `[SEP]`,
    /// `[PAD]`, …) are never chosen; at least one token is chosen whenever
    /// the sequence has a non-special token. Random replacements are drawn
    /// from the non-special vocabulary.
    pub fn apply(
        &self,
        ids: &[u32],
        special: SpecialTokens,
        vocab_size: usize,
        rng: &mut ChaCha8Rng,
    ) -> MaskedSequence {
        let groups: Vec<Vec<usize>> = (0..ids.len())
            .filter(|&i| !special.contains(ids[i]))
            .map(|i| vec![i])
            .collect();
        self.mask_groups(ids, &groups, special, vocab_size, rng)
    }

    /// Masks `ids` whose tokens belong to words `word_ids` (as
    /// [`TokenizedBatch::word_ids`](crate::TokenizedBatch::word_ids)). With
    /// [`Self::whole_word`], each word (the non-special tokens sharing a word
    /// id; a token without one is a word of its own) is chosen with
    /// `probability` and, if chosen, all its tokens are predicted; at least
    /// one word is chosen whenever there is one. Without it, this is
    /// [`Self::apply`].
    ///
    /// # Panics
    /// If `word_ids` and `ids` differ in length (a caller's bug, not bad data).
    pub fn apply_with_words(
        &self,
        ids: &[u32],
        word_ids: &[Option<u32>],
        special: SpecialTokens,
        vocab_size: usize,
        rng: &mut ChaCha8Rng,
    ) -> MaskedSequence {
        assert_eq!(ids.len(), word_ids.len(), "one word id per token");
        if !self.whole_word {
            return self.apply(ids, special, vocab_size, rng);
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut previous_word = None;
        for (i, (&id, &word)) in ids.iter().zip(word_ids).enumerate() {
            if special.contains(id) {
                previous_word = None;
                continue;
            }
            match (groups.last_mut(), word) {
                // Sub-tokens of a word are contiguous in an encoding.
                (Some(group), Some(word)) if previous_word == Some(word) => group.push(i),
                _ => groups.push(vec![i]),
            }
            previous_word = word;
        }
        self.mask_groups(ids, &groups, special, vocab_size, rng)
    }

    /// Chooses each group with `probability` (at least one group), predicts
    /// every token of the chosen groups and draws each one's replacement.
    fn mask_groups(
        &self,
        ids: &[u32],
        groups: &[Vec<usize>],
        special: SpecialTokens,
        vocab_size: usize,
        rng: &mut ChaCha8Rng,
    ) -> MaskedSequence {
        let mut chosen: Vec<&[usize]> = groups
            .iter()
            .map(Vec::as_slice)
            .filter(|_| rng.random_bool(self.probability))
            .collect();
        if chosen.is_empty() && !groups.is_empty() {
            chosen.push(&groups[rng.random_range(0..groups.len())]);
        }
        let mut input_ids = ids.to_vec();
        let mut labels = vec![None; ids.len()];
        for &position in chosen.iter().copied().flatten() {
            labels[position] = Some(ids[position]);
            let roll: f64 = rng.random();
            if roll < self.mask_fraction {
                input_ids[position] = special.mask;
            } else if roll < self.mask_fraction + self.random_fraction {
                input_ids[position] = loop {
                    let id = rng.random_range(0..vocab_size as u32);
                    if !special.contains(id) {
                        break id;
                    }
                };
            }
        }
        MaskedSequence { input_ids, labels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SPECIAL: SpecialTokens = SpecialTokens {
        pad: 0,
        unk: 1,
        cls: 2,
        sep: 3,
        mask: 4,
    };

    #[test]
    fn invalid_settings_are_named() {
        assert!(MlmMasking::default().validate().is_ok());
        let error = MlmMasking {
            random_fraction: 0.3,
            ..MlmMasking::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            error.to_string().contains("mask + random fraction"),
            "{error}"
        );
    }

    #[test]
    fn never_masks_special_tokens_and_masks_at_least_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let ids = [2, 10, 11, 12, 3, 0, 0];
        for _ in 0..2000 {
            let masked = MlmMasking::default().apply(&ids, SPECIAL, 50, &mut rng);
            assert!(masked.labels.iter().flatten().count() >= 1);
            for (i, label) in masked.labels.iter().enumerate() {
                if SPECIAL.contains(ids[i]) {
                    assert_eq!(*label, None);
                    assert_eq!(masked.input_ids[i], ids[i]);
                }
            }
        }
        let all_special = MlmMasking::default().apply(&[2, 3, 0], SPECIAL, 50, &mut rng);
        assert!(all_special.labels.iter().all(Option::is_none));
    }

    #[test]
    fn rates_follow_the_80_10_10_recipe() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ids: Vec<u32> = (10..210).collect();
        let (mut chosen, mut masked, mut random, mut kept) = (0usize, 0usize, 0usize, 0usize);
        for _ in 0..500 {
            let out = MlmMasking::default().apply(&ids, SPECIAL, 1000, &mut rng);
            for (i, label) in out.labels.iter().enumerate() {
                if label.is_some() {
                    chosen += 1;
                    match out.input_ids[i] {
                        4 => masked += 1,
                        id if id == ids[i] => kept += 1,
                        _ => random += 1,
                    }
                }
            }
        }
        let total = (500 * ids.len()) as f64;
        let rate = |n: usize| n as f64 / chosen as f64;
        assert!((chosen as f64 / total - 0.15).abs() < 0.01);
        assert!((rate(masked) - 0.8).abs() < 0.02);
        // A random draw equals the original id 1 time in ~1000.
        assert!((rate(random) - 0.1).abs() < 0.015);
        assert!((rate(kept) - 0.1).abs() < 0.015);
    }

    fn rare_word_tokenizer() -> crate::TextTokenizer {
        let mut corpus = crate::synthetic::SyntheticWorld::new(0, 64).corpus(100);
        corpus.push("a zygomorphic parallelogram beside an unremarkable rhomboid".into());
        crate::TextTokenizer::train_wordpiece(&corpus, 200).unwrap()
    }

    const RARE_TEXT: &str = "a small zygomorphic circle above an unremarkable \
        parallelogram left of a red rhomboid below a large blue square";

    #[test]
    fn whole_word_masking_masks_all_sub_tokens_of_a_word_or_none() {
        let tokenizer = rare_word_tokenizer();
        let batch = tokenizer.encode(&[RARE_TEXT.to_string()], 64).unwrap();
        let (ids, words) = (&batch.ids[0], &batch.word_ids[0]);
        let tokens = tokenizer.tokens(ids);
        let split_words: std::collections::HashSet<u32> = tokens
            .iter()
            .zip(words)
            .filter(|(token, _)| token.starts_with("##"))
            .filter_map(|(_, word)| *word)
            .collect();
        assert!(split_words.len() >= 3, "rare words split: {tokens:?}");
        let num_words = words.iter().flatten().max().unwrap() + 1;
        let whole = MlmMasking {
            whole_word: true,
            ..MlmMasking::default()
        };
        let special = tokenizer.special();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let trials = 4000;
        let mut chosen_words = 0usize;
        for _ in 0..trials {
            let out = whole.apply_with_words(ids, words, special, 200, &mut rng);
            let mut masked_words = std::collections::HashSet::new();
            for (i, label) in out.labels.iter().enumerate() {
                match words[i] {
                    None => assert_eq!(*label, None, "never a special token"),
                    Some(word) => {
                        let all_of_word = (0..ids.len()).filter(|&j| words[j] == Some(word));
                        for j in all_of_word {
                            assert_eq!(label.is_some(), out.labels[j].is_some(), "{tokens:?}");
                        }
                        if label.is_some() {
                            assert_eq!(*label, Some(ids[i]));
                            masked_words.insert(word);
                        }
                    }
                }
            }
            assert!(!masked_words.is_empty());
            chosen_words += masked_words.len();
        }
        // Expected words per sequence: n p, plus the one forced word when
        // none was drawn, (1 - p)^n.
        let (n, p) = (num_words as f64, 0.15);
        let expected = n * p + (1.0 - p).powf(n);
        let sigma = (n * p * (1.0 - p) / trials as f64).sqrt() + 1e-9;
        let mean = chosen_words as f64 / trials as f64;
        assert!(
            (mean - expected).abs() < 6.0 * sigma,
            "{mean} vs {expected}"
        );
    }

    #[test]
    fn without_whole_word_words_are_ignored() {
        let tokenizer = rare_word_tokenizer();
        let batch = tokenizer.encode(&[RARE_TEXT.to_string()], 64).unwrap();
        let special = tokenizer.special();
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
        for _ in 0..50 {
            assert_eq!(
                MlmMasking::default().apply_with_words(
                    &batch.ids[0],
                    &batch.word_ids[0],
                    special,
                    200,
                    &mut a
                ),
                MlmMasking::default().apply(&batch.ids[0], special, 200, &mut b)
            );
        }
        // Whole-word masking of a text made of specials only chooses nothing.
        let whole = MlmMasking {
            whole_word: true,
            ..MlmMasking::default()
        };
        let out = whole.apply_with_words(&[2, 3, 0], &[None; 3], SPECIAL, 50, &mut a);
        assert!(out.labels.iter().all(Option::is_none));
    }
}
