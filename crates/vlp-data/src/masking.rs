//! Masked language modelling: which tokens to hide and what to show instead.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::SpecialTokens;

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
}

impl Default for MlmMasking {
    fn default() -> Self {
        Self {
            probability: 0.15,
            mask_fraction: 0.8,
            random_fraction: 0.1,
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
    /// Masks `ids`. Special tokens (`[CLS]`, `[SEP]`, `[PAD]`, …) are never
    /// chosen; at least one token is chosen whenever the sequence has a
    /// non-special token. Random replacements are drawn from the non-special
    /// vocabulary.
    pub fn apply(
        &self,
        ids: &[u32],
        special: SpecialTokens,
        vocab_size: usize,
        rng: &mut ChaCha8Rng,
    ) -> MaskedSequence {
        let candidates: Vec<usize> = (0..ids.len())
            .filter(|&i| !special.contains(ids[i]))
            .collect();
        let mut chosen: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|_| rng.random_bool(self.probability))
            .collect();
        if chosen.is_empty() && !candidates.is_empty() {
            chosen.push(candidates[rng.random_range(0..candidates.len())]);
        }
        let mut input_ids = ids.to_vec();
        let mut labels = vec![None; ids.len()];
        for position in chosen {
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
}
