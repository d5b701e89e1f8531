//! VQA v2 soft scores and the multi-label answer targets VQA heads are
//! trained on (binary cross-entropy against these scores).

use std::collections::HashMap;

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::DataError;

/// The VQA v2 accuracy of `answer` given the human answers (ten in VQA v2),
/// as the official evaluation computes it: for each human, `min(1, number of
/// the other humans who gave answer / 3)`, averaged over the humans (the
/// average over all subsets of nine). With ten humans of whom `m` agree this
/// is 0, 0.3, 0.6, 0.9, 1 for `m` = 0, 1, 2, 3, ≥ 4, slightly below the
/// paper's `min(1, m / 3)`. Answers are compared as given: normalise them
/// (case, punctuation, number words, articles) beforehand. No human answers
/// score 0.
pub fn vqa_soft_score<S: AsRef<str>>(answer: &str, human_answers: &[S]) -> f32 {
    if human_answers.is_empty() {
        return 0.0;
    }
    let agreeing = human_answers
        .iter()
        .filter(|human| human.as_ref() == answer)
        .count();
    let total: f32 = human_answers
        .iter()
        .map(|human| {
            let others = agreeing - usize::from(human.as_ref() == answer);
            (others as f32 / 3.0).min(1.0)
        })
        .sum();
    total / human_answers.len() as f32
}

/// The answers a VQA head classifies over (in VQA v2, the frequent answers
/// of the training split), each with its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerVocabulary {
    answers: Vec<String>,
    index: HashMap<String, usize>,
}

impl AnswerVocabulary {
    /// A vocabulary of `answers` in the given order; a repeated answer is an
    /// error naming it.
    pub fn new(answers: Vec<String>) -> Result<Self, DataError> {
        let mut index = HashMap::with_capacity(answers.len());
        for (i, answer) in answers.iter().enumerate() {
            if let Some(first) = index.insert(answer.clone(), i) {
                return Err(DataError::AnswerVocabulary(format!(
                    "answer {answer:?} appears at {first} and {i}"
                )));
            }
        }
        Ok(Self { answers, index })
    }

    /// The synthetic world's answers ([`crate::synthetic::answer_vocabulary`]).
    pub fn synthetic() -> Self {
        Self::new(crate::synthetic::answer_vocabulary())
            .expect("the synthetic world's answers are distinct")
    }

    /// `A`.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether the vocabulary has no answer.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The answers, by index.
    pub fn answers(&self) -> &[String] {
        &self.answers
    }

    /// Index of `answer`, if it is in the vocabulary.
    pub fn index_of(&self, answer: &str) -> Option<usize> {
        self.index.get(answer).copied()
    }

    /// `[A]` the [`vqa_soft_score`] of every answer of the vocabulary given the
    /// human answers; answers outside the vocabulary are dropped (their
    /// questions can still be scored, never fully learnt). One known answer
    /// (the synthetic world's questions) is ten agreeing humans:
    /// `vec![answer; 10]`.
    pub fn soft_targets<S: AsRef<str>>(&self, human_answers: &[S]) -> Vec<f32> {
        let mut targets = vec![0.0; self.len()];
        for human in human_answers {
            if let Some(i) = self.index_of(human.as_ref()) {
                targets[i] = vqa_soft_score(human.as_ref(), human_answers);
            }
        }
        targets
    }

    /// `[B, A]` soft targets of a batch of questions, row-major.
    pub fn soft_target_batch<S: AsRef<str>>(&self, human_answers: &[Vec<S>]) -> Vec<f32> {
        human_answers
            .iter()
            .flat_map(|humans| self.soft_targets(humans))
            .collect()
    }

    /// [`Self::soft_target_batch`] as a `[B, A]` tensor.
    pub fn soft_target_tensor<B: Backend, S: AsRef<str>>(
        &self,
        human_answers: &[Vec<S>],
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let values = self.soft_target_batch(human_answers);
        Tensor::from_data(
            TensorData::new(values, [human_answers.len(), self.len()]),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn humans(counts: &[(&str, usize)]) -> Vec<String> {
        counts
            .iter()
            .flat_map(|&(answer, n)| std::iter::repeat_n(answer.to_string(), n))
            .collect()
    }

    #[test]
    fn scores_average_over_the_ten_subsets_of_nine() {
        // Ten humans: "no" ×5, "yes" ×3, "red" ×1, "maybe" ×1.
        let ten = humans(&[("no", 5), ("yes", 3), ("red", 1), ("maybe", 1)]);
        // "yes": its 3 givers each see 2 others (2/3), the 7 others see 3
        // (1): (3·2/3 + 7) / 10 = 0.9.
        assert!((vqa_soft_score("yes", &ten) - 0.9).abs() < 1e-6);
        // "red": its giver sees none (0), the 9 others see 1 (1/3): 0.3.
        assert!((vqa_soft_score("red", &ten) - 0.3).abs() < 1e-6);
        // "no": 5 givers see 4 (1), 5 others see 5 (1): 1.
        assert!((vqa_soft_score("no", &ten) - 1.0).abs() < 1e-6);
        assert_eq!(vqa_soft_score("blue", &ten), 0.0);
        // Two agreeing: (2·1/3 + 8·2/3) / 10 = 0.6.
        let two = humans(&[("two", 2), ("three", 8)]);
        assert!((vqa_soft_score("two", &two) - 0.6).abs() < 1e-6);
        assert_eq!(vqa_soft_score("two", &Vec::<String>::new()), 0.0);
    }

    #[test]
    fn targets_hold_each_vocabulary_answers_score() {
        let vocabulary =
            AnswerVocabulary::new(["yes", "no", "red", "blue"].map(String::from).to_vec()).unwrap();
        let ten = humans(&[("no", 5), ("yes", 3), ("red", 1), ("maybe", 1)]);
        let targets = vocabulary.soft_targets(&ten);
        for (target, expected) in targets.iter().zip([0.9, 1.0, 0.3, 0.0]) {
            assert!((target - expected).abs() < 1e-6, "{targets:?}");
        }
        let single = vec!["blue".to_string(); 10];
        let batch =
            vocabulary.soft_target_tensor::<NdArray, _>(&[ten, single], &Default::default());
        assert_eq!(batch.dims(), [2, 4]);
        let values: Vec<f32> = batch.into_data().to_vec().unwrap();
        assert_eq!(values[4..], [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn repeated_answers_are_an_error_and_the_world_has_its_vocabulary() {
        let error =
            AnswerVocabulary::new(["yes", "no", "yes"].map(String::from).to_vec()).unwrap_err();
        assert!(error.to_string().contains("\"yes\""), "{error}");
        let world = AnswerVocabulary::synthetic();
        assert_eq!(world.answers(), crate::synthetic::answer_vocabulary());
        assert_eq!(world.index_of("yes"), Some(world.len() - 2));
    }
}
