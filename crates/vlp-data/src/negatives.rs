//! Negative pairs for image-text matching.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Which text and which image each matching example pairs, and whether they match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItmPairs {
    /// Text row of each example.
    pub text_index: Vec<usize>,
    /// Image row of each example.
    pub image_index: Vec<usize>,
    /// Whether the text describes the image (`false`: a negative).
    pub is_match: Vec<bool>,
}

/// UNITER's random negatives: each example of a batch becomes a negative with
/// probability `probability`, by replacing its image (or, half of the time, its
/// text) with another example's whose description differs. `descriptions[i]`
/// identifies what example `i` shows; examples with equal descriptions are
/// never used as each other's negatives. An example with no valid partner in
/// the batch stays positive.
pub fn random_negatives(
    descriptions: &[String],
    probability: f64,
    rng: &mut ChaCha8Rng,
) -> ItmPairs {
    let n = descriptions.len();
    let mut pairs = ItmPairs {
        text_index: (0..n).collect(),
        image_index: (0..n).collect(),
        is_match: vec![true; n],
    };
    for i in 0..n {
        if !rng.random_bool(probability) {
            continue;
        }
        let partners: Vec<usize> = (0..n)
            .filter(|&j| descriptions[j] != descriptions[i])
            .collect();
        if partners.is_empty() {
            continue;
        }
        let j = partners[rng.random_range(0..partners.len())];
        if rng.random_bool(0.5) {
            pairs.image_index[i] = j;
        } else {
            pairs.text_index[i] = j;
        }
        pairs.is_match[i] = false;
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn negatives_pair_different_descriptions_at_the_requested_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let descriptions: Vec<String> = (0..64).map(|i| format!("scene {}", i % 40)).collect();
        let mut negatives = 0;
        for _ in 0..200 {
            let pairs = random_negatives(&descriptions, 0.5, &mut rng);
            for i in 0..64 {
                let (t, v) = (pairs.text_index[i], pairs.image_index[i]);
                assert_eq!(pairs.is_match[i], descriptions[t] == descriptions[v]);
                assert!(t == i || v == i, "only one side is replaced");
                negatives += usize::from(!pairs.is_match[i]);
            }
        }
        assert!((negatives as f64 / (200.0 * 64.0) - 0.5).abs() < 0.02);
    }

    #[test]
    fn a_batch_without_partners_stays_positive() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let pairs = random_negatives(&vec!["same".to_string(); 4], 1.0, &mut rng);
        assert!(pairs.is_match.iter().all(|&m| m));
    }
}
