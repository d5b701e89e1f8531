//! `ResNet` against torchvision: a torchvision state dict loads through a
//! key table (every key used once), and the eval-mode feature map matches
//! PyTorch's. Fixtures: `tests/fixtures/gen_resnet.py`.

use std::collections::HashMap;

use burn::backend::NdArray;
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use vlp_features::{BatchNormMode, ResNetConfig, ResNetLayout};
use vlp_test_support::fixtures::read_safetensors;
use vlp_test_support::{assert_close, fixture_path, Tol};

type B = NdArray;

/// The key table: Burn path → torchvision key.
fn torchvision_key(path: &str) -> String {
    let key = path
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.");
    if let Some(stem) = key.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = key.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        key
    }
}

/// Replaces every float tensor of a module by the state-dict entry its key maps to.
struct Load<'a> {
    state: &'a HashMap<String, (Vec<usize>, Vec<f32>)>,
    path: Vec<String>,
    used: Vec<String>,
}

impl<Bk: Backend> ModuleMapper<Bk> for Load<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        let key = torchvision_key(&self.path.join("."));
        let (shape, values) = self
            .state
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in the state dict"));
        let (id, tensor, mapper) = param.consume();
        assert_eq!(tensor.dims().to_vec(), *shape, "{key}");
        let loaded = Tensor::from_data(
            TensorData::new(values.clone(), shape.clone()),
            &tensor.device(),
        );
        self.used.push(key);
        Param::from_mapped_value(id, loaded, mapper)
    }
}

fn check(layout: ResNetLayout, file: &str) {
    let state = read_safetensors(fixture_path!(file));
    let device = Default::default();
    // Every parameter is then overwritten from the fixture, so the other
    // test's draws interleaving with these ones cannot change the result.
    B::seed(&device, 0);
    for batch_norm in [BatchNormMode::Frozen, BatchNormMode::Trainable] {
        let resnet = ResNetConfig::new(layout)
            .with_base_width(2)
            .with_batch_norm(batch_norm)
            .init::<B>(&device);
        let mut load = Load {
            state: &state,
            path: Vec::new(),
            used: Vec::new(),
        };
        let resnet = resnet.map(&mut load);
        let mut used = load.used;
        used.sort();
        let mut keys: Vec<String> = state
            .keys()
            .filter(|k| *k != "input" && *k != "output")
            .cloned()
            .collect();
        keys.sort();
        assert_eq!(used, keys, "every torchvision key loads exactly once");

        let tensor = |name: &str| {
            let (shape, values) = &state[name];
            Tensor::<B, 4>::from_data(TensorData::new(values.clone(), shape.clone()), &device)
        };
        let expected = tensor("output");
        let output = resnet.forward(tensor("input"));
        let scale = expected.clone().abs().max().into_scalar() as f64;
        // On an inference backend both modes use the running statistics.
        assert_close(
            format!("{layout:?} {batch_norm:?}"),
            output,
            expected,
            Tol::abs(1e-4 * scale),
        );
    }
}

#[test]
fn resnet18_matches_torchvision() {
    check(ResNetLayout::ResNet18, "resnet18_w2.safetensors");
}

#[test]
fn resnet50_matches_torchvision() {
    check(ResNetLayout::ResNet50, "resnet50_w2.safetensors");
}
