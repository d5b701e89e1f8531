//! `cargo xtask search`: text-to-image search over a folder of images with
//! a run's joint space (survey §6: text → image retrieval, the task
//! contrastive pre-training serves, on a user's own images): the query and
//! every image embedded, the images ranked by cosine similarity. Nothing is
//! cached: each search embeds the folder again (`embed --run --images`
//! writes the image embeddings once, to rank them elsewhere).

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use vlp_data::source::SkipReport;

use super::images::image_files;
use super::{InferenceRun, DEFAULT_BATCH_SIZE};
use crate::error::{ConfigError, Result};
use crate::eval::floats;

/// One image found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Cosine similarity with the query, in `[-1, 1]`.
    pub score: f32,
    /// The image file.
    pub path: PathBuf,
}

/// What [`search`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The best images, best first.
    pub hits: Vec<Hit>,
    /// Image files read and skipped as unreadable.
    pub data: SkipReport,
}

impl SearchResult {
    /// One `0.8123  path` line per hit.
    pub fn lines(&self) -> String {
        self.hits
            .iter()
            .map(|hit| format!("{:.4}  {}", hit.score, hit.path.display()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The positions of the `k` highest `scores` (all of them when fewer),
/// highest first; equal scores keep their order.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(k);
    order
}

/// The `top` image files of the folder `images` ([`image_files`]) most
/// similar to `query` in the joint space of the run folder `run`, best
/// first. Unreadable images are skipped within the run's budget and
/// counted. A zero `top` is an error.
pub fn search<B: AutodiffBackend>(
    run: &Path,
    images: &Path,
    query: &str,
    top: usize,
    device: &B::Device,
) -> Result<SearchResult> {
    if top == 0 {
        return Err(ConfigError::invalid("top", "--top must be at least 1").into());
    }
    let files = image_files(images)?;
    let run = InferenceRun::open(run)?;
    let budget = run.budget();
    let (scores, kept) = run.with_embedder::<B, _, _>(DEFAULT_BATCH_SIZE, device, |embedder| {
        let query = embedder.texts(&[query.to_string()])?;
        let images = embedder.images(&files, &budget)?;
        let scores = images.embeddings.matmul(query.transpose());
        Ok((floats(scores), images.kept))
    })?;
    let hits = top_k(&scores, top)
        .into_iter()
        .map(|i| Hit {
            score: scores[i],
            path: files[kept[i]].clone(),
        })
        .collect();
    Ok(SearchResult {
        hits,
        data: budget.report(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_ranks_by_score_and_keeps_ties_in_order() {
        let scores = [0.1, 0.9, -0.3, 0.9, 0.5];
        assert_eq!(top_k(&scores, 3), [1, 3, 4]);
        assert_eq!(top_k(&scores, 9), [1, 3, 4, 0, 2]);
        assert!(top_k(&scores, 0).is_empty());
    }
}
