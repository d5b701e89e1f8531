//! HERO (Li et al., EMNLP 2020; survey §3.1's video-language models, §4.7
//! frame order modelling): a cross-modal transformer over the caption and
//! every frame's tokens, then a temporal transformer over the frames.
//!
//! The cross-modal transformer is single-stream (as UNITER): caption tokens
//! and the clip's patch tokens ([`vlp_features::FramePatchEmbeddings`]) in
//! one sequence, so the frames attend to the caption. Each frame's outputs
//! are mean-pooled into one vector, and the temporal transformer reads the
//! frame vectors in order with learned temporal positions: it is where the
//! model compares frames. In the fused pass the caption's `[CLS]` output leads the temporal
//! sequence (no position), and the pooler reads its temporal output, so a
//! video-text match is decided after the frames were compared.
//!
//! Text and video also pass alone (the caption, or the clip, through the
//! cross-modal stack; the clip then through the temporal stack), which
//! gives contrastive embeddings and fast retrieval, as
//! [`crate::SingleStreamModel`] does for images.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use vlp_data::VisualBatch;
use vlp_features::{TextEmbeddings, VisualEmbeddings, VisualEmbeddingsConfig, VisualTokens};

use crate::config_error::{or_panic, ConfigError};
use crate::encoder::TransformerEncoder;
use crate::pooler::{Pooler, PoolerConfig};
use crate::size::{init_one_stack, validate_one_stack, TransformerSize};

/// Configuration of [`HeroModel`]. HERO's published sizes are a 6-layer
/// cross-modal and a 3-layer temporal transformer, 768 wide (12 heads,
/// FFN 3072); the defaults are a tiny model for the synthetic clips.
#[derive(Config, Debug)]
pub struct HeroConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The frame tokens: [`VisualEmbeddingsConfig::Frames`] (per-frame
    /// patches with spatial and temporal positions), as wide as the stacks.
    pub visual: VisualEmbeddingsConfig,
    /// The cross-modal transformer over `[caption; frame tokens]`: 128
    /// wide, 4 heads, inner 512, 3 layers, pre-norm.
    #[config(default = "TransformerSize::new().with_num_layers(3)")]
    pub cross_modal: TransformerSize,
    /// The temporal transformer over the frame vectors: 2 layers of the
    /// cross-modal width.
    #[config(default = "TransformerSize::new().with_num_layers(2)")]
    pub temporal: TransformerSize,
    /// Longest text the position table covers.
    #[config(default = 64)]
    pub max_text_len: usize,
}

/// Text embeddings, frame tokens, the cross-modal and temporal stacks, and
/// the pooler of the fused pass.
#[derive(Module, Debug)]
pub struct HeroModel<B: Backend> {
    /// Text embeddings.
    pub embeddings: TextEmbeddings<B>,
    /// The frame tokens.
    pub visual: VisualEmbeddings<B>,
    /// The cross-modal transformer.
    pub cross_modal: TransformerEncoder<B>,
    /// `[1, max_frames, H]`: the temporal stack's frame positions.
    pub frame_position_embeddings: Param<Tensor<B, 3>>,
    /// The temporal transformer.
    pub temporal: TransformerEncoder<B>,
    /// Pools the temporal output of the caption's `[CLS]`.
    pub pooler: Pooler<B>,
}

/// Output of the fused pass.
#[derive(Debug, Clone)]
pub struct HeroOutput<B: Backend> {
    /// `[B, L, H]` caption tokens out of the cross-modal stack.
    pub text: Tensor<B, 3>,
    /// `[B, T, H]` frames out of the temporal stack.
    pub frames: Tensor<B, 3>,
    /// `[B, H]` pooled temporal output of the caption's `[CLS]`.
    pub pooled: Tensor<B, 2>,
}

impl HeroConfig {
    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let VisualEmbeddingsConfig::Frames(frames) = &self.visual else {
            return Err(ConfigError::new(
                "visual",
                "not frames",
                "HERO reads clips: the visual tokens must be frame patches",
            ));
        };
        validate_one_stack(&self.visual, &self.cross_modal)?;
        self.temporal.validate("temporal")?;
        if self.temporal.hidden_size != self.cross_modal.hidden_size {
            return Err(ConfigError::new(
                "temporal.hidden_size",
                self.temporal.hidden_size,
                format!(
                    "the temporal stack reads the cross-modal outputs: it must be \
                     cross_modal.hidden_size = {} wide",
                    self.cross_modal.hidden_size
                ),
            ));
        }
        if let Err(err) = frames.validate() {
            return Err(ConfigError::new(
                "visual.time_kernel",
                frames.time_kernel,
                err.to_string(),
            ));
        }
        if frames.max_frames == 0 {
            return Err(ConfigError::new(
                "visual.max_frames",
                0,
                "a clip has at least one frame",
            ));
        }
        Ok(())
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> HeroModel<B> {
        or_panic(self.validate());
        let VisualEmbeddingsConfig::Frames(frames) = &self.visual else {
            unreachable!("validated: frame patches")
        };
        let (embeddings, visual, cross_modal) = init_one_stack(
            self.vocab_size,
            self.max_text_len,
            &self.visual,
            &self.cross_modal,
            device,
        );
        let hidden = self.cross_modal.hidden_size;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        HeroModel {
            embeddings,
            visual,
            cross_modal,
            frame_position_embeddings: normal.init([1, frames.max_frames, hidden], device),
            temporal: self.temporal.encoder(self.temporal.layer()).init(device),
            pooler: PoolerConfig::new(hidden).init(device),
        }
    }
}

impl<B: Backend> HeroModel<B> {
    /// `[B, L]` ids → `[B, L, H]` text embeddings.
    pub fn embed_text(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embeddings.forward(ids)
    }

    /// Clips `[B, T, C, S, S]` → `[B, 1 + T·P, H]` frame tokens.
    pub fn embed_video(&self, visual: &VisualBatch<B>) -> VisualTokens<B> {
        self.visual.forward(visual)
    }

    /// The caption alone through the cross-modal stack: `[B, L, H]`.
    pub fn encode_text(&self, text: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        self.cross_modal.forward(text, Some(padding))
    }

    /// The clip alone through the cross-modal stack, one vector per frame:
    /// `[B, T, H]` for a clip of `frames` frames.
    pub fn encode_frames(&self, video: VisualTokens<B>, frames: usize) -> Tensor<B, 3> {
        frame_means(
            self.cross_modal.forward(video.tokens, video.padding),
            frames,
        )
    }

    /// Frame vectors `[B, T, H]` with their temporal positions through the
    /// temporal stack, after the `lead` tokens `[B, K, H]` when given:
    /// `[B, K + T, H]`.
    pub fn temporal(&self, frames: Tensor<B, 3>, lead: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let [_, count, hidden] = frames.dims();
        let [_, max_frames, _] = self.frame_position_embeddings.dims();
        assert!(
            count <= max_frames,
            "clip of {count} frames exceeds the {max_frames} frame positions"
        );
        let positions = self
            .frame_position_embeddings
            .val()
            .slice([0..1, 0..count, 0..hidden]);
        let sequence = match lead {
            None => frames + positions,
            Some(lead) => Tensor::cat(vec![lead, frames + positions], 1),
        };
        self.temporal.forward(sequence, None)
    }

    /// The clip alone, cross-modal then temporal: `[B, T, H]`.
    pub fn encode_video(&self, visual: &VisualBatch<B>) -> Tensor<B, 3> {
        let frames = clip_frames(visual);
        let video = self.embed_video(visual);
        self.temporal(self.encode_frames(video, frames), None)
    }

    /// The fused pass: `[caption; frame tokens]` through the cross-modal
    /// stack, then `[caption [CLS]; frames]` through the temporal stack.
    pub fn fuse(
        &self,
        text: Tensor<B, 3>,
        padding: Tensor<B, 2, Bool>,
        video: VisualTokens<B>,
        frames: usize,
    ) -> HeroOutput<B> {
        let [batch, text_len, _] = text.dims();
        let [_, video_len, _] = video.tokens.dims();
        let video_padding = match video.padding {
            Some(padding) => padding.int(),
            None => Tensor::<B, 2, Int>::zeros([batch, video_len], &text.device()),
        };
        // Concatenated as integers: backends may store bools created in
        // different ways with different dtypes, which `cat` rejects.
        let padding = Tensor::cat(vec![padding.int(), video_padding], 1).bool();
        let hidden_states = self
            .cross_modal
            .forward(Tensor::cat(vec![text, video.tokens], 1), Some(padding));
        let text = hidden_states.clone().narrow(1, 0, text_len);
        let video = frame_means(hidden_states.narrow(1, text_len, video_len), frames);
        let cls = text.clone().narrow(1, 0, 1);
        let temporal = self.temporal(video, Some(cls));
        let pooled = self.pooler.forward(temporal.clone());
        HeroOutput {
            text,
            frames: temporal.narrow(1, 1, frames),
            pooled,
        }
    }
}

/// Frames of the clips in `visual` (`[B, T, C, S, S]`).
///
/// # Panics
/// If `visual` holds images or regions, not clips.
pub fn clip_frames<B: Backend>(visual: &VisualBatch<B>) -> usize {
    match visual {
        VisualBatch::Clips(clips) => clips.dims()[1],
        _ => panic!("HERO reads clips, not images or regions"),
    }
}

/// `[B, 1 + T·P, H]` frame tokens (`[CLS]` first, then frame by frame) →
/// `[B, T, H]`, the mean of each frame's `P` tokens.
fn frame_means<B: Backend>(tokens: Tensor<B, 3>, frames: usize) -> Tensor<B, 3> {
    let [batch, len, hidden] = tokens.dims();
    let per_frame = (len - 1) / frames;
    tokens
        .narrow(1, 1, frames * per_frame)
        .reshape([batch, frames, per_frame, hidden])
        .mean_dim(2)
        .reshape([batch, frames, hidden])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use vlp_features::{FramePatchEmbeddingsConfig, PatchEmbeddingsConfig};

    type B = NdArray;

    fn config() -> HeroConfig {
        let patches = PatchEmbeddingsConfig::new(16, 8, 16).with_dropout(0.0);
        let frames = FramePatchEmbeddingsConfig::new(patches).with_max_frames(4);
        HeroConfig::new(20, VisualEmbeddingsConfig::Frames(frames))
            .with_cross_modal(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
            .with_temporal(TransformerSize::of(16, 2, 32, 1).with_dropout(0.0))
    }

    fn model() -> HeroModel<B> {
        B::seed(&Default::default(), 3);
        config().init(&Default::default())
    }

    fn clips(seed: u64) -> Tensor<B, 5> {
        vlp_test_support::uniform([2, 3, 3, 16, 16], seed, &Default::default())
    }

    fn text() -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
        let device = Default::default();
        let ids = Tensor::from_data(
            TensorData::new(vec![1i64, 5, 6, 2, 1, 7, 2, 0], [2, 4]),
            &device,
        );
        let padding = Tensor::from_data(
            TensorData::new(
                vec![false, false, false, false, false, false, false, true],
                [2, 4],
            ),
            &device,
        );
        (ids, padding)
    }

    fn gap(a: Tensor<B, 2>, b: Tensor<B, 2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    fn fused(model: &HeroModel<B>, ids: Tensor<B, 2, Int>, clip: Tensor<B, 5>) -> HeroOutput<B> {
        let (_, padding) = text();
        let video = model.embed_video(&VisualBatch::Clips(clip));
        model.fuse(model.embed_text(ids), padding, video, 3)
    }

    #[test]
    fn the_match_reads_the_caption_and_the_order_of_the_frames() {
        let model = model();
        let (ids, _) = text();
        let clip = clips(1);
        let out = fused(&model, ids.clone(), clip.clone());
        assert_eq!(out.text.dims(), [2, 4, 16]);
        assert_eq!(out.frames.dims(), [2, 3, 16]);
        assert_eq!(out.pooled.dims(), [2, 16]);
        // Frames attend to the caption: another caption, other frames.
        let other_ids = ids.clone().mask_fill(ids.clone().equal_elem(5), 9);
        let other = fused(&model, other_ids, clip.clone());
        let frame = |o: &HeroOutput<B>| o.frames.clone().slice([0..1, 0..3]).reshape([3, 16]);
        assert!(gap(frame(&out), frame(&other)) > 1e-4);
        // The pooled match changes when the frames play backwards.
        let reversed = clip.flip([1]);
        let backwards = fused(&model, ids, reversed);
        assert!(gap(out.pooled, backwards.pooled) > 1e-4);
    }

    #[test]
    fn the_video_pass_needs_frames_of_the_stack_width() {
        let patches = PatchEmbeddingsConfig::new(16, 8, 16).with_dropout(0.0);
        let images = HeroConfig::new(20, VisualEmbeddingsConfig::Patches(patches));
        assert_eq!(images.validate().unwrap_err().key, "visual");
        let narrow = config().with_temporal(TransformerSize::of(8, 2, 32, 1));
        assert_eq!(narrow.validate().unwrap_err().key, "temporal.hidden_size");
        let mut even = config();
        if let VisualEmbeddingsConfig::Frames(frames) = &mut even.visual {
            frames.time_kernel = 2;
        }
        assert_eq!(even.validate().unwrap_err().key, "visual.time_kernel");
        let model = model();
        let clip = VisualBatch::Clips(clips(2));
        assert_eq!(clip_frames(&clip), 3);
        assert_eq!(model.encode_video(&clip).dims(), [2, 3, 16]);
    }
}
