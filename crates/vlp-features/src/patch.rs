//! ViT patch embeddings: patchify with a strided convolution, prepend a
//! learned `[CLS]`, add learned positions and the image modality's type
//! embedding (names follow Hugging Face ViT's `embeddings` keys).
//!
//! With `mask_embedding` on, [`PatchEmbeddings::forward_masked`] replaces
//! the chosen patches' embeddings by a learned `mask_token` before the
//! positions are added, as ViLT's masked patch prediction and Hugging Face
//! ViT's `bool_masked_pos` do; off by default, so checkpoints without one
//! import unchanged.
//!
//! Images of another size than the configured one (any side a multiple of
//! the patch size, square or not) get the trained position table resampled
//! to their patch grid, as ViT/DeiT fine-tuning at a higher resolution does:
//! the `[CLS]` position is kept, the patch positions are reshaped to the
//! trained `g × g` grid and resampled bicubically with half-pixel centres
//! (`align_corners = false`, cubic coefficient −0.75), the choice of Hugging
//! Face ViT's `interpolate_pos_encoding` and timm, so checkpoints fine-tuned
//! there get the same table here. Bicubic rather than bilinear because that
//! is what those checkpoints were trained with.
//!
//! The resampling is written as two small interpolation matrices
//! (`rows × g` and `cols × g`) applied with matmuls rather than with
//! `burn::tensor::module::interpolate`: Burn 0.21's NdArray backend has no
//! backward pass for bicubic `interpolate` (it panics), and the position
//! table must keep training at the new size. The matrices reproduce
//! PyTorch's `upsample_bicubic2d` (border taps clamped), which the tests
//! check against Burn's own forward `interpolate` and against Hugging Face
//! ViT's `interpolate_pos_encoding` (`tests/features/patch_positions.rs`).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::prelude::*;
use burn::tensor::TensorData;

/// Configuration of [`PatchEmbeddings`].
#[derive(Config, Debug)]
pub struct PatchEmbeddingsConfig {
    /// Side of the square input images in pixels.
    pub image_size: usize,
    /// Side of the square patches; must divide `image_size`.
    pub patch_size: usize,
    /// Width of the embeddings.
    pub hidden_size: usize,
    /// Input channels.
    #[config(default = 3)]
    pub channels: usize,
    /// Dropout on the output.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Whether to learn a mask embedding for masked patches (`mask_token`).
    #[config(default = false)]
    pub mask_embedding: bool,
    /// Whether the patch projection has a bias (ViT's has, CLIP's has not).
    #[config(default = true)]
    pub bias: bool,
}

/// The strided convolution that cuts `[B, channels, H, W]` images into
/// `patch × patch` patches of width `hidden` (`[hidden, channels, p, p]`,
/// stride `p`), with or without a bias: the one patch projection of ViT
/// ([`PatchEmbeddings`]) and CLIP's vision tower.
pub fn patch_projection(channels: usize, hidden: usize, patch: usize, bias: bool) -> Conv2dConfig {
    Conv2dConfig::new([channels, hidden], [patch; 2])
        .with_stride([patch; 2])
        .with_bias(bias)
}

/// `images` `[B, C, H, W]` through a [`patch_projection`] → one token per
/// patch in row-major order, `[B, rows·cols, hidden]`, with the patch grid
/// `(rows, cols)`.
pub fn patch_tokens<B: Backend>(
    projection: &Conv2d<B>,
    images: Tensor<B, 4>,
) -> (Tensor<B, 3>, usize, usize) {
    let [batch, _, _, _] = images.dims();
    let patches = projection.forward(images); // [B, hidden, rows, cols]
    let [_, hidden, rows, cols] = patches.dims();
    let tokens = patches
        .reshape([batch, hidden, rows * cols])
        .swap_dims(1, 2);
    (tokens, rows, cols)
}

/// `[B, C, H, W] → [B, 1 + (H/p)(W/p), H]`: `[CLS]` then patches in row-major
/// order. `H` and `W` may differ from the configured image size (see the
/// module docs).
#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    /// `projection.weight` `[H, C, p, p]`.
    pub projection: Conv2d<B>,
    /// `[1, 1, H]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1 + g², H]` for the configured `g × g` patch grid.
    pub position_embeddings: Param<Tensor<B, 3>>,
    /// `[1, 1, H]`: marks tokens as image tokens in a merged sequence.
    pub type_embedding: Param<Tensor<B, 3>>,
    /// `[1, 1, H]`: replaces masked patches (only with `mask_embedding`).
    pub mask_token: Option<Param<Tensor<B, 3>>>,
    /// Dropout on the output.
    pub dropout: Dropout,
}

impl PatchEmbeddingsConfig {
    /// Number of patches per image.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Builds the embeddings.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PatchEmbeddings<B> {
        assert!(
            self.image_size.is_multiple_of(self.patch_size),
            "patch size {} does not divide image size {}",
            self.patch_size,
            self.image_size
        );
        let hidden = self.hidden_size;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        PatchEmbeddings {
            projection: patch_projection(self.channels, hidden, self.patch_size, self.bias)
                .init(device),
            cls_token: normal.init([1, 1, hidden], device),
            position_embeddings: normal.init([1, 1 + self.num_patches(), hidden], device),
            type_embedding: normal.init([1, 1, hidden], device),
            mask_token: self
                .mask_embedding
                .then(|| normal.init([1, 1, hidden], device)),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> PatchEmbeddings<B> {
    /// `[B, C, H, W] → [B, 1 + (H/p)(W/p), H]`.
    ///
    /// # Panics
    ///
    /// If `H` or `W` is not a multiple of the patch size.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        self.embed(images, None)
    }

    /// As [`Self::forward`], with the patches where `mask` `[B, P]` is `true`
    /// (row-major over the patch grid) embedded as the learned mask token.
    ///
    /// # Panics
    ///
    /// If the embeddings were built without `mask_embedding`, or `mask` does
    /// not have one column per patch.
    pub fn forward_masked(&self, images: Tensor<B, 4>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 3> {
        self.embed(images, Some(mask))
    }

    fn embed(&self, images: Tensor<B, 4>, mask: Option<Tensor<B, 2, Bool>>) -> Tensor<B, 3> {
        let [batch, _, height, width] = images.dims();
        let patch = self.projection.kernel_size[0];
        assert!(
            height.is_multiple_of(patch) && width.is_multiple_of(patch),
            "image of {height}×{width} pixels is not a whole number of {patch}×{patch} patches"
        );
        let [_, _, hidden] = self.position_embeddings.dims();
        let (patches, rows, cols) = patch_tokens(&self.projection, images);
        let patches = match mask {
            None => patches,
            Some(mask) => {
                let token = self
                    .mask_token
                    .as_ref()
                    .expect("masked patches need PatchEmbeddingsConfig::mask_embedding");
                let shape = [batch, rows * cols, hidden];
                assert_eq!(
                    mask.dims(),
                    [batch, rows * cols],
                    "one mask entry per patch"
                );
                patches.mask_where(
                    mask.unsqueeze_dim::<3>(2).expand(shape),
                    token.val().expand(shape),
                )
            }
        };
        let cls = self.cls_token.val().expand([batch, 1, hidden]);
        let embeddings = Tensor::cat(vec![cls, patches], 1)
            + self.positions(rows, cols)
            + self.type_embedding.val();
        self.dropout.forward(embeddings)
    }

    /// The position table for a `rows × cols` patch grid, `[1, 1 + rows·cols, H]`:
    /// the trained table itself at the trained grid, else its patch part
    /// resampled bicubically (see the module docs).
    pub fn positions(&self, rows: usize, cols: usize) -> Tensor<B, 3> {
        let table = self.position_embeddings.val();
        let [_, tokens, hidden] = table.dims();
        let side = (tokens - 1).isqrt();
        if rows == side && cols == side {
            return table;
        }
        let device = table.device();
        let cls = table.clone().slice([0..1, 0..1, 0..hidden]);
        let grid = table
            .slice([0..1, 1..tokens, 0..hidden])
            .reshape([side, side * hidden]);
        let resample = |out: usize| {
            Tensor::<B, 2>::from_data(
                TensorData::new(bicubic_matrix(side, out), [out, side]),
                &device,
            )
        };
        // Rows: [rows, g] · [g, g·H]; then columns, per row: [cols, g] · [g, H].
        let grid = resample(rows).matmul(grid).reshape([rows, side, hidden]);
        let grid = resample(cols)
            .unsqueeze_dim::<3>(0)
            .expand([rows, cols, side])
            .matmul(grid)
            .reshape([1, rows * cols, hidden]);
        Tensor::cat(vec![cls, grid], 1)
    }
}

/// The `[out, len]` matrix (row-major) of PyTorch's 1-D bicubic resampling
/// from `len` to `out` samples with `align_corners = false`: output `i` reads
/// source coordinate `(i + ½)·len/out − ½` through the 4-tap cubic
/// convolution kernel (a = −0.75), taps beyond the border clamped onto it.
fn bicubic_matrix(len: usize, out: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; // |x| ≤ 1
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; // 1 < |x| < 2
    let mut matrix = vec![0f32; out * len];
    for i in 0..out {
        let source = (i as f64 + 0.5) * len as f64 / out as f64 - 0.5;
        let floor = source.floor();
        let t = source - floor;
        let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (tap, weight) in weights.into_iter().enumerate() {
            let index = (floor as isize - 1 + tap as isize).clamp(0, len as isize - 1) as usize;
            matrix[i * len + index] += weight as f32;
        }
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    #[test]
    fn one_token_per_patch_and_each_patch_sees_only_its_pixels() {
        let device = Default::default();
        let embeddings = PatchEmbeddingsConfig::new(16, 4, 8)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let images = Tensor::<NdArray, 4>::random(
            [2, 3, 16, 16],
            burn::tensor::Distribution::Default,
            &device,
        );
        let out = embeddings.forward(images.clone());
        assert_eq!(out.dims(), [2, 17, 8]);
        // Change the pixels of patch (row 1, col 2) only: token 1 + 1*4 + 2 changes, the others do not.
        let changed = images.clone().slice_assign(
            [0..2, 0..3, 4..8, 8..12],
            Tensor::ones([2, 3, 4, 4], &device),
        );
        let diff = (embeddings.forward(changed) - out)
            .abs()
            .sum_dim(2)
            .reshape([2, 17]);
        let diff: Vec<f32> = diff.into_data().to_vec().unwrap();
        for (i, d) in diff.iter().enumerate() {
            assert_eq!(*d > 1e-6, i % 17 == 7, "token {} changed by {d}", i % 17);
        }
    }

    #[test]
    fn gradient_reaches_the_projection() {
        let device = Default::default();
        let embeddings = PatchEmbeddingsConfig::new(8, 4, 4).init::<Autodiff<NdArray>>(&device);
        let images = Tensor::random([1, 3, 8, 8], burn::tensor::Distribution::Default, &device);
        let grads = embeddings.forward(images).powi_scalar(2).sum().backward();
        let grad = embeddings.projection.weight.grad(&grads).unwrap();
        assert!(grad.abs().sum().into_scalar() > 0.0);
    }

    #[test]
    fn masked_patches_are_the_mask_token_plus_their_position() {
        let device = Default::default();
        let embeddings = PatchEmbeddingsConfig::new(8, 4, 4)
            .with_dropout(0.0)
            .with_mask_embedding(true)
            .init::<Autodiff<NdArray>>(&device);
        let images = Tensor::random([2, 3, 8, 8], burn::tensor::Distribution::Default, &device);
        let mask = Tensor::<Autodiff<NdArray>, 2, Bool>::from_data(
            TensorData::from([[false, true, false, false], [true, false, false, true]]),
            &device,
        );
        let clean = embeddings.forward(images.clone());
        let masked = embeddings.forward_masked(images, mask);
        // Expected masked token (row, patch): mask token + position 1 + patch + type.
        let token = embeddings.mask_token.as_ref().unwrap().val();
        let positions = embeddings.position_embeddings.val();
        let types = embeddings.type_embedding.val();
        for (row, patch, is_masked) in [(0, 1, true), (1, 0, true), (1, 3, true), (0, 2, false)] {
            let got = masked
                .clone()
                .slice([row..row + 1, 1 + patch..2 + patch, 0..4]);
            let expected = if is_masked {
                token.clone()
                    + positions.clone().slice([0..1, 1 + patch..2 + patch, 0..4])
                    + types.clone()
            } else {
                clean
                    .clone()
                    .slice([row..row + 1, 1 + patch..2 + patch, 0..4])
            };
            let diff = (got - expected).abs().max().into_scalar();
            assert!(diff < 1e-6, "({row}, {patch}): {diff}");
        }
        let grads = masked.powi_scalar(2).sum().backward();
        let grad = embeddings
            .mask_token
            .as_ref()
            .unwrap()
            .grad(&grads)
            .unwrap();
        assert!(grad.abs().sum().into_scalar() > 0.0);
        let plain = PatchEmbeddingsConfig::new(8, 4, 4).init::<NdArray>(&device);
        assert!(
            plain.mask_token.is_none(),
            "off by default: no new checkpoint key"
        );
    }

    fn table_of(embeddings: &mut PatchEmbeddings<NdArray>, table: Tensor<NdArray, 3>) {
        embeddings.position_embeddings = burn::module::Param::from_tensor(table);
    }

    #[test]
    fn at_the_trained_size_the_table_is_used_as_is() {
        let device = Default::default();
        let embeddings = PatchEmbeddingsConfig::new(16, 4, 8)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        let table: Vec<f32> = embeddings
            .position_embeddings
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        let positions: Vec<f32> = embeddings.positions(4, 4).into_data().to_vec().unwrap();
        assert_eq!(positions, table);
    }

    #[test]
    fn other_image_sizes_get_one_token_per_patch() {
        let device = Default::default();
        let embeddings = PatchEmbeddingsConfig::new(16, 4, 8)
            .with_dropout(0.0)
            .init::<NdArray>(&device);
        for ([height, width], tokens) in [([24, 24], 37), ([32, 20], 41), ([8, 8], 5)] {
            let images = Tensor::<NdArray, 4>::random(
                [2, 3, height, width],
                burn::tensor::Distribution::Default,
                &device,
            );
            assert_eq!(embeddings.forward(images).dims(), [2, tokens, 8]);
        }
    }

    #[test]
    fn resampling_equals_burns_bicubic_interpolate() {
        use burn::tensor::module::interpolate;
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        let device = Default::default();
        let mut embeddings = PatchEmbeddingsConfig::new(20, 4, 3).init::<NdArray>(&device);
        let table =
            Tensor::<NdArray, 3>::random([1, 26, 3], burn::tensor::Distribution::Default, &device);
        table_of(&mut embeddings, table.clone());
        let grid = table
            .clone()
            .slice([0..1, 1..26, 0..3])
            .reshape([1, 5, 5, 3])
            .permute([0, 3, 1, 2]);
        for [rows, cols] in [[7, 9], [3, 4], [8, 5]] {
            let expected = interpolate(
                grid.clone(),
                [rows, cols],
                InterpolateOptions::new(InterpolateMode::Bicubic).with_align_corners(false),
            )
            .permute([0, 2, 3, 1])
            .reshape([1, rows * cols, 3]);
            let positions = embeddings.positions(rows, cols);
            assert_eq!(positions.dims(), [1, 1 + rows * cols, 3]);
            let cls_diff = (positions.clone().slice([0..1, 0..1, 0..3])
                - table.clone().slice([0..1, 0..1, 0..3]))
            .abs()
            .max()
            .into_scalar();
            assert_eq!(cls_diff, 0.0);
            let diff = (positions.slice([0..1, 1..1 + rows * cols, 0..3]) - expected)
                .abs()
                .max()
                .into_scalar();
            assert!(diff < 1e-5, "{rows}×{cols}: {diff}");
        }
    }

    #[test]
    fn resampling_keeps_grid_nodes_and_constants() {
        // Upsampling g → 3g with half-pixel centres puts output 3k + 1 exactly
        // on source node k (coordinate (3k + 1.5)/3 − ½ = k), where the cubic
        // kernel's weights are (0, 1, 0, 0); and the kernel's weights sum to
        // one everywhere (border clamping included), so a constant table stays
        // constant. (A linear field is not kept: with a = −0.75 the cubic
        // convolution reproduces only constants; a = −0.5 would keep lines.)
        let device = Default::default();
        let mut embeddings = PatchEmbeddingsConfig::new(16, 4, 2).init::<NdArray>(&device);
        let table: Vec<f32> = embeddings
            .position_embeddings
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        let positions: Vec<f32> = embeddings.positions(12, 12).into_data().to_vec().unwrap();
        for r in 0..4 {
            for c in 0..4 {
                for h in 0..2 {
                    let node = table[(1 + r * 4 + c) * 2 + h];
                    let resampled = positions[(1 + (3 * r + 1) * 12 + 3 * c + 1) * 2 + h];
                    assert!(
                        (node - resampled).abs() < 1e-6,
                        "({r}, {c}): {node} vs {resampled}"
                    );
                }
            }
        }

        table_of(&mut embeddings, Tensor::full([1, 17, 2], 0.375, &device));
        for [rows, cols] in [[12, 12], [3, 7], [1, 2]] {
            let positions: Vec<f32> = embeddings
                .positions(rows, cols)
                .into_data()
                .to_vec()
                .unwrap();
            assert!(
                positions.iter().all(|p| (p - 0.375).abs() < 1e-6),
                "{rows}×{cols}"
            );
        }
    }

    #[test]
    fn gradient_reaches_the_trained_table_at_a_new_size() {
        let device = Default::default();
        let embeddings = PatchEmbeddingsConfig::new(8, 4, 4).init::<Autodiff<NdArray>>(&device);
        let images = Tensor::random([1, 3, 12, 16], burn::tensor::Distribution::Default, &device);
        let grads = embeddings.forward(images).powi_scalar(2).sum().backward();
        let grad = embeddings.position_embeddings.grad(&grads).unwrap();
        assert_eq!(grad.dims(), [1, 5, 4]);
        assert!(grad.abs().sum().into_scalar() > 0.0);
    }
}
