//! The objectives' heads and losses against NumPy on a committed fixture
//! (`fixtures/gen_losses.py` regenerates `fixtures/losses.json`).

use burn::backend::NdArray;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::{TensorData, Tolerance};
use serde_json::Value;
use std::sync::MutexGuard;
use vlp_objectives::{
    cross_entropy, gather_positions, itc_loss, itm_loss, mlm_loss, ItcHeadConfig, ItmHeadConfig,
    MlmHeadConfig,
};
use vlp_test_support::fixtures::float_tensor;
use vlp_test_support::{seeded, Tol};

type B = NdArray;

/// `fixtures/losses.json`, and the backend seeded (the guard holds the
/// generator while the heads' `init` draws, before the fixture's weights
/// replace them).
fn fixture() -> (MutexGuard<'static, ()>, Value) {
    let seeded = seeded::<B>(&Default::default(), 0);
    (seeded, vlp_test_support::fixture!("losses.json"))
}

fn float<const D: usize>(value: &Value) -> Tensor<B, D> {
    float_tensor(value, &Default::default())
}

fn int(value: &Value) -> Tensor<B, 1, Int> {
    let data = vlp_test_support::fixtures::f64s(value);
    let len = data.len();
    let data: Vec<i64> = data.into_iter().map(|x| x as i64).collect();
    Tensor::from_data(TensorData::new(data, [len]), &Default::default())
}

fn set_linear(linear: &mut Linear<B>, weight: &Value, bias: &Value) {
    linear.weight = Param::from_tensor(float(weight));
    linear.bias = Some(Param::from_tensor(float(bias)));
}

/// A loss to 1e-5 relative to `max(1, |expected|)` (the panic names the caller's line).
#[track_caller]
fn assert_close(got: f32, expected: &Value) {
    vlp_test_support::assert_close("loss", got, expected, Tol::scaled(1e-5));
}

#[test]
fn mlm_head_and_loss_match_numpy() {
    let (_seeded, f) = fixture();
    let f = &f["mlm"];
    let device = Default::default();
    let mut head = MlmHeadConfig::new(6, 7).init::<B>(&device);
    set_linear(&mut head.dense, &f["dense_w"], &f["dense_b"]);
    head.layer_norm.gamma = Param::from_tensor(float(&f["gamma"]));
    head.layer_norm.beta = Some(Param::from_tensor(float(&f["beta"])));
    head.bias = Param::from_tensor(float(&f["out_bias"]));
    let masked = gather_positions(float::<3>(&f["hidden"]), int(&f["positions"]));
    let logits = head.forward(masked, float(&f["word_emb"]));
    logits.clone().into_data().assert_approx_eq::<f32>(
        &float::<2>(&f["logits"]).into_data(),
        Tolerance::absolute(1e-5),
    );
    assert_close(
        mlm_loss(logits, int(&f["labels"])).into_scalar(),
        &f["loss"],
    );
}

#[test]
fn nothing_masked_gives_zero_loss() {
    let device = Default::default();
    let logits = Tensor::<B, 2>::zeros([0, 7], &device);
    let labels = Tensor::<B, 1, Int>::zeros([0], &device);
    assert_eq!(cross_entropy(logits, labels).into_scalar(), 0.0);
}

#[test]
fn itm_loss_matches_numpy() {
    let (_seeded, f) = fixture();
    let f = &f["itm"];
    let mut head = ItmHeadConfig::new(6).init::<B>(&Default::default());
    set_linear(&mut head.classifier, &f["w"], &f["b"]);
    let logits = head.forward(float(&f["pooled"]));
    assert_close(
        itm_loss(logits, int(&f["labels"])).into_scalar(),
        &f["loss"],
    );
}

fn check_itc(f: &Value) {
    let mut head = ItcHeadConfig::new(6)
        .with_embed_dim(3)
        .with_temperature(f["temperature"].as_f64().unwrap())
        .init::<B>(&Default::default());
    set_linear(&mut head.text_projection, &f["wt"], &f["bt"]);
    set_linear(&mut head.image_projection, &f["wi"], &f["bi"]);
    let logits = head.logits(
        head.embed_text(float(&f["text_cls"])),
        head.embed_image(float(&f["image_cls"])),
    );
    logits.clone().into_data().assert_approx_eq::<f32>(
        &float::<2>(&f["logits"]).into_data(),
        Tolerance::relative(1e-5),
    );
    assert_close(itc_loss(logits).into_scalar(), &f["loss"]);
}

#[test]
fn itc_loss_matches_numpy() {
    let (_seeded, f) = fixture();
    check_itc(&f["itc"]);
}

#[test]
fn itc_temperature_is_clamped() {
    let (_seeded, f) = fixture();
    check_itc(&f["itc_clamped"]);
}
