//! Captioning image files with a generative run (survey §6, image
//! captioning; SimVLM's PrefixLM and encoder-decoder models, §4): the run's
//! model, tokenizer and held-out image transform, greedy or beam-search
//! decoding from `[CLS]` with a length penalty, WordPiece pieces joined
//! into words.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use vlp_data::image::{ImagePipeline, ImageSample, ImageSource, TransformMode};
use vlp_data::{HostVisual, TextTokenizer};
use vlp_objectives::SimVlmPretrainer;

use crate::checkpoint::load_checkpoint;
use crate::config::{Architecture, PretrainConfig};
use crate::error::{ConfigError, Result};
use crate::eval::words;
use crate::inference::InferenceRun;

/// How captions are decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptionSettings {
    /// Beam hypotheses (1: greedy).
    pub beam_size: usize,
    /// α of the beam's ranking `log_prob / len^α` (0: probability alone;
    /// larger values favour longer captions).
    pub length_penalty: f64,
    /// Most tokens generated, `[SEP]` included.
    pub max_len: usize,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl CaptionSettings {
    /// What a run's held-out captioning uses (`caption_beam_size`,
    /// `caption_length_penalty`, `data.max_text_len`), 32 images per pass.
    pub fn of(config: &PretrainConfig) -> Self {
        Self {
            beam_size: config.caption_beam_size,
            length_penalty: config.caption_length_penalty,
            max_len: config.data.max_text_len,
            batch_size: 32,
        }
    }
}

/// A generative run's model, ready to caption images.
pub struct Captioner<B: Backend> {
    /// The run's own decoding settings.
    pub settings: CaptionSettings,
    tokenizer: TextTokenizer,
    pipeline: ImagePipeline,
    model: SimVlmPretrainer<B>,
}

impl<B: Backend> Captioner<B> {
    /// Loads a run folder of an `encoder_decoder` or `prefix_lm` model
    /// ([`InferenceRun::open`]); another architecture, or a run on region
    /// features, is an error naming `model.architecture` (`model.visual`).
    pub fn load(run: &Path, device: &B::Device) -> Result<Self> {
        let InferenceRun {
            config,
            tokenizer,
            pipeline,
            ..
        } = InferenceRun::open(run)?;
        generative(&config, run)?;
        let model = config
            .simvlm(tokenizer.vocab_size(), tokenizer.special())
            .init(device);
        Ok(Self {
            settings: CaptionSettings::of(&config),
            model: load_checkpoint(model, run, device)?,
            pipeline,
            tokenizer,
        })
    }

    /// One caption per image file, in order; an unreadable image is an
    /// error naming it.
    pub fn caption(
        &self,
        images: &[PathBuf],
        settings: &CaptionSettings,
        device: &B::Device,
    ) -> Result<Vec<String>> {
        if settings.beam_size == 0 || settings.max_len < 2 || settings.batch_size == 0 {
            return Err(ConfigError::invalid(
                "caption",
                "beam size and batch size must be >= 1 and the length >= 2",
            )
            .into());
        }
        let mut captions = Vec::with_capacity(images.len());
        for chunk in images.chunks(settings.batch_size) {
            let pixels = chunk
                .iter()
                .map(|path| {
                    let sample = ImageSample {
                        index: 0,
                        image: ImageSource::File(path),
                        caption: "",
                    };
                    Ok(self.pipeline.load(&sample, TransformMode::Eval)?.0)
                })
                .collect::<Result<Vec<_>>>()?;
            let visual = HostVisual::Images(pixels).to_device::<B>(device);
            let generated = self.model.caption(
                &visual,
                settings.max_len,
                settings.beam_size,
                settings.length_penalty,
            );
            captions.extend(
                generated
                    .iter()
                    .map(|ids| words(&self.tokenizer, ids).join(" ")),
            );
        }
        Ok(captions)
    }
}

/// Errors unless the run folder `run`'s `config` is a generative model
/// (`encoder_decoder` or `prefix_lm`), naming `model.architecture`.
pub fn generative(config: &PretrainConfig, run: &Path) -> Result<()> {
    match config.model.architecture {
        Architecture::EncoderDecoder { .. } | Architecture::PrefixLm {} => Ok(()),
        _ => Err(ConfigError::invalid(
            "model.architecture",
            format!(
                "model.architecture is {} in {}: captioning needs an encoder_decoder or \
                 prefix_lm model",
                config.model.architecture.name(),
                run.display()
            ),
        )
        .into()),
    }
}
