//! Pre-training batches: what one step needs (MLM, ITM, ITC and the
//! optional region, patch and VQA targets) on the host, and moved to a
//! device in one step ([`HostPretrainBatch::to_device`]).

use std::sync::Arc;

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};

use crate::collate::{int_tensor, tokens_to_tensors};
use crate::patch_masking::{patch_mask_to_tensor, MaskedPatches};
use crate::region_masking::MaskedRegions;
use crate::shard::ShardGather;
use crate::tokenizer::TokenizedBatch;
use crate::visual::{HostVisual, VisualBatch};

/// Everything one pre-training step needs (MLM + ITM + ITC), on the host.
#[derive(Debug, Clone)]
pub struct HostPretrainBatch {
    /// Images or detector regions, one per example.
    pub visual: HostVisual,
    /// The captions, tokenized and padded.
    pub tokens: TokenizedBatch,
    /// Masked copy of `tokens.ids`.
    pub mlm_ids: Vec<Vec<u32>>,
    /// `(row, position, original id)` of every token to predict.
    pub mlm_targets: Vec<(usize, usize, u32)>,
    /// Text row, image row and label (1 = match) of each matching example
    /// (the first `fused_pairs` rows of the batch, partners from anywhere in it).
    pub itm_text: Vec<usize>,
    /// Image row of each matching example.
    pub itm_image: Vec<usize>,
    /// Whether each matching example is a true pair.
    pub itm_labels: Vec<bool>,
    /// What each example shows (scene description key).
    pub descriptions: Vec<String>,
    /// Per row, how many text tokens open the PrefixLM prefix (≥ 1, the
    /// `[CLS]`; below the row's length, so at least one token is predicted).
    pub prefix_lengths: Vec<usize>,
    /// The regions with some masked (masked region modelling), when the
    /// batcher masks regions.
    pub masked_regions: Option<MaskedRegions>,
    /// The patch masks and colour targets (masked patch prediction), when
    /// the batcher masks patches.
    pub masked_patches: Option<MaskedPatches>,
    /// One question per image of the fused pairs, when the batcher asks them.
    pub vqa: Option<HostVqaBatch>,
    /// `[2, B]` uniforms in `[0, 1)` for sampling hard negatives (ALBEF):
    /// row 0 one per text, row 1 one per image.
    pub uniforms: Vec<f32>,
    /// How many rows the MLM and masked-patch targets take on the device.
    pub target_slots: TargetSlots,
}

/// How many rows the targets gathered from a batch's fused pass (MLM tokens,
/// masked patches) take on the device. Their number changes with every
/// batch (each token or patch is masked at random), and a GPU backend
/// compiles and autotunes its kernels once per shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSlots {
    /// As many rows as targets: the least work, a new shape nearly every
    /// batch.
    #[default]
    Exact,
    /// The next power of two (at least 1): a handful of shapes per run, at
    /// most twice the rows. The padding rows gather position 0 and carry
    /// target -1, which the losses and accuracies leave out. Masked-region
    /// targets (regression on features) keep their exact count.
    PowerOfTwo,
}

impl TargetSlots {
    /// Rows for `targets` targets.
    pub fn rows(self, targets: usize) -> usize {
        match self {
            Self::Exact => targets,
            Self::PowerOfTwo => targets.next_power_of_two(),
        }
    }

    /// `values` padded with `fill` to [`Self::rows`] of `values.len() /
    /// width` rows of `width`.
    fn pad(self, mut values: Vec<i64>, width: usize, fill: i64) -> (Vec<i64>, usize) {
        let rows = self.rows(values.len() / width);
        values.resize(rows * width, fill);
        (values, rows)
    }
}

/// Questions about the first images of a batch and their answer targets.
#[derive(Debug, Clone)]
pub struct HostVqaBatch {
    /// Row `i` asks about image row `i` of the batch.
    pub tokens: TokenizedBatch,
    /// `[Q, A]` VQA soft scores, row-major.
    pub soft_targets: Vec<f32>,
    /// `A`.
    pub num_answers: usize,
}

impl HostVqaBatch {
    /// The questions and their soft scores on `device`.
    pub fn to_device<B: Backend>(&self, device: &B::Device) -> VqaBatch<B> {
        let (ids, padding) = tokens_to_tensors(&self.tokens, device);
        let q = self.tokens.ids.len();
        VqaBatch {
            ids,
            padding,
            soft_targets: Tensor::from_data(
                TensorData::new(self.soft_targets.clone(), [q, self.num_answers]),
                device,
            ),
        }
    }
}

/// [`HostVqaBatch`] on a device.
#[derive(Debug, Clone)]
pub struct VqaBatch<B: Backend> {
    /// `[Q, T]` question ids.
    pub ids: Tensor<B, 2, Int>,
    /// `[Q, T]`, `true` at padding.
    pub padding: Tensor<B, 2, Bool>,
    /// `[Q, A]` soft scores.
    pub soft_targets: Tensor<B, 2>,
}

/// Masked region modelling on a device: what the fused pass sees and what
/// it predicts, on the matched pairs only (UNITER).
#[derive(Debug, Clone)]
pub struct MvmBatch<B: Backend> {
    /// The batch's regions with the masked ones replaced (`[B, R, F]`).
    pub visual: VisualBatch<B>,
    /// `[M]` flat positions `pair * R + r` in the fused pass's image outputs
    /// of the masked regions of matched pairs.
    pub positions: Tensor<B, 1, Int>,
    /// `[M, F]` original features at those positions.
    pub feature_targets: Tensor<B, 2>,
    /// `[M, C]` detector class distributions (background first).
    pub soft_label_targets: Tensor<B, 2>,
}

/// Masked patch prediction on a device (ViLT): the patch mask the fused
/// pass embeds the images with, and what it predicts on the matched pairs.
#[derive(Debug, Clone)]
pub struct MppBatch<B: Backend> {
    /// `[B, P]`, `true` at the patches whose embedding the mask embedding
    /// replaces, for every image row of the batch.
    pub patch_mask: Tensor<B, 2, Bool>,
    /// `[M]` flat positions `pair * (1 + P) + 1 + p` in the fused pass's
    /// image outputs (token 0 of each image is its `[CLS]`) of the masked
    /// patches of matched pairs.
    pub positions: Tensor<B, 1, Int>,
    /// `[M, 3]` mean-RGB bins in `0..256` of the original patches there.
    pub rgb_targets: Tensor<B, 2, Int>,
}

/// [`HostPretrainBatch`] on a device.
#[derive(Debug, Clone)]
pub struct PretrainBatch<B: Backend> {
    /// Images or detector regions.
    pub visual: VisualBatch<B>,
    /// `[B, T]` unmasked ids.
    pub text_ids: Tensor<B, 2, Int>,
    /// `[B, T]`, `true` at padding.
    pub text_padding: Tensor<B, 2, Bool>,
    /// `[B, T]` ids with MLM masking applied.
    pub mlm_ids: Tensor<B, 2, Int>,
    /// `[N]` flat positions `row * T + t` of the masked tokens of the
    /// matching pairs (MLM is learnt on texts paired with their own image).
    pub mlm_positions: Tensor<B, 1, Int>,
    /// `[N]` original ids at those positions.
    pub mlm_labels: Tensor<B, 1, Int>,
    /// `[B]` text row of each matching pair.
    pub itm_text: Tensor<B, 1, Int>,
    /// `[B]` image row of each matching pair.
    pub itm_image: Tensor<B, 1, Int>,
    /// `[B]` 1 for a matching pair, 0 for a negative.
    pub itm_labels: Tensor<B, 1, Int>,
    /// Per row, the text tokens in the PrefixLM prefix (host values: they
    /// shape attention masks).
    pub prefix_lengths: Vec<usize>,
    /// Masked regions and their targets, when the batcher masks regions.
    pub mvm: Option<MvmBatch<B>>,
    /// Patch masks and their targets, when the batcher masks patches.
    pub mpp: Option<MppBatch<B>>,
    /// Questions and answer targets, when the batcher asks them.
    pub vqa: Option<VqaBatch<B>>,
    /// `[2, B]` uniforms for sampling hard negatives.
    pub uniforms: Tensor<B, 2>,
    /// When the batch is one shard of a data-parallel step: the other
    /// shards' rows, for contrastive negatives from the global batch.
    pub shard: Option<Arc<dyn ShardGather<B>>>,
}

impl HostPretrainBatch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.visual.len()
    }

    /// Whether the batch has no example.
    pub fn is_empty(&self) -> bool {
        self.visual.is_empty()
    }

    /// The sizes of the tensors [`Self::to_device`] makes that may change
    /// from batch to batch: the visual input, the text length, the MLM
    /// targets of the matching pairs, the fused pairs, the masked regions or
    /// patches predicted and the question length. Equal shapes mean the
    /// same kernels: what a GPU backend compiles and autotunes once.
    pub fn shape(&self) -> Vec<usize> {
        let mut shape = self.visual.shape().to_vec();
        let mlm = self.mlm_targets.iter();
        let slots = self.target_slots;
        shape.extend([
            self.tokens.ids.first().map_or(0, Vec::len),
            slots.rows(mlm.filter(|&&(row, _, _)| self.itm_labels[row]).count()),
            self.itm_labels.len(),
        ]);
        if let Some(masked) = &self.masked_regions {
            let (positions, _, _) =
                matched_region_targets(masked, &self.itm_image, &self.itm_labels);
            shape.push(positions.len());
        }
        if let Some(masked) = &self.masked_patches {
            let (positions, _) = matched_patch_targets(masked, &self.itm_image, &self.itm_labels);
            shape.push(slots.rows(positions.len()));
        }
        if let Some(vqa) = &self.vqa {
            shape.push(vqa.tokens.ids.first().map_or(0, Vec::len));
        }
        shape
    }

    /// The batch as tensors on `device`; MLM targets are kept on the matching
    /// pairs only.
    pub fn to_device<B: Backend>(&self, device: &B::Device) -> PretrainBatch<B> {
        let (text_ids, text_padding) = tokens_to_tensors(&self.tokens, device);
        let (rows, cols) = (self.mlm_ids.len(), self.tokens.ids[0].len());
        let mlm_ids: Vec<i64> = self.mlm_ids.iter().flatten().map(|&id| id as i64).collect();
        let targets: Vec<_> = self
            .mlm_targets
            .iter()
            .filter(|&&(row, _, _)| self.itm_labels[row])
            .collect();
        let positions: Vec<i64> = targets
            .iter()
            .map(|&&(r, t, _)| (r * cols + t) as i64)
            .collect();
        let labels: Vec<i64> = targets.iter().map(|&&(_, _, id)| id as i64).collect();
        let (positions, n) = self.target_slots.pad(positions, 1, 0);
        let (labels, _) = self.target_slots.pad(labels, 1, -1);
        let index = |v: &[usize]| v.iter().map(|&i| i as i64).collect::<Vec<_>>();
        let batch_rows = self.len();
        PretrainBatch {
            mvm: self.masked_regions.as_ref().map(|masked| {
                let (positions, feature_targets, soft_label_targets) =
                    matched_region_targets(masked, &self.itm_image, &self.itm_labels);
                let m = positions.len();
                let dim = masked.batch.feature_dim;
                let classes = masked.batch.num_classes;
                MvmBatch {
                    visual: VisualBatch::Regions(masked.batch.to_tensors(device)),
                    positions: int_tensor(positions, [m], device),
                    feature_targets: Tensor::from_data(
                        TensorData::new(feature_targets, [m, dim]),
                        device,
                    ),
                    soft_label_targets: Tensor::from_data(
                        TensorData::new(soft_label_targets, [m, classes]),
                        device,
                    ),
                }
            }),
            mpp: self.masked_patches.as_ref().map(|masked| {
                let (positions, targets) =
                    matched_patch_targets(masked, &self.itm_image, &self.itm_labels);
                let (positions, m) = self.target_slots.pad(positions, 1, 0);
                let (targets, _) = self.target_slots.pad(targets, 3, -1);
                MppBatch {
                    patch_mask: patch_mask_to_tensor(&masked.mask, batch_rows, device),
                    positions: int_tensor(positions, [m], device),
                    rgb_targets: int_tensor(targets, [m, 3], device),
                }
            }),
            vqa: self.vqa.as_ref().map(|vqa| vqa.to_device(device)),
            uniforms: Tensor::from_data(
                TensorData::new(self.uniforms.clone(), [2, batch_rows]),
                device,
            ),
            visual: self.visual.to_device(device),
            text_ids,
            text_padding,
            mlm_ids: int_tensor(mlm_ids, [rows, cols], device),
            mlm_positions: int_tensor(positions, [n], device),
            mlm_labels: int_tensor(labels, [n], device),
            itm_text: int_tensor(index(&self.itm_text), [self.itm_text.len()], device),
            itm_image: int_tensor(index(&self.itm_image), [self.itm_image.len()], device),
            itm_labels: int_tensor(
                self.itm_labels.iter().map(|&m| i64::from(m)).collect(),
                [self.itm_labels.len()],
                device,
            ),
            prefix_lengths: self.prefix_lengths.clone(),
            shard: None,
        }
    }
}

/// The masked regions of the matched fused pairs, in fused-pass coordinates:
/// `(positions pair * R + r, features [M, F], class distributions [M, C])`.
/// A matched pair `i` shows image `itm_image[i]`; its masked regions are
/// those of that image row. Missing soft labels are all-zero rows.
pub(crate) fn matched_region_targets(
    masked: &MaskedRegions,
    itm_image: &[usize],
    itm_labels: &[bool],
) -> (Vec<i64>, Vec<f32>, Vec<f32>) {
    let regions = masked.batch.regions;
    let (dim, classes) = (masked.batch.feature_dim, masked.batch.num_classes);
    let (mut positions, mut features, mut soft) = (Vec::new(), Vec::new(), Vec::new());
    for (pair, (&image, _)) in itm_image
        .iter()
        .zip(itm_labels)
        .enumerate()
        .filter(|(_, (_, &is_match))| is_match)
    {
        for (k, &slot) in masked.positions.iter().enumerate() {
            if slot / regions != image {
                continue;
            }
            positions.push((pair * regions + slot % regions) as i64);
            features.extend_from_slice(&masked.feature_targets[k * dim..(k + 1) * dim]);
            match &masked.soft_label_targets {
                Some(targets) => soft.extend_from_slice(&targets[k * classes..(k + 1) * classes]),
                None => soft.extend(std::iter::repeat_n(0.0, classes)),
            }
        }
    }
    (positions, features, soft)
}

/// The masked patches of the matched fused pairs, in fused-pass coordinates:
/// `(positions pair * (1 + P) + 1 + p, bins [M, 3])`. A matched pair `i`
/// shows image `itm_image[i]`; its masked patches are those of that image
/// row, after the image's `[CLS]` token.
fn matched_patch_targets(
    masked: &MaskedPatches,
    itm_image: &[usize],
    itm_labels: &[bool],
) -> (Vec<i64>, Vec<i64>) {
    let patches = masked.num_patches;
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (pair, &image) in itm_image
        .iter()
        .zip(itm_labels)
        .enumerate()
        .filter(|(_, (_, &is_match))| is_match)
        .map(|(pair, (image, _))| (pair, image))
    {
        for p in 0..patches {
            let slot = image * patches + p;
            if masked.mask[slot] {
                positions.push((pair * (1 + patches) + 1 + p) as i64);
                targets.extend(masked.targets[slot].map(i64::from));
            }
        }
    }
    (positions, targets)
}
