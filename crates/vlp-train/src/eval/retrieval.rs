//! Held-out image-text retrieval (survey §6: the downstream task that
//! contrastive and matching pre-training serve): `candidates` test scenes
//! with pairwise distinct descriptions, one caption each, ranked by
//! contrastive similarity or by the matching head, or by the similarity
//! with each query's top `k` re-ranked by the matching head (ALBEF, BLIP).

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use vlp_data::{tokens_to_tensors, HeldOutPairs, PretrainBatcher, VisualBatch};
use vlp_objectives::{RankBy, RetrievalModel};

use super::EvalSettings;
use crate::error::{ConfigError, Result};

/// Recall at 1, 5 and 10.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    /// Share of queries whose correct item ranks first.
    pub r1: f64,
    /// … within the first 5.
    pub r5: f64,
    /// … within the first 10.
    pub r10: f64,
}

/// Retrieval in both directions over the same candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Text → image: each caption ranks all candidate images.
    pub t2i: Recall,
    /// Image → text: each image ranks all candidate captions.
    pub i2t: Recall,
    /// Candidate images (text → image), and queries of image → text.
    pub candidates: usize,
    /// Captions ranked in image → text (the queries of text → image): as
    /// many as the images with one caption each, more with several
    /// (`eval_captions_per_image`); 0 in reports written before it was kept.
    #[serde(default)]
    pub captions: usize,
    /// What ranked the candidates: "embeddings" (contrastive similarity),
    /// "matching" (the ITM head's score of every pair) or "embeddings, top
    /// K re-ranked by matching".
    #[serde(default = "ranked_by_embeddings")]
    pub ranked_by: String,
    /// The first text queries with their best-ranked images, for the run's
    /// `report.html` ([`text_to_image_examples`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<RetrievalExample>,
    /// Clips only (ranked by embeddings): text → clip with every candidate
    /// clip's frames in reverse order, which turns each object's motion
    /// around. A model that reads the frames in order drops; one that reads
    /// a bag of frames does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t2i_frames_reversed: Option<Recall>,
}

/// A text query with the images ranked first for it, as indices of the
/// held-out pairs ([`PretrainBatcher::held_out_pairs`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalExample {
    /// The caption.
    pub query: String,
    /// The image it describes.
    pub image: usize,
    /// The [`EXAMPLES`] best-ranked images with their scores, best first.
    pub top: Vec<(usize, f32)>,
}

/// Text queries kept as examples, and images kept for each.
pub const EXAMPLES: usize = 5;

/// The first [`EXAMPLES`] captions of distinct images (`caption_image[c]`:
/// the image of caption `c`) with their [`EXAMPLES`] best images by
/// `score(caption, image)` over `images` candidates (ties by index).
pub fn text_to_image_examples(
    captions: &[String],
    caption_image: &[usize],
    images: usize,
    score: impl Fn(usize, usize) -> f32,
) -> Vec<RetrievalExample> {
    let mut seen = std::collections::BTreeSet::new();
    (0..captions.len())
        .filter(|&c| seen.insert(caption_image[c]))
        .take(EXAMPLES)
        .map(|c| {
            let mut ranked: Vec<usize> = (0..images).collect();
            ranked.sort_by(|&a, &b| score(c, b).total_cmp(&score(c, a)).then(a.cmp(&b)));
            RetrievalExample {
                query: captions[c].clone(),
                image: caption_image[c],
                top: ranked
                    .into_iter()
                    .take(EXAMPLES)
                    .map(|i| (i, score(c, i)))
                    .collect(),
            }
        })
        .collect()
}

fn ranked_by_embeddings() -> String {
    "embeddings".into()
}

/// Candidates ranked by a matching head, whose cost grows as `N²` fused
/// passes: the held-out set is capped at this many scenes.
pub const MATCHING_CANDIDATES: usize = 100;

impl Retrieval {
    /// A small table for the terminal.
    pub fn table(&self) -> String {
        let r = self;
        let row = |name: &str, recall: &Recall| {
            format!(
                "{name:<12} {:>6.3} {:>6.3} {:>6.3}",
                recall.r1, recall.r5, recall.r10
            )
        };
        let over = match r.captions {
            captions if captions > r.candidates => {
                format!("{} images and {captions} captions", r.candidates)
            }
            _ => format!("{} candidates", r.candidates),
        };
        let mut table = format!(
            "held-out retrieval over {over} (ranked by {})\n{:<12} {:>6} {:>6} {:>6}\n{}\n{}",
            r.ranked_by,
            "",
            "R@1",
            "R@5",
            "R@10",
            row("text→image", &r.t2i),
            row("image→text", &r.i2t)
        );
        if let Some(reversed) = &r.t2i_frames_reversed {
            table.push_str(&format!(
                "\n{}  (text→clip, frames reversed)",
                row("reversed", reversed)
            ));
        }
        table
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

/// ALBEF's and BLIP's re-ranking of a square similarity matrix (rows are
/// texts): each query's `k` most similar items are re-scored by
/// `matching(query, items)` and placed above every other item in the order
/// of those scores; the others keep their similarity order. Returns the
/// scores of the new ranking in the same layout (for [`recall`] with the
/// same `by_rows`). Re-ranking only reorders the top `k`, so R@K for
/// K ≥ `k` is unchanged.
pub fn rerank_top_k(
    similarity: &[f32],
    n: usize,
    by_rows: bool,
    k: usize,
    mut matching: impl FnMut(usize, &[usize]) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    let mut scores = similarity.to_vec();
    let above = similarity.iter().copied().fold(f32::MIN, f32::max);
    let k = k.min(n);
    for query in 0..n {
        let mut items: Vec<usize> = (0..n).collect();
        items.sort_by(|&a, &b| {
            score(similarity, n, by_rows, query, b)
                .total_cmp(&score(similarity, n, by_rows, query, a))
        });
        items.truncate(k);
        let matched = matching(query, &items)?;
        let lowest = matched.iter().copied().fold(f32::MAX, f32::min);
        for (&item, &m) in items.iter().zip(&matched) {
            // Above the largest similarity, in the matching head's order.
            let at = if by_rows {
                query * n + item
            } else {
                item * n + query
            };
            scores[at] = above + 1.0 + (m - lowest);
        }
    }
    Ok(scores)
}

/// Recall@{1,5,10} of a square similarity matrix whose diagonal holds the
/// correct pairs.
pub fn recall(similarity: &[f32], n: usize, by_rows: bool) -> Recall {
    recall_from_ranks(&ranks(similarity, n, by_rows))
}

/// Recall@{1,5,10} in both directions when each image has several captions
/// (the Karpathy-split protocol of COCO and Flickr30k, 5 captions per
/// image, as ALBEF's and BLIP's evaluation ranks them). `similarity` is
/// row-major `[images, captions]`; `caption_image[c]` is the image of
/// caption `c`. Text → image: the rank of each caption's image among all
/// images. Image → text: the best rank among the image's captions, i.e. the
/// number of other images' captions scoring at least as high as the image's
/// best caption. Ties with a wrong item count against the correct one.
/// Returns `(text → image, image → text)`; an image without captions is an
/// error, as are sizes that do not fit.
pub fn recall_with_captions(
    similarity: &[f32],
    images: usize,
    caption_image: &[usize],
) -> Result<(Recall, Recall)> {
    let captions = caption_image.len();
    let invalid = |message: String| ConfigError::invalid("retrieval caption_image", message);
    if similarity.len() != images * captions {
        return Err(invalid(format!(
            "a [{images}, {captions}] similarity matrix needs {} scores, got {}",
            images * captions,
            similarity.len()
        ))
        .into());
    }
    if let Some(c) = caption_image.iter().position(|&image| image >= images) {
        return Err(invalid(format!(
            "caption {c} belongs to image {} of {images}",
            caption_image[c]
        ))
        .into());
    }
    let score = |image: usize, caption: usize| similarity[image * captions + caption];
    let t2i: Vec<usize> = (0..captions)
        .map(|c| {
            let correct = score(caption_image[c], c);
            (0..images)
                .filter(|&i| i != caption_image[c] && score(i, c) >= correct)
                .count()
        })
        .collect();
    let mut i2t = Vec::with_capacity(images);
    for image in 0..images {
        let best = (0..captions)
            .filter(|&c| caption_image[c] == image)
            .map(|c| score(image, c))
            .reduce(f32::max)
            .ok_or_else(|| invalid(format!("image {image} has no caption")))?;
        i2t.push(
            (0..captions)
                .filter(|&c| caption_image[c] != image && score(image, c) >= best)
                .count(),
        );
    }
    Ok((recall_from_ranks(&t2i), recall_from_ranks(&i2t)))
}

/// Measures retrieval on the batcher's held-out pairs in both directions
/// (as many as `settings.candidates`, fewer when the held-out data has
/// fewer, one caption each, or up to `settings.captions_per_image`:
/// [`retrieval_with_captions`]): by the
/// contrastive similarity of the unimodal embeddings, or, for a model
/// without a shared space, by its matching head's score of every pair
/// (UNITER; at most [`MATCHING_CANDIDATES`] scenes). `None` when the model
/// has neither. With `settings.rerank_top_k = k > 0` the matching head
/// re-ranks each query's top `k` by similarity ([`rerank_top_k`]; an error
/// for a model without one).
pub fn retrieval<B: Backend, M: RetrievalModel<B>>(
    model: &M,
    data: &PretrainBatcher,
    settings: &EvalSettings,
    device: &B::Device,
) -> Result<Option<Retrieval>> {
    let rank_by = model.rank_by();
    let n = match rank_by {
        RankBy::Embeddings => settings.candidates,
        RankBy::Matching => settings.candidates.min(MATCHING_CANDIDATES),
        RankBy::Nothing => return Ok(None),
    };
    let pairs = data.held_out_pairs(n)?;
    if settings.captions_per_image > 1 {
        let refuse = |key: &str, why: &str| {
            ConfigError::invalid(
                "eval_captions_per_image",
                format!("eval_captions_per_image > 1 ranks by embeddings only: {key} {why}"),
            )
        };
        if rank_by == RankBy::Matching {
            return Err(refuse("this model", "ranks by its matching head").into());
        }
        if settings.rerank_top_k > 0 {
            return Err(refuse("eval_rerank_top_k", "must be 0").into());
        }
        return retrieval_with_captions(model, data, pairs, settings, device).map(Some);
    }
    let n = pairs.captions.len();
    let tokens = data
        .tokenizer
        .encode(&pairs.captions, settings.max_text_len)?;
    let (ids, padding) = tokens_to_tensors::<B>(&tokens, device);
    let visual = pairs.visual.to_device::<B>(device);

    let similarity: Vec<f32> = match rank_by {
        RankBy::Embeddings => floats(
            embed_texts(model, ids.clone(), padding.clone())
                .matmul(embed_images(model, &visual).transpose()),
        ),
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
                rows.extend(floats(scores));
            }
            rows
        }
    };

    // Clips shown backwards: how much the ranking owes to the frames' order.
    let t2i_frames_reversed = match (&visual, rank_by) {
        (VisualBatch::Clips(clips), RankBy::Embeddings) => {
            let reversed = VisualBatch::Clips(clips.clone().flip([1]));
            let similarity = floats(
                embed_texts(model, ids.clone(), padding.clone())
                    .matmul(embed_images(model, &reversed).transpose()),
            );
            Some(recall(&similarity, n, true))
        }
        _ => None,
    };
    let diagonal: Vec<usize> = (0..n).collect();
    let examples = |t2i: &[f32]| {
        text_to_image_examples(&pairs.captions, &diagonal, n, |text, image| {
            t2i[text * n + image]
        })
    };
    let k = settings.rerank_top_k;
    if k == 0 || rank_by == RankBy::Matching {
        return Ok(Some(Retrieval {
            t2i: recall(&similarity, n, true),
            i2t: recall(&similarity, n, false),
            candidates: n,
            captions: n,
            ranked_by: match rank_by {
                RankBy::Matching => "matching",
                _ => "embeddings",
            }
            .into(),
            examples: examples(&similarity),
            t2i_frames_reversed,
        }));
    }
    let rows = |indices: Vec<usize>| {
        let indices = indices.into_iter().map(|i| i as i64).collect::<Vec<_>>();
        let len = indices.len();
        Tensor::<B, 1, Int>::from_data(TensorData::new(indices, [len]), device)
    };
    // Matching scores of text `texts[i]` with image `images[i]`.
    let matching = |texts: Vec<usize>, images: Vec<usize>| -> Result<Vec<f32>> {
        let (texts, images) = (rows(texts), rows(images));
        let scores = model
            .match_scores(
                ids.clone().select(0, texts.clone()),
                padding.clone().select(0, texts),
                &visual.select(images),
            )
            .ok_or_else(|| {
                ConfigError::invalid(
                    "eval_rerank_top_k",
                    "eval_rerank_top_k needs a model with a matching (ITM) head; set it to 0",
                )
            })?;
        Ok(floats(scores))
    };
    let t2i = rerank_top_k(&similarity, n, true, k, |text, images| {
        matching(vec![text; images.len()], images.to_vec())
    })?;
    let i2t = rerank_top_k(&similarity, n, false, k, |image, texts| {
        matching(texts.to_vec(), vec![image; texts.len()])
    })?;
    Ok(Some(Retrieval {
        t2i: recall(&t2i, n, true),
        i2t: recall(&i2t, n, false),
        candidates: n,
        captions: n,
        ranked_by: format!("embeddings, top {} re-ranked by matching", k.min(n)),
        examples: examples(&t2i),
        t2i_frames_reversed,
    }))
}

/// Rows embedded at a time: bounds the activations of a held-out set.
const EMBED_CHUNK: usize = 200;

/// Unit text embeddings `[N, D]` of `ids`, a chunk at a time.
fn embed_texts<B: Backend, M: RetrievalModel<B>>(
    model: &M,
    ids: Tensor<B, 2, Int>,
    padding: Tensor<B, 2, Bool>,
) -> Tensor<B, 2> {
    let [n, _] = ids.dims();
    let chunks = (0..n).step_by(EMBED_CHUNK).map(|start| {
        let rows = start..(start + EMBED_CHUNK).min(n);
        model.embed_text(
            ids.clone().slice([rows.clone()]),
            padding.clone().slice([rows]),
        )
    });
    Tensor::cat(chunks.collect(), 0)
}

/// Unit image embeddings `[N, D]` of `visual`, a chunk at a time.
fn embed_images<B: Backend, M: RetrievalModel<B>>(
    model: &M,
    visual: &VisualBatch<B>,
) -> Tensor<B, 2> {
    let n = visual.len();
    let chunks = (0..n)
        .step_by(EMBED_CHUNK)
        .map(|start| model.embed_image(&visual.slice_rows(start, (start + EMBED_CHUNK).min(n))));
    Tensor::cat(chunks.collect(), 0)
}

/// The Karpathy-split protocol of COCO and Flickr30k on `pairs`: each
/// image with its pair's caption and its other references, up to
/// `settings.captions_per_image` captions (5 in ALBEF's and BLIP's
/// evaluation), ranked by the contrastive similarity
/// ([`recall_with_captions`]). With one caption per image it scores what
/// [`retrieval`] does.
pub fn retrieval_with_captions<B: Backend, M: RetrievalModel<B>>(
    model: &M,
    data: &PretrainBatcher,
    pairs: HeldOutPairs,
    settings: &EvalSettings,
    device: &B::Device,
) -> Result<Retrieval> {
    let mut captions = Vec::new();
    let mut caption_image = Vec::new();
    for (image, (caption, references)) in pairs.captions.iter().zip(&pairs.references).enumerate() {
        let others = references.iter().filter(|r| *r != caption);
        for text in std::iter::once(caption)
            .chain(others)
            .take(settings.captions_per_image.max(1))
        {
            captions.push(text.clone());
            caption_image.push(image);
        }
    }
    let tokens = data.tokenizer.encode(&captions, settings.max_text_len)?;
    let (ids, padding) = tokens_to_tensors::<B>(&tokens, device);
    let visual = pairs.visual.to_device::<B>(device);
    let images = pairs.captions.len();
    // `[images, captions]`, as `recall_with_captions` reads it.
    let similarity =
        floats(embed_images(model, &visual).matmul(embed_texts(model, ids, padding).transpose()));
    let (t2i, i2t) = recall_with_captions(&similarity, images, &caption_image)?;
    let examples = text_to_image_examples(&captions, &caption_image, images, |text, image| {
        similarity[image * captions.len() + text]
    });
    Ok(Retrieval {
        t2i,
        i2t,
        candidates: images,
        captions: captions.len(),
        ranked_by: "embeddings".into(),
        examples,
        t2i_frames_reversed: None,
    })
}

/// The values of a tensor on the host, as `f32`.
pub(crate) fn floats<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("converted to f32")
}

#[cfg(test)]
mod tests;
