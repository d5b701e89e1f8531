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
        format!(
            "held-out retrieval over {over} (ranked by {})\n{:<12} {:>6} {:>6} {:>6}\n{}\n{}",
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    use burn::backend::NdArray;

    use crate::{data, PretrainConfig};

    /// Knows which image each caption describes: a text's embedding is its
    /// image's one-hot plus noise drawn from its tokens, an image's its
    /// one-hot, so the rankings are neither perfect nor chance.
    struct Oracle {
        texts: HashMap<Vec<i64>, usize>,
        images: HashMap<Vec<u32>, usize>,
        n: usize,
    }

    fn text_key(ids: Vec<i64>, padding: Vec<bool>) -> Vec<i64> {
        ids.into_iter()
            .zip(padding)
            .filter_map(|(id, pad)| (!pad).then_some(id))
            .collect()
    }

    fn image_keys(visual: &VisualBatch<NdArray>) -> Vec<Vec<u32>> {
        let VisualBatch::Images(pixels) = visual else {
            panic!("the default world is pixels")
        };
        let [n, ..] = pixels.dims();
        let values = floats(pixels.clone().reshape([n as i32, -1]));
        values
            .chunks(values.len() / n)
            .map(|row| row.iter().map(|v| v.to_bits()).collect())
            .collect()
    }

    impl RetrievalModel<NdArray> for Oracle {
        fn embed_text(
            &self,
            ids: Tensor<NdArray, 2, Int>,
            padding: Tensor<NdArray, 2, Bool>,
        ) -> Tensor<NdArray, 2> {
            let [rows, width] = ids.dims();
            let ids: Vec<i64> = ids.into_data().convert::<i64>().to_vec().unwrap();
            let padding: Vec<bool> = padding.into_data().to_vec().unwrap();
            let mut out = vec![0f32; rows * self.n];
            for row in 0..rows {
                let span = row * width..(row + 1) * width;
                let key = text_key(ids[span.clone()].to_vec(), padding[span].to_vec());
                let mut state = key
                    .iter()
                    .fold(17u64, |h, &id| h.wrapping_mul(31).wrapping_add(id as u64));
                for (column, value) in out[row * self.n..(row + 1) * self.n].iter_mut().enumerate()
                {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    *value = (state >> 40) as f32 / (1u64 << 24) as f32 * 1.2;
                    if self.texts[&key] == column {
                        *value += 1.0;
                    }
                }
            }
            Tensor::from_data(TensorData::new(out, [rows, self.n]), &Default::default())
        }

        fn embed_image(&self, visual: &VisualBatch<NdArray>) -> Tensor<NdArray, 2> {
            let keys = image_keys(visual);
            let mut out = vec![0f32; keys.len() * self.n];
            for (row, key) in keys.iter().enumerate() {
                out[row * self.n + self.images[key]] = 1.0;
            }
            Tensor::from_data(
                TensorData::new(out, [keys.len(), self.n]),
                &Default::default(),
            )
        }
    }

    /// The Karpathy protocol's path with one caption per image scores what
    /// the one-caption path does; with up to five, every caption of each
    /// image is a query and an image finds its text when any of them ranks.
    #[test]
    fn several_captions_per_image_rank_every_caption() {
        let config = PretrainConfig {
            eval_candidates: 30,
            ..PretrainConfig::default()
        };
        let tokenizer = data::tokenizer(&config, None).unwrap();
        let batcher = data::batcher(&config, tokenizer).unwrap();
        let pairs = batcher.held_out_pairs(config.eval_candidates).unwrap();
        let device = Default::default();
        let mut oracle = Oracle {
            texts: HashMap::new(),
            images: HashMap::new(),
            n: pairs.captions.len(),
        };
        for (image, key) in image_keys(&pairs.visual.to_device(&device))
            .into_iter()
            .enumerate()
        {
            oracle.images.insert(key, image);
        }
        for (image, references) in pairs.references.iter().enumerate() {
            let texts = [&[pairs.captions[image].clone()], references.as_slice()].concat();
            let tokens = batcher
                .tokenizer
                .encode(&texts, config.data.max_text_len)
                .unwrap();
            for (ids, &length) in tokens.ids.iter().zip(&tokens.lengths) {
                let padding = (0..ids.len()).map(|t| t >= length).collect();
                let ids = ids.iter().map(|&id| id as i64).collect();
                oracle.texts.insert(text_key(ids, padding), image);
            }
        }
        let settings = |captions_per_image| EvalSettings {
            captions_per_image,
            ..EvalSettings::of(&config)
        };
        let square = retrieval(&oracle, &batcher, &settings(1), &device)
            .unwrap()
            .unwrap();
        assert!((0.2..0.9).contains(&square.t2i.r1), "{square:?}");
        let one = retrieval_with_captions(&oracle, &batcher, pairs.clone(), &settings(1), &device)
            .unwrap();
        assert_eq!(
            (one.t2i, one.i2t, one.captions),
            (square.t2i, square.i2t, 30)
        );
        let five = retrieval(&oracle, &batcher, &settings(5), &device)
            .unwrap()
            .unwrap();
        // The world phrases each scene 4 ways, the pair's caption among them.
        let all: usize = pairs.references.iter().map(|r| r.len().min(5)).sum();
        assert_eq!((five.candidates, five.captions, all), (30, all, 120));
        assert_ne!(five.t2i, square.t2i);
    }

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

    /// Re-ranking by a matching head that knows the answer: within the top
    /// `k` it moves the correct item first; outside it changes nothing.
    #[test]
    fn rerank_orders_the_top_k_by_matching_and_leaves_the_rest() {
        #[rustfmt::skip]
        let similarity = [
            0.5, 0.9, 0.1, // text 0: images 1, 0, 2
            0.2, 0.3, 0.8, // text 1: images 2, 1, 0
            0.7, 0.1, 0.6, // text 2: images 0, 2, 1
        ];
        assert_eq!(recall(&similarity, 3, true).r1, 0.0);
        let knows = |query: usize, items: &[usize]| -> Result<Vec<f32>> {
            Ok(items
                .iter()
                .map(|&i| f32::from(u8::from(i == query)))
                .collect())
        };
        let mut asked = Vec::new();
        let top2 = rerank_top_k(&similarity, 3, true, 2, |query, items| {
            asked.push((query, items.to_vec()));
            knows(query, items)
        })
        .unwrap();
        // Asked about each text's two most similar images, most similar first.
        assert_eq!(asked, [(0, vec![1, 0]), (1, vec![2, 1]), (2, vec![0, 2])]);
        assert_eq!(recall(&top2, 3, true).r1, 1.0);
        // Top 1: the correct image is never among them, so nothing moves.
        let top1 = rerank_top_k(&similarity, 3, true, 1, knows).unwrap();
        assert_eq!(ranks(&top1, 3, true), ranks(&similarity, 3, true));
        // Image → text along the columns: image 0's texts are 2, 0, 1.
        let columns = rerank_top_k(&similarity, 3, false, 2, knows).unwrap();
        assert_eq!(ranks(&columns, 3, false), [0, 0, 0]);
        assert_eq!(ranks(&similarity, 3, false), [1, 1, 1]);
        let failing = rerank_top_k(&similarity, 3, true, 2, |_, _| {
            Err(ConfigError::invalid("eval_rerank_top_k", "no head").into())
        });
        assert!(failing.is_err());
    }

    /// Recall from a hand-computed list of ranks.
    fn recall_of(ranks: &[usize]) -> Recall {
        let rate = |k: usize| ranks.iter().filter(|&&r| r < k).count() as f64 / ranks.len() as f64;
        Recall {
            r1: rate(1),
            r5: rate(5),
            r10: rate(10),
        }
    }

    #[test]
    fn recall_with_captions_ranks_each_caption_and_the_best_caption_of_each_image() {
        // 3 images, 2 captions each (c0, c1 → image 0; c2, c3 → 1; c4, c5 → 2).
        let caption_image = [0, 0, 1, 1, 2, 2];
        #[rustfmt::skip]
        let similarity = [
            // c0   c1   c2   c3   c4   c5
            0.9, 0.2, 0.5, 0.1, 0.0, 0.3, // image 0
            0.1, 0.8, 0.6, 0.4, 0.2, 0.3, // image 1
            0.3, 0.1, 0.6, 0.2, 0.7, 0.3, // image 2
        ];
        let (t2i, i2t) = recall_with_captions(&similarity, 3, &caption_image).unwrap();
        // Text → image, column by column: c0: 0.9 best → rank 0; c1: image 1's
        // 0.8 beats 0.2 → 1; c2: 0.6 ties image 2's 0.6 → 1; c3: 0.4 best → 0;
        // c4: 0.7 best → 0; c5: 0.3 ties both others → 2.
        assert_eq!(t2i, recall_of(&[0, 1, 1, 0, 0, 2]));
        // Image → text: image 0's best caption c0 (0.9) is first → 0; image 1's
        // best c2 (0.6) is below c1 (0.8) → 1; image 2's best c4 (0.7) first → 0.
        assert_eq!(i2t, recall_of(&[0, 1, 0]));
        assert!((t2i.r1 - 0.5).abs() < 1e-12);
        assert!((i2t.r1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((i2t.r5, i2t.r10), (1.0, 1.0));
    }

    #[test]
    fn recall_with_captions_counts_ties_pessimistically_over_many_items() {
        // 12 images with one caption each, all scores equal except image 0's
        // captions: every tie counts against the correct item.
        let n = 12;
        let mut similarity = vec![0.5f32; n * n];
        similarity[0] = 1.0; // image 0 ↔ caption 0: strictly best.
        let caption_image: Vec<usize> = (0..n).collect();
        let (t2i, i2t) = recall_with_captions(&similarity, n, &caption_image).unwrap();
        // Caption 0 ranks first; captions 1..12 tie with 10 other images at 0.5
        // (image 0 scores them 0.5 too): rank 11, outside the top 10.
        let mut ranks = vec![11; n];
        ranks[0] = 0;
        assert_eq!(t2i, recall_of(&ranks));
        assert_eq!(i2t, recall_of(&ranks));
        assert!((t2i.r10 - 1.0 / 12.0).abs() < 1e-12);
        // With one caption per image it equals the square-matrix recall
        // (rows are images here: the text queries are the columns).
        assert_eq!(t2i, recall(&similarity, n, false));
    }

    #[test]
    fn recall_with_captions_rejects_sizes_that_do_not_fit() {
        assert!(recall_with_captions(&[0.0; 5], 2, &[0, 1, 1]).is_err());
        assert!(recall_with_captions(&[0.0; 6], 2, &[0, 1, 2]).is_err());
        // Image 1 has no caption.
        assert!(recall_with_captions(&[0.0; 4], 2, &[0, 0]).is_err());
    }
}
