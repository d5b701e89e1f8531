//! Pooling a token sequence into one vector per row, and L2
//! normalisation: how sentence embeddings are read from an encoder such
//! as [`BertModel`](crate::BertModel) (mean pooling, as
//! sentence-transformers' all-MiniLM-L6-v2 does), and how contrastive
//! objectives (the survey's §3.3, ITC) compare their embeddings.

use burn::prelude::*;

/// Mean of the non-padding tokens: `hidden` `[B, S, H]`, `padding` `[B, S]`
/// (`true` at padding; `None`: every token counts) → `[B, H]`. A row made of
/// padding only gives zeros.
///
/// Contrastive embeddings pool every token rather than reading `[CLS]`: at
/// initialisation `[CLS]` carries almost nothing of its sequence, and ITC
/// then sits at chance for hundreds of steps before attention learns to
/// gather content into it; the mean carries content from the first step.
pub fn mean_pool<B: Backend>(
    hidden: Tensor<B, 3>,
    padding: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 2> {
    let [batch, seq_len, width] = hidden.dims();
    match padding {
        None => hidden.mean_dim(1).reshape([batch, width]),
        Some(padding) => {
            let keep = padding.bool_not().float().reshape([batch, seq_len, 1]);
            let counts = keep.clone().sum_dim(1).clamp_min(1.0);
            ((hidden * keep).sum_dim(1) / counts).reshape([batch, width])
        }
    }
}

/// Each row of `x` `[B, D]` divided by its Euclidean norm (at least 1e-12,
/// as PyTorch's `F.normalize`, so a zero row stays zero) → `[B, D]`.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn mean_pool_averages_the_real_tokens_and_l2_normalize_gives_unit_rows() {
        let device = Default::default();
        let hidden = Tensor::<NdArray, 3>::from_floats(
            [
                [[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                [[0.0, 3.0], [4.0, 0.0], [2.0, 0.0]],
            ],
            &device,
        );
        let padding = Tensor::<NdArray, 2, Bool>::from_data(
            TensorData::from([[false, false, true], [false, false, false]]),
            &device,
        );
        mean_pool(hidden.clone(), Some(padding))
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::from([[2.0f32, 3.0], [2.0, 1.0]]),
                Tolerance::absolute(1e-6),
            );
        mean_pool(hidden, None).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[104.0f32 / 3.0, 106.0 / 3.0], [2.0, 1.0]]),
            Tolerance::absolute(1e-4),
        );
        let x = Tensor::<NdArray, 2>::from_floats([[3.0, 4.0], [0.0, 0.0]], &device);
        l2_normalize(x).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.6f32, 0.8], [0.0, 0.0]]),
            Tolerance::absolute(1e-6),
        );
    }
}
