//! Gradient clipping by global norm (survey §5's pre-training recipes:
//! UNITER clips at 2.0, as BERT and most transformer trainers do): when the
//! L2 norm of all parameters' gradients together exceeds the threshold,
//! every gradient is scaled by the same factor, which keeps the update's
//! direction.
//!
//! Burn's `GradientClipping::Norm` (burn-optim 0.21, `grad_clipping/base.rs`,
//! applied per parameter in `OptimizerAdaptor`'s mapper) clips each
//! parameter's gradient by its own norm, which changes the direction of the
//! update and is not what these recipes mean, hence this module.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::Tensor;

/// Scales `grads` (of `model`'s parameters) so that their global L2 norm is
/// at most `max_norm`, as PyTorch's `clip_grad_norm_`: by
/// `min(1, max_norm / (norm + 1e-6))`. The norm and the factor stay on the
/// device, so a step reads nothing back for them. Returns the gradients and
/// their norm `[1]` before clipping (`None` without any gradient).
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    mut grads: GradientsParams,
    max_norm: f64,
) -> (GradientsParams, Option<Tensor<B::InnerBackend, 1>>) {
    let mut squares = SquaredNorm::<B> {
        grads: &grads,
        sum: None,
    };
    model.visit(&mut squares);
    let Some(norm) = squares.sum.map(|sum| sum.sqrt()) else {
        return (grads, None);
    };
    let scale = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    model.visit(&mut Scale::<B> {
        grads: &mut grads,
        scale,
    });
    (grads, Some(norm))
}

/// Sums the squares of every float parameter's gradient.
struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    /// `[1]`, `None` until a parameter with a gradient is met.
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let square = grad.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(sum) => sum + square,
                None => square,
            });
        }
    }
}

/// Multiplies every float parameter's gradient by `scale` `[1]`.
struct Scale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    scale: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let scale = self.scale.clone().reshape([1; D]);
            self.grads.register(param.id, grad.mul(scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::backend::Backend;

    type B = Autodiff<Flex>;

    /// A 2→1 linear layer whose weight gradient is (3, 0) and bias
    /// gradient 4: global norm 5. Clipped to 1, every gradient is scaled by
    /// 1 / 5 (weight (0.6, 0), bias 0.8), not each to norm 1 on its own as
    /// Burn's per-parameter clipping would ((1, 0) and 1).
    fn grads_of(model: &Linear<B>) -> GradientsParams {
        let mut grads = GradientsParams::new();
        let device = Default::default();
        grads.register(
            model.weight.id,
            Tensor::<Flex, 2>::from_floats([[3.0], [0.0]], &device),
        );
        let bias = model.bias.as_ref().unwrap();
        grads.register(bias.id, Tensor::<Flex, 1>::from_floats([4.0], &device));
        grads
    }

    fn values(model: &Linear<B>, grads: &GradientsParams) -> Vec<f32> {
        let weight = grads.get::<Flex, 2>(model.weight.id).unwrap();
        let bias = grads
            .get::<Flex, 1>(model.bias.as_ref().unwrap().id)
            .unwrap();
        let mut values: Vec<f32> = weight.into_data().to_vec().unwrap();
        values.extend(bias.into_data().to_vec::<f32>().unwrap());
        values
    }

    #[test]
    fn the_global_norm_scales_every_gradient_alike() {
        let device = Default::default();
        B::seed(&device, 3);
        let model = LinearConfig::new(2, 1).init::<B>(&device);
        let (clipped, norm) = clip_global_norm(&model, grads_of(&model), 1.0);
        let norm = norm.unwrap().into_data().to_vec::<f32>().unwrap()[0];
        assert!((norm - 5.0).abs() < 1e-6, "{norm}");
        let expected = [0.6, 0.0, 0.8];
        let got = values(&model, &clipped);
        let near = got.iter().zip(expected).all(|(g, e)| (g - e).abs() < 1e-6);
        assert!(near, "{got:?} vs {expected:?}");
        // Below the threshold nothing changes.
        let (kept, _) = clip_global_norm(&model, grads_of(&model), 10.0);
        assert_eq!(values(&model, &kept), [3.0, 0.0, 4.0]);
    }
}
