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
use vlp_models::FusedOutput;
use vlp_ot::{wra_distance, wra_objective, Padding, WraConfig, WraReduction};

use crate::error::{shape_error, Result};
use crate::pretrainer::ObjectiveOutput;

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

/// Text positions WRA aligns, `[B, T]`: real tokens other than the first
/// (`[CLS]`) and the last (`[SEP]`) of each row; `padding` `[B, T]`.
pub fn word_positions<B: Backend>(padding: Tensor<B, 2, Bool>) -> Tensor<B, 2, Bool> {
    let [batch, len] = padding.dims();
    let device = padding.device();
    let lengths = padding.bool_not().int().sum_dim(1); // [B, 1]
    let position = Tensor::<B, 1, Int>::arange(0..len as i64, &device)
        .reshape([1, len])
        .expand([batch, len]);
    position
        .clone()
        .greater_equal_elem(1)
        .bool_and(position.lower(lengths.sub_scalar(1).expand([batch, len])))
}

/// `mean(distance | negative) − mean(distance | positive)` `[1]` of WRA
/// distances `[B]` with labels `positive` `[B]`, on the device; a missing
/// group counts as 0.
pub fn distance_gap<B: Backend>(
    distances: Tensor<B, 1>,
    positive: Tensor<B, 1, Bool>,
) -> Tensor<B, 1> {
    let positive = positive.float();
    let negative = positive.clone().neg().add_scalar(1.0);
    let mean = |weights: Tensor<B, 1>| {
        (distances.clone() * weights.clone()).sum() / weights.sum().clamp_min(1.0)
    };
    mean(negative) - mean(positive)
}

/// WRA as a step's objective on a single-stream fused pass over the ITM
/// pairs: the contextual words ([`word_positions`] of `text_padding`
/// `[P, T]`) against the image tokens (`image_padding` `[P, V]`, none =
/// all real) of `fused`, pairs labelled by `labels` `[P]` (1 = match).
/// `weight` scales UNITER's 0.1 in the plan's configuration; the reported
/// loss is UNITER's own (the step applies `weight` with the others'); the
/// metric is the [`distance_gap`].
pub fn fused_wra_objective<B: Backend>(
    weight: f64,
    fused: &FusedOutput<B>,
    text_padding: Tensor<B, 2, Bool>,
    image_padding: Option<Tensor<B, 2, Bool>>,
    labels: Tensor<B, 1, Int>,
) -> Result<ObjectiveOutput<B>> {
    let [pairs, regions, _] = fused.image.dims();
    let image_padding = image_padding.unwrap_or_else(|| {
        Tensor::<B, 2, Int>::zeros([pairs, regions], &fused.image.device()).bool()
    });
    let padding = Padding::new(word_positions(text_padding).bool_not(), image_padding);
    let config = WraConfig {
        weight: uniter_wra_config().weight * weight,
        ..uniter_wra_config()
    };
    let positive = labels.equal_elem(1);
    let distances = wra_distance(
        fused.text.clone(),
        fused.image.clone(),
        Some(&padding),
        &config,
    )?;
    let gap = distance_gap(distances.clone().detach(), positive.clone());
    Ok(ObjectiveOutput {
        name: "wra",
        loss: vlp_ot::wra_loss(distances, positive, &uniter_wra_config())?,
        metric: gap,
        metric_name: "gap",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    fn bools<B: Backend, const D: usize>(tensor: Tensor<B, D, Bool>) -> Vec<bool> {
        // Through integers: backends store bools in different dtypes.
        tensor
            .int()
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .expect("converted to i64")
            .into_iter()
            .map(|v| v != 0)
            .collect()
    }

    #[test]
    fn words_exclude_cls_sep_and_padding() {
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::from([
                [false, false, false, false, true],
                [false, false, false, false, false],
            ]),
            &Default::default(),
        );
        let words = bools(word_positions(padding));
        assert_eq!(
            words,
            [
                false, true, true, false, false, //
                false, true, true, true, false
            ]
        );
    }

    #[test]
    fn gap_is_negative_mean_minus_positive_mean() {
        let gap = |distances: &[f32], positive: &[bool]| {
            let device = Default::default();
            let distances = Tensor::<NdArray, 1>::from_floats(distances, &device);
            let positive = Tensor::<NdArray, 1, Bool>::from_bool(
                TensorData::new(positive.to_vec(), [positive.len()]),
                &device,
            );
            distance_gap(distances, positive).into_scalar()
        };
        assert!(
            (gap(&[0.2, 0.4, 1.0, 0.6], &[true, true, false, false]) - (0.8 - 0.3)).abs() < 1e-6
        );
        assert_eq!(gap(&[0.5], &[true]), -0.5, "no negatives: 0 − 0.5");
    }
}
