//! Collation: host-side examples into padded tensors with masks.
//!
//! Batches are assembled on the host ([`HostPretrainBatch`], `Send`, cheap to
//! build on a loader thread) and moved to a device in one step
//! ([`HostPretrainBatch::to_device`]).

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;

use crate::masking::MlmMasking;
use crate::negatives::random_negatives;
use crate::patch_masking::{patch_mask_to_tensor, MaskedPatches, PatchMasking};
use crate::prefix::draw_prefix_length;
use crate::region_masking::{MaskedRegions, RegionMasking};
use crate::regions::RegionBatch;
use crate::synthetic::{
    caption, questions, Clip, RgbImage, Sample, Split, SyntheticDetector, SyntheticWorld,
    NUM_PHRASINGS,
};
use crate::tokenizer::{TextTokenizer, TokenizedBatch};
use crate::visual::{HostVisual, VisualBatch};
use crate::vqa_targets::AnswerVocabulary;
use crate::DataError;
use rand::Rng;
use std::collections::HashSet;

/// Images as `[N, 3, H, W]` floats scaled to `[-1, 1]`.
pub fn images_to_tensor<B: Backend>(images: &[&RgbImage], device: &B::Device) -> Tensor<B, 4> {
    let (height, width) = (images[0].height, images[0].width);
    let plane = height * width;
    let mut values = vec![0f32; images.len() * 3 * plane];
    for (n, image) in images.iter().enumerate() {
        assert_eq!(
            (image.height, image.width),
            (height, width),
            "images of one batch share a size"
        );
        let out = &mut values[n * 3 * plane..(n + 1) * 3 * plane];
        for (p, rgb) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + p] = rgb[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Tensor::from_data(
        TensorData::new(values, [images.len(), 3, height, width]),
        device,
    )
}

/// Clips as `[N, T, 3, H, W]` floats scaled to `[-1, 1]`; all clips of a
/// batch have the same number of frames.
pub fn clips_to_tensor<B: Backend>(clips: &[&Clip], device: &B::Device) -> Tensor<B, 5> {
    let num_frames = clips.first().map_or(0, |clip| clip.frames.len());
    assert!(
        clips.iter().all(|clip| clip.frames.len() == num_frames),
        "clips of one batch share a length"
    );
    let frames: Vec<&RgbImage> = clips.iter().flat_map(|clip| &clip.frames).collect();
    let [_, channels, height, width] = images_to_tensor::<B>(&frames[..1], device).dims();
    images_to_tensor(&frames, device).reshape([clips.len(), num_frames, channels, height, width])
}

/// Token ids `[N, T]` and the padding mask `[N, T]` (`true` at padding).
pub fn tokens_to_tensors<B: Backend>(
    batch: &TokenizedBatch,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
    let rows = batch.ids.len();
    let cols = batch.ids.first().map_or(0, Vec::len);
    let ids: Vec<i64> = batch.ids.iter().flatten().map(|&id| id as i64).collect();
    let padding: Vec<bool> = batch
        .lengths
        .iter()
        .flat_map(|&len| (0..cols).map(move |t| t >= len))
        .collect();
    (
        Tensor::from_data(TensorData::new(ids, [rows, cols]), device),
        Tensor::from_data(TensorData::new(padding, [rows, cols]), device),
    )
}

/// Everything one pre-training step needs (MLM + ITM + ITC), on the host.
#[derive(Debug, Clone)]
pub struct HostPretrainBatch {
    pub visual: HostVisual,
    pub tokens: TokenizedBatch,
    /// Masked copy of `tokens.ids`.
    pub mlm_ids: Vec<Vec<u32>>,
    /// `(row, position, original id)` of every token to predict.
    pub mlm_targets: Vec<(usize, usize, u32)>,
    /// Text row, image row and label (1 = match) of each matching example
    /// (the first `fused_pairs` rows of the batch, partners from anywhere in it).
    pub itm_text: Vec<usize>,
    pub itm_image: Vec<usize>,
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
}

fn int_tensor<B: Backend, const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

impl HostPretrainBatch {
    pub fn len(&self) -> usize {
        self.visual.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visual.is_empty()
    }

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
        let n = targets.len();
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
                let m = positions.len();
                MppBatch {
                    patch_mask: patch_mask_to_tensor(&masked.mask, batch_rows, device),
                    positions: int_tensor(positions, [m], device),
                    rgb_targets: int_tensor(targets, [m, 3], device),
                }
            }),
            vqa: self.vqa.as_ref().map(|vqa| {
                let (ids, padding) = tokens_to_tensors(&vqa.tokens, device);
                let q = vqa.tokens.ids.len();
                VqaBatch {
                    ids,
                    padding,
                    soft_targets: Tensor::from_data(
                        TensorData::new(vqa.soft_targets.clone(), [q, vqa.num_answers]),
                        device,
                    ),
                }
            }),
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
        }
    }
}

/// The masked regions of the matched fused pairs, in fused-pass coordinates:
/// `(positions pair * R + r, features [M, F], class distributions [M, C])`.
/// A matched pair `i` shows image `itm_image[i]`; its masked regions are
/// those of that image row. Missing soft labels are all-zero rows.
fn matched_region_targets(
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

/// Builds pre-training batches from the synthetic world.
#[derive(Debug, Clone)]
pub struct PretrainBatcher {
    pub world: SyntheticWorld,
    pub tokenizer: TextTokenizer,
    /// Longest token sequence, `[CLS]` and `[SEP]` included.
    pub max_text_len: usize,
    pub masking: MlmMasking,
    /// Probability that a matching example is turned into a negative.
    pub itm_negative_probability: f64,
    /// How many examples of each batch also form matching pairs for the
    /// fused pass (ITM, and MLM on the matched ones); `None`: all of them.
    /// The contrastive objective always uses the whole batch, which is where
    /// a large batch pays off; the fused pass costs as much as both unimodal
    /// passes together, so a subset trades little signal for speed.
    pub fused_pairs: Option<usize>,
    /// When set, examples carry the world's detector regions instead of
    /// pixels (region-based models: UNITER, LXMERT).
    pub detector: Option<SyntheticDetector>,
    /// When set (region batches only), regions are masked for masked region
    /// modelling; costs a second region tensor per batch.
    pub region_masking: Option<RegionMasking>,
    /// When set (pixel batches only), patches are masked for masked patch
    /// prediction, with mean-RGB targets of the original images.
    pub patch_masking: Option<PatchMasking>,
    /// When set, each image of the fused pairs gets one random question of
    /// the world's with its soft answer targets over this vocabulary.
    pub vqa_answers: Option<AnswerVocabulary>,
}

impl PretrainBatcher {
    /// The batch made of scenes `indices` of `split`, each with a random
    /// phrasing, random MLM masks and random ITM negatives drawn from `rng`.
    pub fn batch(
        &self,
        split: Split,
        indices: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        let samples = indices
            .iter()
            .map(|&i| self.world.sample(split, i))
            .collect();
        self.batch_of(samples, rng)
    }

    /// `size` random scenes of `split` with pairwise distinct descriptions
    /// (so in-batch negatives are true negatives). With `twins`, each drawn
    /// scene is followed by its hard-negative twin (same layout, one
    /// attribute changed), so half of the batch are hard negatives of the
    /// other half.
    pub fn draw(
        &self,
        split: Split,
        size: usize,
        twins: bool,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Sample> {
        let mut seen = HashSet::with_capacity(size);
        let mut samples = Vec::with_capacity(size);
        while samples.len() < size {
            let index = rng.random_range(0..u32::MAX as usize);
            let sample = self.world.sample(split, index);
            if !seen.insert(sample.scene.description_key()) {
                continue;
            }
            samples.push(sample);
            if twins && samples.len() < size {
                if let Some(twin) = self.world.twin(split, index) {
                    if seen.insert(twin.scene.description_key()) {
                        samples.push(twin);
                    }
                }
            }
        }
        samples
    }

    /// The batch of `samples`, each with a random phrasing, random MLM masks
    /// and random ITM negatives drawn from `rng`.
    pub fn batch_of(
        &self,
        samples: Vec<Sample>,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        let texts: Vec<String> = samples
            .iter()
            .map(|s| caption(&s.scene, rng.random_range(0..NUM_PHRASINGS)))
            .collect();
        let tokens = self.tokenizer.encode(&texts, self.max_text_len)?;
        let special = self.tokenizer.special();
        let vocab_size = self.tokenizer.vocab_size();
        let mut mlm_ids = Vec::with_capacity(tokens.ids.len());
        let mut mlm_targets = Vec::new();
        for (row, (ids, words)) in tokens.ids.iter().zip(&tokens.word_ids).enumerate() {
            let masked = self
                .masking
                .apply_with_words(ids, words, special, vocab_size, rng);
            for (t, label) in masked.labels.iter().enumerate() {
                if let Some(id) = label {
                    mlm_targets.push((row, t, *id));
                }
            }
            mlm_ids.push(masked.input_ids);
        }
        let descriptions: Vec<String> = samples.iter().map(|s| s.scene.description_key()).collect();
        let mut pairs = random_negatives(&descriptions, self.itm_negative_probability, rng);
        let fused = self.fused_pairs.unwrap_or(samples.len()).min(samples.len());
        pairs.text_index.truncate(fused);
        pairs.image_index.truncate(fused);
        pairs.is_match.truncate(fused);
        mlm_targets.retain(|&(row, _, _)| row < fused);
        let vqa = match &self.vqa_answers {
            Some(answers) => Some(self.questions(&samples[..fused], answers, rng)?),
            None => None,
        };
        let visual = match &self.detector {
            Some(detector) => {
                let records: Vec<_> = samples.iter().map(|s| detector.detect(&s.scene)).collect();
                HostVisual::Regions(RegionBatch::from_records(&records, usize::MAX)?)
            }
            None => HostVisual::Images(samples.into_iter().map(|s| s.image).collect()),
        };
        let masked_regions = match (&self.region_masking, &visual) {
            (None, _) => None,
            (Some(masking), HostVisual::Regions(regions)) => {
                masking.validate()?;
                Some(masking.apply(regions, rng))
            }
            (Some(_), HostVisual::Images(_)) => {
                return Err(DataError::RegionMaskingWithoutRegions(
                    "region_masking needs detector regions; the batcher has no detector",
                ))
            }
        };
        let masked_patches = match (&self.patch_masking, &visual) {
            (None, _) => None,
            (Some(masking), HostVisual::Images(images)) => {
                Some(masking.apply_to_images(images, rng)?)
            }
            (Some(_), HostVisual::Regions(_)) => return Err(DataError::PatchMaskingWithoutImages),
        };
        let uniforms = (0..2 * visual.len()).map(|_| rng.random::<f32>()).collect();
        // Drawn last, so the other draws stay what they were before splits existed.
        let prefix_lengths = tokens
            .lengths
            .iter()
            .map(|&len| draw_prefix_length(len, rng))
            .collect();
        Ok(HostPretrainBatch {
            visual,
            tokens,
            mlm_ids,
            mlm_targets,
            itm_text: pairs.text_index,
            itm_image: pairs.image_index,
            itm_labels: pairs.is_match,
            descriptions,
            prefix_lengths,
            masked_regions,
            masked_patches,
            vqa,
            uniforms,
        })
    }

    /// One random question about each of `samples`, tokenized, with soft
    /// targets (one known answer: ten agreeing humans).
    fn questions(
        &self,
        samples: &[Sample],
        answers: &AnswerVocabulary,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostVqaBatch, DataError> {
        let mut texts = Vec::with_capacity(samples.len());
        let mut soft_targets = Vec::with_capacity(samples.len() * answers.len());
        for sample in samples {
            let items = questions(&sample.scene, rng);
            let item = &items[rng.random_range(0..items.len())];
            texts.push(item.question.clone());
            soft_targets.extend(answers.soft_targets(&[item.answer.as_str(); 10]));
        }
        Ok(HostVqaBatch {
            tokens: self.tokenizer.encode(&texts, self.max_text_len)?,
            soft_targets,
            num_answers: answers.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch_masking::patch_rgb_targets;
    use burn::backend::NdArray;
    use rand::SeedableRng;

    #[test]
    fn clips_stack_frames_in_time_order() {
        let world = SyntheticWorld::new(0, 16);
        let clips = [
            world.clip(Split::Train, 0, 3),
            world.clip(Split::Train, 1, 3),
        ];
        let refs: Vec<&Clip> = clips.iter().collect();
        let device = Default::default();
        let tensor = clips_to_tensor::<NdArray>(&refs, &device);
        assert_eq!(tensor.dims(), [2, 3, 3, 16, 16]);
        let frame = images_to_tensor::<NdArray>(&[&clips[1].frames[2]], &device);
        tensor
            .slice([1..2, 2..3])
            .reshape([1, 3, 16, 16])
            .into_data()
            .assert_eq(&frame.into_data(), true);
    }

    #[test]
    fn whole_word_masking_predicts_whole_words() {
        let world = SyntheticWorld::new(0, 32);
        // A small vocabulary splits the world's words into several pieces.
        let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 60).unwrap();
        let batcher = PretrainBatcher {
            world,
            tokenizer,
            max_text_len: 64,
            masking: MlmMasking {
                whole_word: true,
                ..MlmMasking::default()
            },
            itm_negative_probability: 0.0,
            fused_pairs: None,
            detector: None,
            region_masking: None,
            patch_masking: None,
            vqa_answers: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let host = batcher
            .batch(Split::Train, &[0, 1, 2, 3, 4, 5], &mut rng)
            .unwrap();
        let words = &host.tokens.word_ids;
        assert!(
            words.iter().flatten().flatten().count()
                > words
                    .iter()
                    .map(|row| row.iter().flatten().max().unwrap() + 1)
                    .sum::<u32>() as usize,
            "some words have several tokens"
        );
        let targets: HashSet<(usize, usize)> = host
            .mlm_targets
            .iter()
            .map(|&(row, t, _)| (row, t))
            .collect();
        for &(row, t, _) in &host.mlm_targets {
            let word = words[row][t].expect("specials are never predicted");
            for (u, other) in words[row].iter().enumerate() {
                if *other == Some(word) {
                    assert!(
                        targets.contains(&(row, u)),
                        "row {row}: word {word} is split"
                    );
                }
            }
        }
    }

    fn region_batcher() -> PretrainBatcher {
        let world = SyntheticWorld::new(0, 32);
        PretrainBatcher {
            tokenizer: TextTokenizer::train_wordpiece(&world.corpus(100), 200).unwrap(),
            world,
            max_text_len: 32,
            masking: MlmMasking::default(),
            itm_negative_probability: 0.5,
            fused_pairs: Some(5),
            detector: Some(SyntheticDetector::new(0, Default::default())),
            region_masking: Some(RegionMasking::uniter()),
            patch_masking: None,
            vqa_answers: Some(AnswerVocabulary::synthetic()),
        }
    }

    #[test]
    fn masked_region_targets_follow_the_matched_pairs_into_the_fused_pass() {
        let batcher = region_batcher();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let host = batcher
            .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
            .unwrap();
        let masked = host.masked_regions.as_ref().unwrap();
        let HostVisual::Regions(regions) = &host.visual else {
            panic!("the batcher has a detector");
        };
        let (r, dim, classes) = (regions.regions, regions.feature_dim, regions.num_classes);
        let (positions, features, soft) =
            matched_region_targets(masked, &host.itm_image, &host.itm_labels);
        // Independent count: every masked slot of every matched pair's image.
        let expected: usize = (0..host.itm_labels.len())
            .filter(|&i| host.itm_labels[i])
            .map(|i| {
                (0..r)
                    .filter(|&s| masked.mask[host.itm_image[i] * r + s])
                    .count()
            })
            .sum();
        assert!(expected > 0 && host.itm_labels.contains(&false));
        assert_eq!(positions.len(), expected);
        let soft_labels = regions.soft_labels.as_ref().unwrap();
        for (k, &position) in positions.iter().enumerate() {
            let (pair, slot) = (position as usize / r, position as usize % r);
            assert!(host.itm_labels[pair]);
            let source = host.itm_image[pair] * r + slot;
            assert!(masked.mask[source]);
            assert_eq!(
                &features[k * dim..(k + 1) * dim],
                &regions.features[source * dim..(source + 1) * dim],
                "the target is the unmasked feature"
            );
            assert!(masked.batch.features[source * dim..(source + 1) * dim]
                .iter()
                .all(|&v| v == 0.0));
            assert_eq!(
                &soft[k * classes..(k + 1) * classes],
                &soft_labels[source * classes..(source + 1) * classes]
            );
        }
        let batch = host.to_device::<NdArray>(&Default::default());
        let mvm = batch.mvm.unwrap();
        assert_eq!(mvm.feature_targets.dims(), [expected, dim]);
        assert_eq!(mvm.soft_label_targets.dims(), [expected, classes]);
        assert_eq!(batch.uniforms.dims(), [2, 8]);
    }

    #[test]
    fn masked_patch_targets_are_the_original_colours_at_fused_positions() {
        let batcher = PretrainBatcher {
            detector: None,
            region_masking: None,
            vqa_answers: None,
            patch_masking: Some(PatchMasking::vilt(8)),
            ..region_batcher()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let host = batcher
            .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
            .unwrap();
        let HostVisual::Images(images) = &host.visual else {
            panic!("no detector: pixels");
        };
        let masked = host.masked_patches.as_ref().unwrap();
        let p = (32 / 8) * (32 / 8);
        assert_eq!((masked.num_patches, masked.mask.len()), (p, 8 * p));
        let batch = host.to_device::<NdArray>(&Default::default());
        let mpp = batch.mpp.unwrap();
        assert_eq!(
            mpp.patch_mask.into_data().to_vec::<bool>().unwrap(),
            masked.mask
        );
        let positions: Vec<i64> = mpp.positions.into_data().convert::<i64>().to_vec().unwrap();
        let targets: Vec<i64> = mpp
            .rgb_targets
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        // Independently: every masked patch of every matched pair's image, in
        // pair order, with [CLS] at token 0 of each image.
        let mut expected_positions = Vec::new();
        let mut expected_targets = Vec::new();
        for pair in (0..host.itm_labels.len()).filter(|&i| host.itm_labels[i]) {
            let image = host.itm_image[pair];
            let colours = patch_rgb_targets(&images[image], 8).unwrap();
            for patch in (0..p).filter(|&k| masked.mask[image * p + k]) {
                expected_positions.push((pair * (p + 1) + 1 + patch) as i64);
                expected_targets.extend(colours[patch].map(i64::from));
            }
        }
        assert!(!expected_positions.is_empty() && host.itm_labels.contains(&false));
        assert_eq!(positions, expected_positions);
        assert_eq!(targets, expected_targets);
        // The targets are not one colour: the scenes' patches differ.
        assert!(targets.chunks(3).any(|rgb| rgb != &targets[..3]));

        let regions = PretrainBatcher {
            detector: Some(SyntheticDetector::new(0, Default::default())),
            ..batcher.clone()
        };
        let error = regions.batch(Split::Train, &[0, 1], &mut rng).unwrap_err();
        assert!(error.to_string().contains("patch_masking"), "{error}");
        let uneven = PretrainBatcher {
            patch_masking: Some(PatchMasking::vilt(5)),
            ..batcher
        };
        let error = uneven.batch(Split::Train, &[0, 1], &mut rng).unwrap_err();
        assert!(error.to_string().contains("5-pixel patches"), "{error}");
    }

    #[test]
    fn questions_ask_about_the_fused_images_with_full_credit_targets() {
        let batcher = region_batcher();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let host = batcher
            .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
            .unwrap();
        let vqa = host.vqa.as_ref().unwrap();
        let answers = AnswerVocabulary::synthetic();
        assert_eq!(vqa.tokens.ids.len(), 5, "one question per fused image");
        for row in vqa.soft_targets.chunks(answers.len()) {
            assert_eq!(row.iter().filter(|&&v| v == 1.0).count(), 1);
            assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), answers.len() - 1);
        }
        let batch = host.to_device::<NdArray>(&Default::default());
        assert_eq!(batch.vqa.unwrap().soft_targets.dims(), [5, answers.len()]);

        let pixels = PretrainBatcher {
            detector: None,
            ..region_batcher()
        };
        let error = pixels.batch(Split::Train, &[0, 1], &mut rng).unwrap_err();
        assert!(
            error.to_string().contains("needs detector regions"),
            "{error}"
        );
    }

    #[test]
    fn collates_consistent_tensors() {
        let world = SyntheticWorld::new(0, 32);
        let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 200).unwrap();
        let batcher = PretrainBatcher {
            world,
            tokenizer,
            max_text_len: 32,
            masking: MlmMasking::default(),
            itm_negative_probability: 0.5,
            fused_pairs: None,
            detector: None,
            region_masking: None,
            patch_masking: None,
            vqa_answers: None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let host = batcher
            .batch(Split::Train, &[0, 1, 2, 3], &mut rng)
            .unwrap();
        let device = Default::default();
        let batch = host.to_device::<NdArray>(&device);
        let t = host.tokens.ids[0].len();
        let VisualBatch::Images(images) = &batch.visual else {
            panic!("no detector: pixels");
        };
        assert_eq!(images.dims(), [4, 3, 32, 32]);
        assert_eq!(batch.text_ids.dims(), [4, t]);
        assert_eq!(batch.mlm_ids.dims(), [4, t]);
        let pixel = images.clone().slice([0..1, 0..1, 0..1, 0..1]).into_scalar();
        assert!((-1.0..=1.0).contains(&pixel));
        let padding: Vec<bool> = batch.text_padding.into_data().to_vec().unwrap();
        for (row, &len) in host.tokens.lengths.iter().enumerate() {
            for col in 0..t {
                assert_eq!(padding[row * t + col], col >= len);
            }
        }
        let subset = PretrainBatcher {
            fused_pairs: Some(2),
            ..batcher.clone()
        };
        let partial = subset.batch(Split::Train, &[0, 1, 2, 3], &mut rng).unwrap();
        assert_eq!(
            (
                partial.itm_labels.len(),
                partial.itm_text.len(),
                partial.itm_image.len()
            ),
            (2, 2, 2)
        );
        assert!(partial.mlm_targets.iter().all(|&(row, _, _)| row < 2));
        for (&prefix, &len) in host.prefix_lengths.iter().zip(&host.tokens.lengths) {
            assert!((1..len).contains(&prefix));
        }
        assert_eq!(batch.prefix_lengths, host.prefix_lengths);
        let twins = batcher.draw(Split::Train, 10, true, &mut rng);
        let keys: HashSet<String> = twins.iter().map(|s| s.scene.description_key()).collect();
        assert_eq!((twins.len(), keys.len()), (10, 10));
        let positions: Vec<i64> = batch
            .mlm_positions
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        let labels: Vec<i64> = batch
            .mlm_labels
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        let matched = host.itm_labels.iter().filter(|&&m| m).count();
        assert!(
            positions.len() >= matched,
            "at least one masked token per matching pair"
        );
        for (&flat, &label) in positions.iter().zip(&labels) {
            let (row, col) = (flat as usize / t, flat as usize % t);
            assert!(
                host.itm_labels[row],
                "MLM targets come from matching pairs only"
            );
            assert_eq!(host.tokens.ids[row][col] as i64, label);
        }
    }
}
