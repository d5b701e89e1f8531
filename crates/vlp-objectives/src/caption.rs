//! Captioning as an objective (survey §4.2 PrefixLM and §4.8): next-token
//! cross-entropy of a decoder or a PrefixLM stack, and corpus BLEU-4 as its
//! metric.

use std::collections::HashMap;

use burn::prelude::*;

use crate::error::{shape_error, Result};
use crate::loss::cross_entropy_with_ignore;

/// Label value of positions that carry no loss (PyTorch's `ignore_index`).
pub const IGNORE_LABEL: i64 = -100;

/// Language-modelling loss: mean cross-entropy over the labelled positions.
///
/// `logits` `[B, T, V]` where position `t` predicts `labels[b, t]` (shift
/// before calling: BLIP compares `logits[:, :-1]` with `ids[:, 1:]`);
/// `labels` `[B, T]` with negative values (e.g. [`IGNORE_LABEL`]) for
/// padding and prompt tokens. `label_smoothing` `ε ∈ [0, 1]` (BLIP: 0.1;
/// 0 for plain cross-entropy), as `torch.nn.functional.cross_entropy`.
/// Nothing labelled → 0.
pub fn lm_loss<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    label_smoothing: f64,
) -> Result<Tensor<B, 1>> {
    let [batch, steps, vocab] = logits.dims();
    if labels.dims() != [batch, steps] {
        return Err(shape_error(
            "LM labels",
            format!("[{batch}, {steps}] (as the logits)"),
            &labels.dims(),
        ));
    }
    cross_entropy_with_ignore(
        logits.reshape([batch * steps, vocab]),
        labels.reshape([batch * steps]),
        label_smoothing,
        "LM labels",
    )
}

/// PrefixLM loss: [`lm_loss`] restricted to the suffix, the positions
/// `t ≥ split[b]` of each row (`split` `[B]`, the first suffix position as
/// the data side sampled it); the prefix is context only.
pub fn prefix_lm_loss<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    split: Tensor<B, 1, Int>,
    label_smoothing: f64,
) -> Result<Tensor<B, 1>> {
    let [batch, steps] = labels.dims();
    if split.dims() != [batch] {
        return Err(shape_error(
            "PrefixLM split points",
            format!("[{batch}]"),
            &split.dims(),
        ));
    }
    let positions = Tensor::<B, 1, Int>::arange(0..steps as i64, &labels.device())
        .reshape([1, steps])
        .expand([batch, steps]);
    let prefix = positions.lower(split.reshape([batch, 1]).expand([batch, steps]));
    lm_loss(
        logits,
        labels.mask_fill(prefix, IGNORE_LABEL),
        label_smoothing,
    )
}

/// Corpus BLEU-4 with uniform weights and the brevity penalty, as NLTK's
/// `corpus_bleu` with default weights and no smoothing: n-gram counts are
/// clipped by the most frequent occurrence in any reference and summed over
/// the corpus before dividing; the reference length of each candidate is
/// the closest reference length (the shorter on ties). Returns 0 when the
/// corpus has no matching unigram, no candidate token, or no matching
/// n-gram of some order n ≤ 4 (where NLTK returns a value below 1e-70).
///
/// `candidates[i]` is a tokenised caption, `references[i]` its references.
pub fn bleu4(candidates: &[Vec<String>], references: &[Vec<Vec<String>>]) -> Result<f64> {
    if candidates.len() != references.len() {
        return Err(shape_error(
            "BLEU references",
            format!("one list per candidate ({})", candidates.len()),
            &[references.len()],
        ));
    }
    let mut matches = [0usize; 4];
    let mut totals = [0usize; 4];
    let (mut candidate_length, mut reference_length) = (0usize, 0usize);
    for (candidate, refs) in candidates.iter().zip(references) {
        for n in 1..=4 {
            let counts = ngram_counts(candidate, n);
            let mut max_ref: HashMap<&[String], usize> = HashMap::new();
            for reference in refs {
                for (gram, count) in ngram_counts(reference, n) {
                    let best = max_ref.entry(gram).or_insert(0);
                    *best = (*best).max(count);
                }
            }
            matches[n - 1] += counts
                .iter()
                .map(|(gram, &count)| count.min(max_ref.get(gram).copied().unwrap_or(0)))
                .sum::<usize>();
            totals[n - 1] += counts.values().sum::<usize>().max(1);
        }
        candidate_length += candidate.len();
        reference_length += refs
            .iter()
            .map(Vec::len)
            .min_by_key(|&len| (len.abs_diff(candidate.len()), len))
            .unwrap_or(0);
    }
    if candidate_length == 0 || matches.contains(&0) {
        return Ok(0.0);
    }
    let log_precision: f64 = matches
        .iter()
        .zip(&totals)
        .map(|(&m, &t)| 0.25 * (m as f64 / t as f64).ln())
        .sum();
    let brevity = if candidate_length > reference_length {
        1.0
    } else {
        (1.0 - reference_length as f64 / candidate_length as f64).exp()
    };
    Ok(brevity * log_precision.exp())
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}
