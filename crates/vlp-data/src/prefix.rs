//! PrefixLM (SimVLM §3.1): each text is split into a prefix the model reads
//! bidirectionally with the image and a suffix it generates left to right.
//! This is the one split sampler; the batcher draws a split per text row.

use rand::Rng;

/// How often a PrefixLM split keeps only `[CLS]` with the image: the model
/// then has to produce the whole caption from the image alone, which is how
/// it captions (SimVLM fine-tunes captioning with a short prompt; without a
/// fine-tuning stage here, pre-training carries that case itself).
pub const IMAGE_ONLY_PREFIX_PROBABILITY: f64 = 0.25;

/// The prefix length, in tokens with `[CLS]` included, of a text of `len`
/// real tokens `[CLS] w1 … wn [SEP]`: 1 (image and `[CLS]` only) with
/// [`IMAGE_ONLY_PREFIX_PROBABILITY`], otherwise uniform in `1..len`, so the
/// suffix holds `[SEP]` at least; texts of `len <= 2` (no word, or a
/// padding row) get 1.
///
/// Why this distribution: SimVLM samples the split uniformly over the text
/// with the image always in the prefix (`T_p ≥ T_i`), so the image-only
/// prefix is one of the split points, and so is every point up to the last
/// word. Our captions are short (5 to 10 tokens), so a uniform draw alone
/// gives the image-only prefix only 1/9 to 1/4 of the time, while captioning
/// at evaluation starts from `[CLS]` alone: the extra probability mass makes
/// that case, the one evaluation measures, a quarter of the splits at least.
/// A sampler that never leaves the image alone (prefix `≥ [CLS] w1`, which
/// this replaced) would train PrefixLM on a task evaluation never asks.
pub fn draw_prefix_length(len: usize, rng: &mut impl Rng) -> usize {
    if len <= 2 || rng.random_bool(IMAGE_ONLY_PREFIX_PROBABILITY) {
        1
    } else {
        rng.random_range(1..len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn prefix_splits_are_image_only_as_often_as_configured_and_uniform_otherwise() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let draws = 40_000;
        let mut counts = [0usize; 10];
        for _ in 0..draws {
            counts[draw_prefix_length(10, &mut rng)] += 1;
        }
        // P(1) = q + (1 - q)/9, P(k) = (1 - q)/9 for k in 2..10; never 0.
        let q = IMAGE_ONLY_PREFIX_PROBABILITY;
        assert_eq!(counts[0], 0);
        let expected_one = (q + (1.0 - q) / 9.0) * draws as f64;
        assert!((counts[1] as f64 - expected_one).abs() < 4.0 * expected_one.sqrt());
        for &count in &counts[2..] {
            let expected = (1.0 - q) / 9.0 * draws as f64;
            assert!((count as f64 - expected).abs() < 4.0 * expected.sqrt());
        }
    }

    #[test]
    fn texts_without_a_word_keep_only_cls() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for len in 0..=2 {
            assert_eq!(draw_prefix_length(len, &mut rng), 1);
        }
        // One word: image-only, or the word in the prefix and `[SEP]` generated.
        assert!((0..50).all(|_| (1..=2).contains(&draw_prefix_length(3, &mut rng))));
    }
}
