//! Hugging Face BERT, ViT and CLIP checkpoints loaded into vlp's modules
//! compute what PyTorch computes. The tiny randomly initialised models, their
//! inputs and PyTorch's outputs are in `tests/fixtures/` (generator:
//! `tests/fixtures/gen_hf_reference.py`).

use burn::backend::NdArray;
use burn::prelude::*;
use serde_json::Value;
use vlp_models::{BertModel, ClipModel, ImportError, ShapeMismatch, ViTModel};
use vlp_test_support::fixtures::{float_tensor, int_tensor};
use vlp_test_support::{fixture, fixture_path, Tol};

type B = NdArray;

/// PyTorch's inputs and outputs for the checkpoint in `tests/fixtures/<name>`.
/// Also seeds the backend: the models are initialised before the
/// checkpoint overwrites their parameters.
fn reference(name: &str) -> Value {
    B::seed(&Default::default(), 0);
    fixture!(format!("{name}/reference.json"))
}

fn floats<const D: usize>(value: &Value) -> Tensor<B, D> {
    float_tensor(value, &Default::default())
}

fn ints(value: &Value) -> Tensor<B, 2, Int> {
    int_tensor(value, &Default::default())
}

/// `true` where the attention mask is 0.
fn padding(mask: &Value) -> Tensor<B, 2, Bool> {
    ints(mask).equal_elem(0)
}

/// Asserts `got` equals PyTorch's `expected` to 1e-4 (absolute, or
/// relative for entries larger than 1).
fn assert_close<const D: usize>(what: &str, got: Tensor<B, D>, expected: &Value) {
    vlp_test_support::assert_close(what, got, expected, Tol::scaled(1e-4));
}

#[test]
fn bert_matches_pytorch() {
    let reference = reference("tiny_bert");
    let (model, report) =
        BertModel::<B>::from_pretrained(&fixture_path!("tiny_bert"), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
    // 5 embedding tensors, 16 per layer, 2 in the pooler.
    assert_eq!(report.loaded, 5 + 2 * 16 + 2, "{report}");
    let out = model.forward(
        ints(&reference["input_ids"]),
        padding(&reference["attention_mask"]),
    );
    assert_close(
        "last_hidden_state",
        out.last_hidden_state,
        &reference["last_hidden_state"],
    );
    assert_close(
        "pooler_output",
        out.pooled.unwrap(),
        &reference["pooler_output"],
    );
}

#[test]
fn a_single_stream_model_starts_from_bert() {
    // What `--init-text` does: the single-stream model's text embeddings,
    // encoder and pooler go through BertModel and come back loaded.
    let reference = reference("tiny_bert");
    let visual = vlp_features::VisualEmbeddingsConfig::Patches(
        vlp_features::PatchEmbeddingsConfig::new(16, 8, 32),
    );
    let config = vlp_models::SingleStreamConfig::new(100, visual)
        .with_transformer(vlp_models::TransformerSize::of(32, 4, 64, 2).with_norm_first(false))
        .with_max_text_len(16);
    let mut model = config.init::<B>(&Default::default());
    let mut bert = BertModel {
        embeddings: model.embeddings,
        encoder: model.encoder,
        pooler: Some(model.pooler),
    };
    bert.load_safetensors(&fixture_path!("tiny_bert/model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    (model.embeddings, model.encoder) = (bert.embeddings, bert.encoder);
    model.pooler = bert.pooler.unwrap();
    let ids = ints(&reference["input_ids"]);
    let text = model.encode_text(model.embed_text(ids), padding(&reference["attention_mask"]));
    assert_close("single-stream text", text, &reference["last_hidden_state"]);
}

#[test]
fn vit_matches_pytorch() {
    let reference = reference("tiny_vit");
    let (model, _) =
        ViTModel::<B>::from_pretrained(&fixture_path!("tiny_vit"), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let out = model.forward(floats(&reference["pixel_values"]));
    assert_close(
        "last_hidden_state",
        out.last_hidden_state,
        &reference["last_hidden_state"],
    );
    assert_close(
        "pooler_output",
        out.pooled.unwrap(),
        &reference["pooler_output"],
    );
}

#[test]
fn clip_matches_pytorch() {
    let reference = reference("tiny_clip");
    let (model, _) =
        ClipModel::<B>::from_pretrained(&fixture_path!("tiny_clip"), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
    // The fixture's end-of-text id (3) is not the largest id: pooling must
    // follow the config, not argmax(ids).
    assert_eq!(model.text_model.eos_token_id, Some(3));
    let out = model.forward(
        ints(&reference["input_ids"]),
        padding(&reference["attention_mask"]),
        floats(&reference["pixel_values"]),
    );
    assert_close(
        "text last_hidden_state",
        out.text.last_hidden_state.clone(),
        &reference["text_last_hidden_state"],
    );
    assert_close(
        "text pooled",
        out.text.pooled.clone(),
        &reference["text_pooler_output"],
    );
    assert_close(
        "vision last_hidden_state",
        out.vision.last_hidden_state.clone(),
        &reference["vision_last_hidden_state"],
    );
    assert_close(
        "vision pooled",
        out.vision.pooled.clone(),
        &reference["vision_pooler_output"],
    );
    assert_close(
        "text features",
        model.text_features(&out.text),
        &reference["text_features"],
    );
    assert_close(
        "image features",
        model.image_features(&out.vision),
        &reference["image_features"],
    );
    assert_close(
        "logits_per_image",
        out.logits_per_image,
        &reference["logits_per_image"],
    );
}

#[test]
fn a_checkpoint_that_does_not_fit_names_every_bad_key() {
    let dir = fixture_path!("tiny_bert_broken");
    B::seed(&Default::default(), 0);
    let err = BertModel::<B>::from_pretrained(&dir, &Default::default()).unwrap_err();
    let message = err.to_string();
    let ImportError::Mismatch { path, mismatch } = err else {
        panic!("expected a key mismatch, got {message}");
    };
    assert_eq!(path, dir.join("model.safetensors"));
    assert_eq!(
        mismatch.missing,
        vec![(
            "encoder.layer.1.attention.self.key.bias".to_string(),
            vec![32]
        )]
    );
    assert_eq!(
        mismatch.unexpected,
        vec!["encoder.layer.0.attention.self.extra.weight".to_string()]
    );
    assert_eq!(
        mismatch.wrong_shape,
        vec![ShapeMismatch {
            key: "encoder.layer.0.intermediate.dense.weight".into(),
            expected: vec![64, 32],
            found: vec![48, 32],
        }]
    );
    assert!(mismatch.unreadable.is_empty());
    for needle in [
        "tiny_bert_broken/model.safetensors",
        "encoder.layer.1.attention.self.key.bias [32]",
        "encoder.layer.0.attention.self.extra.weight",
        "encoder.layer.0.intermediate.dense.weight: checkpoint [48, 32], model expects [64, 32]",
    ] {
        assert!(message.contains(needle), "{needle:?} not in:\n{message}");
    }
}

#[test]
fn a_model_of_another_size_is_told_which_shapes_differ() {
    // The tiny BERT's weights into a model with 4 heads of width 12.
    let mut config =
        vlp_models::BertConfig::from_hf_json(&fixture_path!("tiny_bert/config.json")).unwrap();
    config.hidden_size = 48;
    B::seed(&Default::default(), 0);
    let mut model = config.init::<B>(&Default::default());
    let err = model
        .load_safetensors(&fixture_path!("tiny_bert/model.safetensors"))
        .unwrap_err();
    let ImportError::Mismatch { mismatch, .. } = err else {
        panic!("expected a key mismatch, got {err}");
    };
    assert!(mismatch.missing.is_empty() && mismatch.unexpected.is_empty());
    // Every tensor but the feed-forward's inner bias [64] has the hidden width in it.
    assert_eq!(mismatch.wrong_shape.len(), 5 + 2 * 15 + 2, "{mismatch}");
    assert!(mismatch.wrong_shape.contains(&ShapeMismatch {
        key: "embeddings.word_embeddings.weight".into(),
        expected: vec![100, 48],
        found: vec![100, 32],
    }));
}

#[test]
fn missing_files_and_bad_configs_are_named() {
    let missing = fixture_path!("no_such_model");
    B::seed(&Default::default(), 0);
    let err = BertModel::<B>::from_pretrained(&missing, &Default::default()).unwrap_err();
    assert!(matches!(err, ImportError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("no_such_model/config.json"),
        "{err}"
    );

    // A ViT config is not a BERT config.
    let err =
        vlp_models::BertConfig::from_hf_json(&fixture_path!("tiny_vit/config.json")).unwrap_err();
    assert!(
        err.to_string()
            .contains("model_type is \"vit\", expected \"bert\""),
        "{err}"
    );

    // A config is not a checkpoint.
    B::seed(&Default::default(), 0);
    let mut model = vlp_models::BertConfig::new(10, 8, 1, 2, 16).init::<B>(&Default::default());
    let err = model
        .load_safetensors(&fixture_path!("tiny_bert/config.json"))
        .unwrap_err();
    assert!(matches!(err, ImportError::Checkpoint { .. }), "{err}");
    assert!(err.to_string().contains("tiny_bert/config.json"), "{err}");
}
