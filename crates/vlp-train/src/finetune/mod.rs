//! Fine-tuning pre-trained models on downstream tasks (survey §6): VQA,
//! and answering questions with the fine-tuned model.

pub mod answer;
pub mod vqa;
pub mod vqa_data;

pub use answer::VqaAnswerer;
pub use vqa::{
    AnswerExample, PreparedVqa, VqaFinetune, VqaReport, VqaRunInfo, VqaSettings, ANSWERS_FILE,
    ANSWER_EXAMPLES,
};
pub use vqa_data::{accuracy, VqaExample, VqaFiles};
