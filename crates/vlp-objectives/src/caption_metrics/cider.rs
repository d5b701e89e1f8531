//! CIDEr-D (Vedantam et al. 2015) as pycocoevalcap's `Cider` computes it
//! for COCO captioning: tf-idf n-gram vectors (n = 1..4) with document
//! frequencies over the evaluated set's references, candidate weights
//! clipped by the reference's, a Gaussian length penalty (σ = 6), × 10.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{check_references, ngram_counts, MAX_ORDER};
use crate::error::Result;

/// The σ of the Gaussian penalty on the length difference (pycocoevalcap's
/// default).
const SIGMA: f64 = 6.0;

/// CIDEr-D of a corpus and of each of its candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CiderD {
    /// The mean over the candidates (the number papers report, × 10 scale:
    /// a candidate equal to all its references scores up to 10).
    pub corpus: f64,
    /// The score of each candidate.
    pub per_candidate: Vec<f64>,
}

/// A caption's tf-idf vector of each n-gram order, its norms, and its
/// "length" as pycocoevalcap counts it: the number of bigrams.
struct TfIdf<'a> {
    weights: [HashMap<&'a [String], f64>; MAX_ORDER],
    norms: [f64; MAX_ORDER],
    length: usize,
}

impl<'a> TfIdf<'a> {
    /// Weights `count · (ln |images| − ln max(1, df))`.
    fn new(tokens: &'a [String], frequency: &HashMap<&[String], usize>, log_images: f64) -> Self {
        let mut weights: [HashMap<&[String], f64>; MAX_ORDER] = Default::default();
        let mut norms = [0.0; MAX_ORDER];
        for (k, (order, norm)) in weights.iter_mut().zip(&mut norms).enumerate() {
            for (gram, count) in ngram_counts(tokens, k + 1) {
                let df = frequency.get(gram).copied().unwrap_or(0).max(1) as f64;
                let weight = count as f64 * (log_images - df.ln());
                *norm += weight * weight;
                order.insert(gram, weight);
            }
            *norm = norm.sqrt();
        }
        Self {
            weights,
            norms,
            length: tokens.len().saturating_sub(1),
        }
    }

    /// pycocoevalcap's `sim`: per order, `Σ min(w_c, w_r) · w_r` over the
    /// candidate's n-grams, divided by both norms when neither is 0, times
    /// `exp(−δ² / 2σ²)` with δ the length difference.
    fn similarity(&self, reference: &Self) -> [f64; MAX_ORDER] {
        let delta = self.length as f64 - reference.length as f64;
        let penalty = (-(delta * delta) / (2.0 * SIGMA * SIGMA)).exp();
        let mut values = [0.0; MAX_ORDER];
        for (k, value) in values.iter_mut().enumerate() {
            for (gram, &weight) in &self.weights[k] {
                let reference_weight = reference.weights[k].get(gram).copied().unwrap_or(0.0);
                *value += weight.min(reference_weight) * reference_weight;
            }
            if self.norms[k] != 0.0 && reference.norms[k] != 0.0 {
                *value /= self.norms[k] * reference.norms[k];
            }
            *value *= penalty;
        }
        values
    }
}

/// CIDEr-D of each candidate against its references, as pycocoevalcap's
/// `Cider().compute_score`: an n-gram's document frequency is the number of
/// candidates among whose references it occurs; each candidate scores
/// `10 · mean over references of mean over n = 1..4` of
/// `TfIdf::similarity`. The corpus score is the mean over candidates (so
/// it depends on the evaluated set, as in the COCO evaluation).
///
/// `candidates[i]` is a tokenised caption, `references[i]` its (non-empty)
/// references.
pub fn cider_d(candidates: &[Vec<String>], references: &[Vec<Vec<String>>]) -> Result<CiderD> {
    check_references("CIDEr-D references", candidates, references)?;
    let mut frequency: HashMap<&[String], usize> = HashMap::new();
    for refs in references {
        let grams: HashSet<&[String]> = refs
            .iter()
            .flat_map(|reference| (1..=MAX_ORDER).flat_map(|n| reference.windows(n)))
            .collect();
        for gram in grams {
            *frequency.entry(gram).or_insert(0) += 1;
        }
    }
    let log_images = (candidates.len() as f64).ln();
    let per_candidate: Vec<f64> = candidates
        .iter()
        .zip(references)
        .map(|(candidate, refs)| {
            let candidate = TfIdf::new(candidate, &frequency, log_images);
            let total: f64 = refs
                .iter()
                .map(|reference| {
                    let similarity =
                        candidate.similarity(&TfIdf::new(reference, &frequency, log_images));
                    similarity.iter().sum::<f64>() / MAX_ORDER as f64
                })
                .sum();
            10.0 * total / refs.len() as f64
        })
        .collect();
    let corpus = per_candidate.iter().sum::<f64>() / per_candidate.len().max(1) as f64;
    Ok(CiderD {
        corpus,
        per_candidate,
    })
}
