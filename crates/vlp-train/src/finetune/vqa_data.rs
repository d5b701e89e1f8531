//! The questions of a VQA fine-tuning run (survey §6; VQA v2, Goyal et al.
//! 2017): every question of a split with its image and normalised human
//! answers, drawn in seeded epochs, and the official accuracy (overall and
//! per answer type) of predicted answers.

use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use vlp_data::image::{ImagePipeline, ImageSample, TransformMode};
use vlp_data::source::{read_vqa2, CorruptBudget, ImagePattern, ImageRef, Vqa2Options};
use vlp_data::{
    vqa_soft_score, AnswerVocabulary, HostVisual, HostVqaBatch, TextPadding, TextTokenizer,
    VqaAccuracy,
};

use crate::error::Result;

/// Where one split of a VQA v2-layout dataset lies.
#[derive(Debug, Clone)]
pub struct VqaFiles {
    /// `v2_OpenEnded_mscoco_*_questions.json`.
    pub questions: PathBuf,
    /// `v2_mscoco_*_annotations.json`.
    pub annotations: PathBuf,
    /// The image folder.
    pub images: PathBuf,
    /// The split's name in image file names (`{split}` in the pattern).
    pub split: String,
    /// Image file names from ids.
    pub image_pattern: ImagePattern,
}

/// One question about one image.
#[derive(Debug, Clone)]
pub struct VqaExample {
    /// The image.
    pub image: ImageRef,
    /// The question text.
    pub question: String,
    /// The normalised human answers.
    pub answers: Vec<String>,
    /// The normalised majority answer.
    pub answer: String,
    /// `yes/no`, `number` or `other` (`other` when the file has none).
    pub answer_type: String,
}

/// Every annotated question of `files`; unreadable entries are skipped and
/// counted in `budget`.
pub fn read_examples(files: &VqaFiles, budget: &CorruptBudget) -> Result<Vec<VqaExample>> {
    let options = Vqa2Options {
        split: files.split.clone(),
        image_pattern: files.image_pattern.clone(),
    };
    let list = read_vqa2(
        &files.questions,
        Some(&files.annotations),
        &files.images,
        &options,
        budget,
    )?;
    Ok(list
        .into_samples()
        .into_iter()
        .flat_map(|sample| {
            let image = sample.image;
            sample.questions.into_iter().map(move |q| VqaExample {
                image: image.clone(),
                answer: q.answer.unwrap_or_default(),
                question: q.question,
                answers: q.answers,
                answer_type: q.answer_type.unwrap_or_else(|| "other".to_string()),
            })
        })
        .collect())
}

/// Indices of the examples of step `step`: `batch_size` consecutive
/// positions of a sequence of epochs, each a permutation of `0..n` drawn
/// from `seed` and the epoch's number, so a step's examples depend only on
/// the seed and the step.
pub fn step_indices(n: usize, batch_size: usize, seed: u64, step: usize) -> Vec<usize> {
    let mut epochs: (usize, Vec<usize>) = (usize::MAX, Vec::new());
    (step * batch_size..(step + 1) * batch_size)
        .map(|position| {
            let epoch = position / n;
            if epochs.0 != epoch {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(
                    seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ));
                epochs = (epoch, order);
            }
            epochs.1[position % n]
        })
        .collect()
}

/// Questions, their images and the positions they came from.
pub type HostBatch = (HostVqaBatch, HostVisual, Vec<usize>);

/// How a run turns questions into model inputs: its tokenizer and text
/// length, its answer vocabulary, the held-out image transform (UNITER
/// fine-tunes VQA without augmentation) and the budget that counts
/// unreadable images.
#[derive(Debug, Clone)]
pub struct VqaInputs {
    /// The run's tokenizer.
    pub tokenizer: TextTokenizer,
    /// Tokens per question, `[CLS]` and `[SEP]` included.
    pub max_text_len: usize,
    /// How question rows are padded (`data.text_buckets`).
    pub text_padding: TextPadding,
    /// The answers the classifier scores.
    pub answers: AnswerVocabulary,
    /// Images to the model's squares.
    pub pipeline: ImagePipeline,
    /// Unreadable images skipped so far, and how many may be.
    pub budget: CorruptBudget,
}

impl VqaInputs {
    /// The host tensors of some questions: tokens, soft scores over the
    /// answers and the images (decoded in parallel), with the positions in
    /// `examples` of the rows. Examples whose image cannot be loaded are
    /// left out and counted in the budget.
    pub fn batch(&self, examples: &[&VqaExample]) -> Result<HostBatch> {
        let loaded: Vec<_> = examples
            .par_iter()
            .enumerate()
            .map(|(index, example)| {
                let sample = ImageSample {
                    index: index as u64,
                    image: example.image.as_source(),
                    caption: "",
                };
                self.pipeline.load(&sample, TransformMode::Eval)
            })
            .collect();
        let (mut images, mut questions, mut humans) = (Vec::new(), Vec::new(), Vec::new());
        let mut kept = Vec::with_capacity(examples.len());
        for (position, (example, image)) in examples.iter().zip(loaded).enumerate() {
            match image {
                Ok((image, _)) => {
                    self.budget.read();
                    kept.push(position);
                    images.push(image);
                    questions.push(example.question.clone());
                    humans.push(example.answers.clone());
                }
                Err(err) => self.budget.skip(err.to_string())?,
            }
        }
        let tokens =
            self.tokenizer
                .encode_padded(&questions, self.max_text_len, self.text_padding)?;
        let batch = HostVqaBatch {
            tokens,
            soft_targets: self.answers.soft_target_batch(&humans),
            num_answers: self.answers.len(),
        };
        Ok((batch, HostVisual::Images(images), kept))
    }
}

/// The official accuracy of `predictions` (normalised answers, one per
/// example), overall and per answer type, in percent.
pub fn accuracy(examples: &[VqaExample], predictions: &[String]) -> VqaAccuracy {
    VqaAccuracy::from_scores(
        examples
            .iter()
            .zip(predictions)
            .map(|(e, p)| (&e.answer_type, vqa_soft_score(p, &e.answers))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each epoch visits every example once; steps straddle epochs.
    #[test]
    fn steps_cover_each_epoch_once() {
        let first: Vec<usize> = (0..5).flat_map(|s| step_indices(10, 4, 7, s)).collect();
        let mut epoch0 = first[..10].to_vec();
        epoch0.sort_unstable();
        assert_eq!(epoch0, (0..10).collect::<Vec<_>>());
        let mut epoch1 = first[10..20].to_vec();
        epoch1.sort_unstable();
        assert_eq!(epoch1, (0..10).collect::<Vec<_>>());
        assert_ne!(first[..10], first[10..20], "each epoch is shuffled anew");
        assert_eq!(step_indices(10, 4, 7, 3), first[12..16]);
    }

    fn example(answers: &[&str], kind: &str) -> VqaExample {
        VqaExample {
            image: ImageRef::File(PathBuf::from("x.png")),
            question: "q".into(),
            answers: answers.iter().map(|a| a.to_string()).collect(),
            answer: answers[0].to_string(),
            answer_type: kind.into(),
        }
    }

    /// Ten humans of whom `m` agree give 30·m % (m < 4) or 100 %, averaged
    /// per type and overall (closed form of the official leave-one-out mean).
    #[test]
    fn accuracy_is_the_official_mean_per_type() {
        let mut two = vec!["2"; 2];
        two.extend(["3"; 8]);
        let examples = [
            example(&["yes"; 10], "yes/no"),
            example(&two, "number"),
            example(&["red"; 10], "other"),
        ];
        let predictions = ["yes", "2", "blue"].map(String::from);
        let accuracy = accuracy(&examples, &predictions);
        assert_eq!(accuracy.questions, 3);
        assert!((accuracy.per_answer_type["yes/no"] - 100.0).abs() < 1e-9);
        assert!((accuracy.per_answer_type["number"] - 60.0).abs() < 1e-4);
        assert!((accuracy.per_answer_type["other"] - 0.0).abs() < 1e-9);
        assert!((accuracy.accuracy - 160.0 / 3.0).abs() < 1e-4);
    }
}
