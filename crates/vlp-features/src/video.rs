//! Video embeddings: a 2-D frame backbone applied to every frame, one vector
//! per frame, a frame-level projection, learned temporal positions and the
//! video modality's type embedding (ClipBERT/HERO-style frame features).

use burn::module::Param;
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;

use crate::grid::{GridEmbeddings, GridEmbeddingsConfig};
use crate::patch::{PatchEmbeddings, PatchEmbeddingsConfig};

/// Configuration of a [`FrameBackbone`].
#[derive(Config, Debug)]
pub enum FrameBackboneConfig {
    /// ViT patches; a frame is the mean of its patch tokens.
    Patch(PatchEmbeddingsConfig),
    /// ResNet grid cells; a frame is the mean of its cells.
    Grid(GridEmbeddingsConfig),
}

impl FrameBackboneConfig {
    /// Builds the extractor.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FrameBackbone<B> {
        match self {
            Self::Patch(config) => FrameBackbone::Patch(config.init(device)),
            Self::Grid(config) => FrameBackbone::Grid(config.init(device)),
        }
    }

    /// Width `D` of a frame vector.
    pub fn output_size(&self) -> usize {
        match self {
            Self::Patch(config) => config.hidden_size,
            Self::Grid(config) => config.hidden_size,
        }
    }
}

/// A 2-D extractor that turns each frame into one vector, `[N, C, H, W] →
/// [N, D]`, by mean-pooling its tokens. Patch frames drop the `[CLS]` token
/// first: before any transformer layer it is the same for every frame.
/// Checkpoint keys carry the variant name (`frame_backbone.Patch.…`), as
/// Burn's derive names enum modules.
// One value per model, built once: boxing the larger variant would save
// nothing that matters and would add a key-less indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FrameBackbone<B: Backend> {
    /// ViT patches; a frame is the mean of its patch tokens.
    Patch(PatchEmbeddings<B>),
    /// ResNet grid cells; a frame is the mean of its cells.
    Grid(GridEmbeddings<B>),
}

impl<B: Backend> FrameBackbone<B> {
    /// `[N, C, H, W] → [N, D]`.
    pub fn forward(&self, frames: Tensor<B, 4>) -> Tensor<B, 2> {
        let tokens = match self {
            Self::Patch(patch) => {
                let tokens = patch.forward(frames);
                let [n, len, d] = tokens.dims();
                tokens.slice([0..n, 1..len, 0..d])
            }
            Self::Grid(grid) => grid.forward(frames),
        };
        let [n, _, d] = tokens.dims();
        tokens.mean_dim(1).reshape([n, d])
    }
}

/// Configuration of [`VideoEmbeddings`].
#[derive(Config, Debug)]
pub struct VideoEmbeddingsConfig {
    /// The per-frame extractor.
    pub frame_backbone: FrameBackboneConfig,
    /// Width of the embeddings.
    pub hidden_size: usize,
    /// Longest clip (in frames) the temporal position table covers.
    #[config(default = 32)]
    pub max_frames: usize,
    /// LayerNorm epsilon (BERT's 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout after the LayerNorm.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `[B, T, C, H, W] → [B, T, H]`:
/// `LN(frame_projection(backbone(frame_t)) + temporal[t] + type) → dropout`.
#[derive(Module, Debug)]
pub struct VideoEmbeddings<B: Backend> {
    /// The per-frame extractor.
    pub frame_backbone: FrameBackbone<B>,
    /// `D → H`.
    pub frame_projection: Linear<B>,
    /// `[1, max_frames, H]`.
    pub temporal_position_embeddings: Param<Tensor<B, 3>>,
    /// `[1, 1, H]`: marks tokens as video tokens in a merged sequence.
    pub type_embedding: Param<Tensor<B, 3>>,
    /// LayerNorm over the sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm.
    pub dropout: Dropout,
}

/// What [`VideoEmbeddings::forward`] returns.
#[derive(Debug, Clone)]
pub struct VideoEmbeddingsOutput<B: Backend> {
    /// `[B, T, H]`; padded frames are embedded like the others.
    pub embeddings: Tensor<B, 3>,
    /// `[B, T]`, `true` at padded frames (the project's padding-mask
    /// convention, ready for an attention bias); all `false` when the caller
    /// gave none.
    pub padding: Tensor<B, 2, Bool>,
}

impl VideoEmbeddingsConfig {
    /// Builds the embeddings and the frame extractor.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VideoEmbeddings<B> {
        let hidden = self.hidden_size;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        VideoEmbeddings {
            frame_backbone: self.frame_backbone.init(device),
            frame_projection: LinearConfig::new(self.frame_backbone.output_size(), hidden)
                .init(device),
            temporal_position_embeddings: normal.init([1, self.max_frames, hidden], device),
            type_embedding: normal.init([1, 1, hidden], device),
            layer_norm: LayerNormConfig::new(hidden)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> VideoEmbeddings<B> {
    /// `clip` `[B, T, C, H, W]` and an optional `padding` `[B, T]` (`true` at
    /// padded frames) → embeddings `[B, T, H]` and the padding mask.
    ///
    /// # Panics
    ///
    /// If `T` exceeds `max_frames` or `padding` is not `[B, T]`.
    pub fn forward(
        &self,
        clip: Tensor<B, 5>,
        padding: Option<Tensor<B, 2, Bool>>,
    ) -> VideoEmbeddingsOutput<B> {
        let [batch, frames, channels, height, width] = clip.dims();
        let [_, max_frames, hidden] = self.temporal_position_embeddings.dims();
        assert!(
            frames <= max_frames,
            "clip of {frames} frames exceeds the {max_frames} temporal positions"
        );
        let device = clip.device();
        let padding = padding.unwrap_or_else(|| Tensor::full([batch, frames], false, &device));
        assert_eq!(
            padding.dims(),
            [batch, frames],
            "frame padding mask must be [batch, frames]"
        );
        let vectors =
            self.frame_backbone
                .forward(clip.reshape([batch * frames, channels, height, width]));
        let [_, size] = vectors.dims();
        let vectors = self
            .frame_projection
            .forward(vectors.reshape([batch, frames, size]));
        let positions = self
            .temporal_position_embeddings
            .val()
            .slice([0..1, 0..frames, 0..hidden]);
        let embeddings = vectors + positions + self.type_embedding.val();
        VideoEmbeddingsOutput {
            embeddings: self.dropout.forward(self.layer_norm.forward(embeddings)),
            padding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::{ResNetConfig, ResNetLayout};
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData};

    fn config(frame_backbone: FrameBackboneConfig) -> VideoEmbeddingsConfig {
        VideoEmbeddingsConfig::new(frame_backbone, 12)
            .with_max_frames(4)
            .with_dropout(0.0)
    }

    fn patch_config() -> VideoEmbeddingsConfig {
        config(FrameBackboneConfig::Patch(
            PatchEmbeddingsConfig::new(16, 8, 8).with_dropout(0.0),
        ))
    }

    #[test]
    fn one_embedding_per_frame_with_either_backbone() {
        let device = Default::default();
        let grid = FrameBackboneConfig::Grid(
            GridEmbeddingsConfig::new(
                ResNetConfig::new(ResNetLayout::ResNet18).with_base_width(8),
                8,
            )
            .with_dropout(0.0),
        );
        for (config, side) in [(patch_config(), 16), (config(grid), 32)] {
            let video = config.init::<NdArray>(&device);
            let clip =
                Tensor::<NdArray, 5>::random([2, 3, 3, side, side], Distribution::Default, &device);
            let output = video.forward(clip, None);
            assert_eq!(output.embeddings.dims(), [2, 3, 12]);
            let padding: Vec<bool> = output.padding.into_data().to_vec().unwrap();
            assert_eq!(padding, vec![false; 6]);
        }
    }

    #[test]
    fn the_padding_mask_is_carried_through() {
        let device = Default::default();
        let video = patch_config().init::<NdArray>(&device);
        let clip = Tensor::<NdArray, 5>::random([2, 3, 3, 16, 16], Distribution::Default, &device);
        let mask = [false, false, false, false, true, true];
        let padding =
            Tensor::<NdArray, 2, Bool>::from_data(TensorData::new(mask.to_vec(), [2, 3]), &device);
        let output = video.forward(clip, Some(padding));
        let carried: Vec<bool> = output.padding.into_data().to_vec().unwrap();
        assert_eq!(carried, mask.to_vec());
    }

    #[test]
    fn identical_frames_differ_only_by_their_time() {
        let device = Default::default();
        let mut video = patch_config().init::<NdArray>(&device);
        let frame = Tensor::<NdArray, 4>::random([1, 1, 3, 16, 16], Distribution::Default, &device)
            .reshape([1, 1, 3, 16, 16]);
        let clip = frame.repeat_dim(1, 3);
        let gap = |video: &VideoEmbeddings<NdArray>| {
            let out = video.forward(clip.clone(), None).embeddings;
            (out.clone().slice([0..1, 0..1, 0..12]) - out.slice([0..1, 2..3, 0..12]))
                .abs()
                .max()
                .into_scalar()
        };
        assert!(gap(&video) > 1e-3);
        video.temporal_position_embeddings = Param::from_tensor(Tensor::zeros([1, 4, 12], &device));
        assert!(gap(&video) < 1e-6);
    }
}
