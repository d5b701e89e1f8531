//! Image-text matching (survey §4.4): a 2-way classifier decides whether the
//! text describes the image, on the pooled fused `[CLS]` of single-stream
//! models ([`ItmHead`]) or on the pooled `[CLS_T]` and `[CLS_V]` of
//! dual-stream models ([`DualStreamItmHead`]). Negatives are random pairs
//! (data side) or hard negatives drawn from ITC similarities
//! ([`hard_negative_indices`], ALBEF/BLIP).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::Rng;

use crate::error::{shape_error, value_error, ObjectiveError};
use crate::loss::cross_entropy;

/// Configuration of [`ItmHead`].
#[derive(Config, Debug)]
pub struct ItmHeadConfig {
    /// Width of the pooled fused representation.
    pub hidden_size: usize,
}

/// `[B, H]` pooled → `[B, 2]` logits (class 1 = match).
#[derive(Module, Debug)]
pub struct ItmHead<B: Backend> {
    /// `H → 2` classifier.
    pub classifier: Linear<B>,
}

impl ItmHeadConfig {
    /// The head, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ItmHead<B> {
        ItmHead {
            classifier: LinearConfig::new(self.hidden_size, 2).init(device),
        }
    }
}

impl<B: Backend> ItmHead<B> {
    /// `[B, H]` pooled → `[B, 2]` logits.
    pub fn forward(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classifier.forward(pooled)
    }

    /// `[B, H]` pooled → `[B]` probability of a match (the softmax's
    /// second column), what retrieval ranks candidates by.
    pub fn match_probability(&self, pooled: Tensor<B, 2>) -> Tensor<B, 1> {
        let probabilities = burn::tensor::activation::softmax(self.forward(pooled), 1);
        let [rows, _] = probabilities.dims();
        probabilities.slice([0..rows, 1..2]).reshape([rows])
    }
}

/// ITM loss: cross-entropy of the match logits against `labels` `[B]` (1 = match).
pub fn itm_loss<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    cross_entropy(logits, labels)
}

/// How a dual-stream ITM head combines the two pooled outputs.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DualStreamFusion {
    /// `[CLS_T] ⊙ [CLS_V]` then `Linear(H, 2)` (ViLBERT).
    Product,
    /// `[[CLS_T]; [CLS_V]]` then `Linear(2H, 2)` (LXMERT-style concatenation).
    Concat,
}

/// Configuration of [`DualStreamItmHead`].
#[derive(Config, Debug)]
pub struct DualStreamItmHeadConfig {
    /// Width `H` of `[CLS_T]` and `[CLS_V]`.
    pub hidden_size: usize,
    /// How the two pooled outputs are combined.
    #[config(default = "DualStreamFusion::Product")]
    pub fusion: DualStreamFusion,
}

/// ITM for dual-stream models: one 2-way classifier over the pooled text
/// `[CLS_T]` and pooled image `[CLS_V]` outputs (class 1 = match).
#[derive(Module, Debug)]
pub struct DualStreamItmHead<B: Backend> {
    /// `H → 2` (product) or `2H → 2` (concatenation) classifier.
    pub classifier: Linear<B>,
    /// How the two pooled outputs are combined.
    #[module(skip)]
    pub fusion: DualStreamFusion,
}

impl DualStreamItmHeadConfig {
    /// The head, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DualStreamItmHead<B> {
        let input = match self.fusion {
            DualStreamFusion::Product => self.hidden_size,
            DualStreamFusion::Concat => 2 * self.hidden_size,
        };
        DualStreamItmHead {
            classifier: LinearConfig::new(input, 2).init(device),
            fusion: self.fusion,
        }
    }
}

impl<B: Backend> DualStreamItmHead<B> {
    /// `text_pooled` `[B, H]`, `image_pooled` `[B, H]` → logits `[B, 2]`.
    pub fn forward(&self, text_pooled: Tensor<B, 2>, image_pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        let joint = match self.fusion {
            DualStreamFusion::Product => text_pooled * image_pooled,
            DualStreamFusion::Concat => Tensor::cat(vec![text_pooled, image_pooled], 1),
        };
        self.classifier.forward(joint)
    }
}

/// Hard negatives drawn from contrastive similarities (ALBEF/BLIP).
///
/// `similarity` `[B, B]` holds text→image logits (row `i` = text `i`,
/// column `j` = image `j`, matches on the diagonal), usually ITC's
/// `sim / τ`. For text `i` a negative image is drawn with probability
/// `∝ softmax(similarity[i, :])_j + smoothing` for `j ≠ i`, 0 for `j = i`;
/// for image `j` a negative text from column `j` the same way. ALBEF uses
/// `smoothing = 0`, BLIP `1e-4`, which keeps every other pair reachable.
///
/// The draws are inverse-CDF lookups of the given uniforms `[2, B]` in
/// `[0, 1)` (row 0: one per text, row 1: one per image), so the result is a
/// pure function of its inputs; [`hard_negatives_with_rng`] draws them.
/// Returns `(image index for each text [B], text index for each image [B])`.
/// The sampling runs on the host in `f64` (`B²` numbers: one small read).
///
/// A batch of one pair has no negative: [`ObjectiveError::NoNegatives`].
pub fn hard_negative_indices<B: Backend>(
    similarity: Tensor<B, 2>,
    uniform: Tensor<B, 2>,
    smoothing: f64,
) -> crate::Result<(Tensor<B, 1, Int>, Tensor<B, 1, Int>)> {
    let [rows, cols] = similarity.dims();
    if rows != cols {
        return Err(shape_error(
            "hard-negative similarity",
            "[B, B]",
            &[rows, cols],
        ));
    }
    if rows < 2 {
        return Err(ObjectiveError::NoNegatives { batch: rows });
    }
    if uniform.dims() != [2, rows] {
        return Err(shape_error(
            "hard-negative uniforms",
            format!("[2, {rows}]"),
            &uniform.dims(),
        ));
    }
    if !(smoothing >= 0.0 && smoothing.is_finite()) {
        return Err(value_error(
            "hard-negative smoothing",
            format!("must be finite and >= 0, got {smoothing}"),
        ));
    }
    let device = similarity.device();
    let sim = host_f64(similarity);
    let draws = host_f64(uniform);
    if sim.iter().any(|s| !s.is_finite()) {
        return Err(value_error("hard-negative similarity", "non-finite value"));
    }
    if let Some(u) = draws.iter().find(|u| !(0.0..1.0).contains(*u)) {
        return Err(value_error(
            "hard-negative uniforms",
            format!("must lie in [0, 1), got {u}"),
        ));
    }
    let n = rows;
    let sim = &sim;
    let row = |i: usize| (0..n).map(|j| sim[i * n + j]).collect::<Vec<_>>();
    let column = |j: usize| (0..n).map(|i| sim[i * n + j]).collect::<Vec<_>>();
    let images: Vec<i64> = (0..n)
        .map(|i| inverse_cdf(&negative_weights(&row(i), i, smoothing), draws[i]) as i64)
        .collect();
    let texts: Vec<i64> = (0..n)
        .map(|j| inverse_cdf(&negative_weights(&column(j), j, smoothing), draws[n + j]) as i64)
        .collect();
    Ok((
        Tensor::from_data(TensorData::new(images, [n]), &device),
        Tensor::from_data(TensorData::new(texts, [n]), &device),
    ))
}

/// [`hard_negative_indices`] with the uniforms drawn from `rng`.
pub fn hard_negatives_with_rng<B: Backend, R: Rng + ?Sized>(
    similarity: Tensor<B, 2>,
    smoothing: f64,
    rng: &mut R,
) -> crate::Result<(Tensor<B, 1, Int>, Tensor<B, 1, Int>)> {
    let [batch, _] = similarity.dims();
    let draws: Vec<f32> = (0..2 * batch).map(|_| rng.random::<f32>()).collect();
    let uniform = Tensor::from_data(TensorData::new(draws, [2, batch]), &similarity.device());
    hard_negative_indices(similarity, uniform, smoothing)
}

/// Sampling weights of one row: `softmax(logits) + smoothing`, 0 at `positive`
/// (unnormalised; the inverse CDF normalises by their sum).
pub fn negative_weights(logits: &[f64], positive: usize, smoothing: f64) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    let weights: Vec<f64> = exps
        .iter()
        .enumerate()
        .map(|(j, e)| {
            if j == positive {
                0.0
            } else {
                e / total + smoothing
            }
        })
        .collect();
    if weights.iter().all(|&w| w == 0.0) {
        // Every other softmax entry underflowed: all negatives are equally
        // (im)probable, and a negative must still be drawn.
        return (0..logits.len())
            .map(|j| f64::from(u8::from(j != positive)))
            .collect();
    }
    weights
}

/// The index `k` with `W_{k-1} ≤ u·W < W_k` (`W` the cumulative weights);
/// zero-weight entries are never returned.
fn inverse_cdf(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let threshold = u * total;
    let mut cumulative = 0.0;
    let mut last_positive = None;
    for (k, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            cumulative += w;
            last_positive = Some(k);
            if threshold < cumulative {
                return k;
            }
        }
    }
    // Rounding can leave `u·W` at `W`; the last reachable entry owns it.
    last_positive.unwrap_or(0)
}

fn host_f64<B: Backend>(tensor: Tensor<B, 2>) -> Vec<f64> {
    tensor
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("converted to f64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn underflowing_negatives_fall_back_to_uniform() {
        // The positive takes all the softmax mass: with no smoothing every
        // other weight is 0, yet a negative must be drawn.
        assert_eq!(
            negative_weights(&[0.0, -1e4, -1e4], 0, 0.0),
            vec![0.0, 1.0, 1.0]
        );
        let similarity = Tensor::<NdArray, 2>::from_floats(
            [[1e4, 0.0, 0.0], [0.0, 1e4, 0.0], [0.0, 0.0, 1e4]],
            &Default::default(),
        );
        let uniform =
            Tensor::from_floats([[0.0, 0.5, 0.99], [0.99, 0.0, 0.5]], &Default::default());
        let (images, texts) = hard_negative_indices(similarity, uniform, 0.0).unwrap();
        let images: Vec<i64> = images.into_data().convert::<i64>().to_vec().unwrap();
        let texts: Vec<i64> = texts.into_data().convert::<i64>().to_vec().unwrap();
        assert_eq!(images, vec![1, 2, 1]);
        assert_eq!(texts, vec![2, 0, 1]);
    }
}
