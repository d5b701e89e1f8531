//! Answering questions about images with a fine-tuned VQA run (survey §6):
//! the run's model, tokenizer and answer vocabulary, one merged pass per
//! question, the answers ranked by the classifier's sigmoid; and the
//! official accuracy of the run on any split in the VQA v2 layout.

use std::path::Path;

use burn::prelude::*;
use vlp_data::image::{ImageSample, ImageSource, TransformMode};
use vlp_data::source::{CorruptBudget, SkipLimit};
use vlp_data::{AnswerVocabulary, HostVisual, TextPadding, TextTokenizer};
use vlp_objectives::UniterVqa;

use super::vqa::{score, vqa_model, VqaReport, ANSWERS_FILE};
use super::vqa_data::{read_examples, VqaFiles, VqaInputs};
use crate::checkpoint::{load_checkpoint, TOKENIZER_FILE};
use crate::error::{Result, TrainError};
use crate::run::run_config;

/// A fine-tuned VQA model, ready to answer.
pub struct VqaAnswerer<B: Backend> {
    inputs: VqaInputs,
    model: UniterVqa<B>,
}

impl<B: Backend> VqaAnswerer<B> {
    /// Loads the run folder a `finetune vqa` wrote; errors name the missing
    /// or unreadable file.
    pub fn load(run: &Path, device: &B::Device) -> Result<Self> {
        let config = run_config(run)?;
        let tokenizer = TextTokenizer::from_file(run.join(TOKENIZER_FILE))?;
        let path = run.join(ANSWERS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| TrainError::file(&path, err))?;
        let answers: Vec<String> =
            serde_json::from_str(&text).map_err(|err| TrainError::file(&path, err))?;
        let answers = AnswerVocabulary::new(answers)?;
        let model = vqa_model(&config, &tokenizer, &answers, None, config.seed, device)?;
        let model = load_checkpoint(model, run, device)?;
        let inputs = VqaInputs {
            tokenizer,
            max_text_len: config.data.max_text_len,
            text_padding: TextPadding::buckets(config.data.text_buckets),
            answers,
            pipeline: config.data.image_transform().init()?,
            budget: CorruptBudget::new(SkipLimit::default()),
        };
        Ok(Self { inputs, model })
    }

    /// The official accuracy (overall and per answer type) on every
    /// annotated question of `files`; unreadable images are skipped and
    /// counted, within the default budget.
    pub fn evaluate(&self, files: &VqaFiles, device: &B::Device) -> Result<VqaReport> {
        let examples = read_examples(files, &self.inputs.budget)?;
        if examples.is_empty() {
            return Err(TrainError::file(
                &files.questions,
                "no annotated question to evaluate on",
            ));
        }
        let (report, _) = score(
            &self.model,
            &self.inputs,
            &examples,
            &files.questions,
            device,
        )?;
        Ok(report)
    }

    /// The `k` most likely answers to `question` about the image file
    /// `image`, with the classifier's probability (sigmoid) of each.
    pub fn answer(
        &self,
        image: &Path,
        question: &str,
        k: usize,
        device: &B::Device,
    ) -> Result<Vec<(String, f32)>> {
        let sample = ImageSample {
            index: 0,
            image: ImageSource::File(image),
            caption: "",
        };
        let (pixels, _) = self.inputs.pipeline.load(&sample, TransformMode::Eval)?;
        let visual = HostVisual::Images(vec![pixels]).to_device::<B>(device);
        let tokens = self
            .inputs
            .tokenizer
            .encode(&[question.to_string()], self.inputs.max_text_len)?;
        let (ids, padding) = vlp_data::tokens_to_tensors::<B>(&tokens, device);
        let logits = self.model.logits(ids, padding, &visual);
        let probabilities: Vec<f32> = burn::tensor::activation::sigmoid(logits)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|err| TrainError::file(image, format!("answer scores: {err:?}")))?;
        let mut ranked: Vec<(String, f32)> = self
            .inputs
            .answers
            .answers()
            .iter()
            .cloned()
            .zip(probabilities)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
        Ok(ranked)
    }
}
