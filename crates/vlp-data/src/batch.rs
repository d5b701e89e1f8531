//! Pre-training batches ([`PretrainBatcher`]) from the synthetic world or
//! from datasets on disk ([`DatasetPairs`]): captions, MLM masks, ITM
//! negatives and the optional region, patch and VQA targets, assembled on
//! the host ([`HostPretrainBatch`], `Send`, cheap to
//! build on a loader thread) and moved to a device in one step
//! ([`HostPretrainBatch::to_device`]).

use rand_chacha::ChaCha8Rng;

use crate::dataset_pairs::{visual_batch, DatasetPairs, LoadedPair, TrainDraws};
use crate::masking::MlmMasking;
use crate::negatives::random_negatives;
use crate::patch_masking::PatchMasking;
use crate::prefix::draw_prefix_length;
use crate::pretrain_batch::{HostPretrainBatch, HostVqaBatch, TargetSlots};
use crate::region_masking::RegionMasking;
use crate::regions::RegionBatch;
use crate::synthetic::{
    caption, questions, Clip, Sample, Split, SyntheticDetector, SyntheticWorld, NUM_CLIP_PHRASINGS,
    NUM_PHRASINGS,
};
use crate::tokenizer::{TextPadding, TextTokenizer};
use crate::visual::HostVisual;
use crate::vqa_targets::AnswerVocabulary;
use crate::DataError;
use rand::Rng;
use std::collections::HashSet;

/// Where a batcher's pairs come from.
#[derive(Debug, Clone)]
pub enum PairSource {
    /// The synthetic world: endless scenes with their phrasings, detector
    /// regions and questions.
    World(SyntheticWorld),
    /// Datasets on disk: image-caption pairs, images through the pipeline.
    Datasets(DatasetPairs),
}

/// The training loader's reading state ([`PretrainBatcher::train_draws`]).
pub enum TrainState {
    /// The world needs none.
    World,
    /// The datasets' positions.
    Datasets(TrainDraws),
}

impl TrainState {
    /// Whether a step's draws depend on the steps before it (a shard
    /// stream's position), not only on the seed and the step: a run resumed
    /// at step k must then draw steps 0..k again to get there.
    pub fn follows_past(&self) -> bool {
        matches!(self, Self::Datasets(draws) if draws.streams_shards())
    }
}

/// The pairs held out for retrieval and captioning, as the model reads them.
#[derive(Debug, Clone)]
pub struct HeldOutPairs {
    /// One caption per pair (the query or candidate of retrieval).
    pub captions: Vec<String>,
    /// Every caption of each pair (captioning's references).
    pub references: Vec<Vec<String>>,
    /// The pairs' images or regions.
    pub visual: HostVisual,
}

/// Builds pre-training batches from the synthetic world or from datasets.
///
/// [`PretrainBatcher::new`] gives the plain pixel batcher (default MLM
/// masking, half of the matching pairs turned into ITM negatives, nothing
/// optional); the `with_*` methods turn on the rest:
///
/// ```
/// use vlp_data::synthetic::{DetectorConfig, SyntheticDetector, SyntheticWorld};
/// use vlp_data::{PretrainBatcher, RegionMasking, TextTokenizer};
///
/// let world = SyntheticWorld::new(0, 32);
/// let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 200).unwrap();
/// let batcher = PretrainBatcher::new(world, tokenizer, 40)
///     .with_detector(Some(SyntheticDetector::new(0, DetectorConfig::default())))
///     .with_region_masking(Some(RegionMasking::uniter()));
/// assert_eq!(batcher.itm_negative_probability, 0.5);
/// assert!(batcher.fused_pairs.is_none() && batcher.patch_masking.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct PretrainBatcher {
    /// Where the pairs come from.
    pub source: PairSource,
    /// Tokenizer of the captions (and questions).
    pub tokenizer: TextTokenizer,
    /// Longest token sequence, `[CLS]` and `[SEP]` included.
    pub max_text_len: usize,
    /// How token rows are padded (captions and questions alike).
    pub text_padding: TextPadding,
    /// How many rows the MLM and masked-patch targets take on the device.
    pub target_slots: TargetSlots,
    /// How captions are masked for MLM.
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
    /// When set, the world's examples are clips of this many frames with
    /// captions of their motion instead of images (video-language models).
    pub clip_frames: Option<usize>,
}

impl PretrainBatcher {
    /// The pixel batcher of `world`: captions tokenized by `tokenizer` to at
    /// most `max_text_len` tokens, [`MlmMasking::default`], ITM negatives
    /// with probability 0.5, every example in the fused pass, and no
    /// detector, region or patch masking or VQA questions.
    pub fn new(world: SyntheticWorld, tokenizer: TextTokenizer, max_text_len: usize) -> Self {
        Self::of(PairSource::World(world), tokenizer, max_text_len)
    }

    /// [`Self::new`]'s batcher over datasets on disk (no synthetic detector:
    /// region features come from each dataset's `regions`, and VQA
    /// questions with the synthetic world only).
    pub fn from_datasets(
        datasets: DatasetPairs,
        tokenizer: TextTokenizer,
        max_text_len: usize,
    ) -> Self {
        Self::of(PairSource::Datasets(datasets), tokenizer, max_text_len)
    }

    fn of(source: PairSource, tokenizer: TextTokenizer, max_text_len: usize) -> Self {
        Self {
            source,
            tokenizer,
            max_text_len,
            text_padding: TextPadding::Longest,
            target_slots: TargetSlots::Exact,
            masking: MlmMasking::default(),
            itm_negative_probability: 0.5,
            fused_pairs: None,
            detector: None,
            region_masking: None,
            patch_masking: None,
            vqa_answers: None,
            clip_frames: None,
        }
    }

    /// Sets [`Self::text_padding`] and [`Self::target_slots`]: shape-stable
    /// batches for GPU backends, or exact ones.
    pub fn with_shapes(mut self, padding: TextPadding, slots: TargetSlots) -> Self {
        self.text_padding = padding;
        self.target_slots = slots;
        self
    }

    /// Sets [`Self::masking`].
    pub fn with_masking(mut self, masking: MlmMasking) -> Self {
        self.masking = masking;
        self
    }

    /// Sets [`Self::itm_negative_probability`].
    pub fn with_itm_negative_probability(mut self, probability: f64) -> Self {
        self.itm_negative_probability = probability;
        self
    }

    /// Sets [`Self::fused_pairs`].
    pub fn with_fused_pairs(mut self, fused_pairs: Option<usize>) -> Self {
        self.fused_pairs = fused_pairs;
        self
    }

    /// Sets [`Self::detector`] (regions instead of pixels when `Some`).
    pub fn with_detector(mut self, detector: Option<SyntheticDetector>) -> Self {
        self.detector = detector;
        self
    }

    /// Sets [`Self::region_masking`].
    pub fn with_region_masking(mut self, masking: Option<RegionMasking>) -> Self {
        self.region_masking = masking;
        self
    }

    /// Sets [`Self::patch_masking`].
    pub fn with_patch_masking(mut self, masking: Option<PatchMasking>) -> Self {
        self.patch_masking = masking;
        self
    }

    /// Sets [`Self::vqa_answers`].
    pub fn with_vqa_answers(mut self, answers: Option<AnswerVocabulary>) -> Self {
        self.vqa_answers = answers;
        self
    }

    /// Sets [`Self::clip_frames`].
    pub fn with_clips(mut self, frames: Option<usize>) -> Self {
        self.clip_frames = frames;
        self
    }

    /// The synthetic world, or an error naming `what` needs it.
    pub fn world(&self, what: &str) -> Result<&SyntheticWorld, DataError> {
        match &self.source {
            PairSource::World(world) => Ok(world),
            PairSource::Datasets(_) => Err(DataError::DatasetFormat(format!(
                "{what} needs the synthetic world, not datasets on disk"
            ))),
        }
    }

    /// The batch made of scenes `indices` of `split`, each with a random
    /// phrasing, random MLM masks and random ITM negatives drawn from `rng`.
    ///
    /// # Errors
    /// Without the synthetic world; those of [`Self::batch_of`].
    pub fn batch(
        &self,
        split: Split,
        indices: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        let world = self.world("a batch of scenes")?;
        if let Some(frames) = self.clip_frames {
            let clips = indices
                .iter()
                .map(|&i| world.clip(split, i, frames))
                .collect();
            return self.batch_of_clips(clips, rng);
        }
        let samples = indices.iter().map(|&i| world.sample(split, i)).collect();
        self.batch_of(samples, rng)
    }

    /// Starts the training loader's reading (shard streams open here).
    ///
    /// # Errors
    /// Those of [`DatasetPairs::train_draws`].
    pub fn train_draws(&self) -> Result<TrainState, DataError> {
        Ok(match &self.source {
            PairSource::World(_) => TrainState::World,
            PairSource::Datasets(datasets) => TrainState::Datasets(datasets.train_draws()?),
        })
    }

    /// A training batch of `size` pairs for `step`: random scenes of the
    /// world (with hard-negative twins when `twins`), or pairs of the
    /// datasets (augmented with the draws of the seed and `step`).
    ///
    /// # Errors
    /// Those of [`DatasetPairs::train_pairs`] and [`Self::batch_of`].
    pub fn train_batch(
        &self,
        state: &mut TrainState,
        size: usize,
        twins: bool,
        step: u64,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        match (&self.source, state) {
            (PairSource::Datasets(datasets), TrainState::Datasets(draws)) => {
                let pairs = datasets.train_pairs(draws, size, step, rng)?;
                self.batch_of_pairs(pairs, rng)
            }
            (PairSource::World(_), _) => self.world_batch(Split::Train, size, twins, rng),
            (PairSource::Datasets(_), TrainState::World) => Err(DataError::DatasetFormat(
                "the training state is the world's; start it with train_draws".into(),
            )),
        }
    }

    /// A held-out batch of `size` pairs (the world's test split, or the
    /// held-out dataset), for scoring the objectives without training.
    ///
    /// # Errors
    /// Those of [`DatasetPairs::held_out_batch_pairs`] and [`Self::batch_of`].
    pub fn held_out_batch(
        &self,
        size: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        match &self.source {
            PairSource::World(_) => self.world_batch(Split::Test, size, false, rng),
            PairSource::Datasets(datasets) => {
                let pairs = datasets.held_out_batch_pairs(size, rng)?;
                self.batch_of_pairs(pairs, rng)
            }
        }
    }

    /// The first `n` held-out pairs with distinct captions: the world's
    /// [`SyntheticWorld::distinct_indices`] of the test split, scene `i`
    /// with its phrasing `i mod NUM_PHRASINGS` (and the detector's regions
    /// when the batcher has one), or the held-out dataset's
    /// ([`DatasetPairs::held_out_pairs`]; fewer when it has fewer). With
    /// clips: [`SyntheticWorld::held_out_clips`] of the test split, each
    /// clip followed by its motion twin (same objects and first frame), so
    /// that the twins compete in retrieval; clip `i` with its phrasing
    /// `i mod NUM_CLIP_PHRASINGS`.
    ///
    /// # Errors
    /// Those of the detector's regions and of the held-out dataset.
    pub fn held_out_pairs(&self, n: usize) -> Result<HeldOutPairs, DataError> {
        match (&self.source, self.clip_frames) {
            (PairSource::World(world), Some(frames)) => {
                let mut chosen = world.held_out_clips(Split::Test, n.div_ceil(2), 2, frames);
                chosen.truncate(n);
                let clips: Vec<Clip> = chosen
                    .iter()
                    .map(|&(index, variant)| {
                        world.clip_variant(Split::Test, index, variant, frames)
                    })
                    .collect();
                Ok(HeldOutPairs {
                    captions: (clips.iter().enumerate())
                        .map(|(i, clip)| clip.caption(i % NUM_CLIP_PHRASINGS))
                        .collect(),
                    references: (clips.iter())
                        .map(|clip| (0..NUM_CLIP_PHRASINGS).map(|p| clip.caption(p)).collect())
                        .collect(),
                    visual: HostVisual::Clips(clips),
                })
            }
            (PairSource::World(world), None) => {
                let indices = world.distinct_indices(Split::Test, n);
                let samples: Vec<Sample> = indices
                    .iter()
                    .map(|&i| world.sample(Split::Test, i))
                    .collect();
                let captions = indices
                    .iter()
                    .zip(&samples)
                    .map(|(&i, s)| caption(&s.scene, i % NUM_PHRASINGS))
                    .collect();
                let references = samples
                    .iter()
                    .map(|s| (0..NUM_PHRASINGS).map(|p| caption(&s.scene, p)).collect())
                    .collect();
                Ok(HeldOutPairs {
                    captions,
                    references,
                    visual: self.scene_visual(samples)?,
                })
            }
            (PairSource::Datasets(datasets), _) => {
                let pairs = datasets.held_out_pairs(n)?;
                Ok(HeldOutPairs {
                    captions: pairs.iter().map(|p| p.caption.clone()).collect(),
                    references: pairs.iter().map(|p| p.references.clone()).collect(),
                    visual: visual_batch(pairs.into_iter().map(|p| p.visual).collect())?,
                })
            }
        }
    }

    /// The scenes' pixels, or their detector regions when the batcher has
    /// a detector.
    fn scene_visual(&self, samples: Vec<Sample>) -> Result<HostVisual, DataError> {
        Ok(match &self.detector {
            Some(detector) => {
                let records: Vec<_> = samples.iter().map(|s| detector.detect(&s.scene)).collect();
                HostVisual::Regions(RegionBatch::from_records(&records, usize::MAX)?)
            }
            None => HostVisual::Images(samples.into_iter().map(|s| s.image).collect()),
        })
    }

    /// `size` random scenes of `split` with pairwise distinct descriptions
    /// (so in-batch negatives are true negatives). With `twins`, each drawn
    /// scene is followed by its hard-negative twin (same layout, one
    /// attribute changed), so half of the batch are hard negatives of the
    /// other half.
    ///
    /// # Panics
    /// Without the synthetic world ([`PairSource::World`]).
    pub fn draw(
        &self,
        split: Split,
        size: usize,
        twins: bool,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Sample> {
        let PairSource::World(world) = &self.source else {
            panic!("draw needs the synthetic world; datasets are drawn by train_batch");
        };
        let mut seen = HashSet::with_capacity(size);
        let mut samples = Vec::with_capacity(size);
        while samples.len() < size {
            let index = rng.random_range(0..u32::MAX as usize);
            let sample = world.sample(split, index);
            if !seen.insert(sample.scene.description_key()) {
                continue;
            }
            samples.push(sample);
            if twins && samples.len() < size {
                if let Some(twin) = world.twin(split, index) {
                    if seen.insert(twin.scene.description_key()) {
                        samples.push(twin);
                    }
                }
            }
        }
        samples
    }

    /// A batch of `size` random scenes of `split`, or clips with clip
    /// batches (with twins: hard-negative twins, or motion twins of clips).
    fn world_batch(
        &self,
        split: Split,
        size: usize,
        twins: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        match self.clip_frames {
            Some(frames) => {
                let clips = self.draw_clips(split, size, frames, twins, rng)?;
                self.batch_of_clips(clips, rng)
            }
            None => {
                let samples = self.draw(split, size, twins, rng);
                self.batch_of(samples, rng)
            }
        }
    }

    /// `size` random clips of `frames` frames of `split` with pairwise
    /// distinct descriptions; with `twins`, each drawn clip is followed by
    /// its motion twin (same objects and first frame, one object moving
    /// another way), whose caption is the hard negative.
    ///
    /// # Errors
    /// Without the synthetic world.
    pub fn draw_clips(
        &self,
        split: Split,
        size: usize,
        frames: usize,
        twins: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Clip>, DataError> {
        let world = self.world("a batch of clips")?;
        let mut seen = HashSet::with_capacity(size);
        let mut clips = Vec::with_capacity(size);
        while clips.len() < size {
            let index = rng.random_range(0..u32::MAX as usize);
            let clip = world.clip(split, index, frames);
            if !seen.insert(clip.description_key()) {
                continue;
            }
            clips.push(clip);
            if twins && clips.len() < size {
                let twin = world.clip_variant(split, index, 1, frames);
                if seen.insert(twin.description_key()) {
                    clips.push(twin);
                }
            }
        }
        Ok(clips)
    }

    /// The batch of `clips`, each with a random phrasing of its motion,
    /// random MLM masks and random ITM negatives drawn from `rng`.
    pub fn batch_of_clips(
        &self,
        clips: Vec<Clip>,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        let texts: Vec<String> = clips
            .iter()
            .map(|clip| clip.caption(rng.random_range(0..NUM_CLIP_PHRASINGS)))
            .collect();
        let descriptions = clips.iter().map(Clip::description_key).collect();
        self.assemble(texts, descriptions, Pairs::Clips(clips), rng)
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
        let descriptions = samples.iter().map(|s| s.scene.description_key()).collect();
        self.assemble(texts, descriptions, Pairs::Scenes(samples), rng)
    }

    /// The batch of loaded dataset pairs, with random MLM masks and ITM
    /// negatives drawn from `rng`. Captions stand for the descriptions:
    /// two pairs are negatives of each other when their captions differ.
    pub fn batch_of_pairs(
        &self,
        pairs: Vec<LoadedPair>,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        let texts: Vec<String> = pairs.iter().map(|p| p.caption.clone()).collect();
        let descriptions = texts.clone();
        let visual = visual_batch(pairs.into_iter().map(|p| p.visual).collect())?;
        self.assemble(texts, descriptions, Pairs::Loaded(visual), rng)
    }

    /// Tokens, masks, negatives and the optional targets of `texts` paired
    /// with `inputs`' visual side (the draws in the order they always had).
    fn assemble(
        &self,
        texts: Vec<String>,
        descriptions: Vec<String>,
        inputs: Pairs,
        rng: &mut ChaCha8Rng,
    ) -> Result<HostPretrainBatch, DataError> {
        let tokens = self
            .tokenizer
            .encode_padded(&texts, self.max_text_len, self.text_padding)?;
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
        let mut pairs = random_negatives(&descriptions, self.itm_negative_probability, rng);
        let fused = self.fused_pairs.unwrap_or(texts.len()).min(texts.len());
        pairs.text_index.truncate(fused);
        pairs.image_index.truncate(fused);
        pairs.is_match.truncate(fused);
        mlm_targets.retain(|&(row, _, _)| row < fused);
        let vqa = match (&self.vqa_answers, &inputs) {
            (Some(answers), Pairs::Scenes(samples)) => {
                Some(self.questions(&samples[..fused], answers, rng)?)
            }
            (Some(_), Pairs::Loaded(_) | Pairs::Clips(_)) => {
                return Err(DataError::DatasetFormat(
                    "VQA questions in pre-training batches need the synthetic world's images"
                        .into(),
                ))
            }
            (None, _) => None,
        };
        let visual = match inputs {
            Pairs::Scenes(samples) => self.scene_visual(samples)?,
            Pairs::Loaded(_) if self.detector.is_some() => {
                return Err(DataError::DatasetFormat(
                    "the synthetic detector needs the synthetic world; datasets give their \
                     own region features (`regions`)"
                        .into(),
                ))
            }
            Pairs::Loaded(visual) => visual,
            Pairs::Clips(_) if self.detector.is_some() => {
                return Err(DataError::DatasetFormat(
                    "the synthetic detector sees images, not clips".into(),
                ))
            }
            Pairs::Clips(clips) => HostVisual::Clips(clips),
        };
        let masked_regions = match (&self.region_masking, &visual) {
            (None, _) => None,
            (Some(masking), HostVisual::Regions(regions)) => {
                masking.validate()?;
                Some(masking.apply(regions, rng))
            }
            (Some(_), HostVisual::Images(_) | HostVisual::Clips(_)) => {
                return Err(DataError::RegionMaskingWithoutRegions(
                    "region_masking needs regions: the synthetic detector or a dataset's `regions`",
                ))
            }
        };
        let masked_patches = match (&self.patch_masking, &visual) {
            (None, _) => None,
            (Some(masking), HostVisual::Images(images)) => {
                Some(masking.apply_to_images(images, rng)?)
            }
            (Some(_), HostVisual::Regions(_) | HostVisual::Clips(_)) => {
                return Err(DataError::PatchMaskingWithoutImages)
            }
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
            target_slots: self.target_slots,
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
            tokens: self
                .tokenizer
                .encode_padded(&texts, self.max_text_len, self.text_padding)?,
            soft_targets,
            num_answers: answers.len(),
        })
    }
}

/// The visual side of a batch before assembly.
enum Pairs {
    /// World scenes: pixels or detector regions, and questions.
    Scenes(Vec<Sample>),
    /// Dataset pairs' images (transformed) or region features.
    Loaded(HostVisual),
    /// World clips.
    Clips(Vec<Clip>),
}

#[cfg(test)]
mod tests;
