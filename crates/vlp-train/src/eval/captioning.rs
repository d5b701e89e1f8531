//! Held-out captioning (survey §4.8: image captioning as an evaluation of
//! generative pre-training, SimVLM): captions generated from the image
//! alone, scored by corpus BLEU-1..4 and CIDEr-D against every phrasing of
//! the scene.

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use vlp_data::{PretrainBatcher, TextTokenizer};
use vlp_objectives::{cider_d, corpus_bleu, SimVlmPretrainer};

use super::EvalSettings;
use crate::error::Result;

/// Captions generated for held-out images, scored against every phrasing
/// of each image's scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captioning {
    /// Corpus BLEU-4 (pycocoevalcap's `Bleu`) over WordPiece words (pieces
    /// merged), all phrasings as references.
    pub bleu4: f64,
    /// Corpus BLEU-1, as [`Self::bleu4`].
    #[serde(default)]
    pub bleu1: f64,
    /// Corpus BLEU-2.
    #[serde(default)]
    pub bleu2: f64,
    /// Corpus BLEU-3.
    #[serde(default)]
    pub bleu3: f64,
    /// Corpus CIDEr-D (pycocoevalcap's `Cider`, document frequencies over
    /// the captioned images' references).
    #[serde(default)]
    pub cider: f64,
    /// Captions whose words equal one of their references exactly.
    pub exact_match: f64,
    /// Held-out images captioned.
    pub images: usize,
    /// Beam size of the search (1: greedy).
    pub beam_size: usize,
    /// The first few generated captions with one reference each.
    pub examples: Vec<CaptionExample>,
}

/// A generated caption beside one of its references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionExample {
    /// What the model wrote.
    pub generated: String,
    /// The scene's first phrasing.
    pub reference: String,
}

/// Whole words of WordPiece `ids` (continuation pieces `##…` joined to the
/// word before them), special tokens dropped.
pub(crate) fn words(tokenizer: &TextTokenizer, ids: &[u32]) -> Vec<String> {
    let special = tokenizer.special();
    let mut words: Vec<String> = Vec::new();
    for piece in tokenizer.tokens(
        &ids.iter()
            .copied()
            .filter(|&id| !special.contains(id))
            .collect::<Vec<_>>(),
    ) {
        match (piece.strip_prefix("##"), words.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => words.push(piece),
        }
    }
    words
}

/// Captions the first `settings.candidates` held-out pairs of the batcher
/// from the image alone and scores them with corpus BLEU-1..4 and CIDEr-D
/// against all captions of each image (every phrasing of a synthetic scene).
pub fn captioning<B: Backend>(
    model: &SimVlmPretrainer<B>,
    data: &PretrainBatcher,
    settings: &EvalSettings,
    device: &B::Device,
) -> Result<Captioning> {
    let tokenizer = &data.tokenizer;
    let pairs = data.held_out_pairs(settings.candidates)?;
    let n = pairs.captions.len();
    let mut references = Vec::with_capacity(n);
    for texts in &pairs.references {
        let encoded = tokenizer.encode(texts, 512)?;
        references.push(
            encoded
                .ids
                .iter()
                .map(|ids| words(tokenizer, ids))
                .collect::<Vec<_>>(),
        );
    }
    let visual = pairs.visual.to_device::<B>(device);
    const CHUNK: usize = 100;
    let mut candidates = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        for ids in model.caption(
            &visual.slice_rows(start, end),
            settings.max_text_len,
            settings.caption_beam_size,
            settings.caption_length_penalty,
        ) {
            candidates.push(words(tokenizer, &ids));
        }
    }
    let [bleu1, bleu2, bleu3, bleu4] = corpus_bleu(&candidates, &references)?;
    let cider = cider_d(&candidates, &references)?.corpus;
    let exact = candidates
        .iter()
        .zip(&references)
        .filter(|(candidate, refs)| refs.contains(candidate))
        .count();
    Ok(Captioning {
        bleu4,
        bleu1,
        bleu2,
        bleu3,
        cider,
        exact_match: exact as f64 / n.max(1) as f64,
        images: n,
        beam_size: settings.caption_beam_size,
        examples: candidates
            .iter()
            .zip(&references)
            .take(5)
            .map(|(candidate, refs)| CaptionExample {
                generated: candidate.join(" "),
                reference: refs[0].join(" "),
            })
            .collect(),
    })
}
