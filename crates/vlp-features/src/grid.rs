//! CNN grid features (Pixel-BERT, SOHO): every cell of a ResNet's last
//! feature map becomes an image token.
//!
//! Positions are a learned row table plus a learned column table
//! (`max_grid_size × H` each) rather than one `h·w` table: they cover every
//! grid up to `max_grid_size` on either side, square or not, with
//! `2·max_grid_size·H` parameters, and each cell's position is the sum of
//! its row's and its column's.

use burn::module::Param;
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;

use crate::freeze::set_trainable;
use crate::resnet::{ResNet, ResNetConfig};

/// Configuration of [`GridEmbeddings`].
#[derive(Config, Debug)]
pub struct GridEmbeddingsConfig {
    /// The CNN backbone.
    pub backbone: ResNetConfig,
    /// Width of the embeddings.
    pub hidden_size: usize,
    /// Largest number of grid rows or columns (32: a 1024-pixel side at stride 32).
    #[config(default = 32)]
    pub max_grid_size: usize,
    /// Train the backbone end to end (`true`), or keep it fixed: its
    /// parameters then require no gradient and its output is detached. A
    /// fixed backbone usually also wants `BatchNormMode::Frozen`.
    #[config(default = true)]
    pub trainable_backbone: bool,
    /// LayerNorm epsilon (BERT's 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout after the LayerNorm.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `[B, C, H, W] → [B, h·w, H]` with `h × w` the backbone's feature grid
/// (`H/32 × W/32`), cells in row-major order:
/// `LN(projection(cell) + row[r] + column[c] + type) → dropout`.
#[derive(Module, Debug)]
pub struct GridEmbeddings<B: Backend> {
    /// The CNN whose last feature map gives the cells.
    pub backbone: ResNet<B>,
    /// `C_backbone → H`.
    pub projection: Linear<B>,
    /// `[max_grid_size, H]`.
    pub row_embeddings: Param<Tensor<B, 2>>,
    /// `[max_grid_size, H]`.
    pub column_embeddings: Param<Tensor<B, 2>>,
    /// `[1, 1, H]`: marks tokens as image tokens in a merged sequence.
    pub type_embedding: Param<Tensor<B, 3>>,
    /// LayerNorm over the sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm.
    pub dropout: Dropout,
    /// Whether the backbone is trained with the model (else frozen).
    #[module(skip)]
    pub trainable_backbone: bool,
}

impl GridEmbeddingsConfig {
    /// Builds the embeddings and their backbone.
    pub fn init<B: Backend>(&self, device: &B::Device) -> GridEmbeddings<B> {
        let hidden = self.hidden_size;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        GridEmbeddings {
            backbone: set_trainable(self.backbone.init(device), self.trainable_backbone),
            projection: LinearConfig::new(self.backbone.out_channels(), hidden).init(device),
            row_embeddings: normal.init([self.max_grid_size, hidden], device),
            column_embeddings: normal.init([self.max_grid_size, hidden], device),
            type_embedding: normal.init([1, 1, hidden], device),
            layer_norm: LayerNormConfig::new(hidden)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            trainable_backbone: self.trainable_backbone,
        }
    }
}

impl<B: Backend> GridEmbeddings<B> {
    /// `[B, C, H, W] → [B, h·w, H]`.
    ///
    /// # Panics
    ///
    /// If the feature grid has more rows or columns than `max_grid_size`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let features = self.backbone.forward(images);
        // Detached as well as no-grad: a fixed backbone stays fixed even if
        // its parameters are later mapped back to requiring gradients.
        let features = match self.trainable_backbone {
            true => features,
            false => features.detach(),
        };
        let [batch, channels, rows, cols] = features.dims();
        let [max, hidden] = self.row_embeddings.dims();
        assert!(
            rows <= max && cols <= max,
            "feature grid of {rows}×{cols} exceeds the {max}×{max} position tables"
        );
        let cells = features
            .reshape([batch, channels, rows * cols])
            .swap_dims(1, 2); // [B, h·w, C]
        let row = self.row_embeddings.val().slice([0..rows, 0..hidden]);
        let column = self.column_embeddings.val().slice([0..cols, 0..hidden]);
        let positions = (row.reshape([rows, 1, hidden]) + column.reshape([1, cols, hidden]))
            .reshape([1, rows * cols, hidden]);
        let embeddings = self.projection.forward(cells) + positions + self.type_embedding.val();
        self.dropout.forward(self.layer_norm.forward(embeddings))
    }

    /// Width of the embeddings.
    pub fn hidden_size(&self) -> usize {
        self.row_embeddings.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resnet::ResNetLayout;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    fn config(trainable_backbone: bool) -> GridEmbeddingsConfig {
        GridEmbeddingsConfig::new(
            ResNetConfig::new(ResNetLayout::ResNet18).with_base_width(8),
            16,
        )
        .with_max_grid_size(4)
        .with_trainable_backbone(trainable_backbone)
        .with_dropout(0.0)
    }

    #[test]
    fn one_token_per_feature_cell() {
        let device = Default::default();
        let grid = config(true).init::<NdArray>(&device);
        for ([height, width], tokens) in [([64, 64], 4), ([64, 96], 6), ([128, 32], 4)] {
            let images =
                Tensor::<NdArray, 4>::random([2, 3, height, width], Distribution::Default, &device);
            assert_eq!(grid.forward(images).dims(), [2, tokens, 16]);
        }
    }

    #[test]
    fn a_row_embedding_reaches_exactly_the_cells_of_its_row() {
        let device = Default::default();
        let grid = config(true).init::<NdArray>(&device);
        let images = Tensor::<NdArray, 4>::random([1, 3, 64, 96], Distribution::Default, &device);
        let base = grid.forward(images.clone());
        // Not a constant bump: the LayerNorm would remove it.
        let bump = Tensor::<NdArray, 2>::zeros([4, 16], &device).slice_assign(
            [1..2, 0..16],
            Tensor::random([1, 16], Distribution::Default, &device),
        );
        let mut shifted = grid.clone();
        shifted.row_embeddings = Param::from_tensor(grid.row_embeddings.val() + bump);
        let diff = (shifted.forward(images) - base)
            .abs()
            .sum_dim(2)
            .reshape([6]);
        let diff: Vec<f32> = diff.into_data().to_vec().unwrap();
        // A 2×3 grid: cells 3, 4 and 5 are row 1.
        for (cell, d) in diff.iter().enumerate() {
            assert_eq!(*d > 1e-3, cell >= 3, "cell {cell} changed by {d}");
        }
    }

    fn backbone_gradient(trainable_backbone: bool) -> Option<f32> {
        let device = Default::default();
        let grid = config(trainable_backbone).init::<Autodiff<NdArray>>(&device);
        let images = Tensor::random([2, 3, 64, 64], Distribution::Default, &device);
        // A random projection of the output: the sum of squares of a
        // LayerNorm's output is constant and would have no gradient.
        let weights = Tensor::random([2, 4, 16], Distribution::Default, &device);
        let grads = (grid.forward(images) * weights).sum().backward();
        assert!(grid.projection.weight.grad(&grads).is_some());
        grid.backbone
            .conv1
            .weight
            .grad(&grads)
            .map(|g| g.abs().sum().into_scalar())
    }

    #[test]
    fn gradient_reaches_the_backbone_only_when_trainable() {
        let trainable = backbone_gradient(true).expect("trainable backbone gets a gradient");
        assert!(trainable > 0.0);
        assert_eq!(backbone_gradient(false), None);
    }
}
