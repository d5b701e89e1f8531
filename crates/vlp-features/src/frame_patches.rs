//! Spatio-temporal patch tokens of a clip (survey §2.1.2's video features
//! with spatial tokens per frame; ViViT's and TimeSformer's factorised
//! positions): every frame is cut into ViT patches, each patch token gets
//! its spatial position and its frame's temporal position, and the tokens
//! of all frames form one sequence after a single `[CLS]`. Unlike
//! [`crate::VideoEmbeddings`] (one pooled vector per frame) the tokens keep
//! where things are in each frame, so motion is visible to the layers above.
//!
//! With `time_kernel` `k > 1` each patch token sees its patch in the `k`
//! frames around its own (ViViT's tubelets at temporal stride 1): the patch
//! projection is inflated as I3D inflates a 2-D stem
//! ([`crate::inflate_conv2d_channels`]), so at initialisation a clip of one
//! repeated image gives the 2-D tokens at every frame whose window lies
//! inside the clip, and training can learn a temporal derivative: a shift
//! of one pixel between frames, which a per-frame projection only sees as
//! two slightly different patches, is then a feature of the token itself.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;

use crate::inflated::{inflate_conv2d_channels, InflateError};
use crate::patch::{PatchEmbeddings, PatchEmbeddingsConfig};

/// Configuration of [`FramePatchEmbeddings`].
#[derive(Config, Debug)]
pub struct FramePatchEmbeddingsConfig {
    /// The per-frame patches (image size, patch size, width, dropout).
    pub patches: PatchEmbeddingsConfig,
    /// Longest clip (in frames) the temporal position table covers.
    #[config(default = 32)]
    pub max_frames: usize,
    /// Frames each patch token sees (odd): 1 (default) projects every frame
    /// on its own; `k > 1` inflates the projection over the `k` frames
    /// centred on the token's frame (zero frames past either end).
    #[config(default = 1)]
    pub time_kernel: usize,
}

/// `[B, T, C, S, S] → [B, 1 + T·P, H]`: `[CLS]`, then frame by frame the
/// `P` patch tokens `patch + spatial[p] + temporal[t] + type`.
#[derive(Module, Debug)]
pub struct FramePatchEmbeddings<B: Backend> {
    /// Patch projection (`[H, k·C, p, p]` over `k` stacked frames),
    /// `[CLS]`, spatial positions, type embedding.
    pub patches: PatchEmbeddings<B>,
    /// `[1, max_frames, H]`.
    pub temporal_position_embeddings: Param<Tensor<B, 3>>,
}

impl FramePatchEmbeddingsConfig {
    /// Width of the tokens.
    pub fn hidden_size(&self) -> usize {
        self.patches.hidden_size
    }

    /// Whether the embeddings can be built: `time_kernel` must be odd.
    pub fn validate(&self) -> Result<(), InflateError> {
        if self.time_kernel.is_multiple_of(2) {
            return Err(InflateError::EvenTimeKernel(self.time_kernel));
        }
        Ok(())
    }

    /// Builds the embeddings.
    ///
    /// # Panics
    /// When [`Self::validate`] fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FramePatchEmbeddings<B> {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let mut patches = self.patches.init(device);
        if self.time_kernel > 1 {
            patches.projection = inflate_conv2d_channels(&patches.projection, self.time_kernel)
                .unwrap_or_else(|err| panic!("{err}"));
        }
        FramePatchEmbeddings {
            patches,
            temporal_position_embeddings: normal
                .init([1, self.max_frames, self.hidden_size()], device),
        }
    }
}

impl<B: Backend> FramePatchEmbeddings<B> {
    /// Frames each patch token sees: the projection's input channels are
    /// `k` frames of `channels`.
    pub fn time_kernel(&self, channels: usize) -> usize {
        self.patches.projection.weight.dims()[1] / channels
    }

    /// `clip` `[B, T, C, S, S]` → tokens `[B, 1 + T·P, H]`.
    ///
    /// # Panics
    /// If `T` exceeds `max_frames`, or a side is not a whole number of patches.
    pub fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 3> {
        let [batch, frames, channels, height, width] = clip.dims();
        let clip = stack_neighbours(clip, self.time_kernel(channels));
        let channels = clip.dims()[2];
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

/// `[B, T, C, S, S]` → `[B, T, k·C, S, S]`: frame `t` followed (along
/// channels) by its neighbours, the frames `t − k/2 ..= t + k/2` in order,
/// zero frames past either end; the clip itself when `k = 1`.
fn stack_neighbours<B: Backend>(clip: Tensor<B, 5>, time_kernel: usize) -> Tensor<B, 5> {
    if time_kernel == 1 {
        return clip;
    }
    let [batch, frames, channels, height, width] = clip.dims();
    let half = time_kernel / 2;
    let zeros = Tensor::zeros([batch, half, channels, height, width], &clip.device());
    let padded = Tensor::cat(vec![zeros.clone(), clip, zeros], 1);
    let windows = (0..time_kernel)
        .map(|offset| padded.clone().narrow(1, offset, frames))
        .collect();
    Tensor::cat(windows, 2)
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

    /// A parameter with `param`'s values (a clone of a lazily initialised
    /// parameter draws its own).
    fn copy(param: &Param<Tensor<NdArray, 3>>) -> Param<Tensor<NdArray, 3>> {
        Param::from_tensor(param.val())
    }

    #[test]
    fn inflated_tokens_match_the_2d_tokens_on_a_constant_clip_and_see_motion() {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 9);
        let patches = PatchEmbeddingsConfig::new(16, 8, 12).with_dropout(0.0);
        let flat = FramePatchEmbeddingsConfig::new(patches.clone())
            .with_max_frames(4)
            .init::<NdArray>(&device);
        let mut tubelets = FramePatchEmbeddingsConfig::new(patches)
            .with_max_frames(4)
            .with_time_kernel(3)
            .init::<NdArray>(&device);
        assert_eq!(tubelets.patches.projection.weight.dims(), [12, 9, 8, 8]);
        assert_eq!(tubelets.time_kernel(3), 3);
        // The same 2-D projection, inflated: every block is a third of it.
        let weight = flat.patches.projection.weight.val();
        tubelets.patches.projection = inflate_conv2d_channels(&flat.patches.projection, 3).unwrap();
        tubelets.patches.cls_token = copy(&flat.patches.cls_token);
        tubelets.patches.position_embeddings = copy(&flat.patches.position_embeddings);
        tubelets.patches.type_embedding = copy(&flat.patches.type_embedding);
        tubelets.temporal_position_embeddings = copy(&flat.temporal_position_embeddings);
        let third = tubelets
            .patches
            .projection
            .weight
            .val()
            .slice([0..12, 6..9])
            .mul_scalar(3.0);
        assert!((third - weight).abs().max().into_scalar() < 1e-6);

        let frame = vlp_test_support::uniform::<NdArray, 5>([1, 1, 3, 16, 16], 4, &device);
        let constant = frame.repeat_dim(1, 4);
        let expected = flat.forward(constant.clone());
        let got = tubelets.forward(constant);
        // Frames 1 and 2 have both neighbours; tokens 1 + 4t .. 1 + 4(t+1).
        let inner = |tokens: Tensor<NdArray, 3>| tokens.slice([0..1, 5..13]);
        let gap = (inner(got.clone()) - inner(expected.clone()))
            .abs()
            .max()
            .into_scalar();
        assert!(gap < 1e-5, "{gap}");
        // Past the ends the zero frame removes a third of the projection.
        let first = |tokens: Tensor<NdArray, 3>| tokens.slice([0..1, 1..5]);
        assert!((first(got) - first(expected)).abs().max().into_scalar() > 1e-3);

        // A frame's token changes with its neighbours: it sees motion.
        let moving = vlp_test_support::uniform::<NdArray, 5>([1, 4, 3, 16, 16], 5, &device);
        let mut later = moving.clone();
        later = later.slice_assign(
            [0..1, 2..3, 0..3, 0..16, 0..16],
            moving.clone().slice([0..1, 3..4]),
        );
        let gap = (inner(tubelets.forward(moving)) - inner(tubelets.forward(later)))
            .slice([0..1, 0..4])
            .abs()
            .max()
            .into_scalar();
        assert!(gap > 1e-4, "frame 1's tokens ignore frame 2: {gap}");
    }
}
