//! Held-out evaluation of a pre-trained model: image-text retrieval over
//! `candidates` test scenes with pairwise distinct descriptions (one caption
//! each, ranked by contrastive similarity) for models with a shared space.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use vlp_data::synthetic::{caption, Split, SyntheticWorld, NUM_PHRASINGS};
use vlp_data::{tokens_to_tensors, HostVisual, RegionBatch, TextTokenizer};
use vlp_objectives::{
    bleu4, AlbefPretrainer, ClipPretrainer, DualStreamPretrainer, RankBy, RetrievalModel,
    SimVlmPretrainer, UniterPretrainer,
};

use crate::config::PretrainConfig;

/// Recall at 1, 5 and 10.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    pub r1: f64,
    pub r5: f64,
    pub r10: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Text → image: each caption ranks all candidate images.
    pub t2i: Recall,
    /// Image → text: each image ranks all candidate captions.
    pub i2t: Recall,
    pub candidates: usize,
    /// What ranked the candidates: "embeddings" (contrastive similarity) or
    /// "matching" (the ITM head's score of every pair).
    #[serde(default = "ranked_by_embeddings")]
    pub ranked_by: String,
}

fn ranked_by_embeddings() -> String {
    "embeddings".into()
}

/// Candidates ranked by a matching head, whose cost grows as `N²` fused
/// passes: the held-out set is capped at this many scenes.
pub const MATCHING_CANDIDATES: usize = 100;

/// The content of `eval.json`: what the model's architecture can be measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
    /// Each objective's mean loss and metric on held-out batches
    /// ([`crate::heldout::heldout_objectives`]), where measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectives: Option<crate::heldout::HeldOutObjectives>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captioning: Option<Captioning>,
}

/// Captions generated for held-out images, scored against every phrasing
/// of each image's scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captioning {
    /// Corpus BLEU-4 (NLTK's `corpus_bleu`, no smoothing) over WordPiece
    /// words (pieces merged), all phrasings as references.
    pub bleu4: f64,
    /// Captions whose words equal one of their references exactly.
    pub exact_match: f64,
    pub images: usize,
    pub beam_size: usize,
    /// The first few generated captions with one reference each.
    pub examples: Vec<CaptionExample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionExample {
    pub generated: String,
    pub reference: String,
}

/// A trained model measured on the held-out split of the synthetic world.
pub trait Evaluate<B: Backend> {
    fn evaluate(
        &self,
        world: &SyntheticWorld,
        tokenizer: &TextTokenizer,
        config: &PretrainConfig,
        device: &B::Device,
    ) -> anyhow::Result<EvalReport>;
}

/// Models with a shared text-image space are measured by retrieval.
macro_rules! evaluate_by_retrieval {
    ($($model:ident),*) => {$(
        impl<B: Backend> Evaluate<B> for $model<B> {
            fn evaluate(
                &self,
                world: &SyntheticWorld,
                tokenizer: &TextTokenizer,
                config: &PretrainConfig,
                device: &B::Device,
            ) -> anyhow::Result<EvalReport> {
                Ok(EvalReport {
                    retrieval: retrieval(self, world, tokenizer, config, device)?,
                    captioning: None,
                    objectives: None,
                })
            }
        }
    )*};
}

evaluate_by_retrieval!(
    UniterPretrainer,
    DualStreamPretrainer,
    AlbefPretrainer,
    ClipPretrainer
);

impl<B: Backend> Evaluate<B> for SimVlmPretrainer<B> {
    fn evaluate(
        &self,
        world: &SyntheticWorld,
        tokenizer: &TextTokenizer,
        config: &PretrainConfig,
        device: &B::Device,
    ) -> anyhow::Result<EvalReport> {
        Ok(EvalReport {
            retrieval: None,
            captioning: Some(captioning(self, world, tokenizer, config, device)?),
            objectives: None,
        })
    }
}

/// Whole words of WordPiece `ids` (continuation pieces `##…` joined to the
/// word before them), special tokens dropped.
fn words(tokenizer: &TextTokenizer, ids: &[u32]) -> Vec<String> {
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

/// Captions the first `eval_candidates` held-out scenes from the image alone
/// and scores them with corpus BLEU-4 against all phrasings of each scene.
pub fn captioning<B: Backend>(
    model: &SimVlmPretrainer<B>,
    world: &SyntheticWorld,
    tokenizer: &TextTokenizer,
    config: &PretrainConfig,
    device: &B::Device,
) -> anyhow::Result<Captioning> {
    let n = config.eval_candidates;
    let indices = world.distinct_indices(Split::Test, n);
    let samples: Vec<_> = indices
        .iter()
        .map(|&i| world.sample(Split::Test, i))
        .collect();
    let mut references = Vec::with_capacity(n);
    for sample in &samples {
        let texts: Vec<String> = (0..NUM_PHRASINGS)
            .map(|p| caption(&sample.scene, p))
            .collect();
        let encoded = tokenizer.encode(&texts, 512)?;
        references.push(
            encoded
                .ids
                .iter()
                .map(|ids| words(tokenizer, ids))
                .collect::<Vec<_>>(),
        );
    }
    let visual = held_out_visual(samples, config)?.to_device::<B>(device);
    const CHUNK: usize = 100;
    let mut candidates = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        for ids in model.caption(
            &visual.slice_rows(start, end),
            config.data.max_text_len,
            config.caption_beam_size,
        ) {
            candidates.push(words(tokenizer, &ids));
        }
    }
    let bleu4 = bleu4(&candidates, &references)?;
    let exact = candidates
        .iter()
        .zip(&references)
        .filter(|(candidate, refs)| refs.contains(candidate))
        .count();
    Ok(Captioning {
        bleu4,
        exact_match: exact as f64 / n.max(1) as f64,
        images: n,
        beam_size: config.caption_beam_size,
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

/// Pixels or detector regions of held-out samples, as the model reads them.
fn held_out_visual(
    samples: Vec<vlp_data::synthetic::Sample>,
    config: &PretrainConfig,
) -> anyhow::Result<HostVisual> {
    Ok(match crate::train::detector(config) {
        Some(detector) => {
            let records: Vec<_> = samples.iter().map(|s| detector.detect(&s.scene)).collect();
            HostVisual::Regions(RegionBatch::from_records(&records, usize::MAX)?)
        }
        None => HostVisual::Images(samples.into_iter().map(|s| s.image).collect()),
    })
}

impl EvalReport {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::run_dir::write_atomic(path, serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// A small table for the terminal.
    pub fn table(&self) -> String {
        let mut sections = Vec::new();
        if let Some(retrieval) = &self.retrieval {
            sections.push(retrieval.table());
        }
        if let Some(c) = &self.captioning {
            sections.push(format!(
                "held-out captioning of {} images (beam {}): BLEU-4 {:.3}, exact match {:.3}",
                c.images, c.beam_size, c.bleu4, c.exact_match
            ));
            for example in &c.examples {
                sections.push(format!(
                    "  {:?}  (reference: {:?})",
                    example.generated, example.reference
                ));
            }
        }
        if let Some(objectives) = &self.objectives {
            sections.push(crate::heldout::table(objectives));
        }
        sections.join("\n")
    }
}

impl Retrieval {
    fn table(&self) -> String {
        let r = self;
        let row = |name: &str, recall: &Recall| {
            format!(
                "{name:<12} {:>6.3} {:>6.3} {:>6.3}",
                recall.r1, recall.r5, recall.r10
            )
        };
        format!(
            "held-out retrieval over {} candidates (ranked by {})\n{:<12} {:>6} {:>6} {:>6}\n{}\n{}",
            r.candidates,
            r.ranked_by,
            "",
            "R@1",
            "R@5",
            "R@10",
            row("text→image", &r.t2i),
            row("image→text", &r.i2t)
        )
    }
}

/// Recall@{1,5,10} from the 0-based rank of the correct item of each query.
fn recall_from_ranks(ranks: &[usize]) -> Recall {
    let rate = |k: usize| {
        ranks.iter().filter(|&&rank| rank < k).count() as f64 / ranks.len().max(1) as f64
    };
    Recall {
        r1: rate(1),
        r5: rate(5),
        r10: rate(10),
    }
}

/// Score of `item` for `query` in a row-major `n × n` matrix (rows are texts).
fn score(similarity: &[f32], n: usize, by_rows: bool, query: usize, item: usize) -> f32 {
    if by_rows {
        similarity[query * n + item]
    } else {
        similarity[item * n + query]
    }
}

/// The 0-based rank of the correct item (the diagonal) of each query of a
/// square similarity matrix, ranking along rows (`by_rows`, text → image) or
/// columns. Ties with the correct item count against it.
pub fn ranks(similarity: &[f32], n: usize, by_rows: bool) -> Vec<usize> {
    (0..n)
        .map(|query| {
            let correct = score(similarity, n, by_rows, query, query);
            (0..n)
                .filter(|&item| {
                    item != query && score(similarity, n, by_rows, query, item) >= correct
                })
                .count()
        })
        .collect()
}

/// Recall@{1,5,10} of a square similarity matrix whose diagonal holds the
/// correct pairs.
pub fn recall(similarity: &[f32], n: usize, by_rows: bool) -> Recall {
    recall_from_ranks(&ranks(similarity, n, by_rows))
}

/// Measures retrieval on the held-out test set in both directions: by the
/// contrastive similarity of the unimodal embeddings, or, for a model
/// without a shared space, by its matching head's score of every pair
/// (UNITER; at most [`MATCHING_CANDIDATES`] scenes). `None` when the model
/// has neither. (Re-ranking the top candidates with the ITM head, as ALBEF
/// does, was measured and made R@1 worse for the contrastive models: their
/// ITM head is trained on random negatives.)
pub fn retrieval<B: Backend, M: RetrievalModel<B>>(
    model: &M,
    world: &SyntheticWorld,
    tokenizer: &TextTokenizer,
    config: &PretrainConfig,
    device: &B::Device,
) -> anyhow::Result<Option<Retrieval>> {
    let rank_by = model.rank_by();
    let n = match rank_by {
        RankBy::Embeddings => config.eval_candidates,
        RankBy::Matching => config.eval_candidates.min(MATCHING_CANDIDATES),
        RankBy::Nothing => return Ok(None),
    };
    let indices = world.distinct_indices(Split::Test, n);
    let samples: Vec<_> = indices
        .iter()
        .map(|&i| world.sample(Split::Test, i))
        .collect();
    let texts: Vec<String> = indices
        .iter()
        .zip(&samples)
        .map(|(&i, s)| caption(&s.scene, i % NUM_PHRASINGS))
        .collect();
    let (ids, padding) =
        tokens_to_tensors::<B>(&tokenizer.encode(&texts, config.data.max_text_len)?, device);
    let visual = held_out_visual(samples, config)?.to_device::<B>(device);

    let similarity: Vec<f32> = match rank_by {
        RankBy::Embeddings => {
            const CHUNK: usize = 200;
            let mut text_embeddings = Vec::new();
            let mut image_embeddings = Vec::new();
            for start in (0..n).step_by(CHUNK) {
                let rows = start..(start + CHUNK).min(n);
                text_embeddings.push(model.embed_text(
                    ids.clone().slice([rows.clone()]),
                    padding.clone().slice([rows.clone()]),
                ));
                image_embeddings.push(model.embed_image(&visual.slice_rows(rows.start, rows.end)));
            }
            floats(
                Tensor::cat(text_embeddings, 0)
                    .matmul(Tensor::cat(image_embeddings, 0).transpose()),
            )?
        }
        _ => {
            // Row i of the matrix: text i against every image, one fused batch.
            let mut rows = Vec::with_capacity(n * n);
            for text in 0..n {
                let text_rows = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(vec![text as i64; n], [n]),
                    device,
                );
                let scores = model
                    .match_scores(
                        ids.clone().select(0, text_rows.clone()),
                        padding.clone().select(0, text_rows),
                        &visual,
                    )
                    .expect("a model ranking by matching scores pairs");
                rows.extend(floats(scores)?);
            }
            rows
        }
    };

    Ok(Some(Retrieval {
        t2i: recall(&similarity, n, true),
        i2t: recall(&similarity, n, false),
        candidates: n,
        ranked_by: match rank_by {
            RankBy::Matching => "matching",
            _ => "embeddings",
        }
        .into(),
    }))
}

fn floats<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> anyhow::Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|err| anyhow::anyhow!("{err:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_ranks_and_ties_pessimistically() {
        // Row 0: correct item best; row 1: one item above; row 2: tie with another.
        let similarity = [
            0.9, 0.1, 0.2, //
            0.8, 0.5, 0.1, //
            0.3, 0.3, 0.3,
        ];
        let rows = recall(&similarity, 3, true);
        assert!((rows.r1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(rows.r5, 1.0);
        let columns = recall(&similarity, 3, false);
        // Column 0: 0.9 best; column 1: 0.5 best; column 2: 0.3 beats 0.2 and 0.1.
        assert_eq!(columns.r1, 1.0);
    }
}
