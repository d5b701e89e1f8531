//! `cargo xtask classify`: zero-shot image classification with a run's
//! joint space, CLIP's recipe (Radford et al. 2021, §3.1.4, "prompt
//! engineering and ensembling"; survey §6): each class name is put into
//! prompt templates, the class embedding is the mean of its prompts' unit
//! embeddings, renormalised, and an image is given the class of highest
//! cosine similarity. The classes are the sub-folders of an image folder
//! ([`class_folders`]); the report gives top-1 and top-k accuracy overall
//! and per class.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use vlp_data::source::SkipReport;
use vlp_models::l2_normalize;

use super::images::class_folders;
use super::{InferenceRun, DEFAULT_BATCH_SIZE};
use crate::checkpoint::write_atomic;
use crate::error::{ConfigError, Result};
use crate::eval::floats;

/// The report's file in the run folder.
pub const CLASSIFY_FILE: &str = "classify.json";

/// Prompt templates used when none are given (`{}` stands for the class
/// name): a few of CLIP's ImageNet templates.
pub const DEFAULT_TEMPLATES: [&str; 3] = ["a photo of a {}.", "a picture of a {}", "{}"];

/// An error unless there is a template and each one has a `{}`.
pub fn check_templates(templates: &[String]) -> Result<()> {
    let invalid = |message: String| ConfigError::invalid("templates", message).into();
    if templates.is_empty() {
        return Err(invalid("no prompt template given".into()));
    }
    match templates.iter().find(|t| !t.contains("{}")) {
        Some(template) => Err(invalid(format!(
            "the template {template:?} has no {{}} for the class name"
        ))),
        None => Ok(()),
    }
}

/// The templates of `path`, one per non-blank line, each with a `{}`; a
/// missing file, one without any template, or a template without `{}` is an
/// error naming it.
pub fn read_templates(path: &Path) -> Result<Vec<String>> {
    let contents = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::invalid(
            "templates",
            format!("cannot read {}: {err}", path.display()),
        )
    })?;
    let templates: Vec<String> = contents
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect();
    check_templates(&templates)
        .map_err(|err| ConfigError::invalid("templates", format!("{}: {err}", path.display())))?;
    Ok(templates)
}

/// The prompts of every class, class by class: prompt `c·T + t` is
/// template `t` of `T` filled with class `c`'s name.
pub fn prompts(classes: &[String], templates: &[String]) -> Vec<String> {
    classes
        .iter()
        .flat_map(|class| templates.iter().map(move |t| t.replace("{}", class)))
        .collect()
}

/// `[C, D]` unit class embeddings from the `[C·T, D]` embeddings of
/// [`prompts`] (`T` templates per class): each prompt embedding
/// L2-normalised, averaged over the class's templates, renormalised.
pub fn class_embeddings<B: Backend>(prompts: Tensor<B, 2>, classes: usize) -> Tensor<B, 2> {
    let [rows, width] = prompts.dims();
    let per_class = l2_normalize(prompts).reshape([classes, rows / classes, width]);
    l2_normalize(per_class.mean_dim(1).reshape([classes, width]))
}

/// One class's share of correct predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAccuracy {
    /// The class name.
    pub class: String,
    /// Its images that could be read.
    pub images: usize,
    /// Share of them whose best class is theirs (0 without images).
    pub top1: f64,
    /// Share of them whose class is among the `k` best.
    pub top_k: f64,
}

/// Top-1 and top-k accuracy, overall and per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// The `k` of top-k.
    pub k: usize,
    /// Share of all images whose best class is theirs.
    pub top1: f64,
    /// Share of all images whose class is among the `k` best.
    pub top_k: f64,
    /// Each class, in the order of the classes.
    pub per_class: Vec<ClassAccuracy>,
}

/// The 0-based rank of `label` among the scores of `row`; ties with
/// another class count against it.
fn label_rank(row: &[f32], label: usize) -> usize {
    (0..row.len())
        .filter(|&c| c != label && row[c] >= row[label])
        .count()
}

/// Accuracy of the row-major `[N, C]` `scores` (image × class) for the
/// images' `labels` (`N` of them, each `< C`) and the `C` `classes`.
pub fn accuracy(scores: &[f32], labels: &[usize], classes: &[String], k: usize) -> Accuracy {
    let n = classes.len();
    // Per class: images, top-1 hits, top-k hits.
    let mut counts = vec![[0usize; 3]; n];
    for (row, &label) in scores.chunks(n).zip(labels) {
        let rank = label_rank(row, label);
        let count = &mut counts[label];
        count[0] += 1;
        count[1] += usize::from(rank == 0);
        count[2] += usize::from(rank < k);
    }
    let share = |hits: usize, of: usize| hits as f64 / of.max(1) as f64;
    let total = |i: usize| counts.iter().map(|c| c[i]).sum::<usize>();
    Accuracy {
        k,
        top1: share(total(1), total(0)),
        top_k: share(total(2), total(0)),
        per_class: classes
            .iter()
            .zip(&counts)
            .map(|(class, &[images, top1, top_k])| ClassAccuracy {
                class: class.clone(),
                images,
                top1: share(top1, images),
                top_k: share(top_k, images),
            })
            .collect(),
    }
}

/// The content of `classify.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotReport {
    /// The image folder classified.
    pub images: String,
    /// The prompt templates.
    pub templates: Vec<String>,
    /// Accuracy overall and per class.
    #[serde(flatten)]
    pub accuracy: Accuracy,
    /// Image files read and skipped as unreadable.
    pub data: SkipReport,
}

impl ZeroShotReport {
    /// A small table for the terminal.
    pub fn table(&self) -> String {
        let a = &self.accuracy;
        let k = format!("top-{}", a.k);
        let mut lines = vec![
            format!(
                "zero-shot classification of {} images into {} classes ({} templates): \
                 top-1 {:.3}, {k} {:.3}",
                self.data.read,
                a.per_class.len(),
                self.templates.len(),
                a.top1,
                a.top_k
            ),
            format!("{:<20} {:>6} {:>6} {:>6}", "class", "images", "top-1", k),
        ];
        lines.extend(a.per_class.iter().map(|c| {
            format!(
                "{:<20} {:>6} {:>6.3} {:>6.3}",
                c.class, c.images, c.top1, c.top_k
            )
        }));
        if let Some(first) = self.data.reasons.first() {
            lines.push(format!(
                "{} unreadable images skipped (first: {first})",
                self.data.skipped
            ));
        }
        lines.join("\n")
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report of plain values serialises")
    }

    /// Writes [`Self::json`] to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.json().as_bytes())
    }
}

/// Zero-shot classification of the images of `images` (one sub-folder per
/// class, [`class_folders`]) by the model of the run folder `run`, with
/// prompt `templates` ([`DEFAULT_TEMPLATES`] if unsure) and top-`k`
/// accuracy (`k` capped at the number of classes). Unreadable images are
/// skipped within the run's budget and counted. Errors for fewer than 2
/// classes, a template without `{}`, or a zero `k`.
pub fn classify<B: AutodiffBackend>(
    run: &Path,
    images: &Path,
    templates: &[String],
    k: usize,
    device: &B::Device,
) -> Result<ZeroShotReport> {
    if k == 0 {
        return Err(ConfigError::invalid("top", "--top must be at least 1").into());
    }
    check_templates(templates)?;
    let classes = class_folders(images)?;
    let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    let (files, labels): (Vec<_>, Vec<_>) = classes
        .iter()
        .enumerate()
        .flat_map(|(label, class)| class.images.iter().map(move |path| (path.clone(), label)))
        .unzip();
    let run = InferenceRun::open(run)?;
    let budget = run.budget();
    let (scores, kept) = run.with_embedder::<B, _, _>(DEFAULT_BATCH_SIZE, device, |embedder| {
        let prompts = embedder.texts(&prompts(&names, templates))?;
        let classes = class_embeddings(prompts, names.len());
        let images = embedder.images(&files, &budget)?;
        Ok((
            floats(images.embeddings.matmul(classes.transpose())),
            images.kept,
        ))
    })?;
    let labels: Vec<usize> = kept.iter().map(|&i| labels[i]).collect();
    Ok(ZeroShotReport {
        images: images.display().to_string(),
        templates: templates.to_vec(),
        accuracy: accuracy(&scores, &labels, &names, k.min(names.len())),
        data: budget.report(),
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn class_embeddings_average_unit_prompt_embeddings_and_renormalise() {
        // Class 0: e1 and 2·e2 (normalised to e2) → (e1 + e2)/√2; class 1:
        // 3·e3 and 0.5·e3, both e3 once normalised → e3.
        let prompts = Tensor::<NdArray, 2>::from_floats(
            [
                [1.0, 0.0, 0.0],
                [0.0, 2.0, 0.0],
                [0.0, 0.0, 3.0],
                [0.0, 0.0, 0.5],
            ],
            &Default::default(),
        );
        let classes = floats(class_embeddings(prompts, 2));
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let expected = [h, h, 0.0, 0.0, 0.0, 1.0];
        for (got, want) in classes.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{classes:?}");
        }
        let filled = prompts_of(&["red", "light blue"], &["a {} shape", "{}"]);
        assert_eq!(
            filled,
            ["a red shape", "red", "a light blue shape", "light blue"]
        );
    }

    fn prompts_of(classes: &[&str], templates: &[&str]) -> Vec<String> {
        prompts(&strings(classes), &strings(templates))
    }

    #[test]
    fn accuracy_counts_top1_and_top_k_per_class_with_ties_against() {
        let classes = strings(&["a", "b", "c"]);
        #[rustfmt::skip]
        let scores = [
            0.9, 0.1, 0.0, // label a: rank 0
            0.5, 0.4, 0.3, // label b: rank 1
            0.2, 0.2, 0.1, // label b: tie with a → rank 1
            0.3, 0.2, 0.1, // label c: rank 2
        ];
        let labels = [0, 1, 1, 2];
        let result = accuracy(&scores, &labels, &classes, 2);
        assert_eq!((result.top1, result.top_k), (0.25, 0.75));
        let per_class: Vec<(usize, f64, f64)> = result
            .per_class
            .iter()
            .map(|c| (c.images, c.top1, c.top_k))
            .collect();
        assert_eq!(per_class, [(1, 1.0, 1.0), (2, 0.0, 1.0), (1, 0.0, 0.0)]);
    }

    #[test]
    fn templates_need_a_place_for_the_class_name() {
        assert!(check_templates(&strings(&["a {}", "{}"])).is_ok());
        let err = check_templates(&strings(&["a {}", "a photo"])).unwrap_err();
        assert!(err.to_string().contains("\"a photo\""), "{err}");
        assert!(check_templates(&[]).is_err());
    }
}
