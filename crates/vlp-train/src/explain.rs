//! What a single-stream model aligns, word by word (survey §4.6: UNITER's
//! word-region alignment by optimal transport; §3: merged attention over
//! text and image tokens): for one image and caption, the IPOT plan between
//! the contextual words and the image patches, and the last layer's
//! text→image attention, each as a `[words, patches]` map that
//! `cargo xtask explain` draws over the image.

use std::path::Path;

use burn::prelude::*;
use serde::Serialize;
use vlp_data::image::decode_file;
use vlp_data::synthetic::RgbImage;
use vlp_data::{tokens_to_tensors, ImageSample, ImageSource, TransformMode, VisualBatch};
use vlp_objectives::{uniter_wra_config, UniterPretrainer};
use vlp_ot::cosine_cost;
use vlp_ot::ipot::ipot_single;

use crate::checkpoint::load_checkpoint;
use crate::config::Architecture;
use crate::error::{ConfigError, Result, TrainError};
use crate::eval::floats;
use crate::inference::InferenceRun;

/// One image and caption seen through a trained model.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The caption's word pieces, `[CLS]` and `[SEP]` left out.
    pub words: Vec<String>,
    /// Patch rows (and columns) of the square image grid.
    pub grid: usize,
    /// The IPOT plan `[words, grid²]`, row-major (UNITER's WRA: cosine cost
    /// between the fused outputs, β = 0.5, 50 iterations; uniform
    /// marginals, so rows sum to `1 / words` and columns to `1 / grid²`).
    pub plan: Vec<f32>,
    /// The last layer's attention of each word on the patches `[words,
    /// grid²]`, averaged over heads and renormalised over the patches
    /// (rows sum to 1).
    pub attention: Vec<f32>,
    /// The share of each word's attention that goes to the patches at all
    /// (the rest reads the text and the image `[CLS]`).
    pub image_share: Vec<f32>,
    /// The image as the model saw it (resized and cropped, not normalised).
    #[serde(skip)]
    pub image: RgbImage,
}

/// Explains `caption` on the image file `image` with the single-stream
/// pre-training run `dir` on `device` (no autodiff). A run of another
/// architecture, or on detector regions, is an error naming
/// `model.architecture` or `model.visual`; an unreadable image names the file.
pub fn explain<B: Backend>(
    dir: &Path,
    image: &Path,
    caption: &str,
    device: &B::Device,
) -> Result<Explanation> {
    let run = InferenceRun::open(dir)?;
    let config = &run.config;
    if !matches!(config.model.architecture, Architecture::SingleStream {}) {
        return Err(ConfigError::invalid(
            "model.architecture",
            format!(
                "{}: explain draws single_stream models' word-patch maps, not {}",
                dir.display(),
                config.model.architecture.name()
            ),
        )
        .into());
    }
    // Decoded once: the picture's copy and the model's input both start here.
    let decoded = decode_file(image).map_err(|err| TrainError::file(image, err))?;
    let sample = ImageSample {
        index: 0,
        image: ImageSource::Pixels(&decoded),
        caption,
    };
    let (seen, _) = run
        .pipeline
        .load(&sample, TransformMode::Eval)
        .map_err(|err| TrainError::file(image, err))?;
    let batch = run
        .pipeline
        .batch::<B>(&[sample], TransformMode::Eval, device);
    if let Some(skipped) = batch.skipped.first() {
        return Err(TrainError::file(image, format!("{skipped:?}")));
    }
    let tokens = run
        .tokenizer
        .encode(&[caption.to_string()], config.data.max_text_len)?;
    let length = tokens.lengths[0];
    if length < 3 {
        return Err(ConfigError::invalid("caption", "the caption has no word").into());
    }
    let words = run.tokenizer.tokens(&tokens.ids[0][1..length - 1]);
    let (ids, padding) = tokens_to_tensors::<B>(&tokens, device);

    let model: UniterPretrainer<B> = config.pretrainer(run.tokenizer.vocab_size()).init(device)?;
    let model = load_checkpoint(model, dir, device)?.backbone;
    let text = model.embed_text(ids);
    let visual = model.embed_image(&VisualBatch::Images(batch.images));
    let fused = model.fuse(text.clone(), padding.clone(), visual.clone());
    let attention = model.fused_attention(text, padding, visual);

    let [_, text_len, _] = fused.text.dims();
    let [_, image_len, hidden] = fused.image.dims();
    let (first, grid) = square_grid(image_len).ok_or_else(|| {
        ConfigError::invalid(
            "model.visual",
            format!("{image_len} image tokens are not a square grid of patches"),
        )
    })?;
    let patches = grid * grid;
    let n = words.len();
    let word_out = fused.text.clone().slice([0..1, 1..1 + n, 0..hidden]);
    let patch_out = fused.image.slice([0..1, first..image_len, 0..hidden]);
    let cost = floats(cosine_cost(word_out, patch_out)?);
    let plan = ipot_single(&cost, n, patches, &uniter_wra_config().ipot)?;

    // Rows: the words; columns: the patches, after the text and any image [CLS].
    let [_, heads, _, _] = attention.dims();
    let columns = text_len + first;
    let read = floats(
        attention
            .slice([0..1, 0..heads, 1..1 + n, columns..columns + patches])
            .mean_dim(1)
            .reshape([n, patches]),
    );
    let mut normalised = Vec::with_capacity(n * patches);
    let mut image_share = Vec::with_capacity(n);
    for row in read.chunks(patches) {
        let share: f32 = row.iter().sum();
        image_share.push(share);
        normalised.extend(row.iter().map(|v| v / share.max(f32::MIN_POSITIVE)));
    }
    Ok(Explanation {
        words,
        grid,
        plan,
        attention: normalised,
        image_share,
        image: seen,
    })
}

/// `(first patch, side)` of `tokens` image tokens: a square grid of
/// patches, after a `[CLS]` when there is one.
fn square_grid(tokens: usize) -> Option<(usize, usize)> {
    let side = |n: usize| {
        let s = (n as f64).sqrt().round() as usize;
        (s > 0 && s * s == n).then_some(s)
    };
    side(tokens.checked_sub(1)?)
        .map(|s| (1, s))
        .or_else(|| side(tokens).map(|s| (0, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_with_and_without_a_cls_token() {
        assert_eq!(square_grid(17), Some((1, 4)));
        assert_eq!(square_grid(5), Some((1, 2)));
        assert_eq!(square_grid(49), Some((0, 7)));
        assert_eq!(square_grid(7), None);
        assert_eq!(square_grid(0), None);
    }
}
