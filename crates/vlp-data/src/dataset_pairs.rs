//! Image-caption pairs from datasets on disk for the pre-training batcher
//! (issue 15; survey §5's corpora read as users have them): training pairs
//! drawn from one or several datasets mixed by weight, images decoded and
//! augmented by the [`ImagePipeline`] in parallel (or, for a model on
//! regions, the images' detector features read in their place), a broken
//! sample skipped and counted in the run's [`CorruptBudget`]; held-out
//! pairs in file order for retrieval and captioning.
//!
//! Indexed datasets are sampled with replacement (each step's draws depend
//! only on the seed and the step); shards are streamed front to back
//! through a seeded shuffle buffer and read again, reshuffled, at their
//! end. Nothing but the annotations is held in memory: images are read
//! when their batch is built.

use std::collections::HashSet;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::image::{ImagePipeline, ImageSample, TransformMode};
use crate::regions::{region_record, RegionBatch, RegionRecord, SharedRegions};
use crate::source::{
    CorruptBudget, OpenedDataset, Sample, SampleSource, ShardSplit, WebDataset, WebDatasetOptions,
    WebDatasetStream,
};
use crate::synthetic::RgbImage;
use crate::visual::HostVisual;
use crate::DataError;

/// How many candidate pairs a batch may draw per pair it needs before the
/// dataset is declared too small (or too broken) for the batch size.
const DRAWS_PER_PAIR: usize = 64;

/// A training dataset and its share of the pairs.
#[derive(Clone)]
pub struct WeightedDataset {
    /// The opened dataset.
    pub dataset: OpenedDataset,
    /// Relative share of the training pairs.
    pub weight: f64,
    /// The images' region features, read in place of the images when set.
    pub regions: Option<SharedRegions>,
}

impl std::fmt::Debug for WeightedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightedDataset")
            .field("dataset", &self.dataset)
            .field("weight", &self.weight)
            .field("regions", &self.regions.as_ref().map(|r| r.len()))
            .finish()
    }
}

/// Datasets on disk as the batcher reads them.
#[derive(Clone)]
pub struct DatasetPairs {
    /// The training datasets, mixed by weight.
    pub train: Vec<WeightedDataset>,
    /// The held-out pairs (retrieval, captioning, held-out objectives).
    pub held_out: Option<Arc<dyn SampleSource>>,
    /// The held-out images' region features, read in their place when set.
    pub held_out_regions: Option<SharedRegions>,
    /// Decoding, cropping and flipping of the images.
    pub pipeline: ImagePipeline,
    /// Counts the samples read (each sample drawn, shard samples as the
    /// stream reads them) and skipped (a broken record or image); the run
    /// stops once it is spent.
    pub budget: CorruptBudget,
    /// Seed of the augmentation and of the shards' shuffle.
    pub seed: u64,
    /// Samples held by each shard stream's shuffle buffer.
    pub shuffle_buffer: usize,
}

impl std::fmt::Debug for DatasetPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetPairs")
            .field("train", &self.train)
            .field("held_out", &self.held_out.as_ref().map(|h| h.len()))
            .field("pipeline", self.pipeline.config())
            .field("seed", &self.seed)
            .finish()
    }
}

/// One pair, loaded: the caption (after a flip's left/right swap) and the
/// transformed image or the image's regions.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPair {
    /// The sample's key in its dataset.
    pub key: String,
    /// The caption.
    pub caption: String,
    /// What the model sees of the image.
    pub visual: PairVisual,
    /// Every caption of the sample (captioning references), flipped with it.
    pub references: Vec<String>,
}

/// What a model sees of one pair's image.
#[derive(Debug, Clone, PartialEq)]
pub enum PairVisual {
    /// The image, `image_size` square.
    Image(RgbImage),
    /// Its detector regions, read from the dataset's region features.
    Regions(RegionRecord),
}

/// The pairs' visual side as one batch: images, or regions padded to the
/// batch's largest region count.
///
/// # Errors
/// [`DataError::DatasetFormat`] for a batch mixing images and regions (a
/// dataset without region features mixed with one that has them); those
/// of [`RegionBatch::from_records`].
pub fn visual_batch(visuals: Vec<PairVisual>) -> Result<HostVisual, DataError> {
    let mixed = || {
        DataError::DatasetFormat(
            "a batch mixes images and region features: give every dataset `regions` \
             (or none)"
                .into(),
        )
    };
    match visuals.first() {
        Some(PairVisual::Regions(_)) => {
            let records = visuals.into_iter().map(|visual| match visual {
                PairVisual::Regions(record) => Ok(record),
                PairVisual::Image(_) => Err(mixed()),
            });
            let records = records.collect::<Result<Vec<_>, _>>()?;
            Ok(HostVisual::Regions(RegionBatch::from_records(
                &records,
                usize::MAX,
            )?))
        }
        _ => {
            let images = visuals.into_iter().map(|visual| match visual {
                PairVisual::Image(image) => Ok(image),
                PairVisual::Regions(_) => Err(mixed()),
            });
            Ok(HostVisual::Images(images.collect::<Result<_, _>>()?))
        }
    }
}

/// The reading position of each training dataset: indexed ones need none,
/// shard streams move forward. Built by [`DatasetPairs::train_draws`] on
/// the loader thread that owns it.
pub struct TrainDraws {
    readers: Vec<Reader>,
    cumulative: Vec<f64>,
}

impl TrainDraws {
    /// Whether any training dataset is read as a stream of shards.
    pub fn streams_shards(&self) -> bool {
        self.readers
            .iter()
            .any(|reader| matches!(reader, Reader::Shards { .. }))
    }
}

enum Reader {
    Indexed(Arc<dyn SampleSource>),
    Shards {
        shards: WebDataset,
        stream: Box<WebDatasetStream>,
        pass: u64,
    },
}

/// A sample drawn for a batch, before its image (or regions) is loaded.
struct Candidate {
    sample: Sample,
    caption: usize,
    /// Its dataset's region features, read in place of the image.
    regions: Option<SharedRegions>,
}

/// The captions and images already in a batch: a pair whose image, or any
/// of whose captions, is already there would be a false negative of the
/// pair before it (datasets with one line per caption name an image
/// several times; different images can share a caption, as two pictures of
/// the same scene do, and then a random caption of each differs while both
/// describe the same thing).
#[derive(Default)]
struct Seen {
    captions: HashSet<String>,
    images: HashSet<String>,
}

impl Seen {
    /// Whether `candidate` is new; if so, its image and every caption are
    /// recorded.
    fn insert(&mut self, candidate: &Candidate) -> bool {
        let captions = &candidate.sample.captions;
        let image = candidate.sample.image.describe();
        if self.images.contains(&image) || captions.iter().any(|c| self.captions.contains(c)) {
            return false;
        }
        self.captions.extend(captions.iter().cloned());
        self.images.insert(image);
        true
    }
}

impl DatasetPairs {
    /// Starts reading the training datasets (shard streams begin at their
    /// first shard, shuffled by the seed).
    ///
    /// # Errors
    /// [`DataError::DatasetFormat`] without a training dataset.
    pub fn train_draws(&self) -> Result<TrainDraws, DataError> {
        if self.train.is_empty() {
            return Err(DataError::DatasetFormat("no training dataset".into()));
        }
        let mut total = 0.0;
        let mut cumulative = Vec::with_capacity(self.train.len());
        let mut readers = Vec::with_capacity(self.train.len());
        for (i, weighted) in self.train.iter().enumerate() {
            total += weighted.weight;
            cumulative.push(total);
            readers.push(match &weighted.dataset {
                OpenedDataset::Indexed(source) => Reader::Indexed(source.clone()),
                OpenedDataset::Shards(shards) => Reader::Shards {
                    stream: Box::new(self.stream(shards, i, 0)?),
                    shards: shards.clone(),
                    pass: 0,
                },
            });
        }
        Ok(TrainDraws {
            readers,
            cumulative,
        })
    }

    fn stream(
        &self,
        shards: &WebDataset,
        dataset: usize,
        pass: u64,
    ) -> Result<WebDatasetStream, DataError> {
        let options = WebDatasetOptions {
            shuffle_buffer: self.shuffle_buffer,
            seed: self.seed ^ (dataset as u64) << 48 ^ pass,
            ..WebDatasetOptions::default()
        };
        shards.stream(ShardSplit::all(), options, &self.budget)
    }

    /// `size` training pairs with distinct images and no caption in common
    /// (so in-batch negatives are true negatives), images augmented with the draws of
    /// `(seed, step, k)` for the `k`-th candidate of the step. Broken
    /// images are skipped, counted and replaced.
    ///
    /// # Errors
    /// The budget's, once too many samples were skipped; a dataset with
    /// too few distinct pairs for `size`.
    pub fn train_pairs(
        &self,
        draws: &mut TrainDraws,
        size: usize,
        step: u64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<LoadedPair>, DataError> {
        let mut counter = 0u64;
        self.collect(
            size,
            TransformMode::Train {
                seed: self.seed,
                epoch: step,
            },
            |n, rng| {
                let mut candidates = Vec::with_capacity(n);
                for _ in 0..n {
                    let dataset = draws.pick(rng);
                    let sample = match &mut draws.readers[dataset] {
                        Reader::Indexed(source) => {
                            let index = rng.random_range(0..source.len());
                            match source.get(index) {
                                Ok(sample) => {
                                    self.budget.read();
                                    sample
                                }
                                Err(err) => {
                                    self.budget.skip(err.to_string())?;
                                    continue;
                                }
                            }
                        }
                        Reader::Shards {
                            shards,
                            stream,
                            pass,
                        } => match stream.next() {
                            Some(sample) => sample?,
                            None => {
                                *pass += 1;
                                **stream = self.stream(shards, dataset, *pass)?;
                                stream.next().ok_or_else(|| {
                                    DataError::DatasetFormat(format!(
                                        "the shards {:?} hold no readable sample",
                                        shards.shards()
                                    ))
                                })??
                            }
                        },
                    };
                    if !sample.captions.is_empty() {
                        let caption = rng.random_range(0..sample.captions.len());
                        let regions = self.train[dataset].regions.clone();
                        let candidate = Candidate {
                            sample,
                            caption,
                            regions,
                        };
                        candidates.push((counter, candidate));
                    }
                    counter += 1;
                }
                Ok(candidates)
            },
            rng,
        )
    }

    /// `size` random held-out pairs (distinct as in training), without
    /// augmentation (held-out objective batches).
    ///
    /// # Errors
    /// As [`Self::train_pairs`]; [`DataError::DatasetFormat`] without
    /// held-out data.
    pub fn held_out_batch_pairs(
        &self,
        size: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<LoadedPair>, DataError> {
        let source = self.held_out()?;
        self.collect(
            size,
            TransformMode::Eval,
            |n, rng| {
                let mut candidates = Vec::with_capacity(n);
                for _ in 0..n {
                    let index = rng.random_range(0..source.len());
                    let sample = source.get(index)?;
                    self.budget.read();
                    if !sample.captions.is_empty() {
                        let caption = rng.random_range(0..sample.captions.len());
                        let regions = self.held_out_regions.clone();
                        let candidate = Candidate {
                            sample,
                            caption,
                            regions,
                        };
                        candidates.push((index as u64, candidate));
                    }
                }
                Ok(candidates)
            },
            rng,
        )
    }

    /// The first `n` held-out samples (fewer if the data has fewer) with
    /// distinct images and no caption in common, in file order, sample `i` with its
    /// caption `i mod captions` (every caption in turn, as the synthetic
    /// world's held-out set takes its phrasings), images without
    /// augmentation. Broken samples are skipped and counted.
    ///
    /// # Errors
    /// The budget's; [`DataError::DatasetFormat`] without held-out data.
    pub fn held_out_pairs(&self, n: usize) -> Result<Vec<LoadedPair>, DataError> {
        let source = self.held_out()?;
        let mut pairs = Vec::with_capacity(n);
        let mut seen = Seen::default();
        let mut next = 0;
        while pairs.len() < n && next < source.len() {
            let mut candidates = Vec::new();
            while candidates.len() < n - pairs.len() && next < source.len() {
                let sample = source.get(next)?;
                self.budget.read();
                if !sample.captions.is_empty() {
                    let candidate = Candidate {
                        caption: next % sample.captions.len(),
                        sample,
                        regions: self.held_out_regions.clone(),
                    };
                    if seen.insert(&candidate) {
                        candidates.push((next as u64, candidate));
                    }
                }
                next += 1;
            }
            pairs.extend(self.load(candidates, TransformMode::Eval)?);
        }
        Ok(pairs)
    }

    fn held_out(&self) -> Result<&Arc<dyn SampleSource>, DataError> {
        self.held_out.as_ref().ok_or_else(|| {
            DataError::DatasetFormat(
                "no held-out dataset: give one (--val-annotations, --val-shards or \
                 [data.held_out])"
                    .into(),
            )
        })
    }

    /// Draws candidates with `draw(n, rng)` until `size` pairs with
    /// distinct pairs loaded.
    fn collect(
        &self,
        size: usize,
        mode: TransformMode,
        mut draw: impl FnMut(usize, &mut ChaCha8Rng) -> Result<Vec<(u64, Candidate)>, DataError>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<LoadedPair>, DataError> {
        let mut pairs = Vec::with_capacity(size);
        let mut seen = Seen::default();
        let mut drawn = 0;
        while pairs.len() < size {
            if drawn > size * DRAWS_PER_PAIR {
                return Err(DataError::DatasetFormat(format!(
                    "found only {} distinct pairs in {drawn} draws: the dataset is too small \
                     (or too broken) for batches of {size}",
                    pairs.len()
                )));
            }
            let wanted = size - pairs.len();
            let candidates: Vec<_> = draw(wanted, rng)?
                .into_iter()
                .filter(|(_, c)| seen.insert(c))
                .collect();
            drawn += wanted;
            pairs.extend(self.load(candidates, mode)?);
        }
        Ok(pairs)
    }

    /// Loads the candidates' images (or region features) in parallel,
    /// skipping (and counting) those that fail.
    fn load(
        &self,
        candidates: Vec<(u64, Candidate)>,
        mode: TransformMode,
    ) -> Result<Vec<LoadedPair>, DataError> {
        let loaded: Vec<_> = candidates
            .par_iter()
            .map(|(index, c)| {
                let caption = &c.sample.captions[c.caption];
                if let Some(regions) = &c.regions {
                    let record = region_record(regions.as_ref(), &c.sample.key)?;
                    return Ok((PairVisual::Regions(record), caption.clone()));
                }
                let sample = ImageSample {
                    index: *index,
                    image: c.sample.image.as_source(),
                    caption,
                };
                let (image, caption) = self.pipeline.load(&sample, mode)?;
                Ok((PairVisual::Image(image), caption))
            })
            .collect();
        let mut pairs = Vec::with_capacity(loaded.len());
        for ((_, candidate), result) in candidates.into_iter().zip(loaded) {
            match result {
                Ok((visual, caption)) => {
                    let flipped = caption != candidate.sample.captions[candidate.caption];
                    let references = candidate
                        .sample
                        .captions
                        .iter()
                        .map(|text| match flipped {
                            true => crate::image::swap_left_right(text),
                            false => text.clone(),
                        })
                        .collect();
                    pairs.push(LoadedPair {
                        key: candidate.sample.key,
                        caption,
                        visual,
                        references,
                    });
                }
                Err::<_, DataError>(err) => self
                    .budget
                    .skip(format!("sample {:?}: {err}", candidate.sample.key))?,
            }
        }
        Ok(pairs)
    }
}

impl TrainDraws {
    /// The dataset of the next pair, by weight.
    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        if self.cumulative.len() == 1 {
            return 0;
        }
        let total = self.cumulative[self.cumulative.len() - 1];
        let x = rng.random_range(0.0..total);
        self.cumulative
            .iter()
            .position(|&edge| x < edge)
            .unwrap_or(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageTransformConfig;
    use crate::source::{export, ExportFormat, ExportOptions, ExportSummary, SampleList};
    use crate::synthetic::{Split, SyntheticWorld};
    use rand::SeedableRng;
    use std::path::{Path, PathBuf};

    fn pipeline() -> ImagePipeline {
        ImageTransformConfig::new()
            .with_image_size(32)
            .with_resize_to(32)
            .init()
            .unwrap()
    }

    fn exported(format: ExportFormat, tag: &str) -> (PathBuf, SyntheticWorld) {
        let (summary, world) = exported_summary(format, tag);
        (summary.dir, world)
    }

    /// 40 training and 8 held-out scenes of world 5, 16 to a shard.
    fn exported_summary(format: ExportFormat, tag: &str) -> (ExportSummary, SyntheticWorld) {
        let dir = std::env::temp_dir().join(format!("vlp-pairs-{tag}-{}", std::process::id()));
        let world = SyntheticWorld::new(5, 32);
        let options = ExportOptions {
            scenes: 40,
            held_out: 8,
            shard_size: 16,
            ..ExportOptions::new(format)
        };
        (export(&world, &options, &dir).unwrap(), world)
    }

    /// The training split of a COCO export in `dir`.
    fn coco_train(dir: &Path) -> crate::source::DatasetSpec {
        crate::source::DatasetSpec {
            annotations: Some(dir.join("annotations/captions_train2017.json")),
            images: Some(dir.join("train2017")),
            ..crate::source::DatasetSpec::new(ExportFormat::Coco)
        }
    }

    fn pairs_of(train: OpenedDataset, held_out: Option<Arc<dyn SampleSource>>) -> DatasetPairs {
        DatasetPairs {
            train: vec![WeightedDataset {
                dataset: train,
                weight: 1.0,
                regions: None,
            }],
            held_out,
            held_out_regions: None,
            pipeline: pipeline(),
            budget: CorruptBudget::default(),
            seed: 3,
            shuffle_buffer: 8,
        }
    }

    #[test]
    fn held_out_pairs_are_the_exported_pixels_and_captions_in_order() {
        let (dir, world) = exported(ExportFormat::Jsonl, "heldout");
        let spec = crate::source::DatasetSpec {
            annotations: Some(dir.join("test.jsonl")),
            ..crate::source::DatasetSpec::new(ExportFormat::Jsonl)
        };
        let budget = CorruptBudget::default();
        let OpenedDataset::Indexed(test) = spec.open(Split::Test, &budget).unwrap() else {
            unreachable!()
        };
        let train = spec.open(Split::Train, &budget).unwrap();
        let pairs = pairs_of(train, Some(test));
        let loaded = pairs.held_out_pairs(5).unwrap();
        assert_eq!(loaded.len(), 5);
        // The test split is the world's first distinct test scenes; a PNG
        // round trip and a same-size resize leave the pixels as rendered.
        let first = world.distinct_indices(Split::Test, 1)[0];
        let image = PairVisual::Image(world.sample(Split::Test, first).image);
        assert_eq!(loaded[0].visual, image);
        let captions: HashSet<_> = loaded.iter().map(|p| p.caption.clone()).collect();
        assert_eq!(captions.len(), 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn training_pairs_repeat_for_a_seed_and_stream_past_the_end_of_the_shards() {
        let (dir, _) = exported(ExportFormat::WebDataset, "shards");
        let shards =
            WebDataset::from_pattern(&format!("{}/train-{{00000..00002}}.tar", dir.display()))
                .unwrap();
        let pairs = pairs_of(OpenedDataset::Shards(shards), None);
        let run = || {
            let mut draws = pairs.train_draws().unwrap();
            let mut keys = Vec::new();
            // 40 samples in 3 shards: four batches of 16 read them 1.6 times.
            for step in 0..4 {
                let mut rng = ChaCha8Rng::seed_from_u64(step);
                let batch = pairs.train_pairs(&mut draws, 16, step, &mut rng).unwrap();
                assert_eq!(batch.len(), 16);
                keys.extend(batch.into_iter().map(|p| (p.key, p.caption)));
            }
            keys
        };
        let first = run();
        assert_eq!(first, run());
        // The first pass reads all 40; a sample sharing a caption with one
        // already in its batch is passed over (the world repeats some
        // descriptions), so a few keys may be missing.
        let distinct: HashSet<_> = first.iter().map(|(key, _)| key.clone()).collect();
        assert!(
            (30..=40).contains(&distinct.len()),
            "{} distinct",
            distinct.len()
        );
        assert!(pairs
            .held_out_pairs(3)
            .unwrap_err()
            .to_string()
            .contains("--val"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn training_pairs_without_augmentation_are_the_worlds_scenes() {
        let (dir, world) = exported(ExportFormat::Coco, "identity");
        let spec = coco_train(&dir);
        let mut pairs = pairs_of(
            spec.open(Split::Train, &CorruptBudget::default()).unwrap(),
            None,
        );
        pairs.pipeline = ImageTransformConfig::new()
            .with_image_size(32)
            .with_resize_to(32)
            .with_scale((1.0, 1.0))
            .with_flip_probability(0.0)
            .init()
            .unwrap();
        let mut draws = pairs.train_draws().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for step in 0..3 {
            for pair in pairs.train_pairs(&mut draws, 8, step, &mut rng).unwrap() {
                // Training ids 1..=40 are the world's train scenes 0..40.
                let index = pair.key.parse::<usize>().unwrap() - 1;
                let scene = world.sample(Split::Train, index);
                assert_eq!(pair.visual, PairVisual::Image(scene.image), "scene {index}");
                let phrasings: Vec<String> = (0..crate::synthetic::NUM_PHRASINGS)
                    .map(|p| crate::synthetic::caption(&scene.scene, p))
                    .collect();
                assert!(phrasings.contains(&pair.caption), "{:?}", pair.caption);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A model on regions: every pair carries the detector's record of its
    /// scene, read from the exported `.npz` files instead of the image; a
    /// missing file is skipped and counted; batches are of regions, and
    /// mixing them with images is an error.
    #[test]
    fn pairs_read_region_features_in_place_of_images() {
        use crate::regions::open_regions;
        use crate::source::export_regions;
        use crate::synthetic::{DetectorConfig, SyntheticDetector};
        let (summary, world) = exported_summary(ExportFormat::Coco, "regions");
        let detector = SyntheticDetector::new(5, DetectorConfig::default());
        let regions = export_regions(&world, &detector, &summary).unwrap();
        std::fs::remove_file(regions.join("3.npz")).unwrap();
        let (dir, spec) = (summary.dir.clone(), coco_train(&summary.dir));
        let budget = CorruptBudget::default();
        let mut pairs = pairs_of(spec.open(Split::Train, &budget).unwrap(), None);
        pairs.train[0].regions = Some(open_regions(&regions).unwrap());
        let mut draws = pairs.train_draws().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for step in 0..20 {
            let batch = pairs.train_pairs(&mut draws, 8, step, &mut rng).unwrap();
            for pair in &batch {
                let index = pair.key.parse::<usize>().unwrap() - 1;
                let mut expected = detector.detect(&world.sample(Split::Train, index).scene);
                // The key names the file; `.npz` files keep no image size.
                (expected.image_id, expected.image_size) = (pair.key.clone(), None);
                assert_eq!(pair.visual, PairVisual::Regions(expected));
            }
            let visual = visual_batch(batch.into_iter().map(|p| p.visual).collect()).unwrap();
            assert!(matches!(visual, HostVisual::Regions(ref r) if r.len() == 8));
        }
        let report = pairs.budget.report();
        assert!(report.skipped > 0, "scene id 3 was never drawn");
        assert!(
            report.reasons.iter().all(|r| r.contains("\"3\"")),
            "{report:?}"
        );
        let image = PairVisual::Image(world.sample(Split::Train, 0).image);
        let record = detector.detect(&world.sample(Split::Train, 0).scene);
        let mixed = visual_batch(vec![PairVisual::Regions(record), image]).unwrap_err();
        assert!(mixed
            .to_string()
            .contains("mixes images and region features"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn datasets_mix_by_weight() {
        let (dir, _) = exported(ExportFormat::Jsonl, "mix");
        let budget = CorruptBudget::default();
        let open = |split| {
            crate::source::DatasetSpec {
                annotations: Some(dir.join(format!("{split}.jsonl"))),
                ..crate::source::DatasetSpec::new(ExportFormat::Jsonl)
            }
            .open(Split::Train, &budget)
            .unwrap()
        };
        // 160 train lines (weight 3) and 32 val lines (weight 1).
        let mut pairs = pairs_of(open("train"), None);
        pairs.train.push(WeightedDataset {
            dataset: open("val"),
            weight: 1.0,
            regions: None,
        });
        pairs.train[0].weight = 3.0;
        let mut draws = pairs.train_draws().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Exported ids: 40 train scenes 1..=40, then the 8 val scenes.
        let keys: Vec<u64> = (0..200u64)
            .flat_map(|step| pairs.train_pairs(&mut draws, 2, step, &mut rng).unwrap())
            .map(|pair| pair.key.parse().unwrap())
            .collect();
        let share = keys.iter().filter(|&&id| id > 40).count() as f64 / keys.len() as f64;
        assert!(
            (0.15..0.35).contains(&share),
            "val share {share}, expected about 0.25"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broken_images_are_skipped_and_counted_until_the_budget_is_spent() {
        let (dir, _) = exported(ExportFormat::Jsonl, "broken");
        let list =
            crate::source::read_jsonl(&dir.join("train.jsonl"), &CorruptBudget::default()).unwrap();
        // Truncate the images of the first 3 of 40 scenes.
        let mut broken = HashSet::new();
        for sample in list.samples() {
            let path = sample.image.path().unwrap().to_path_buf();
            if broken.len() < 3 && broken.insert(path.clone()) {
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            }
        }
        let source: Arc<dyn SampleSource> = Arc::new(SampleList::new(
            dir.join("train.jsonl"),
            list.into_samples(),
        ));
        let mut pairs = pairs_of(OpenedDataset::Indexed(source), None);
        let mut draws = pairs.train_draws().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for step in 0..3 {
            let batch = pairs.train_pairs(&mut draws, 8, step, &mut rng).unwrap();
            assert_eq!(batch.len(), 8);
        }
        let report = pairs.budget.report();
        assert!(report.skipped > 0, "{report:?}");
        assert!(report.reasons[0].contains(".png"), "{:?}", report.reasons);
        // A budget of none: the first broken image stops the draws.
        pairs.budget = CorruptBudget::new(crate::source::SkipLimit::count(0));
        let mut draws = pairs.train_draws().unwrap();
        let stopped =
            (0..20).find_map(|step| pairs.train_pairs(&mut draws, 8, step, &mut rng).err());
        let message = stopped.expect("a broken image is met").to_string();
        assert!(message.contains("skipped"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
