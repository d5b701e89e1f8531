//! The VQA accuracy as the official evaluation reports it (Antol et al.
//! 2015; `vqaEval.py` of the VQA API, used for VQA v2, Goyal et al. 2017):
//! per question from raw answers, then overall and per answer type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::source::normalize_answer;
use crate::vqa_soft_score;

/// The official accuracy of `prediction` given the raw human answers, in
/// `[0, 1]`: both have line breaks and tabs turned into spaces and are
/// trimmed; only when the human answers are not all identical are both
/// normalised ([`normalize_answer`]), as the official script does (so
/// "Two" scores 0 against ten "2"); then [`vqa_soft_score`].
pub fn vqa_accuracy<S: AsRef<str>>(prediction: &str, human_answers: &[S]) -> f32 {
    let clean = |answer: &str| answer.replace(['\n', '\t'], " ").trim().to_string();
    let humans: Vec<String> = human_answers.iter().map(|a| clean(a.as_ref())).collect();
    if humans.iter().all(|human| *human == humans[0]) {
        return vqa_soft_score(&clean(prediction), &humans);
    }
    let humans: Vec<String> = humans.iter().map(|human| normalize_answer(human)).collect();
    vqa_soft_score(&normalize_answer(prediction), &humans)
}

/// The accuracy of a set of questions as the official evaluation prints
/// it: the mean over questions × 100, overall and per answer type
/// (unrounded; the script rounds to 2 decimals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqaAccuracy {
    /// Overall accuracy in percent (0 when there is no question).
    pub accuracy: f64,
    /// Accuracy in percent of each answer type ("yes/no", "number",
    /// "other" in VQA v2).
    pub per_answer_type: BTreeMap<String, f64>,
    /// Questions scored.
    pub questions: usize,
}

impl VqaAccuracy {
    /// Gathers `(answer type, accuracy in [0, 1])` per question (e.g. from
    /// [`vqa_accuracy`]).
    pub fn from_scores<T: AsRef<str>>(scores: impl IntoIterator<Item = (T, f32)>) -> Self {
        let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        let (mut total, mut questions) = (0.0, 0);
        for (answer_type, score) in scores {
            let entry = sums.entry(answer_type.as_ref().to_string()).or_default();
            entry.0 += f64::from(score);
            entry.1 += 1;
            total += f64::from(score);
            questions += 1;
        }
        let percent = |sum: f64, count: usize| 100.0 * sum / count.max(1) as f64;
        Self {
            accuracy: percent(total, questions),
            per_answer_type: sums
                .into_iter()
                .map(|(answer_type, (sum, count))| (answer_type, percent(sum, count)))
                .collect(),
            questions,
        }
    }

    /// `VQA accuracy 97.52% over 4707 questions (number 95.00%, other 99.00%, yes/no 98.50%)`.
    pub fn summary(&self) -> String {
        let types: Vec<String> = self
            .per_answer_type
            .iter()
            .map(|(kind, accuracy)| format!("{kind} {accuracy:.2}%"))
            .collect();
        format!(
            "VQA accuracy {:.2}% over {} questions ({})",
            self.accuracy,
            self.questions,
            types.join(", ")
        )
    }
}
