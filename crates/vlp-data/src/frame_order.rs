//! Frame order modelling (HERO's FOM): shuffle some frame positions of a
//! clip among themselves; the model classifies each shuffled frame's original
//! position.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use std::ops::Range;

use crate::synthetic::{Clip, Split, SyntheticWorld};
use crate::{clips_to_tensor, DataError};

/// Which frames to shuffle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameOrderShuffle {
    /// Fraction of the (non-padding) frame positions of a clip that are
    /// shuffled. Default 0.15 (HERO).
    pub probability: f64,
}

impl Default for FrameOrderShuffle {
    fn default() -> Self {
        Self { probability: 0.15 }
    }
}

/// One clip's shuffled order and its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffledFrames {
    /// `[T]` the original index of the frame shown at each position.
    pub order: Vec<usize>,
    /// `[T]` the original index at the shuffled positions, -1 elsewhere
    /// (the ignore index of the classification loss).
    pub targets: Vec<i64>,
}

impl ShuffledFrames {
    /// `frames` in the shuffled order.
    ///
    /// # Panics
    /// If `frames` is shorter than the shuffled clip.
    pub fn reorder<T: Clone>(&self, frames: &[T]) -> Vec<T> {
        self.order.iter().map(|&i| frames[i].clone()).collect()
    }

    /// Number of shuffled positions.
    pub fn num_shuffled(&self) -> usize {
        self.targets.iter().filter(|&&t| t >= 0).count()
    }
}

impl FrameOrderShuffle {
    /// Checks that [`Self::probability`] is a probability; [`Self::apply`]
    /// panics otherwise.
    pub fn validate(&self) -> Result<(), DataError> {
        DataError::check_probabilities(&[("frame shuffle probability", self.probability)])
    }

    /// Shuffles a clip of `num_frames` frames. Each position is chosen with
    /// [`Self::probability`] (HERO's draw), topped up with random positions
    /// to at least two, since one position cannot move; the chosen frames are
    /// permuted among themselves by a uniformly random permutation other than
    /// the identity, so that the clip always changes (HERO may draw the
    /// identity; a step with nothing out of order teaches nothing). Some
    /// chosen frames may still stay in place: they are predicted too. A clip
    /// of fewer than two frames is left as it is, with no targets.
    pub fn apply(&self, num_frames: usize, rng: &mut ChaCha8Rng) -> ShuffledFrames {
        let mut order: Vec<usize> = (0..num_frames).collect();
        let mut targets = vec![-1; num_frames];
        if num_frames < 2 {
            return ShuffledFrames { order, targets };
        }
        let mut chosen: Vec<usize> = (0..num_frames)
            .filter(|_| rng.random_bool(self.probability))
            .collect();
        while chosen.len() < 2 {
            let extra = rng.random_range(0..num_frames);
            if !chosen.contains(&extra) {
                chosen.push(extra);
            }
        }
        chosen.sort_unstable();
        let mut shuffled = chosen.clone();
        // At least two positions: a draw is the identity with probability
        // at most 1/2, so this ends quickly.
        while shuffled == chosen {
            shuffled.shuffle(rng);
        }
        for (&position, &original) in chosen.iter().zip(&shuffled) {
            order[position] = original;
            targets[position] = original as i64;
        }
        ShuffledFrames { order, targets }
    }

    /// A frame-order batch from the synthetic world: clips `indices` of
    /// `split`, `frames` frames each, as `[N, frames, 3, H, W]` on `device`,
    /// and their shuffle drawn from `rng`.
    pub fn synthetic_batch<B: Backend>(
        &self,
        world: &SyntheticWorld,
        split: Split,
        indices: Range<usize>,
        frames: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> (Tensor<B, 5>, ShuffledFrameBatch) {
        let clips: Vec<Clip> = indices
            .map(|index| world.clip(split, index, frames))
            .collect();
        let refs: Vec<&Clip> = clips.iter().collect();
        let shuffled = self.apply_batch(&vec![frames; clips.len()], frames, rng);
        (clips_to_tensor(&refs, device), shuffled)
    }

    /// Shuffles clips of `lengths` frames padded to `max_frames`; padding
    /// positions keep their index and target -1. Lengths above `max_frames`
    /// are cut to it.
    pub fn apply_batch(
        &self,
        lengths: &[usize],
        max_frames: usize,
        rng: &mut ChaCha8Rng,
    ) -> ShuffledFrameBatch {
        let mut batch = ShuffledFrameBatch {
            frames: max_frames,
            orders: Vec::with_capacity(lengths.len() * max_frames),
            targets: Vec::with_capacity(lengths.len() * max_frames),
        };
        for &length in lengths {
            let length = length.min(max_frames);
            let clip = self.apply(length, rng);
            batch.orders.extend(clip.order);
            batch.orders.extend(length..max_frames);
            batch.targets.extend(clip.targets);
            batch
                .targets
                .extend(std::iter::repeat_n(-1, max_frames - length));
        }
        batch
    }
}

/// Shuffled orders of a batch of clips padded to `frames` positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffledFrameBatch {
    /// `T`.
    pub frames: usize,
    /// `[B, T]` original frame index shown at each position.
    pub orders: Vec<usize>,
    /// `[B, T]` original index at shuffled positions, -1 elsewhere.
    pub targets: Vec<i64>,
}

impl ShuffledFrameBatch {
    /// `([B, T] orders, [B, T] targets)` on a device; gathering frame
    /// features `[B, T, D]` along dimension 1 by the orders applies the
    /// shuffle.
    pub fn to_device<B: Backend>(
        &self,
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        let rows = self.orders.len().checked_div(self.frames).unwrap_or(0);
        let shape = [rows, self.frames];
        let orders: Vec<i64> = self.orders.iter().map(|&i| i as i64).collect();
        (
            Tensor::from_data(TensorData::new(orders, shape), device),
            Tensor::from_data(TensorData::new(self.targets.clone(), shape), device),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use rand::SeedableRng;
    use std::collections::HashMap;

    fn check_invariants(clip: &ShuffledFrames, num_frames: usize) {
        let mut sorted = clip.order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..num_frames).collect::<Vec<_>>(), "a permutation");
        for (position, (&original, &target)) in clip.order.iter().zip(&clip.targets).enumerate() {
            if target >= 0 {
                assert_eq!(target, original as i64);
            } else {
                assert_eq!(original, position, "unshuffled frames stay");
            }
        }
        if num_frames >= 2 {
            assert!(clip.num_shuffled() >= 2);
            assert!(
                clip.order.iter().enumerate().any(|(p, &o)| p != o),
                "not the identity"
            );
        } else {
            assert_eq!(clip.num_shuffled(), 0);
        }
    }

    #[test]
    fn invalid_settings_are_named() {
        assert!(FrameOrderShuffle::default().validate().is_ok());
        let error = FrameOrderShuffle {
            probability: f64::NAN,
        }
        .validate()
        .unwrap_err();
        assert!(
            error.to_string().contains("frame shuffle probability"),
            "{error}"
        );
    }

    #[test]
    fn shuffles_at_least_two_frames_into_a_non_identity_permutation() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for num_frames in 0..12 {
            for _ in 0..300 {
                let clip = FrameOrderShuffle::default().apply(num_frames, &mut rng);
                check_invariants(&clip, num_frames);
            }
        }
        let world = crate::synthetic::SyntheticWorld::new(0, 16);
        let clip = world.clip(crate::synthetic::Split::Train, 0, 6);
        let shuffle = FrameOrderShuffle::default().apply(clip.frames.len(), &mut rng);
        let shuffled = shuffle.reorder(&clip.frames);
        for (position, &original) in shuffle.order.iter().enumerate() {
            assert_eq!(shuffled[position], clip.frames[original]);
        }
        assert_ne!(shuffled, clip.frames, "the clip changes");
    }

    #[test]
    fn shuffles_the_set_fraction_of_positions() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (trials, n, p) = (3000, 30, 0.15_f64);
        let mut shuffled = 0usize;
        for _ in 0..trials {
            shuffled += FrameOrderShuffle::default()
                .apply(n, &mut rng)
                .num_shuffled();
        }
        // n p, plus the top-up: two positions when none was drawn, one when
        // one was.
        let nf = n as f64;
        let none = (1.0 - p).powf(nf);
        let one = nf * p * (1.0 - p).powf(nf - 1.0);
        let expected = nf * p + 2.0 * none + one;
        let sigma = (nf * p * (1.0 - p) / trials as f64).sqrt();
        let mean = shuffled as f64 / trials as f64;
        assert!(
            (mean - expected).abs() <= 6.0 * sigma,
            "{mean} vs {expected}"
        );
    }

    #[test]
    fn every_non_identity_permutation_is_equally_likely() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let all = FrameOrderShuffle { probability: 1.0 };
        let trials = 6000;
        let mut counts: HashMap<Vec<usize>, usize> = HashMap::new();
        for _ in 0..trials {
            *counts.entry(all.apply(3, &mut rng).order).or_default() += 1;
        }
        assert_eq!(counts.len(), 5, "3! - 1 permutations: {counts:?}");
        let p = 0.2;
        let sigma = (p * (1.0 - p) / trials as f64).sqrt();
        for (order, count) in counts {
            let rate = count as f64 / trials as f64;
            assert!((rate - p).abs() <= 6.0 * sigma, "{order:?}: {rate}");
        }
    }

    #[test]
    fn padding_positions_keep_their_place_and_are_ignored() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let batch = FrameOrderShuffle::default().apply_batch(&[5, 1, 0, 9], 6, &mut rng);
        assert_eq!((batch.orders.len(), batch.targets.len()), (24, 24));
        for (row, &length) in [5usize, 1, 0, 6].iter().enumerate() {
            let range = row * 6..(row + 1) * 6;
            let clip = ShuffledFrames {
                order: batch.orders[range.clone()].to_vec(),
                targets: batch.targets[range].to_vec(),
            };
            for position in length..6 {
                assert_eq!(
                    (clip.order[position], clip.targets[position]),
                    (position, -1)
                );
            }
            let real = ShuffledFrames {
                order: clip.order[..length].to_vec(),
                targets: clip.targets[..length].to_vec(),
            };
            check_invariants(&real, length);
        }
        let (orders, targets) = batch.to_device::<NdArray>(&Default::default());
        assert_eq!((orders.dims(), targets.dims()), ([4, 6], [4, 6]));
        let targets: Vec<i64> = targets.into_data().convert::<i64>().to_vec().unwrap();
        assert_eq!(targets, batch.targets);
    }
}
