//! The `-base` configurations build models of the published sizes: each
//! count is within 1% of the reference in `fixtures/param_counts.json`,
//! which `fixtures/gen_param_counts.py` computes from PyTorch models (see
//! that script for what is counted).
//!
//! Parameters are counted from their shapes without initialising them
//! (Burn's parameters are lazy; `Module::num_params` would materialise
//! every tensor, a gigabyte per model), and the test checks that nothing
//! large was initialised along the way.

use std::collections::BTreeMap;

use burn::backend::NdArray;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use vlp_features::{RegionEmbeddingsConfig, VisualEmbeddingsConfig};
use vlp_models::{
    DualEncoderConfig, DualStreamConfig, FusionConfig, SingleStreamConfig, TransformerSize,
};

type B = NdArray;

/// Elements of every float parameter, and of those already initialised.
#[derive(Default)]
struct LazyCount {
    total: usize,
    initialised: usize,
}

impl ModuleVisitor<B> for LazyCount {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let elements = param.lazy_shape().num_elements();
        self.total += elements;
        if param.is_initialized() {
            self.initialised += elements;
        }
    }
}

fn count<M: Module<B>>(model: &M) -> usize {
    let mut counter = LazyCount::default();
    model.visit(&mut counter);
    assert!(
        counter.initialised < 1_000,
        "counting initialised {} elements",
        counter.initialised
    );
    counter.total
}

fn references() -> BTreeMap<String, usize> {
    serde_json::from_str(include_str!("../fixtures/param_counts.json")).unwrap()
}

/// UNITER-base: the single-stream model with BERT-base (bert-base-cased
/// vocabulary, post-norm) and 2048-d regions with 7-d geometry.
fn uniter_base() -> SingleStreamConfig {
    SingleStreamConfig::new(
        28996,
        VisualEmbeddingsConfig::Regions(RegionEmbeddingsConfig::new(2048, 768)),
    )
    .with_transformer(TransformerSize::of(768, 12, 3072, 12).with_norm_first(false))
    .with_max_text_len(512)
}

#[test]
fn base_presets_have_the_published_parameter_counts() {
    let device = Default::default();
    // Lazy parameters draw almost nothing, but what they draw is seeded.
    B::seed(&device, 0);
    let built = [
        (
            "vilbert-base",
            count(&DualStreamConfig::vilbert_base(30522).init::<B>(&device)),
        ),
        (
            "lxmert-base",
            count(&DualStreamConfig::lxmert_base(30522).init::<B>(&device)),
        ),
        (
            "albef-base",
            count(&FusionConfig::albef_base(30522).init::<B>(&device)),
        ),
        (
            "clip-base",
            count(&DualEncoderConfig::clip_base(49408).init::<B>(&device)),
        ),
        ("uniter-base", count(&uniter_base().init::<B>(&device))),
    ];
    let references = references();
    let mut failures = Vec::new();
    for (name, ours) in built {
        let reference = references[name];
        let relative = (ours as f64 - reference as f64) / reference as f64;
        println!("{name}: {ours} vs {reference} ({:+.4}%)", relative * 100.0);
        if relative.abs() > 0.01 {
            failures.push(format!("{name}: {ours} vs {reference}"));
        }
    }
    assert!(failures.is_empty(), "off by more than 1%: {failures:?}");
    assert_eq!(references.len(), 5);
}
