//! ALBEF's momentum model (survey §4.5, momentum distillation; MoCo's
//! momentum encoder): [`momentum_copy`] makes an exponential-moving-average
//! copy of any module and [`momentum_update`] moves it towards the online
//! one after each optimiser step.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

use crate::error::{value_error, ObjectiveError};

/// A momentum copy of `online` for [`momentum_update`], returned with
/// `online` as `(online, momentum)`: the same [`ParamId`]s and, once
/// initialised, the same values, without gradient.
///
/// Burn initialises parameters lazily and a clone of a lazy parameter draws
/// its own values, so each parameter pair is rewired to take whichever value
/// is drawn first; nothing is allocated here (a `-base` model can be built
/// just to count its parameters).
pub fn momentum_copy<B: Backend, M: Module<B>>(online: M) -> (M, M) {
    let online = online.map(&mut ShareFirstValue);
    let momentum = online.clone().map(&mut LazyNoGrad);
    (online, momentum)
}

/// Makes a parameter and its later clones initialise to one value.
struct ShareFirstValue;

impl<B: Backend> ModuleMapper<B> for ShareFirstValue {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let first = Arc::new(OnceLock::<Tensor<B, D>>::new());
        param.init_mapper(move |drawn| {
            let require_grad = drawn.is_require_grad();
            first
                .get_or_init(|| drawn.detach())
                .clone()
                .set_require_grad(require_grad)
        })
    }
}

/// [`Module::no_grad`] without initialising lazy parameters.
struct LazyNoGrad;

impl<B: Backend> ModuleMapper<B> for LazyNoGrad {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(false)
    }
}

/// One step of the momentum (EMA) encoder: every parameter of `momentum`
/// becomes `m · momentum + (1 − m) · online` (ALBEF: `m = 0.995`), detached.
///
/// Parameters are matched by [`ParamId`], so `momentum` must start as a
/// clone of `online` (a clone keeps the ids; ALBEF copies the weights once at
/// start). Build it with [`momentum_copy`] (or `online.clone().no_grad()`
/// for an initialised module) so the backward pass never touches it; the
/// optimiser leaves it alone as long as it is visited after `online` (a
/// parameter id's gradient goes to the first parameter that has the id).
/// Works for any [`Module`].
pub fn momentum_update<B: Backend, M: Module<B>>(
    momentum: M,
    online: &M,
    m: f64,
) -> crate::Result<M> {
    if !(0.0..=1.0).contains(&m) {
        return Err(value_error(
            "momentum coefficient",
            format!("must lie in [0, 1], got {m}"),
        ));
    }
    let mut collector = ParamCollector {
        params: HashMap::new(),
    };
    online.visit(&mut collector);
    let mut mixer = MomentumMixer {
        online: collector.params,
        m,
        unknown: None,
    };
    let updated = momentum.map(&mut mixer);
    match mixer.unknown {
        Some(param) => Err(ObjectiveError::UnknownParam { param }),
        None => Ok(updated),
    }
}

/// The online model's float parameters, flattened and detached, by id.
struct ParamCollector<B: Backend> {
    params: HashMap<ParamId, (Vec<usize>, Tensor<B, 1>)>,
}

impl<B: Backend> ModuleVisitor<B> for ParamCollector<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val().detach();
        let shape = value.dims().to_vec();
        let numel: usize = shape.iter().product();
        self.params
            .insert(param.id, (shape, value.reshape([numel])));
    }
}

struct MomentumMixer<B: Backend> {
    online: HashMap<ParamId, (Vec<usize>, Tensor<B, 1>)>,
    m: f64,
    /// The first momentum parameter with no online counterpart.
    unknown: Option<String>,
}

impl<B: Backend> ModuleMapper<B> for MomentumMixer<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, value, mapper) = param.consume();
        let shape = value.dims();
        let mixed = match self.online.get(&id) {
            Some((online_shape, online)) if online_shape.as_slice() == shape.as_slice() => {
                value.detach().mul_scalar(self.m)
                    + online.clone().reshape(shape).mul_scalar(1.0 - self.m)
            }
            _ => {
                self.unknown
                    .get_or_insert_with(|| format!("{id} {shape:?}"));
                value
            }
        };
        Param::from_mapped_value(id, mixed, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::LinearConfig;

    type B = NdArray;

    fn values<const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
        tensor.into_data().to_vec().unwrap()
    }

    #[test]
    fn momentum_update_is_the_ema_of_every_parameter() {
        let _serial = crate::test_serial();
        let device = Default::default();
        B::seed(&device, 11);
        let online = LinearConfig::new(3, 2).init::<B>(&device);
        // A clone shares ParamIds; give it other values to see the mix.
        let mut momentum = online.clone().no_grad();
        momentum.weight = momentum.weight.map(|w| w.mul_scalar(-2.0).add_scalar(1.0));
        let before_w = values(momentum.weight.val());
        let before_b = values(momentum.bias.as_ref().unwrap().val());
        let updated = momentum_update(momentum, &online, 0.9).unwrap();
        let online_w = values(online.weight.val());
        for ((got, m), o) in values(updated.weight.val())
            .iter()
            .zip(&before_w)
            .zip(&online_w)
        {
            assert!((got - (0.9 * m + 0.1 * o)).abs() < 1e-6);
        }
        let online_b = values(online.bias.as_ref().unwrap().val());
        for ((got, m), o) in values(updated.bias.unwrap().val())
            .iter()
            .zip(&before_b)
            .zip(&online_b)
        {
            assert!((got - (0.9 * m + 0.1 * o)).abs() < 1e-6);
        }
        // m = 0 copies the online model.
        let copied = momentum_update(online.clone(), &online, 0.0).unwrap();
        assert_eq!(values(copied.weight.val()), online_w);
    }

    #[test]
    fn momentum_update_needs_shared_params_and_stays_off_the_graph() {
        let _serial = crate::test_serial();
        let device = Default::default();
        B::seed(&device, 12);
        let online = LinearConfig::new(3, 2).init::<Autodiff<B>>(&device);
        let stranger = LinearConfig::new(3, 2).init::<Autodiff<B>>(&device);
        assert!(matches!(
            momentum_update(stranger, &online, 0.5),
            Err(ObjectiveError::UnknownParam { .. })
        ));
        assert!(momentum_update(online.clone(), &online, 1.5).is_err());
        let updated = momentum_update(online.clone().no_grad(), &online, 0.5).unwrap();
        assert!(!updated.weight.val().is_require_grad());
    }
}
