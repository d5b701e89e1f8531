//! VQA v2 (Goyal et al. 2017, "Making the V in VQA Matter"): a questions
//! file and an annotations file with ten human answers per question,
//! images named from their COCO id; answers normalised as the official
//! evaluation does, the answer vocabulary taken from the training split's
//! frequent answers (as in Anderson et al. 2018's bottom-up attention VQA).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{
    normalize_answer, read_json, CorruptBudget, ImageRef, Sample, SampleList, VqaQuestion,
};
use crate::vqa_targets::AnswerVocabulary;
use crate::DataError;

/// COCO's image file names in VQA v2 (`COCO_train2014_000000000009.jpg`).
pub const COCO_IMAGE_PATTERN: &str = "COCO_{split}2014_{image_id:012}.jpg";

#[derive(Deserialize)]
struct QuestionsFile {
    questions: Vec<RawQuestion>,
}

#[derive(Deserialize)]
struct RawQuestion {
    image_id: u64,
    question: String,
    question_id: u64,
}

#[derive(Deserialize)]
struct AnnotationsFile {
    annotations: Vec<RawAnnotation>,
}

#[derive(Deserialize)]
struct RawAnnotation {
    question_id: u64,
    image_id: u64,
    answers: Vec<RawAnswer>,
    multiple_choice_answer: String,
    #[serde(default)]
    answer_type: Option<String>,
}

#[derive(Deserialize)]
struct RawAnswer {
    answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Split,
    ImageId { width: usize },
}

/// An image file name made from a split and an image id: `{split}`,
/// `{image_id}` and `{image_id:0N}` (zero-padded to N digits) are replaced,
/// the rest is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern {
    pattern: String,
    pieces: Vec<Piece>,
}

impl ImagePattern {
    /// Parses `pattern`; an unknown or unclosed `{...}` is an error naming it.
    pub fn parse(pattern: &str) -> Result<Self, DataError> {
        let error = |reason: String| DataError::ImagePattern {
            pattern: pattern.to_string(),
            reason,
        };
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            pieces.push(Piece::Text(rest[..open].to_string()));
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| error("a `{` is not closed".to_string()))?;
            let name = &rest[open + 1..open + close];
            pieces.push(match name {
                "split" => Piece::Split,
                "image_id" => Piece::ImageId { width: 0 },
                _ => match name.strip_prefix("image_id:0").map(str::parse) {
                    Some(Ok(width)) => Piece::ImageId { width },
                    _ => {
                        return Err(error(format!(
                        "unknown field {{{name}}}: use {{split}}, {{image_id}} or {{image_id:0N}}"
                    )))
                    }
                },
            });
            rest = &rest[open + close + 1..];
        }
        pieces.push(Piece::Text(rest.to_string()));
        Ok(Self {
            pattern: pattern.to_string(),
            pieces,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The file name of image `image_id` of `split`.
    pub fn file_name(&self, split: &str, image_id: u64) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Split => split.to_string(),
                Piece::ImageId { width } => format!("{image_id:0width$}"),
            })
            .collect()
    }
}

/// How a VQA v2 split is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vqa2Options {
    /// The split's name in image file names (`train`, `val`).
    pub split: String,
    /// The image file names ([`COCO_IMAGE_PATTERN`] by default).
    pub image_pattern: ImagePattern,
}

impl Vqa2Options {
    /// COCO's naming for `split`.
    pub fn coco(split: &str) -> Self {
        Self {
            split: split.to_string(),
            image_pattern: ImagePattern::parse(COCO_IMAGE_PATTERN)
                .expect("the COCO pattern parses"),
        }
    }
}

/// The images of a VQA v2 questions file, each with its questions (in file
/// order), images under `images` named by `options`. With `annotations`,
/// each question gets its normalised human answers and majority answer; a
/// question without an annotation (or whose annotation names another image)
/// is skipped and counted in `budget`. Without (the test split), questions
/// have no answers. Files that do not parse are errors naming the file and
/// the key.
pub fn read_vqa2(
    questions: &Path,
    annotations: Option<&Path>,
    images: &Path,
    options: &Vqa2Options,
    budget: &CorruptBudget,
) -> Result<SampleList, DataError> {
    let file: QuestionsFile = read_json(questions)?;
    let mut answers: HashMap<u64, RawAnnotation> = match annotations {
        Some(path) => read_json::<AnnotationsFile>(path)?
            .annotations
            .into_iter()
            .map(|annotation| (annotation.question_id, annotation))
            .collect(),
        None => HashMap::new(),
    };
    let mut samples: Vec<Sample> = Vec::new();
    let mut by_image: HashMap<u64, usize> = HashMap::new();
    for raw in file.questions {
        let (answer, humans, answer_type) = match (annotations, answers.remove(&raw.question_id)) {
            (None, _) => (None, Vec::new(), None),
            (Some(_), Some(annotation)) if annotation.image_id == raw.image_id => (
                Some(normalize_answer(&annotation.multiple_choice_answer)),
                annotation
                    .answers
                    .iter()
                    .map(|a| normalize_answer(&a.answer))
                    .collect(),
                annotation.answer_type,
            ),
            (Some(path), found) => {
                budget.skip(format!(
                    "{} question {}: {}",
                    path.display(),
                    raw.question_id,
                    match found {
                        Some(other) => format!(
                            "annotated for image {}, asked of image {}",
                            other.image_id, raw.image_id
                        ),
                        None => "no annotation".to_string(),
                    }
                ))?;
                continue;
            }
        };
        let at = *by_image.entry(raw.image_id).or_insert_with(|| {
            let name = options
                .image_pattern
                .file_name(&options.split, raw.image_id);
            samples.push(Sample {
                key: raw.image_id.to_string(),
                image: ImageRef::File(images.join(name)),
                captions: Vec::new(),
                questions: Vec::new(),
            });
            samples.len() - 1
        });
        samples[at].questions.push(VqaQuestion {
            id: raw.question_id.to_string(),
            question: raw.question,
            answer,
            answers: humans,
            answer_type,
        });
    }
    Ok(SampleList::new(questions.to_path_buf(), samples))
}

/// The answers among `answers` (the training questions' normalised
/// majority answers, [`VqaQuestion::answer`]) that at least `min_count`
/// questions have, most frequent first, ties in alphabetical order. None
/// reaching `min_count` is an error.
pub fn answer_vocabulary<'a>(
    answers: impl IntoIterator<Item = &'a str>,
    min_count: usize,
) -> Result<AnswerVocabulary, DataError> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for answer in answers {
        *counts.entry(answer).or_default() += 1;
    }
    let mut frequent: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|&(_, count)| count >= min_count)
        .collect();
    if frequent.is_empty() {
        return Err(DataError::AnswerVocabulary(format!(
            "no answer occurs {min_count} times"
        )));
    }
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    AnswerVocabulary::new(frequent.into_iter().map(|(a, _)| a.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_vocabulary_keeps_frequent_answers_most_frequent_first() {
        let answers = ["no", "two", "yes", "no", "yes", "red", "two", "no", "blue"];
        let vocabulary = answer_vocabulary(answers, 2).unwrap();
        assert_eq!(vocabulary.answers(), ["no", "two", "yes"]);
        let err = answer_vocabulary(answers, 4).unwrap_err().to_string();
        assert!(err.contains("no answer occurs 4 times"), "{err}");
    }

    #[test]
    fn image_patterns_pad_the_id() {
        let coco = Vqa2Options::coco("val").image_pattern;
        assert_eq!(coco.file_name("val", 42), "COCO_val2014_000000000042.jpg");
        let plain = ImagePattern::parse("{image_id}.png").unwrap();
        assert_eq!(plain.file_name("train", 42), "42.png");
        let error = ImagePattern::parse("{id}.jpg").unwrap_err().to_string();
        assert!(error.contains("{id}"), "{error}");
        assert!(ImagePattern::parse("img_{image_id").is_err());
    }
}
