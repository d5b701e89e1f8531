//! One visual tower, whichever features it uses: the extractor a model was
//! configured with turns a [`VisualBatch`] into image tokens, so fusion
//! models and objectives do not care whether they see patches, CNN grid
//! cells, regions or the patches of a clip's frames.

use burn::prelude::*;
use vlp_data::VisualBatch;

use crate::frame_patches::{FramePatchEmbeddings, FramePatchEmbeddingsConfig};
use crate::grid::{GridEmbeddings, GridEmbeddingsConfig};
use crate::patch::{PatchEmbeddings, PatchEmbeddingsConfig};
use crate::region::{RegionEmbeddings, RegionEmbeddingsConfig};

/// Which extractor a model's visual side uses.
#[derive(Config, Debug)]
pub enum VisualEmbeddingsConfig {
    /// ViT patches of pixel images (end to end).
    Patches(PatchEmbeddingsConfig),
    /// CNN grid cells of pixel images (end to end or frozen backbone).
    Grid(GridEmbeddingsConfig),
    /// Frozen-detector regions.
    Regions(RegionEmbeddingsConfig),
    /// ViT patches of every frame of a clip (end to end).
    Frames(FramePatchEmbeddingsConfig),
}

/// The visual extractor; names its parameters after the variant
/// (`visual.Patches.…`, `visual.Grid.…`, `visual.Regions.…`,
/// `visual.Frames.…` in records).
// One value per model: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VisualEmbeddings<B: Backend> {
    /// ViT patches of the pixels.
    Patches(PatchEmbeddings<B>),
    /// CNN grid cells of the pixels.
    Grid(GridEmbeddings<B>),
    /// Precomputed detector regions.
    Regions(RegionEmbeddings<B>),
    /// Spatio-temporal patches of clips.
    Frames(FramePatchEmbeddings<B>),
}

/// Image tokens and, when images have different token counts, their padding.
#[derive(Debug, Clone)]
pub struct VisualTokens<B: Backend> {
    /// `[N, V, H]`.
    pub tokens: Tensor<B, 3>,
    /// `[N, V]`, `true` at padding; `None` when no token is padding.
    pub padding: Option<Tensor<B, 2, Bool>>,
}

impl VisualEmbeddingsConfig {
    /// Builds the configured extractor.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisualEmbeddings<B> {
        match self {
            VisualEmbeddingsConfig::Patches(config) => {
                VisualEmbeddings::Patches(config.init(device))
            }
            VisualEmbeddingsConfig::Grid(config) => VisualEmbeddings::Grid(config.init(device)),
            VisualEmbeddingsConfig::Regions(config) => {
                VisualEmbeddings::Regions(config.init(device))
            }
            VisualEmbeddingsConfig::Frames(config) => VisualEmbeddings::Frames(config.init(device)),
        }
    }

    /// Width of the tokens the extractor produces.
    pub fn hidden_size(&self) -> usize {
        match self {
            VisualEmbeddingsConfig::Patches(config) => config.hidden_size,
            VisualEmbeddingsConfig::Grid(config) => config.hidden_size,
            VisualEmbeddingsConfig::Regions(config) => config.hidden_size,
            VisualEmbeddingsConfig::Frames(config) => config.hidden_size(),
        }
    }
}

impl<B: Backend> VisualEmbeddings<B> {
    /// Image tokens of `input`. Panics when the input kind does not match
    /// the extractor (pixels for patches and grids, regions for region
    /// embeddings, clips for frame patches): that is a wiring error of the
    /// caller, not bad data.
    pub fn forward(&self, input: &VisualBatch<B>) -> VisualTokens<B> {
        match (self, input) {
            (VisualEmbeddings::Patches(patches), VisualBatch::Images(images)) => VisualTokens {
                tokens: patches.forward(images.clone()),
                padding: None,
            },
            (VisualEmbeddings::Grid(grid), VisualBatch::Images(images)) => VisualTokens {
                tokens: grid.forward(images.clone()),
                padding: None,
            },
            (VisualEmbeddings::Regions(regions), VisualBatch::Regions(input)) => {
                let geometry = regions.geometry.encode(input.boxes.clone());
                VisualTokens {
                    tokens: regions.forward(input.features.clone(), geometry, None),
                    padding: Some(input.padding.clone()),
                }
            }
            (VisualEmbeddings::Frames(frames), VisualBatch::Clips(clips)) => VisualTokens {
                tokens: frames.forward(clips.clone()),
                padding: None,
            },
            (VisualEmbeddings::Patches(_) | VisualEmbeddings::Grid(_), _) => {
                panic!(
                    "a pixel-based (patch or grid) model needs pixel images, not regions or clips"
                )
            }
            (VisualEmbeddings::Regions(_), _) => {
                panic!("a region-embedding model needs detector regions, not pixels or clips")
            }
            (VisualEmbeddings::Frames(_), _) => {
                panic!("a frame-patch (video) model needs clips, not images or regions")
            }
        }
    }
}
