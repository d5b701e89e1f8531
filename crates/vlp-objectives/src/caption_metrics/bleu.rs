//! Corpus BLEU-1..4 (Papineni et al. 2002) as pycocoevalcap's `Bleu(4)`
//! computes it for COCO captioning (its "closest" reference length).

use std::collections::HashMap;

use super::{check_references, ngram_counts, MAX_ORDER};
use crate::error::Result;

/// pycocoevalcap's `tiny`, added to every matched-n-gram count so that a
/// corpus without a match of some order scores a small value, not 0.
const TINY: f64 = 1e-15;
/// pycocoevalcap's `small`, added to every n-gram total and length.
const SMALL: f64 = 1e-9;

/// Corpus BLEU-1..4 (`[BLEU-1, BLEU-2, BLEU-3, BLEU-4]`), as pycocoevalcap's
/// `Bleu(4).compute_score`: candidate n-gram counts clipped by their largest
/// count in any reference, matches and totals summed over the corpus;
/// BLEU-n is the geometric mean of the precisions of orders 1..n, each
/// `(matches + 1e-15) / (total + 1e-9)`; the reference length of each
/// candidate is its closest reference length (the shorter on ties), and the
/// corpus brevity penalty `exp(1 - r / c)` applies when the candidates are
/// shorter than the references in total (`c < r`, with the same 1e-15 and
/// 1e-9 added to `c` and `r`).
///
/// `candidates[i]` is a tokenised caption, `references[i]` its (non-empty)
/// references.
pub fn corpus_bleu(
    candidates: &[Vec<String>],
    references: &[Vec<Vec<String>>],
) -> Result<[f64; MAX_ORDER]> {
    check_references("BLEU references", candidates, references)?;
    let mut matches = [0usize; MAX_ORDER];
    let mut totals = [0usize; MAX_ORDER];
    let (mut candidate_length, mut reference_length) = (0usize, 0usize);
    for (candidate, refs) in candidates.iter().zip(references) {
        for n in 1..=MAX_ORDER {
            let mut max_ref: HashMap<&[String], usize> = HashMap::new();
            for reference in refs {
                for (gram, count) in ngram_counts(reference, n) {
                    let best = max_ref.entry(gram).or_insert(0);
                    *best = (*best).max(count);
                }
            }
            matches[n - 1] += ngram_counts(candidate, n)
                .iter()
                .map(|(gram, &count)| count.min(max_ref.get(gram).copied().unwrap_or(0)))
                .sum::<usize>();
            totals[n - 1] += (candidate.len() + 1).saturating_sub(n);
        }
        candidate_length += candidate.len();
        reference_length += refs
            .iter()
            .map(Vec::len)
            .min_by_key(|&len| (len.abs_diff(candidate.len()), len))
            .unwrap_or(0);
    }
    let ratio = (candidate_length as f64 + TINY) / (reference_length as f64 + SMALL);
    let brevity = if ratio < 1.0 {
        (1.0 - 1.0 / ratio).exp()
    } else {
        1.0
    };
    let mut product = 1.0;
    let mut scores = [0.0; MAX_ORDER];
    for (k, score) in scores.iter_mut().enumerate() {
        product *= (matches[k] as f64 + TINY) / (totals[k] as f64 + SMALL);
        *score = brevity * product.powf(1.0 / (k + 1) as f64);
    }
    Ok(scores)
}
