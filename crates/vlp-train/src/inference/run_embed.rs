//! `cargo xtask embed --run`: texts and image files embedded into a run's
//! joint space (survey §6: the unimodal embeddings of a contrastive model
//! as features for retrieval and search downstream), written as one `.npy`
//! matrix with a JSONL index of its rows, as `embed --checkpoint` writes
//! BERT's ([`crate::embed`]).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use vlp_data::source::SkipReport;

use super::images::image_files;
use super::InferenceRun;
use crate::embed::{check_npy_path, read_texts, write_indexed_rows};
use crate::error::{ConfigError, Result};

/// What [`embed_run`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEmbedded {
    /// Text rows (first in the matrix).
    pub texts: usize,
    /// Image rows (after the texts).
    pub images: usize,
    /// Embedding width `D`.
    pub width: usize,
    /// Image files read and skipped as unreadable.
    pub data: SkipReport,
    /// The `.npy` matrix.
    pub npy: PathBuf,
    /// The JSONL index of its rows.
    pub index: PathBuf,
}

impl std::fmt::Display for RunEmbedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} texts and {} images, {}-dimensional embeddings: {} (index: {})",
            self.texts,
            self.images,
            self.width,
            self.npy.display(),
            self.index.display()
        )?;
        if self.data.skipped > 0 {
            write!(
                f,
                "\n{} unreadable images skipped (first: {})",
                self.data.skipped,
                self.data.reasons.first().map_or("", String::as_str)
            )?;
        }
        Ok(())
    }
}

/// `cargo xtask embed --run`: the texts of the file `texts` (one per line,
/// [`read_texts`]) and the image files of the folder `images`
/// ([`image_files`]), either or both, embedded by the model of the run
/// folder `run` and written to `out` (`[N, D]` unit rows, texts first, then
/// images) with the index `out.jsonl`: one
/// `{"row": i, "kind": "text", "text": …}` or
/// `{"row": i, "kind": "image", "path": …}` line per row. Unreadable images
/// are skipped within the run's budget (`data.max_skipped`) and counted.
pub fn embed_run<B: AutodiffBackend>(
    run: &Path,
    texts: Option<&Path>,
    images: Option<&Path>,
    out: &Path,
    batch_size: usize,
    device: &B::Device,
) -> Result<RunEmbedded> {
    check_npy_path(out)?;
    if texts.is_none() && images.is_none() {
        return Err(ConfigError::invalid(
            "texts",
            "nothing to embed: pass --texts FILE, --images DIR or both",
        )
        .into());
    }
    let texts = texts.map(read_texts).transpose()?.unwrap_or_default();
    let files = images.map(image_files).transpose()?.unwrap_or_default();
    let run = InferenceRun::open(run)?;
    let budget = run.budget();
    let (embeddings, kept) = run.with_embedder::<B, _, _>(batch_size, device, |embedder| {
        let mut parts = Vec::with_capacity(2);
        if !texts.is_empty() {
            parts.push(embedder.texts(&texts)?);
        }
        let mut kept = Vec::new();
        if !files.is_empty() {
            let images = embedder.images(&files, &budget)?;
            parts.push(images.embeddings);
            kept = images.kept;
        }
        Ok((Tensor::cat(parts, 0), kept))
    })?;
    let text_rows = texts
        .iter()
        .enumerate()
        .map(|(row, text)| json!({ "row": row, "kind": "text", "text": text }));
    let image_rows = kept.iter().enumerate().map(|(j, &i)| {
        let path = files[i].display().to_string();
        json!({ "row": texts.len() + j, "kind": "image", "path": path })
    });
    let index: Vec<serde_json::Value> = text_rows.chain(image_rows).collect();
    let [_, width] = embeddings.dims();
    let index_path = write_indexed_rows(out, embeddings, &index)?;
    Ok(RunEmbedded {
        texts: texts.len(),
        images: kept.len(),
        width,
        data: budget.report(),
        npy: out.to_path_buf(),
        index: index_path,
    })
}
