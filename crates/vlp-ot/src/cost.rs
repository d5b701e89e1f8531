//! Batched ground-cost matrices between two sets of embeddings:
//! `x: [B, M, D]`, `y: [B, N, D]` → `C: [B, M, N]`.
//!
//! Both functions are plain tensor code, so they run on any backend and are
//! differentiable on an autodiff backend (the gradient of a WRA distance
//! reaches the embeddings through these costs).

use burn::tensor::{backend::Backend, Tensor};

use crate::error::{shape_err, OtError, Result};

/// UNITER's normalisation epsilon: each vector is divided by
/// `max(‖v‖₂, 1e-5)` before the cosine similarity is taken.
pub const COSINE_EPS: f64 = 1e-5;

/// Which ground cost to use between embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CostKind {
    /// `1 - cos(x_i, y_j)` with [`COSINE_EPS`] normalisation (UNITER).
    #[default]
    Cosine,
    /// `‖x_i - y_j‖²`.
    SquaredEuclidean,
}

impl CostKind {
    /// Computes the `[B, M, N]` cost of this kind; see [`cosine_cost`] and
    /// [`squared_euclidean_cost`].
    pub fn compute<B: Backend>(self, x: Tensor<B, 3>, y: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        match self {
            CostKind::Cosine => cosine_cost(x, y),
            CostKind::SquaredEuclidean => squared_euclidean_cost(x, y),
        }
    }
}

fn check_pair<B: Backend>(x: &Tensor<B, 3>, y: &Tensor<B, 3>) -> Result<()> {
    let [bx, m, dx] = x.dims();
    let [by, n, dy] = y.dims();
    if bx != by || dx != dy {
        return Err(shape_err(
            "y [B, N, D] vs x [B, M, D]: (B, D) must agree",
            &[bx, dx],
            &[by, dy],
        ));
    }
    if m == 0 || n == 0 || dx == 0 {
        return Err(OtError::EmptyProblem { example: 0 });
    }
    Ok(())
}

/// Cosine distance `C[b, i, j] = 1 - ⟨x̂_bi, ŷ_bj⟩` with
/// `v̂ = v / max(‖v‖₂, 1e-5)` (UNITER's `cost_matrix_cosine`).
///
/// Shapes: `x: [B, M, D]`, `y: [B, N, D]` → `[B, M, N]`.
pub fn cosine_cost<B: Backend>(x: Tensor<B, 3>, y: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
    cosine_cost_with_eps(x, y, COSINE_EPS)
}

/// [`cosine_cost`] with a custom normalisation epsilon (`eps > 0`).
pub fn cosine_cost_with_eps<B: Backend>(
    x: Tensor<B, 3>,
    y: Tensor<B, 3>,
    eps: f64,
) -> Result<Tensor<B, 3>> {
    check_pair(&x, &y)?;
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(OtError::Config(format!(
            "cosine eps must be > 0, got {eps}"
        )));
    }
    let xn = normalize(x, eps);
    let yn = normalize(y, eps);
    let sim = xn.matmul(yn.swap_dims(1, 2));
    Ok(sim.neg().add_scalar(1.0))
}

/// `v / max(‖v‖₂, eps)` along the last dimension. The squared norm is clamped
/// at `eps²` *before* the square root so that an all-zero vector (e.g. a
/// padded embedding) gets a zero, not a NaN, gradient.
fn normalize<B: Backend>(v: Tensor<B, 3>, eps: f64) -> Tensor<B, 3> {
    let norm = v.clone().square().sum_dim(2).clamp_min(eps * eps).sqrt();
    v / norm
}

/// Squared Euclidean distance `C[b, i, j] = ‖x_bi - y_bj‖²`, computed as
/// `‖x‖² + ‖y‖² - 2⟨x, y⟩` and clamped at zero against rounding.
///
/// Shapes: `x: [B, M, D]`, `y: [B, N, D]` → `[B, M, N]`.
pub fn squared_euclidean_cost<B: Backend>(
    x: Tensor<B, 3>,
    y: Tensor<B, 3>,
) -> Result<Tensor<B, 3>> {
    check_pair(&x, &y)?;
    let xx = x.clone().square().sum_dim(2); // [B, M, 1]
    let yy = y.clone().square().sum_dim(2).swap_dims(1, 2); // [B, 1, N]
    let xy = x.matmul(y.swap_dims(1, 2)); // [B, M, N]
    Ok((xx + yy - xy.mul_scalar(2.0)).clamp_min(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    type Nd = burn::backend::NdArray;

    fn t3(v: Vec<f32>, s: [usize; 3]) -> Tensor<Nd, 3> {
        Tensor::from_data(TensorData::new(v, s), &Default::default())
    }

    fn host(t: Tensor<Nd, 3>) -> Vec<f32> {
        t.into_data().into_vec::<f32>().unwrap()
    }

    /// Costs checked element by element against direct per-pair formulas.
    #[test]
    fn costs_match_per_pair_formulas() {
        let (b, m, n, d) = (2, 3, 4, 5);
        let mut s = 7u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let xv: Vec<f32> = (0..b * m * d).map(|_| next()).collect();
        let yv: Vec<f32> = (0..b * n * d).map(|_| next()).collect();
        let cos = host(cosine_cost(t3(xv.clone(), [b, m, d]), t3(yv.clone(), [b, n, d])).unwrap());
        let sq = host(
            squared_euclidean_cost(t3(xv.clone(), [b, m, d]), t3(yv.clone(), [b, n, d])).unwrap(),
        );
        for bb in 0..b {
            for i in 0..m {
                for j in 0..n {
                    let xi = &xv[(bb * m + i) * d..(bb * m + i + 1) * d];
                    let yj = &yv[(bb * n + j) * d..(bb * n + j + 1) * d];
                    let dot: f64 = xi
                        .iter()
                        .zip(yj)
                        .map(|(a, b)| (*a as f64) * (*b as f64))
                        .sum();
                    let nx: f64 = xi.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                    let ny: f64 = yj.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                    let want_cos = 1.0 - dot / (nx * ny);
                    let want_sq: f64 = xi
                        .iter()
                        .zip(yj)
                        .map(|(a, b)| ((*a - *b) as f64).powi(2))
                        .sum();
                    let k = (bb * m + i) * n + j;
                    assert!(
                        (cos[k] as f64 - want_cos).abs() < 1e-5,
                        "{} vs {want_cos}",
                        cos[k]
                    );
                    assert!(
                        (sq[k] as f64 - want_sq).abs() < 1e-4,
                        "{} vs {want_sq}",
                        sq[k]
                    );
                }
            }
        }
    }

    #[test]
    fn zero_vectors_use_eps_normalisation() {
        // A zero vector normalises to zero (max(0, eps) = eps), so its cosine
        // distance to anything is exactly 1, as in UNITER.
        let x = t3(vec![0.0, 0.0, 3.0, 4.0], [1, 2, 2]);
        let y = t3(vec![3.0, 4.0], [1, 1, 2]);
        let c = host(cosine_cost(x, y).unwrap());
        assert!((c[0] - 1.0).abs() < 1e-7);
        assert!(c[1].abs() < 1e-6);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let x = t3(vec![0.0; 6], [1, 2, 3]);
        let y = t3(vec![0.0; 4], [1, 2, 2]);
        assert!(matches!(
            cosine_cost(x.clone(), y.clone()),
            Err(OtError::Shape { .. })
        ));
        assert!(squared_euclidean_cost(x, y).is_err());
        let y2 = t3(vec![0.0; 12], [2, 2, 3]);
        assert!(cosine_cost(t3(vec![0.0; 6], [1, 2, 3]), y2).is_err());
    }
}
