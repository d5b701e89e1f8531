//! How a backbone's batch normalisation behaves: Burn's training behaviour,
//! or frozen to its running statistics as in detection and VLP backbones
//! (torchvision's `FrozenBatchNorm2d`).
//!
//! Burn 0.21's `BatchNorm::forward` normalises with batch statistics (and
//! updates the running ones) whenever the backend has autodiff enabled, so a
//! frozen backbone inside a model that trains needs its own forward: that is
//! [`frozen_batch_norm`]. It reads the `BatchNorm`'s own fields, so the
//! module tree, its checkpoint keys and Burn's PyTorch adapter
//! (`weight`/`bias` ↔ `gamma`/`beta` on `Struct:BatchNorm`) stay the same in
//! both modes.

use burn::nn::BatchNorm;
use burn::prelude::*;

/// Batch-normalisation behaviour of a backbone.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BatchNormMode {
    /// Burn's `BatchNorm`: batch statistics (and running-statistics updates)
    /// under autodiff, running statistics on an inference backend.
    Trainable,
    /// Running statistics as constants and no gradient for `gamma`/`beta`,
    /// on every backend.
    Frozen,
}

impl BatchNormMode {
    /// `[B, C, ...] → [B, C, ...]`.
    pub fn forward<B: Backend, const D: usize>(
        self,
        norm: &BatchNorm<B>,
        input: Tensor<B, D>,
    ) -> Tensor<B, D> {
        match self {
            Self::Trainable => norm.forward(input),
            Self::Frozen => frozen_batch_norm(norm, input),
        }
    }
}

/// `(x − running_mean) / √(running_var + ε) · γ + β`, folded into one scale
/// and shift per channel, with every statistic and affine parameter detached:
/// `[B, C, ...] → [B, C, ...]`.
pub fn frozen_batch_norm<B: Backend, const D: usize>(
    norm: &BatchNorm<B>,
    input: Tensor<B, D>,
) -> Tensor<B, D> {
    let device = input.device();
    let mut shape = [1; D];
    shape[1] = input.dims()[1];
    let mean = norm.running_mean.value().to_device(&device).detach();
    let var = norm.running_var.value().to_device(&device).detach();
    let scale = norm.gamma.val().detach() / var.add_scalar(norm.epsilon).sqrt();
    let shift = norm.beta.val().detach() - mean * scale.clone();
    input * scale.reshape(shape) + shift.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{Param, RunningState};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, TensorData};

    type AD = Autodiff<NdArray>;

    fn norm_with_statistics(device: &burn::tensor::Device<AD>) -> BatchNorm<AD> {
        let mut norm = BatchNormConfig::new(3)
            .with_epsilon(1e-3)
            .init::<AD>(device);
        let vec = |v: [f32; 3]| Tensor::<AD, 1>::from_data(TensorData::from(v), device);
        norm.gamma = Param::from_tensor(vec([0.5, 2.0, -1.0]));
        norm.beta = Param::from_tensor(vec([0.1, -0.3, 0.7]));
        norm.running_mean = RunningState::new(vec([1.0, -2.0, 0.25]));
        norm.running_var = RunningState::new(vec([4.0, 0.5, 9.0]));
        norm
    }

    #[test]
    fn frozen_uses_running_statistics_and_gives_no_affine_gradient() {
        let device = Default::default();
        let norm = norm_with_statistics(&device);
        let input =
            Tensor::<AD, 4>::random([2, 3, 2, 2], Distribution::Default, &device).require_grad();
        let output = BatchNormMode::Frozen.forward(&norm, input.clone());

        let x: Vec<f32> = input.clone().into_data().to_vec().unwrap();
        let y: Vec<f32> = output.clone().into_data().to_vec().unwrap();
        let (gamma, beta): ([f64; 3], [f64; 3]) = ([0.5, 2.0, -1.0], [0.1, -0.3, 0.7]);
        let (mean, var): ([f64; 3], [f64; 3]) = ([1.0, -2.0, 0.25], [4.0, 0.5, 9.0]);
        for (i, (x, y)) in x.iter().zip(&y).enumerate() {
            let c = (i / 4) % 3;
            let expected = (*x as f64 - mean[c]) / (var[c] + 1e-3).sqrt() * gamma[c] + beta[c];
            assert!(
                (*y as f64 - expected).abs() < 1e-5,
                "{i}: {y} vs {expected}"
            );
        }

        let grads = output.sum().backward();
        assert!(norm.gamma.grad(&grads).is_none());
        assert!(norm.beta.grad(&grads).is_none());
        // The input still gets its gradient: γ / √(var + ε) per channel.
        let input_grad: Vec<f32> = input.grad(&grads).unwrap().into_data().to_vec().unwrap();
        for (i, g) in input_grad.iter().enumerate() {
            let c = (i / 4) % 3;
            let expected = gamma[c] / (var[c] + 1e-3).sqrt();
            assert!((*g as f64 - expected).abs() < 1e-5);
        }
        // Frozen: the running statistics are not updated.
        let mean_after: Vec<f32> = norm.running_mean.value().into_data().to_vec().unwrap();
        assert_eq!(mean_after, vec![1.0, -2.0, 0.25]);
    }

    #[test]
    fn trainable_normalises_with_batch_statistics_under_autodiff() {
        let device = Default::default();
        let norm = norm_with_statistics(&device);
        let input = Tensor::<AD, 4>::random([4, 3, 3, 3], Distribution::Default, &device);
        let output = BatchNormMode::Trainable.forward(&norm, input);
        let weights = Tensor::<AD, 4>::random([4, 3, 3, 3], Distribution::Default, &device);
        let grads = (output.clone() * weights).sum().backward();
        assert!(norm.gamma.grad(&grads).is_some());
        // Per channel, the output's batch mean is β (the batch was centred).
        let means: Vec<f32> = output
            .swap_dims(0, 1)
            .reshape([3, 36])
            .mean_dim(1)
            .into_data()
            .to_vec()
            .unwrap();
        for (m, b) in means.iter().zip([0.1, -0.3, 0.7]) {
            assert!((m - b).abs() < 1e-4, "{m} vs {b}");
        }
    }
}
