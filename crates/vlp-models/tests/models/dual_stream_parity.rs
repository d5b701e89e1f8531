//! The dual-stream cross-modal layers equal their reference implementations
//! on random weights (given under the references' names) and a padded
//! batch, both streams' outputs to 1e-5:
//! - LXMERT's cross-modality layer and Hugging Face's `LxmertXLayer`
//!   (`fixtures/gen_lxmert_x_layer.py`);
//! - ViLBERT's co-attentional block and vilbert-multi-task's
//!   `BertConnectionLayer` (`fixtures/gen_vilbert_co_attention.py`), with
//!   three different widths (text, image, co-attention).

use burn::backend::NdArray;
use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::{TensorData, Tolerance};
use serde_json::Value;
use vlp_models::{
    AttentionMask, CoAttentionLayerConfig, CrossModalityLayerConfig, FeedForward, TransformerLayer,
};
use vlp_test_support::fixture;

type B = NdArray;

struct Fixture(Value);

impl Fixture {
    fn floats(&self, key: &str) -> Vec<f32> {
        self.0[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing"))
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    }

    fn bools(&self, key: &str, shape: [usize; 2]) -> Tensor<B, 2, Bool> {
        let values: Vec<bool> = self.0[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn tensor<const D: usize>(&self, key: &str, shape: [usize; D]) -> Tensor<B, D> {
        Tensor::from_data(
            TensorData::new(self.floats(key), shape),
            &Default::default(),
        )
    }

    fn param(&self, name: &str) -> Tensor<B, 1> {
        let entry = &self.0["params"][name];
        let data: Vec<f32> = entry["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing"))
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let len = data.len();
        Tensor::from_data(TensorData::new(data, [len]), &Default::default())
    }

    /// A PyTorch `Linear` (`weight` `[out, in]`) into Burn's `[in, out]`.
    fn linear(&self, linear: &mut Linear<B>, name: &str) {
        let [input, output] = linear.weight.dims();
        let weight = self
            .param(&format!("{name}.weight"))
            .reshape([output, input])
            .transpose();
        linear.weight = Param::from_tensor(weight);
        linear.bias = Some(Param::from_tensor(self.param(&format!("{name}.bias"))));
    }

    fn layer_norm(&self, norm: &mut LayerNorm<B>, name: &str) {
        norm.gamma = Param::from_tensor(self.param(&format!("{name}.weight")));
        norm.beta = Some(Param::from_tensor(self.param(&format!("{name}.bias"))));
    }

    /// `{prefix}_intermediate.dense`, `{prefix}_output.dense` and
    /// `{prefix}_output.LayerNorm` into a feed-forward block and its norm.
    fn feed_forward(&self, ffn: &mut FeedForward<B>, norm: &mut LayerNorm<B>, prefix: &str) {
        self.linear(
            &mut ffn.intermediate,
            &format!("{prefix}_intermediate.dense"),
        );
        self.linear(&mut ffn.output, &format!("{prefix}_output.dense"));
        self.layer_norm(norm, &format!("{prefix}_output.LayerNorm"));
    }

    /// `{prefix}_self_att`, `{prefix}_inter`, `{prefix}_output` into one BERT layer.
    fn stream(&self, layer: &mut TransformerLayer<B>, prefix: &str) {
        let attention = format!("{prefix}_self_att");
        self.linear(
            &mut layer.attention.query,
            &format!("{attention}.self.query"),
        );
        self.linear(&mut layer.attention.key, &format!("{attention}.self.key"));
        self.linear(
            &mut layer.attention.value,
            &format!("{attention}.self.value"),
        );
        self.linear(
            &mut layer.attention.output,
            &format!("{attention}.output.dense"),
        );
        self.layer_norm(
            &mut layer.attention_norm,
            &format!("{attention}.output.LayerNorm"),
        );
        self.linear(
            &mut layer.feed_forward.intermediate,
            &format!("{prefix}_inter.dense"),
        );
        self.linear(
            &mut layer.feed_forward.output,
            &format!("{prefix}_output.dense"),
        );
        self.layer_norm(
            &mut layer.output_norm,
            &format!("{prefix}_output.LayerNorm"),
        );
    }
}

#[test]
fn cross_modality_layer_matches_hugging_face() {
    let fixture = Fixture(fixture!("lxmert_x_layer.json"));
    // Seeded, though the fixture then overwrites every parameter used.
    B::seed(&Default::default(), 0);
    let mut layer = CrossModalityLayerConfig::new(8, 2, 16)
        .with_dropout(0.0)
        .init::<B>(&Default::default());
    let cross = &mut layer.visual_attention;
    fixture.linear(&mut cross.query, "visual_attention.att.query");
    fixture.linear(&mut cross.key, "visual_attention.att.key");
    fixture.linear(&mut cross.value, "visual_attention.att.value");
    fixture.linear(&mut cross.output, "visual_attention.output.dense");
    fixture.layer_norm(
        &mut layer.visual_attention_norm,
        "visual_attention.output.LayerNorm",
    );
    fixture.stream(&mut layer.lang, "lang");
    fixture.stream(&mut layer.visn, "visn");

    let lang_bias = AttentionMask::padding(fixture.bools("lang_padding", [2, 3])).bias();
    let visn_bias = AttentionMask::padding(fixture.bools("visn_padding", [2, 4])).bias();
    let (lang, visn) = layer.forward(
        fixture.tensor("lang", [2, 3, 8]),
        lang_bias,
        fixture.tensor("visn", [2, 4, 8]),
        visn_bias,
    );
    let tolerance = Tolerance::absolute(1e-5);
    lang.into_data().assert_approx_eq::<f32>(
        &fixture.tensor("lang_out", [2, 3, 8]).into_data(),
        tolerance,
    );
    visn.into_data().assert_approx_eq::<f32>(
        &fixture.tensor("visn_out", [2, 4, 8]).into_data(),
        tolerance,
    );
}

#[test]
fn co_attention_block_matches_vilbert() {
    let fixture = Fixture(fixture!("vilbert_co_attention.json"));
    B::seed(&Default::default(), 0);
    let mut block = CoAttentionLayerConfig::new(8, 12, 6, 2, 16, 10)
        .with_dropout(0.0)
        .init::<B>(&Default::default());
    let bi = &mut block.biattention;
    for (linear, name) in [
        (&mut bi.query1, "query1"),
        (&mut bi.key1, "key1"),
        (&mut bi.value1, "value1"),
        (&mut bi.query2, "query2"),
        (&mut bi.key2, "key2"),
        (&mut bi.value2, "value2"),
    ] {
        fixture.linear(linear, &format!("biattention.{name}"));
    }
    let out = &mut block.bi_output;
    fixture.linear(&mut out.dense1, "biOutput.dense1");
    fixture.layer_norm(&mut out.layer_norm1, "biOutput.LayerNorm1");
    fixture.linear(&mut out.dense2, "biOutput.dense2");
    fixture.layer_norm(&mut out.layer_norm2, "biOutput.LayerNorm2");
    fixture.feed_forward(&mut block.v_feed_forward, &mut block.v_output_norm, "v");
    fixture.feed_forward(&mut block.t_feed_forward, &mut block.t_output_norm, "t");

    let text_bias = AttentionMask::padding(fixture.bools("text_padding", [2, 3])).bias();
    let image_bias = AttentionMask::padding(fixture.bools("image_padding", [2, 4])).bias();
    let (text, image) = block.forward(
        fixture.tensor("text", [2, 3, 8]),
        text_bias,
        fixture.tensor("image", [2, 4, 12]),
        image_bias,
    );
    let tolerance = Tolerance::absolute(1e-5);
    text.into_data().assert_approx_eq::<f32>(
        &fixture.tensor("text_out", [2, 3, 8]).into_data(),
        tolerance,
    );
    image.into_data().assert_approx_eq::<f32>(
        &fixture.tensor("image_out", [2, 4, 12]).into_data(),
        tolerance,
    );
}
