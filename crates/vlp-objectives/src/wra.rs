//! Word-region alignment (survey §4.6, UNITER WRA): an optimal-transport
//! distance between the contextual word outputs and the region (or patch)
//! outputs of every image-text pair, small for matched pairs and large for
//! mismatched ones. The plan and distance come from `vlp-ot` (IPOT, cosine
//! cost, plan without gradient); this module selects the positions that take
//! part and combines the distances.
//!
//! The caller excludes `[CLS]`, `[SEP]` and padding from the text
//! ([`word_alignment_mask`]) and the image `[CLS]` and padding from the
//! image (ViLT) through the validity masks.

use burn::prelude::*;
use vlp_ot::{wra_objective, Padding, WraConfig, WraReduction};

use crate::error::{shape_error, Result};

/// UNITER's WRA setting: IPOT (β = 0.5, 50 iterations, k = 1) on cosine
/// costs, weight 0.1, and the pooled reduction
/// `(Σ d_pos − Σ d_neg) / (n_pos + n_neg)` of its training loop.
pub fn uniter_wra_config() -> WraConfig {
    WraConfig {
        reduction: WraReduction::PooledDifference,
        ..WraConfig::default()
    }
}

/// Text positions that take part in the alignment, `[B, T]` (`true` = word):
/// attended (`attention_mask` `[B, T]`, `true` = real token) and not one of
/// `special_ids` (`[CLS]`, `[SEP]`) in `input_ids` `[B, T]`.
pub fn word_alignment_mask<B: Backend>(
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Tensor<B, 2, Bool>,
    special_ids: &[i64],
) -> Tensor<B, 2, Bool> {
    special_ids.iter().fold(attention_mask, |mask, &id| {
        mask.bool_and(input_ids.clone().not_equal_elem(id))
    })
}

/// WRA loss over a batch of pairs.
///
/// `text_hidden` `[B, T, H]` with `text_valid` `[B, T]` (`true` = a word to
/// align), `image_hidden` `[B, V, H]` with `image_valid` `[B, V]` (`true` =
/// a region or patch to align), `positive` `[B]` (`true` = matched pair).
/// Returns `config.weight ×` the reduction of the per-pair distances, `[1]`.
///
/// With [`uniter_wra_config`] (pooled difference) a batch with no negative
/// pair gives `Σ d_pos / B` (a pure pulling term), and one with no positive
/// gives `−Σ d_neg / B`; with [`WraReduction::MeanDifference`] the empty
/// group's mean counts as 0. Every pair needs at least one valid word and
/// one valid region (else an error naming the example).
pub fn wra_loss<B: Backend>(
    text_hidden: Tensor<B, 3>,
    text_valid: Tensor<B, 2, Bool>,
    image_hidden: Tensor<B, 3>,
    image_valid: Tensor<B, 2, Bool>,
    positive: Tensor<B, 1, Bool>,
    config: &WraConfig,
) -> Result<Tensor<B, 1>> {
    let [batch, words, _] = text_hidden.dims();
    let [_, regions, _] = image_hidden.dims();
    if text_valid.dims() != [batch, words] {
        return Err(shape_error(
            "WRA text mask",
            format!("[{batch}, {words}] (as the text outputs)"),
            &text_valid.dims(),
        ));
    }
    if image_valid.dims() != [image_hidden.dims()[0], regions] {
        return Err(shape_error(
            "WRA image mask",
            format!(
                "[{}, {regions}] (as the image outputs)",
                image_hidden.dims()[0]
            ),
            &image_valid.dims(),
        ));
    }
    let padding = Padding::new(text_valid.bool_not(), image_valid.bool_not());
    Ok(wra_objective(
        text_hidden,
        image_hidden,
        Some(&padding),
        positive,
        config,
    )?)
}
