//! Object-detector region features (OD-RFs, as UNITER, LXMERT and ViLBERT
//! use them): each image is a set of detected boxes, each with a pooled
//! detector feature. The embedding projects features and box geometry to the
//! model width separately and adds the image modality's type embedding.
//!
//! The detector is frozen: its features arrive as input tensors (read from
//! disk or made by the synthetic world), so nothing here back-propagates
//! into it.

use burn::module::Param;
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;

/// How a box becomes a geometry vector. Boxes are `x1, y1, x2, y2`
/// normalised by the image's width and height. Serialised by the model
/// that introduced it (`"lxmert4"`, `"vilbert5"`, `"uniter7"`, as
/// `model.box_geometry` is written); the variant names are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BoxGeometry {
    /// LXMERT: `x1, y1, x2, y2`.
    #[serde(rename = "lxmert4", alias = "Corners4")]
    Corners4,
    /// ViLBERT: `x1, y1, x2, y2, area fraction`.
    #[serde(rename = "vilbert5", alias = "CornersArea5")]
    CornersArea5,
    /// UNITER: `x1, y1, x2, y2, w, h, w·h`.
    #[serde(rename = "uniter7", alias = "CornersSizeArea7")]
    CornersSizeArea7,
}

impl BoxGeometry {
    /// Length of the geometry vector.
    pub fn dim(&self) -> usize {
        match self {
            BoxGeometry::Corners4 => 4,
            BoxGeometry::CornersArea5 => 5,
            BoxGeometry::CornersSizeArea7 => 7,
        }
    }

    /// `[B, R, 4]` normalised boxes → `[B, R, dim]` geometry vectors.
    pub fn encode<B: Backend>(&self, boxes: Tensor<B, 3>) -> Tensor<B, 3> {
        let x1 = boxes.clone().narrow(2, 0, 1);
        let y1 = boxes.clone().narrow(2, 1, 1);
        let x2 = boxes.clone().narrow(2, 2, 1);
        let y2 = boxes.clone().narrow(2, 3, 1);
        let width = x2 - x1;
        let height = y2 - y1;
        let area = width.clone() * height.clone();
        match self {
            BoxGeometry::Corners4 => boxes,
            BoxGeometry::CornersArea5 => Tensor::cat(vec![boxes, area], 2),
            BoxGeometry::CornersSizeArea7 => Tensor::cat(vec![boxes, width, height, area], 2),
        }
    }
}

/// Configuration of [`RegionEmbeddings`].
#[derive(Config, Debug)]
pub struct RegionEmbeddingsConfig {
    /// Length of each detector feature (2048 for bottom-up attention).
    pub feature_size: usize,
    /// Width of the embeddings.
    pub hidden_size: usize,
    /// Geometry vector layout.
    #[config(default = "BoxGeometry::CornersSizeArea7")]
    pub geometry: BoxGeometry,
    /// LayerNorm epsilon (BERT's 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout on the output.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `features [B, R, F]` + `geometry [B, R, G]` → `[B, R, H]`:
/// `LN(LN(W_f f) + LN(W_g g) + type)` then dropout (UNITER's image embeddings).
#[derive(Module, Debug)]
pub struct RegionEmbeddings<B: Backend> {
    /// `img_linear`: `[F, H]`.
    pub feature_projection: Linear<B>,
    /// LayerNorm of the projected features.
    pub feature_norm: LayerNorm<B>,
    /// `pos_linear`: `[G, H]`.
    pub geometry_projection: Linear<B>,
    /// LayerNorm of the projected geometry.
    pub geometry_norm: LayerNorm<B>,
    /// `[1, 1, F]`: replaces the feature of a masked region (masked region modelling).
    pub mask_embedding: Param<Tensor<B, 3>>,
    /// `[1, 1, H]`: marks tokens as image tokens in a merged sequence.
    pub type_embedding: Param<Tensor<B, 3>>,
    /// LayerNorm over the sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm.
    pub dropout: Dropout,
    /// Layout of the geometry vectors [`RegionEmbeddings::forward`] expects.
    #[module(skip)]
    pub geometry: BoxGeometry,
}

impl RegionEmbeddingsConfig {
    /// Builds the embeddings.
    pub fn init<B: Backend>(&self, device: &B::Device) -> RegionEmbeddings<B> {
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let norm = || {
            LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        RegionEmbeddings {
            feature_projection: LinearConfig::new(self.feature_size, self.hidden_size)
                .with_initializer(normal.clone())
                .init(device),
            feature_norm: norm(),
            geometry_projection: LinearConfig::new(self.geometry.dim(), self.hidden_size)
                .with_initializer(normal.clone())
                .init(device),
            geometry_norm: norm(),
            mask_embedding: normal.init([1, 1, self.feature_size], device),
            type_embedding: normal.init([1, 1, self.hidden_size], device),
            layer_norm: norm(),
            dropout: DropoutConfig::new(self.dropout).init(),
            geometry: self.geometry,
        }
    }
}

impl<B: Backend> RegionEmbeddings<B> {
    /// `features [B, R, F]`, `geometry [B, R, G]` (from [`BoxGeometry::encode`]),
    /// `masked [B, R]` (`true` where masked region modelling hides the
    /// feature) → `[B, R, H]`.
    pub fn forward(
        &self,
        features: Tensor<B, 3>,
        geometry: Tensor<B, 3>,
        masked: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 3> {
        let features = match masked {
            Some(masked) => {
                let [batch, regions] = masked.dims();
                let keep = masked.bool_not().float().reshape([batch, regions, 1]);
                let hide = keep.clone().neg().add_scalar(1.0);
                features * keep + self.mask_embedding.val() * hide
            }
            None => features,
        };
        let content = self
            .feature_norm
            .forward(self.feature_projection.forward(features));
        let position = self
            .geometry_norm
            .forward(self.geometry_projection.forward(geometry));
        let embeddings = self
            .layer_norm
            .forward(content + position + self.type_embedding.val());
        self.dropout.forward(embeddings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type TestBackend = NdArray;

    fn boxes() -> Tensor<TestBackend, 3> {
        Tensor::from_data(
            TensorData::new(vec![0.1f32, 0.2, 0.5, 0.6, 0.0, 0.0, 1.0, 0.5], [1, 2, 4]),
            &Default::default(),
        )
    }

    #[test]
    fn geometry_vectors_follow_each_layout() {
        let expected_7 = [
            0.1f32, 0.2, 0.5, 0.6, 0.4, 0.4, 0.16, 0.0, 0.0, 1.0, 0.5, 1.0, 0.5, 0.5,
        ];
        BoxGeometry::CornersSizeArea7
            .encode(boxes())
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(expected_7.to_vec(), [1, 2, 7]),
                Tolerance::absolute(1e-6),
            );
        let expected_5 = [0.1f32, 0.2, 0.5, 0.6, 0.16, 0.0, 0.0, 1.0, 0.5, 0.5];
        BoxGeometry::CornersArea5
            .encode(boxes())
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(expected_5.to_vec(), [1, 2, 5]),
                Tolerance::absolute(1e-6),
            );
        assert_eq!(BoxGeometry::Corners4.encode(boxes()).dims(), [1, 2, 4]);
    }

    fn embeddings<B: Backend>(device: &B::Device) -> RegionEmbeddings<B> {
        RegionEmbeddingsConfig::new(6, 8)
            .with_dropout(0.0)
            .init(device)
    }

    #[test]
    fn output_is_the_normalised_sum_of_its_parts() {
        let device = Default::default();
        let module = embeddings::<TestBackend>(&device);
        let features = Tensor::<TestBackend, 3>::random([2, 3, 6], Distribution::Default, &device);
        let geometry = BoxGeometry::CornersSizeArea7.encode(Tensor::random(
            [2, 3, 4],
            Distribution::Default,
            &device,
        ));
        let out = module.forward(features.clone(), geometry.clone(), None);
        assert_eq!(out.dims(), [2, 3, 8]);
        let content = module
            .feature_norm
            .forward(module.feature_projection.forward(features));
        let position = module
            .geometry_norm
            .forward(module.geometry_projection.forward(geometry));
        let sum = content + position + module.type_embedding.val();
        let mean = sum.clone().mean_dim(2);
        let centred = sum - mean;
        let var = centred.clone().powf_scalar(2.0).mean_dim(2);
        let expected = centred / var.add_scalar(1e-12).sqrt();
        // LayerNorm starts with unit gain and zero bias.
        out.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn masked_regions_see_only_the_mask_embedding() {
        let device = Default::default();
        let module = embeddings::<TestBackend>(&device);
        let features = Tensor::<TestBackend, 3>::random([1, 2, 6], Distribution::Default, &device);
        let other = Tensor::<TestBackend, 3>::random([1, 2, 6], Distribution::Default, &device);
        let geometry = BoxGeometry::CornersSizeArea7.encode(boxes());
        let masked = Tensor::<TestBackend, 2, Int>::from_data(
            TensorData::new(vec![1i64, 0], [1, 2]),
            &device,
        )
        .bool();
        let a = module.forward(features.clone(), geometry.clone(), Some(masked.clone()));
        let b = module.forward(other, geometry, Some(masked));
        // The masked region's embedding does not depend on its feature…
        a.clone()
            .narrow(1, 0, 1)
            .into_data()
            .assert_approx_eq::<f32>(
                &b.clone().narrow(1, 0, 1).into_data(),
                Tolerance::absolute(1e-6),
            );
        // …the unmasked one does.
        let moved = (a.narrow(1, 1, 1) - b.narrow(1, 1, 1))
            .abs()
            .max()
            .into_scalar();
        assert!(moved > 1e-3);
    }

    #[test]
    fn gradient_reaches_the_projections_and_the_mask_embedding() {
        type Ad = Autodiff<TestBackend>;
        let device = Default::default();
        let module = embeddings::<Ad>(&device);
        let features = Tensor::<Ad, 3>::random([1, 2, 6], Distribution::Default, &device);
        let geometry = BoxGeometry::CornersSizeArea7.encode(Tensor::<Ad, 3>::random(
            [1, 2, 4],
            Distribution::Default,
            &device,
        ));
        let masked =
            Tensor::<Ad, 2, Int>::from_data(TensorData::new(vec![1i64, 0], [1, 2]), &device).bool();
        let weights = Tensor::<Ad, 3>::random([1, 2, 8], Distribution::Default, &device);
        let loss = (module.forward(features, geometry, Some(masked)) * weights).sum();
        let grads = loss.backward();
        for (name, grad) in [
            (
                "feature_projection",
                module.feature_projection.weight.grad(&grads),
            ),
            (
                "geometry_projection",
                module.geometry_projection.weight.grad(&grads),
            ),
        ] {
            let norm = grad.expect(name).abs().sum().into_scalar();
            assert!(norm > 0.0, "{name} gets a gradient");
        }
        let mask_grad = module.mask_embedding.grad(&grads).expect("mask embedding");
        assert!(mask_grad.abs().sum().into_scalar() > 0.0);
    }
}
