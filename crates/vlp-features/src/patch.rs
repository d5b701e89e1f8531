//! ViT patch embeddings: patchify with a strided convolution, prepend a
//! learned `[CLS]`, add learned positions and the image modality's type
//! embedding (names follow Hugging Face ViT's `embeddings` keys).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::prelude::*;

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
}

/// `[B, C, H, W] → [B, 1 + (H/p)(W/p), H]`: `[CLS]` then patches in row-major order.
#[derive(Module, Debug)]
pub struct PatchEmbeddings<B: Backend> {
    /// `projection.weight` `[H, C, p, p]`.
    pub projection: Conv2d<B>,
    /// `[1, 1, H]`.
    pub cls_token: Param<Tensor<B, 3>>,
    /// `[1, 1 + P, H]`.
    pub position_embeddings: Param<Tensor<B, 3>>,
    /// `[1, 1, H]`: marks tokens as image tokens in a merged sequence.
    pub type_embedding: Param<Tensor<B, 3>>,
    pub dropout: Dropout,
}

impl PatchEmbeddingsConfig {
    /// Number of patches per image.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

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
            projection: Conv2dConfig::new([self.channels, hidden], [self.patch_size; 2])
                .with_stride([self.patch_size; 2])
                .init(device),
            cls_token: normal.init([1, 1, hidden], device),
            position_embeddings: normal.init([1, 1 + self.num_patches(), hidden], device),
            type_embedding: normal.init([1, 1, hidden], device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> PatchEmbeddings<B> {
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, _, _, _] = images.dims();
        let [_, tokens, hidden] = self.position_embeddings.dims();
        let patches = self.projection.forward(images); // [B, H, h, w]
        let [_, _, h, w] = patches.dims();
        assert_eq!(
            1 + h * w,
            tokens,
            "image size differs from the configured one"
        );
        let patches = patches.reshape([batch, hidden, h * w]).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([batch, 1, hidden]);
        let embeddings = Tensor::cat(vec![cls, patches], 1)
            + self.position_embeddings.val()
            + self.type_embedding.val();
        self.dropout.forward(embeddings)
    }
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
}
