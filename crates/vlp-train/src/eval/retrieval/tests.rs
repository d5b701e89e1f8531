//! Tests of held-out retrieval: rankings, the several-captions protocol,
//! re-ranking, clips shown backwards.

use super::*;
use std::collections::HashMap;

use burn::backend::NdArray;

use crate::{data, PretrainConfig};

/// Knows which image each caption describes: a text's embedding is its
/// image's one-hot plus noise drawn from its tokens, an image's its
/// one-hot, so the rankings are neither perfect nor chance.
/// Clips are known by their frames in order (`ordered`) or as a bag of
/// frames; a clip it does not know embeds as zeros.
struct Oracle {
    texts: HashMap<Vec<i64>, usize>,
    images: HashMap<Vec<u32>, usize>,
    n: usize,
    ordered: bool,
}

fn text_key(ids: Vec<i64>, padding: Vec<bool>) -> Vec<i64> {
    ids.into_iter()
        .zip(padding)
        .filter_map(|(id, pad)| (!pad).then_some(id))
        .collect()
}

/// Each image's or clip's pixels as bits; a clip's frames in their order
/// when `ordered`, else sorted (a bag of frames).
fn image_keys(visual: &VisualBatch<NdArray>, ordered: bool) -> Vec<Vec<u32>> {
    let (pixels, frames) = match visual {
        VisualBatch::Images(pixels) => (pixels.clone().unsqueeze_dim::<5>(1), 1),
        VisualBatch::Clips(clips) => (clips.clone(), clips.dims()[1]),
        VisualBatch::Regions(_) => panic!("the oracle knows pixels and clips"),
    };
    let [n, ..] = pixels.dims();
    let values = floats(pixels.reshape([n as i32, -1]));
    values
        .chunks(values.len() / n)
        .map(|row| {
            let mut frames: Vec<Vec<u32>> = row
                .chunks(row.len() / frames)
                .map(|frame| frame.iter().map(|v| v.to_bits()).collect())
                .collect();
            if !ordered {
                frames.sort_unstable();
            }
            frames.concat()
        })
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
            for (column, value) in out[row * self.n..(row + 1) * self.n].iter_mut().enumerate() {
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
        let keys = image_keys(visual, self.ordered);
        let mut out = vec![0f32; keys.len() * self.n];
        for (row, key) in keys.iter().enumerate() {
            if let Some(&image) = self.images.get(key) {
                out[row * self.n + image] = 1.0;
            }
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
        ordered: true,
    };
    for (image, key) in image_keys(&pairs.visual.to_device(&device), true)
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
    let one =
        retrieval_with_captions(&oracle, &batcher, pairs.clone(), &settings(1), &device).unwrap();
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

/// Clips shown backwards: a model that knows clips by their frames in order
/// cannot find them (every reversed clip is a stranger), one that knows a
/// bag of frames ranks them as before.
#[test]
fn reversed_frames_cost_an_ordered_model_and_not_a_bag_of_frames() {
    let config: PretrainConfig = toml::from_str(
        "eval_candidates = 20\n[data]\nimage_size = 32\nnum_frames = 4\n\
         [model]\nvisual = \"frames\"\npatch_size = 8\n",
    )
    .unwrap();
    let tokenizer = data::tokenizer(&config, None).unwrap();
    let batcher = data::batcher(&config, tokenizer).unwrap();
    let pairs = batcher.held_out_pairs(config.eval_candidates).unwrap();
    let device = Default::default();
    let tokens = batcher
        .tokenizer
        .encode(&pairs.captions, config.data.max_text_len)
        .unwrap();
    for ordered in [true, false] {
        let mut oracle = Oracle {
            texts: HashMap::new(),
            images: HashMap::new(),
            n: pairs.captions.len(),
            ordered,
        };
        let keys = image_keys(&pairs.visual.to_device(&device), ordered);
        oracle.images.extend(keys.into_iter().zip(0..));
        for (clip, (ids, &length)) in tokens.ids.iter().zip(&tokens.lengths).enumerate() {
            let padding = (0..ids.len()).map(|t| t >= length).collect();
            let ids = ids.iter().map(|&id| id as i64).collect();
            oracle.texts.insert(text_key(ids, padding), clip);
        }
        let r = retrieval(&oracle, &batcher, &EvalSettings::of(&config), &device)
            .unwrap()
            .unwrap();
        let reversed = r
            .t2i_frames_reversed
            .expect("clips are also ranked backwards");
        assert!(r.t2i.r1 > 0.2, "{r:?}");
        match ordered {
            true => assert_eq!(reversed.r10, 0.0, "{r:?}"),
            false => assert_eq!(reversed, r.t2i),
        }
    }
}
