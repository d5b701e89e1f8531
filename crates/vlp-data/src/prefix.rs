//! PrefixLM (SimVLM): each text is split into a prefix the model reads
//! bidirectionally (with the image) and a suffix it generates left to right.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::TokenizedBatch;

/// The prefix length, in tokens with `[CLS]` included, of a sequence
/// `[CLS] w1 … wn [SEP]` of `length = n + 2` real tokens: uniform over the
/// split points between `w1` and `wn` (SimVLM samples the prefix length
/// uniformly), so the prefix holds `[CLS] w1` at least and the suffix `wn
/// [SEP]` at least: `2..=n`. Short texts:
/// - one word (`length` 3): 1, the prefix is `[CLS]` alone and the word is
///   generated (captioning);
/// - no word (`length` 2): 1, only `[SEP]` is generated;
/// - `length` 0 or 1 (a padding row): `length`, nothing is generated.
pub fn sample_prefix_length(length: usize, rng: &mut ChaCha8Rng) -> usize {
    match length {
        0 | 1 => length,
        2 | 3 => 1,
        _ => rng.random_range(2..=length - 2),
    }
}

/// Split points of a batch of texts and the tokens to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixSplit {
    /// `T`, the padded length.
    pub max_len: usize,
    /// `[B]` prefix length of each row (`[CLS]` included).
    pub prefix_lengths: Vec<usize>,
    /// `[B]` real tokens of each row.
    pub lengths: Vec<usize>,
    /// `(row, position, id)` of every suffix token, the final `[SEP]`
    /// included (it teaches generation to stop). The loss predicts the token
    /// at `position` from the outputs before it (at `position - 1` in a
    /// causal stack or decoder).
    pub targets: Vec<(usize, usize, u32)>,
}

impl PrefixSplit {
    /// One split per row of `batch` (see [`sample_prefix_length`]).
    pub fn sample(batch: &TokenizedBatch, rng: &mut ChaCha8Rng) -> Self {
        let prefix_lengths: Vec<usize> = batch
            .lengths
            .iter()
            .map(|&length| sample_prefix_length(length, rng))
            .collect();
        let targets = batch
            .ids
            .iter()
            .enumerate()
            .flat_map(|(row, ids)| {
                (prefix_lengths[row]..batch.lengths[row]).map(move |t| (row, t, ids[t]))
            })
            .collect();
        Self {
            max_len: batch.ids.first().map_or(0, Vec::len),
            prefix_lengths,
            lengths: batch.lengths.clone(),
            targets,
        }
    }

    /// `[B, T]`, `true` at the suffix (generated) positions.
    pub fn suffix_mask(&self) -> Vec<bool> {
        self.prefix_lengths
            .iter()
            .zip(&self.lengths)
            .flat_map(|(&prefix, &length)| {
                (0..self.max_len).map(move |t| t >= prefix && t < length)
            })
            .collect()
    }

    /// The split as tensors on `device`.
    pub fn to_device<B: Backend>(&self, device: &B::Device) -> PrefixSplitTensors<B> {
        let int = |values: Vec<i64>| {
            let n = values.len();
            Tensor::<B, 1, Int>::from_data(TensorData::new(values, [n]), device)
        };
        PrefixSplitTensors {
            prefix_lengths: int(self.prefix_lengths.iter().map(|&k| k as i64).collect()),
            target_positions: int(self
                .targets
                .iter()
                .map(|&(row, t, _)| (row * self.max_len + t) as i64)
                .collect()),
            target_labels: int(self.targets.iter().map(|&(_, _, id)| id as i64).collect()),
        }
    }
}

/// [`PrefixSplit`] on a device.
#[derive(Debug, Clone)]
pub struct PrefixSplitTensors<B: Backend> {
    /// `[B]`.
    pub prefix_lengths: Tensor<B, 1, Int>,
    /// `[N]` flat positions `row * T + t` of the suffix tokens.
    pub target_positions: Tensor<B, 1, Int>,
    /// `[N]` their ids.
    pub target_labels: Tensor<B, 1, Int>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use rand::SeedableRng;

    #[test]
    fn split_points_are_uniform_between_the_first_and_last_word() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // 8 words: split points 2..=8, seven values.
        let (length, trials) = (10, 7000);
        let mut counts = [0usize; 10];
        for _ in 0..trials {
            let k = sample_prefix_length(length, &mut rng);
            assert!((2..=length - 2).contains(&k), "{k}");
            counts[k] += 1;
        }
        let p = 1.0 / 7.0;
        let sigma = (p * (1.0 - p) / trials as f64).sqrt();
        for &count in &counts[2..=8] {
            assert!((count as f64 / trials as f64 - p).abs() <= 6.0 * sigma);
        }
        // Two words: the only split is between them.
        assert!((0..50).all(|_| sample_prefix_length(4, &mut rng) == 2));
    }

    #[test]
    fn short_texts_split_as_documented() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (length, prefix) in [(0, 0), (1, 1), (2, 1), (3, 1)] {
            assert_eq!(sample_prefix_length(length, &mut rng), prefix);
        }
    }

    #[test]
    fn targets_are_the_suffix_tokens() {
        // [CLS]=2, [SEP]=3, [PAD]=0.
        let batch = TokenizedBatch {
            ids: vec![
                vec![2, 10, 11, 12, 13, 3],
                vec![2, 20, 3, 0, 0, 0],
                vec![2, 3, 0, 0, 0, 0],
            ],
            lengths: vec![6, 3, 2],
            word_ids: vec![vec![None; 6]; 3],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..100 {
            let split = PrefixSplit::sample(&batch, &mut rng);
            let k = split.prefix_lengths[0];
            assert!((2..=4).contains(&k));
            assert_eq!(split.prefix_lengths[1..], [1, 1]);
            let mut expected: Vec<(usize, usize, u32)> =
                (k..6).map(|t| (0, t, batch.ids[0][t])).collect();
            expected.extend([(1, 1, 20), (1, 2, 3), (2, 1, 3)]);
            assert_eq!(split.targets, expected);
            let mask = split.suffix_mask();
            let flagged: Vec<usize> = (0..18).filter(|&i| mask[i]).collect();
            let positions: Vec<usize> = expected.iter().map(|&(r, t, _)| r * 6 + t).collect();
            assert_eq!(flagged, positions);
            let tensors = split.to_device::<NdArray>(&Default::default());
            let device_positions: Vec<i64> = tensors
                .target_positions
                .into_data()
                .convert::<i64>()
                .to_vec()
                .unwrap();
            assert_eq!(
                device_positions,
                positions.iter().map(|&p| p as i64).collect::<Vec<_>>()
            );
            assert_eq!(tensors.prefix_lengths.dims(), [3]);
        }
    }
}
