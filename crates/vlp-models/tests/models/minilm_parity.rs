//! The real all-MiniLM-L6-v2 checkpoint (a 6-layer BERT, fetched by
//! `cargo xtask assets`) loaded into vlp's text tower gives the sentence
//! embeddings PyTorch gives (`tests/fixtures/gen_minilm_reference.py`).

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::TensorData;
use serde_json::Value;
use tokenizers::Tokenizer;
use vlp_models::{BertConfig, BertModel};
use vlp_test_support::fixture;

type B = NdArray;

fn assets() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/all-minilm-l6-v2");
    assert!(
        dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file(),
        "{} is missing: run `cargo xtask assets` first",
        dir.display()
    );
    dir
}

#[test]
fn minilm_sentence_embeddings_match_pytorch() {
    let dir = assets();
    let reference: Value = fixture!("minilm_reference.json");

    let config = BertConfig::from_hf_json(&dir.join("config.json")).unwrap();
    assert_eq!(
        (
            config.vocab_size,
            config.hidden_size,
            config.num_layers,
            config.num_heads,
            config.intermediate_size,
            config.max_position_embeddings,
            config.type_vocab_size,
        ),
        (30522, 384, 6, 12, 1536, 512, 2)
    );
    let device = Default::default();
    B::seed(&device, 0);
    let (model, report) =
        BertModel::<B>::from_pretrained(&dir, &device).unwrap_or_else(|e| panic!("{e}"));
    // 5 embedding tensors, 16 per layer, the pooler's 2; the position ids buffer is skipped.
    assert_eq!(report.loaded, 5 + 6 * 16 + 2, "{report}");
    assert_eq!(report.ignored, vec!["embeddings.position_ids".to_string()]);

    // tokenizer.json pads every sequence to 128 tokens: the padding must not matter.
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let sentences: Vec<String> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let encodings = tokenizer.encode_batch(sentences.clone(), true).unwrap();
    let (batch, seq_len) = (encodings.len(), encodings[0].get_ids().len());
    for (encoding, expected) in encodings
        .iter()
        .zip(reference["input_ids"].as_array().unwrap())
    {
        let real = encoding
            .get_attention_mask()
            .iter()
            .filter(|&&m| m == 1)
            .count();
        let expected: Vec<u32> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(&encoding.get_ids()[..real], expected.as_slice());
    }
    let flat = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<i64> {
        encodings
            .iter()
            .flat_map(|e| f(e).iter().map(|&x| x as i64))
            .collect()
    };
    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(flat(|e| e.get_ids()), [batch, seq_len]),
        &device,
    );
    let mask = Tensor::<B, 2, Int>::from_data(
        TensorData::new(flat(|e| e.get_attention_mask()), [batch, seq_len]),
        &device,
    )
    .float();

    let hidden = model
        .forward(ids, mask.clone().equal_elem(0.0))
        .last_hidden_state;
    // Mean over the real tokens, then L2 normalisation (sentence-transformers).
    let mask = mask.unsqueeze_dim::<3>(2);
    let mean = (hidden * mask.clone()).sum_dim(1) / mask.sum_dim(1);
    let mean: Tensor<B, 2> = mean.squeeze_dim(1);
    let embeddings = mean.clone() / mean.powi_scalar(2).sum_dim(1).sqrt();

    let got: Vec<f32> = embeddings.into_data().to_vec().unwrap();
    let expected = reference["embeddings"].as_array().unwrap();
    for (i, (row, expected)) in got.chunks(384).zip(expected).enumerate() {
        let expected: Vec<f32> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cosine: f32 = row.iter().zip(&expected).map(|(a, b)| a * b).sum();
        eprintln!("{:?}: cosine {cosine:.7}", sentences[i]);
        assert!(cosine >= 0.99999, "{:?}: cosine {cosine}", sentences[i]);
    }
}
