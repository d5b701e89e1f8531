//! Freezing and unfreezing a tower (a sub-module) for partial fine-tuning.
//!
//! Burn tracks gradients per parameter tensor: a parameter whose tensor does
//! not require grad is a constant to autodiff, gets no entry in the
//! gradients, and optimizers skip it. `Module::no_grad` freezes; 0.21 has no
//! inverse, so [`set_trainable`] maps every parameter either way.

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;

/// Marks every parameter of `module` as trainable or frozen and returns it.
///
/// BatchNorm running statistics (fields named `running_*`, Burn's
/// `RunningState`) are left as they are: they are updated by the forward
/// pass, never by gradients. On a backend without autodiff this changes
/// nothing. Freezing a tower with batch normalisation does not change how it
/// normalises: build it with [`BatchNormMode::Frozen`](crate::BatchNormMode)
/// for that.
pub fn set_trainable<B: Backend, M: Module<B>>(module: M, trainable: bool) -> M {
    module.map(&mut RequireGrad {
        require_grad: trainable,
        path: Vec::new(),
    })
}

struct RequireGrad {
    require_grad: bool,
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let running_state = self
            .path
            .last()
            .is_some_and(|name| name.starts_with("running_"));
        if running_state {
            param
        } else {
            param.set_require_grad(self.require_grad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::tensor::Distribution;

    type AD = Autodiff<NdArray>;

    #[derive(Module, Debug)]
    struct TwoTowers<B: Backend> {
        image: Linear<B>,
        image_norm: BatchNorm<B>,
        text: Linear<B>,
    }

    impl<B: Backend> TwoTowers<B> {
        fn loss(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
            let image = self.image_norm.forward(self.image.forward(x.clone()));
            (image * self.text.forward(x)).sum()
        }
    }

    fn towers(device: &burn::tensor::Device<AD>) -> TwoTowers<AD> {
        TwoTowers {
            image: LinearConfig::new(4, 3).init(device),
            image_norm: BatchNormConfig::new(3).init(device),
            text: LinearConfig::new(4, 3).init(device),
        }
    }

    #[test]
    fn a_frozen_tower_gets_no_gradient_and_unfreezing_restores_it() {
        let device = Default::default();
        let x = Tensor::<AD, 2>::random([5, 4], Distribution::Default, &device);
        let mut model = towers(&device);
        model.image = set_trainable(model.image, false);
        model.image_norm = set_trainable(model.image_norm, false);

        let grads = model.loss(x.clone()).backward();
        assert!(model.image.weight.grad(&grads).is_none());
        assert!(model.image.bias.as_ref().unwrap().grad(&grads).is_none());
        assert!(model.image_norm.gamma.grad(&grads).is_none());
        let text_grad = model.text.weight.grad(&grads).expect("text tower trains");
        assert!(text_grad.abs().sum().into_scalar() > 0.0);

        let model = set_trainable(model, true);
        let grads = model.loss(x).backward();
        let image_grad = model
            .image
            .weight
            .grad(&grads)
            .expect("image tower trains again");
        assert!(image_grad.abs().sum().into_scalar() > 0.0);
        assert!(model.image_norm.gamma.grad(&grads).is_some());
        assert!(!model.image_norm.running_mean.value().is_require_grad());
    }
}
