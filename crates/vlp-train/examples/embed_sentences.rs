//! Sentence embeddings with an imported Hugging Face BERT (by default
//! all-MiniLM-L6-v2, which `cargo xtask assets` puts in
//! `assets/all-minilm-l6-v2`), through [`vlp_train::embed`]:
//! sentence-transformers' recipe, the last hidden states averaged over the
//! real (non-padding) tokens, then L2-normalised. `cargo xtask embed` does
//! the same for a file of texts and writes a `.npy`.
//!
//! ```sh
//! cargo xtask assets
//! cargo run --release -p vlp-train --example embed_sentences
//! cargo run --release -p vlp-train --example embed_sentences -- \
//!     --model path/to/bert --json "A man is eating food." "Two dogs play in the snow."
//! ```
//!
//! The folder holds `config.json`, `model.safetensors` and `tokenizer.json`;
//! `--model` (or the `VLP_BERT_DIR` environment variable) chooses it. The
//! output is the cosine similarity of every pair of sentences, or with
//! `--json` the sentences and their embeddings.
//!
//! Inference runs on an inference backend (`Flex`, without `Autodiff`):
//! Burn applies dropout only on an autodiff backend, so the same model on
//! `Autodiff<Flex>` would drop 10 % of its activations (BERT's
//! `hidden_dropout_prob`) and its embeddings would drift from the
//! reference's. A model trained on an autodiff backend gets there with
//! `model.valid()`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::backend::Flex;
use vlp_train::embed::embed_texts;

/// The inference backend: no autodiff, so no dropout.
type B = Flex;

const DEFAULT_SENTENCES: [&str; 4] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a white horse on an enclosed ground.",
    "Two dogs play in the snow.",
];

/// `--model DIR`, `--json` and the sentences, in any order.
struct Args {
    model: PathBuf,
    json: bool,
    sentences: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut model = std::env::var_os("VLP_BERT_DIR").map(PathBuf::from);
    let (mut json, mut sentences) = (false, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = Some(args.next().ok_or("--model needs a folder")?.into()),
            "--json" => json = true,
            _ => sentences.push(arg),
        }
    }
    if sentences.is_empty() {
        sentences = DEFAULT_SENTENCES.map(String::from).to_vec();
    }
    let model = model.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/all-minilm-l6-v2")
    });
    Ok(Args {
        model,
        json,
        sentences,
    })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let embeddings = embed_texts::<B>(&args.model, &args.sentences, 64, &Default::default())?;
    let [count, width] = embeddings.dims();
    let values: Vec<f32> = embeddings.into_data().to_vec()?;
    let rows: Vec<&[f32]> = values.chunks(width).collect();
    if args.json {
        let out = serde_json::json!({ "sentences": args.sentences, "embeddings": rows });
        println!("{out}");
        return Ok(());
    }
    println!("{count} sentences, {width}-dimensional embeddings; cosine similarities:");
    for (i, a) in rows.iter().enumerate() {
        for (j, b) in rows.iter().enumerate().skip(i + 1) {
            let cosine: f32 = a.iter().zip(*b).map(|(x, y)| x * y).sum();
            println!(
                "{cosine:7.4}  {:?} / {:?}",
                args.sentences[i], args.sentences[j]
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("embed_sentences: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("embed_sentences: {err}");
            ExitCode::FAILURE
        }
    }
}
