//! Fine-tuning pre-trained models on downstream tasks (survey §6): VQA.

pub mod vqa;
pub mod vqa_data;

pub use vqa::{PreparedVqa, VqaFinetune, VqaReport, VqaRunInfo, VqaSettings, ANSWERS_FILE};
pub use vqa_data::{VqaAccuracy, VqaExample, VqaFiles};
