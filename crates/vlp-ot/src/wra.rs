//! Word-region alignment (WRA) as in UNITER: an IPOT distance between the
//! contextual word embeddings and region embeddings of every image-text pair,
//! and the loss that pulls positive pairs together and pushes negatives apart.

use burn::tensor::{backend::Backend, Bool, Tensor};

use crate::batch::Padding;
use crate::cost::CostKind;
use crate::error::{shape_err, Result};
use crate::ipot::{ipot, ipot_via_host, IpotConfig};

/// Where the IPOT plan is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SolverPath {
    /// Read the `[B, M, N]` costs back to the host and run the fused CPU
    /// kernel ([`crate::ipot::ipot_host`]). Best on CPU backends (NdArray,
    /// Flex): one small read-back instead of hundreds of tiny tensor ops.
    Host,
    /// Tensor ops on the backend's device ([`crate::ipot::ipot`]). Best on
    /// GPU backends, where it avoids a device→host synchronisation.
    Tensor,
    /// [`Self::Tensor`] on CubeCL backends (WGPU, CUDA, ROCm: those whose
    /// `Backend::name` names CubeCL), [`Self::Host`] on the others (the CPU
    /// backends NdArray and Flex).
    #[default]
    Auto,
}

impl SolverPath {
    /// The path taken on `device`: [`Self::Auto`] resolved, the others as
    /// they are.
    pub fn resolve<B: Backend>(self, device: &B::Device) -> SolverPath {
        match self {
            SolverPath::Auto if B::name(device).contains("cubecl") => SolverPath::Tensor,
            SolverPath::Auto => SolverPath::Host,
            path => path,
        }
    }
}

/// How positive and negative distances are combined into the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WraReduction {
    /// `mean(d_pos) − mean(d_neg)`; an empty group contributes 0.
    #[default]
    MeanDifference,
    /// `(Σ d_pos − Σ d_neg) / (n_pos + n_neg)`, the normalisation of
    /// UNITER's released `pretrain.py`.
    PooledDifference,
}

/// WRA settings. Defaults: weight 0.1 (UNITER), cosine cost, IPOT
/// `β = 0.5`, 50 iterations, `k = 1`, solver path chosen by the backend
/// ([`SolverPath::Auto`]), mean difference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WraConfig {
    /// Multiplier of the loss (UNITER: 0.1).
    pub weight: f64,
    /// Ground cost between word and region embeddings.
    pub cost: CostKind,
    /// IPOT parameters.
    pub ipot: IpotConfig,
    /// Where the plan is computed.
    pub path: SolverPath,
    /// Positive/negative reduction.
    pub reduction: WraReduction,
}

impl Default for WraConfig {
    fn default() -> Self {
        Self {
            weight: 0.1,
            cost: CostKind::Cosine,
            ipot: IpotConfig::default(),
            path: SolverPath::Auto,
            reduction: WraReduction::MeanDifference,
        }
    }
}

/// OT distance per pair, `[B]`: `trace(Cᵀ T) = Σ_ij C_ij T_ij` with
/// `C = cost(txt, img)` masked at padding and `T` the IPOT plan computed from
/// `C` without gradient, so gradients reach the embeddings through `C` only.
///
/// `txt: [B, M, D]`, `img: [B, N, D]`, `padding`: `[B, M]`, `[B, N]`
/// (`true` = padding).
pub fn wra_distance<B: Backend>(
    txt: Tensor<B, 3>,
    img: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    config: &WraConfig,
) -> Result<Tensor<B, 1>> {
    let cost = config.cost.compute(txt, img)?;
    let out = match config.path.resolve::<B>(&cost.device()) {
        SolverPath::Tensor => ipot(cost, padding, &config.ipot)?,
        _ => ipot_via_host(cost, padding, &config.ipot)?,
    };
    Ok(out.distance)
}

/// WRA loss from distances `[B]` and the pair labels `positive: [B]`
/// (`true` for matched image-text pairs), weighted by `config.weight`;
/// returns a `[1]` tensor. Computed on the device, no host read.
pub fn wra_loss<B: Backend>(
    distances: Tensor<B, 1>,
    positive: Tensor<B, 1, Bool>,
    config: &WraConfig,
) -> Result<Tensor<B, 1>> {
    let [b] = distances.dims();
    if positive.dims() != [b] {
        return Err(shape_err(
            "WRA labels [B] vs distances [B]",
            &[b],
            &positive.dims(),
        ));
    }
    let pos = positive.float();
    let neg = pos.clone().neg().add_scalar(1.0);
    let sum_pos = (distances.clone() * pos.clone()).sum();
    let sum_neg = (distances * neg.clone()).sum();
    let loss = match config.reduction {
        WraReduction::MeanDifference => {
            sum_pos / pos.sum().clamp_min(1.0) - sum_neg / neg.sum().clamp_min(1.0)
        }
        WraReduction::PooledDifference => (sum_pos - sum_neg).div_scalar(b.max(1) as f64),
    };
    Ok(loss.mul_scalar(config.weight))
}

/// [`wra_distance`] followed by [`wra_loss`].
pub fn wra_objective<B: Backend>(
    txt: Tensor<B, 3>,
    img: Tensor<B, 3>,
    padding: Option<&Padding<B>>,
    positive: Tensor<B, 1, Bool>,
    config: &WraConfig,
) -> Result<Tensor<B, 1>> {
    let d = wra_distance(txt, img, padding, config)?;
    wra_loss(d, positive, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    type Nd = burn::backend::NdArray;

    fn scalar(t: Tensor<Nd, 1>) -> f32 {
        t.into_data().into_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn the_default_path_solves_on_the_host_on_a_cpu_backend() {
        let device = Default::default();
        assert_eq!(WraConfig::default().path, SolverPath::Auto);
        assert_eq!(SolverPath::Auto.resolve::<Nd>(&device), SolverPath::Host);
        type Ad = burn::backend::Autodiff<Nd>;
        assert_eq!(SolverPath::Auto.resolve::<Ad>(&device), SolverPath::Host);
        assert_eq!(
            SolverPath::Tensor.resolve::<Nd>(&device),
            SolverPath::Tensor
        );
    }

    #[test]
    fn loss_reductions_match_hand_computation() {
        let dev = Default::default();
        let d: Tensor<Nd, 1> = Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0, 4.0, 8.0, 16.0], [5]),
            &dev,
        );
        let lab = vec![true, false, true, false, false];
        let pos: Tensor<Nd, 1, Bool> = Tensor::from_data(TensorData::new(lab, [5]), &dev);
        let cfg = WraConfig::default();
        let mean = scalar(wra_loss(d.clone(), pos.clone(), &cfg).unwrap());
        assert!((mean - 0.1 * ((1.0 + 4.0) / 2.0 - (2.0 + 8.0 + 16.0) / 3.0)).abs() < 1e-6);
        let cfg = WraConfig {
            reduction: WraReduction::PooledDifference,
            weight: 1.0,
            ..cfg
        };
        let pooled = scalar(wra_loss(d.clone(), pos, &cfg).unwrap());
        assert!((pooled - (5.0 - 26.0) / 5.0).abs() < 1e-6);
        // All-negative batch: the empty positive mean contributes 0.
        let none: Tensor<Nd, 1, Bool> =
            Tensor::from_data(TensorData::new(vec![false; 5], [5]), &dev);
        let cfg = WraConfig {
            weight: 2.0,
            ..Default::default()
        };
        assert!((scalar(wra_loss(d.clone(), none, &cfg).unwrap()) + 2.0 * 31.0 / 5.0).abs() < 1e-5);
        let short: Tensor<Nd, 1, Bool> =
            Tensor::from_data(TensorData::new(vec![false; 4], [4]), &dev);
        assert!(wra_loss(d, short, &cfg).is_err());
    }

    #[test]
    fn identical_embeddings_have_zero_distance() {
        // txt == img (same order, M == N): C has a zero diagonal and the
        // identity plan is optimal, so the distance goes to 0.
        let dev = Default::default();
        let v: Vec<f32> = (0..2 * 4 * 8)
            .map(|k| ((k * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let x: Tensor<Nd, 3> = Tensor::from_data(TensorData::new(v, [2, 4, 8]), &dev);
        for path in [SolverPath::Host, SolverPath::Tensor] {
            let cfg = WraConfig {
                path,
                ..Default::default()
            };
            let d = wra_distance(x.clone(), x.clone(), None, &cfg).unwrap();
            for v in d.into_data().into_vec::<f32>().unwrap() {
                assert!(v.abs() < 1e-4, "{v}");
            }
        }
    }
}
