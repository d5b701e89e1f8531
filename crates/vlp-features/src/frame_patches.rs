//! Spatio-temporal patch tokens of a clip (survey §2.1.2's video features
//! with spatial tokens per frame; ViViT's and TimeSformer's factorised
//! positions): every frame is cut into ViT patches, each patch token gets
//! its spatial position and its frame's temporal position, and the tokens
//! of all frames form one sequence after a single `[CLS]`. Unlike
//! [`crate::VideoEmbeddings`] (one pooled vector per frame) the tokens keep
//! where things are in each frame, so motion is visible to the layers above.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;

use crate::patch::{PatchEmbeddings, PatchEmbeddingsConfig};

/// Configuration of [`FramePatchEmbeddings`].
#[derive(Config, Debug)]
pub struct FramePatchEmbeddingsConfig {
    /// The per-frame patches (image size, patch size, width, dropout).
    pub patches: PatchEmbeddingsConfig,
    /// Longest clip (in frames) the temporal position table covers.
    #[config(default = 32)]
    pub max_frames: usize,
}

/// `[B, T, C, S, S] → [B, 1 + T·P, H]`: `[CLS]`, then frame by frame the
/// `P` patch tokens `patch + spatial[p] + temporal[t] + type`.
#[derive(Module, Debug)]
pub struct FramePatchEmbeddings<B: Backend> {
    /// Patch projection, `[CLS]`, spatial positions, type embedding.
    pub patches: PatchEmbeddings<B>,
    /// `[1, max_frames, H]`.
    pub temporal_position_embeddings: Param<Tensor<B, 3>>,
}

impl FramePatchEmbeddingsConfig {
    /// Width of the tokens.
    pub fn hidden_size(&self) -> usize {
        self.patches.hidden_size
    }

    /// Builds the embeddings.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FramePatchEmbeddings<B> {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        FramePatchEmbeddings {
            patches: self.patches.init(device),
            temporal_position_embeddings: normal
                .init([1, self.max_frames, self.hidden_size()], device),
        }
    }
}

impl<B: Backend> FramePatchEmbeddings<B> {
    /// `clip` `[B, T, C, S, S]` → tokens `[B, 1 + T·P, H]`.
    ///
    /// # Panics
    /// If `T` exceeds `max_frames`, or a side is not a whole number of patches.
    pub fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 3> {
        let [batch, frames, channels, height, width] = clip.dims();
        let [_, max_frames, hidden] = self.temporal_position_embeddings.dims();
        assert!(
            frames <= max_frames,
            "clip of {frames} frames exceeds the {max_frames} temporal positions"
        );
        // Per frame: [CLS] + P patches, spatial positions and type added.
        let tokens = self
            .patches
            .forward(clip.reshape([batch * frames, channels, height, width]));
        let [_, per_frame, _] = tokens.dims();
        let patches = per_frame - 1;
        let tokens = tokens.reshape([batch, frames, per_frame, hidden]);
        let cls = tokens
            .clone()
            .slice([0..batch, 0..1, 0..1, 0..hidden])
            .reshape([batch, 1, hidden]);
        let temporal = self
            .temporal_position_embeddings
            .val()
            .slice([0..1, 0..frames, 0..hidden])
            .reshape([1, frames, 1, hidden]);
        let patches = (tokens.slice([0..batch, 0..frames, 1..per_frame, 0..hidden]) + temporal)
            .reshape([batch, frames * patches, hidden]);
        Tensor::cat(vec![cls, patches], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn embeddings() -> FramePatchEmbeddings<NdArray> {
        <NdArray as Backend>::seed(&Default::default(), 5);
        let patches = PatchEmbeddingsConfig::new(16, 8, 12).with_dropout(0.0);
        FramePatchEmbeddingsConfig::new(patches)
            .with_max_frames(4)
            .init(&Default::default())
    }

    #[test]
    fn each_frame_gives_its_patches_with_spatial_and_temporal_positions() {
        let device = Default::default();
        let video = embeddings();
        let clip = vlp_test_support::uniform::<NdArray, 5>([2, 3, 3, 16, 16], 7, &device);
        let tokens = video.forward(clip.clone());
        assert_eq!(tokens.dims(), [2, 1 + 3 * 4, 12]);
        // Frame 1's tokens are its image's patch tokens plus temporal[1].
        let frame = clip.slice([1..2, 1..2]).reshape([1, 3, 16, 16]);
        let image = video.patches.forward(frame).slice([0..1, 1..5]);
        let temporal = video
            .temporal_position_embeddings
            .val()
            .slice([0..1, 1..2])
            .expand([1, 4, 12]);
        let expected: Vec<f32> = (image + temporal).into_data().to_vec().unwrap();
        let got: Vec<f32> = tokens.slice([1..2, 5..9]).into_data().to_vec().unwrap();
        vlp_test_support::assert_close(
            "frame 1",
            &got[..],
            &expected[..],
            vlp_test_support::Tol::abs(1e-6),
        );
    }

    #[test]
    fn the_same_frame_at_two_times_differs_by_the_temporal_positions() {
        let device = Default::default();
        let video = embeddings();
        let frame = vlp_test_support::uniform::<NdArray, 5>([1, 1, 3, 16, 16], 3, &device);
        let tokens = video.forward(frame.repeat_dim(1, 2));
        let first = tokens.clone().slice([0..1, 1..5]);
        let second = tokens.slice([0..1, 5..9]);
        let table = video.temporal_position_embeddings.val();
        let shift =
            (table.clone().slice([0..1, 1..2]) - table.slice([0..1, 0..1])).expand([1, 4, 12]);
        let gap: Vec<f32> = (second - first - shift).abs().into_data().to_vec().unwrap();
        assert!(gap.iter().all(|g| *g < 1e-5), "{gap:?}");
    }
}
