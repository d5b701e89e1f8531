//! Sentence embeddings from an imported Hugging Face BERT (survey §6: a
//! pre-trained text encoder serving retrieval and search downstream), with
//! sentence-transformers' recipe: the last hidden states averaged over the
//! real (non-padding) tokens, then L2-normalised; and the files `cargo xtask
//! embed` writes (a `.npy` matrix and a JSONL index of its rows).
//!
//! Run it on an inference backend (no `Autodiff`, e.g. `Flex` or an
//! autodiff backend's `InnerBackend`): Burn applies dropout only on an
//! autodiff backend, where BERT's 0.1 `hidden_dropout_prob` would make the
//! embeddings drift from the reference's.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use vlp_data::regions::npy_bytes;
use vlp_data::{tokens_to_tensors, TextTokenizer};
use vlp_models::{l2_normalize, mean_pool, BertModel};

use crate::checkpoint::write_atomic;
use crate::error::{ConfigError, Result, TrainError};
use crate::eval::floats;

/// The files of a Hugging Face BERT folder that [`embed_texts`] reads.
pub const BERT_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// The texts of `path`, one per line (a final line break ends the last
/// line; `\r\n` endings are accepted). Blank lines are texts too, so row `i`
/// of the embeddings is line `i + 1`. A missing file or one without any
/// non-blank line is an error naming it.
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    let contents = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::invalid("texts", format!("cannot read {}: {err}", path.display()))
    })?;
    if contents.trim().is_empty() {
        return Err(ConfigError::invalid(
            "texts",
            format!("{} has no text (one text per line)", path.display()),
        )
        .into());
    }
    Ok(contents.lines().map(str::to_string).collect())
}

/// `[N, D]` L2-normalised embeddings of `texts` (`N` of them) by the
/// Hugging Face BERT in `checkpoint` ([`BERT_FILES`]; e.g.
/// `assets/all-minilm-l6-v2` from `cargo xtask assets`), `batch_size` texts
/// per forward pass. Texts longer than the model's position table are
/// truncated (keeping the final `[SEP]`). A missing folder or file, no text
/// or a zero batch size is an error naming it.
pub fn embed_texts<B: Backend>(
    checkpoint: &Path,
    texts: &[String],
    batch_size: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    if let Some(file) = BERT_FILES.iter().find(|f| !checkpoint.join(f).is_file()) {
        return Err(ConfigError::invalid(
            "checkpoint",
            format!(
                "{} has no {file}: pass a Hugging Face BERT folder (run `cargo xtask assets` \
                 for assets/all-minilm-l6-v2)",
                checkpoint.display()
            ),
        )
        .into());
    }
    if texts.is_empty() || batch_size == 0 {
        return Err(ConfigError::invalid(
            "batch_size",
            format!(
                "{} texts in batches of {batch_size}: both must be positive",
                texts.len()
            ),
        )
        .into());
    }
    let import = |message: String| TrainError::Import {
        path: checkpoint.to_path_buf(),
        message,
    };
    let (model, _report) =
        BertModel::<B>::from_pretrained(checkpoint, device).map_err(|e| import(e.to_string()))?;
    let tokenizer = TextTokenizer::from_file(checkpoint.join("tokenizer.json"))?;
    let max_len = model.embeddings.max_positions();
    let mut batches = Vec::with_capacity(texts.len().div_ceil(batch_size));
    for batch in texts.chunks(batch_size) {
        let (ids, padding) = tokens_to_tensors::<B>(&tokenizer.encode(batch, max_len)?, device);
        let hidden = model
            .try_forward(ids, padding.clone())
            .map_err(|e| import(e.to_string()))?
            .last_hidden_state;
        batches.push(l2_normalize(mean_pool(hidden, Some(padding))));
    }
    Ok(Tensor::cat(batches, 0))
}

/// A path ending in `.npy`, or an error naming it.
pub(crate) fn check_npy_path(out: &Path) -> Result<()> {
    if out.extension().is_some_and(|ext| ext == "npy") {
        return Ok(());
    }
    Err(ConfigError::invalid("out", format!("{}: expected a .npy path", out.display())).into())
}

/// Writes `embeddings` `[N, D]` to `out` (a `.npy` of `f32`, row `i` the
/// embedding of `texts[i]`) and the index `out` with the extension `.jsonl`
/// beside it, one `{"index": i, "text": …}` line per row; both atomically,
/// creating the folder. Returns the index's path. `out` must end in `.npy`
/// and `texts` have one text per row.
pub fn write_embeddings<B: Backend>(
    out: &Path,
    texts: &[String],
    embeddings: Tensor<B, 2>,
) -> Result<PathBuf> {
    check_npy_path(out)?;
    let [rows, _] = embeddings.dims();
    if rows != texts.len() {
        return Err(ConfigError::invalid(
            "texts",
            format!("{rows} embeddings of {} texts", texts.len()),
        )
        .into());
    }
    let index: Vec<serde_json::Value> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| serde_json::json!({ "index": i, "text": text }))
        .collect();
    write_indexed_rows(out, embeddings, &index)
}

/// Writes `embeddings` `[N, D]` to `out` (a `.npy` of `f32`) and `index`,
/// one JSON line per row, to `out` with the extension `.jsonl`; both
/// atomically, creating the folder. Returns the index's path. The caller
/// checks that `out` ends in `.npy` and that `index` has `N` lines.
pub(crate) fn write_indexed_rows<B: Backend>(
    out: &Path,
    embeddings: Tensor<B, 2>,
    index: &[serde_json::Value],
) -> Result<PathBuf> {
    let [rows, width] = embeddings.dims();
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|err| TrainError::file(parent, err))?;
    }
    write_atomic(out, &npy_bytes(&floats(embeddings), &[rows, width]))?;
    let path = out.with_extension("jsonl");
    let lines: String = index.iter().map(|line| format!("{line}\n")).collect();
    write_atomic(&path, lines.as_bytes())?;
    Ok(path)
}

/// What [`embed_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// `[N, D]`: texts and embedding width.
    pub shape: [usize; 2],
    /// The `.npy` matrix.
    pub npy: PathBuf,
    /// The JSONL index of its rows.
    pub index: PathBuf,
}

impl std::fmt::Display for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [rows, width] = self.shape;
        write!(
            f,
            "{rows} texts, {width}-dimensional embeddings: {} (index: {})",
            self.npy.display(),
            self.index.display()
        )
    }
}

/// `cargo xtask embed`: the texts of the file `texts` ([`read_texts`])
/// embedded by the BERT in `checkpoint` ([`embed_texts`]) and written to
/// `out` ([`write_embeddings`]).
pub fn embed_file<B: Backend>(
    checkpoint: &Path,
    texts: &Path,
    out: &Path,
    batch_size: usize,
    device: &B::Device,
) -> Result<Embedded> {
    check_npy_path(out)?;
    let texts = read_texts(texts)?;
    let embeddings = embed_texts::<B>(checkpoint, &texts, batch_size, device)?;
    let shape = embeddings.dims();
    let index = write_embeddings(out, &texts, embeddings)?;
    Ok(Embedded {
        shape,
        npy: out.to_path_buf(),
        index,
    })
}
