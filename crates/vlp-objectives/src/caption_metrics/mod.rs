//! Captioning metrics (survey §6: the downstream evaluation of generative
//! pre-training), with the formulas of pycocoevalcap, the COCO caption
//! evaluation that captioning papers report: corpus BLEU-1..4 ([`bleu`]) and
//! CIDEr-D ([`cider`]). Inputs are tokenised captions (word lists); no PTB
//! tokenisation happens here.

pub mod bleu;
pub mod cider;

use std::collections::HashMap;

use crate::error::{shape_error, ObjectiveError, Result};

/// The n-gram orders both metrics use (1..=4).
pub const MAX_ORDER: usize = 4;

/// The count of every n-gram of order `n` in `tokens`.
fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// One reference list per candidate, none of them empty (pycocoevalcap
/// asserts the same).
fn check_references(
    what: &'static str,
    candidates: &[Vec<String>],
    references: &[Vec<Vec<String>>],
) -> Result<()> {
    if candidates.len() != references.len() {
        return Err(shape_error(
            what,
            format!("one list per candidate ({})", candidates.len()),
            &[references.len()],
        ));
    }
    match references.iter().position(Vec::is_empty) {
        Some(i) => Err(ObjectiveError::Value {
            what,
            message: format!("candidate {i} has no reference"),
        }),
        None => Ok(()),
    }
}
