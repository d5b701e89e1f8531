//! Where samples come from: the datasets users bring (the formats of COCO
//! Captions, Karpathy's retrieval splits, BLIP/LAVIS, Conceptual Captions'
//! TSV, WebDataset shards as img2dataset writes them, VQA v2) and the
//! synthetic world, behind one [`Sample`] type; MSR-VTT's captioned videos
//! as [`VideoSample`]s.
//!
//! Readers parse annotations only: a [`Sample`] names its image
//! ([`ImageRef`]), which the image pipeline decodes later. Indexed datasets
//! implement [`SampleSource`] (random access); WebDataset shards are a
//! stream ([`WebDatasetStream`]). Bad records are skipped and counted in a
//! [`CorruptBudget`], which stops reading with an error once too many were
//! skipped; no reader panics on bad input.
//!
//! [`export`] writes the synthetic world in each format, so that every
//! reader can be tried on real files without a download:
//!
//! ```
//! use vlp_data::source::{export, read_jsonl, CorruptBudget, ExportFormat, ExportOptions, SampleSource};
//! use vlp_data::synthetic::SyntheticWorld;
//!
//! let dir = std::env::temp_dir().join(format!("vlp-doc-export-{}", std::process::id()));
//! let world = SyntheticWorld::new(0, 32);
//! let options = ExportOptions { scenes: 4, held_out: 1, ..ExportOptions::new(ExportFormat::Jsonl) };
//! let summary = export(&world, &options, &dir).unwrap();
//! assert_eq!(summary.scenes.len(), 6); // 4 train, 1 val, 1 test
//! let train = read_jsonl(&dir.join("train.jsonl"), &CorruptBudget::default()).unwrap();
//! // One line per caption: 4 scenes with 4 phrasings each.
//! assert_eq!(train.len(), 16);
//! assert!(train.get(0).unwrap().image.path().unwrap().exists());
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod budget;
mod check;
mod coco;
#[cfg(test)]
pub(crate) mod damage;
mod delimited;
mod export;
mod jsonl;
mod karpathy;
mod lavis;
mod msrvtt;
mod spec;
mod synthetic;
mod vqa2;
mod vqa_answer;
mod webdataset;

pub use budget::{CorruptBudget, SkipLimit, SkipReport};
pub use check::{check, check_spec, CheckReport};
pub use coco::read_coco;
pub use delimited::{read_delimited, Columns, DelimitedOptions};
pub use export::{
    export, export_regions, png, read_exported, ExportFormat, ExportOptions, ExportSummary,
    ExportedScene, EXPORT_VQA2_PATTERN, MIN_IMAGE_SIZE,
};
pub use jsonl::read_jsonl;
pub use karpathy::{read_karpathy, KarpathySelect};
pub use lavis::read_lavis;
pub use msrvtt::{
    export_msrvtt, frame_features, msrvtt_split, read_msrvtt, ExportedClip, FrameStore,
    VideoExportOptions, VideoExportSummary, VideoFrames, VideoSample, FEATURE_GRID,
    FRAME_FEATURE_DIM,
};
pub use spec::{DatasetSpec, OpenedDataset};
pub use synthetic::SyntheticSource;
pub use vqa2::{answer_vocabulary, read_vqa2, ImagePattern, Vqa2Options, COCO_IMAGE_PATTERN};
pub use vqa_answer::{answer_type, normalize_answer};
pub use webdataset::{
    expand_braces, read_shard, ShardSplit, WebDataset, WebDatasetOptions, WebDatasetStream,
};

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::synthetic::RgbImage;
use crate::DataError;

/// The image of a sample, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An image file (JPEG, PNG or WebP), resolved against the dataset's
    /// image folder.
    File(PathBuf),
    /// An encoded image held in memory (a WebDataset tar member).
    Bytes {
        /// Where it came from, `shard.tar:member.jpg` (the extension names
        /// the encoding).
        name: String,
        /// The encoded file.
        bytes: Vec<u8>,
    },
    /// Decoded pixels (the synthetic world's renders, used as they are: the
    /// synthetic path's numbers stay bit-identical and nothing is encoded).
    Pixels(RgbImage),
}

impl ImageRef {
    /// The file, for [`ImageRef::File`].
    pub fn path(&self) -> Option<&Path> {
        match self {
            ImageRef::File(path) => Some(path),
            _ => None,
        }
    }

    /// How problems with this image are named: the path, the member or
    /// `pixels`.
    pub fn describe(&self) -> String {
        match self {
            ImageRef::File(path) => path.display().to_string(),
            ImageRef::Bytes { name, .. } => name.clone(),
            ImageRef::Pixels(image) => format!("{}x{} pixels", image.width, image.height),
        }
    }

    /// The image as the pipeline loads it ([`crate::image::ImageSource`]
    /// borrows what this owns, as `Path` borrows a `PathBuf`).
    pub fn as_source(&self) -> crate::image::ImageSource<'_> {
        match self {
            ImageRef::File(path) => crate::image::ImageSource::File(path),
            ImageRef::Bytes { name, bytes } => crate::image::ImageSource::Bytes {
                bytes,
                origin: name,
            },
            ImageRef::Pixels(image) => crate::image::ImageSource::Pixels(image),
        }
    }
}

/// A visual question with its human answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VqaQuestion {
    /// The question's id in its dataset.
    pub id: String,
    /// The question text.
    pub question: String,
    /// The normalised most frequent answer (VQA v2's
    /// `multiple_choice_answer`); `None` without annotations.
    pub answer: Option<String>,
    /// The normalised human answers (ten in VQA v2; empty without
    /// annotations), the input of [`crate::AnswerVocabulary::soft_targets`].
    pub answers: Vec<String>,
    /// VQA v2's `answer_type` (`yes/no`, `number`, `other`), by which the
    /// evaluation breaks accuracy down; `None` without annotations.
    pub answer_type: Option<String>,
}

/// One example of a dataset: an image with its captions and/or questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The sample's id in its dataset (COCO image id, WebDataset key, ...).
    pub key: String,
    /// Its image.
    pub image: ImageRef,
    /// Its captions (one or more; none for VQA-only samples).
    pub captions: Vec<String>,
    /// Its questions (VQA datasets and the synthetic world).
    pub questions: Vec<VqaQuestion>,
}

/// A dataset whose samples can be read in any order (Burn's `Dataset`
/// trait, without the heavy dependencies its feature pulls in). `Send +
/// Sync` so loader threads share one source and no worker copies it.
pub trait SampleSource: Send + Sync {
    /// How many samples there are.
    fn len(&self) -> usize;

    /// Whether there is none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample number `index`; an index past the end is an error.
    fn get(&self, index: usize) -> Result<Sample, DataError>;
}

/// Samples parsed from an annotation file, held in memory (annotations
/// only: images are read later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleList {
    origin: PathBuf,
    samples: Vec<Sample>,
}

impl SampleList {
    /// The samples of `origin` (the annotation file, for messages).
    pub fn new(origin: PathBuf, samples: Vec<Sample>) -> Self {
        Self { origin, samples }
    }

    /// The annotation file.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The samples, in file order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The samples, by value.
    pub fn into_samples(self) -> Vec<Sample> {
        self.samples
    }
}

impl SampleSource for SampleList {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        self.samples
            .get(index)
            .cloned()
            .ok_or_else(|| DataError::SampleIndex {
                origin: self.origin.display().to_string(),
                index,
                len: self.samples.len(),
            })
    }
}

/// The bytes of `path`.
fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|err| DataError::DatasetIo {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// `path` parsed as JSON into `T`; serde's message names the missing or
/// malformed key with its line and column.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    serde_json::from_slice(&read_bytes(path)?).map_err(|err| DataError::Annotation {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// `image` as written in an annotation, resolved against `root`: absolute
/// paths and URLs stay as they are.
fn resolve(root: &Path, image: &str) -> PathBuf {
    if image.contains("://") {
        PathBuf::from(image)
    } else {
        root.join(image)
    }
}

/// The folder of an annotation file (relative image paths start there).
fn folder_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// A caption field: one text, or a list of texts (LAVIS' val/test files,
/// WebDataset `.json` members).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum Captions {
    One(String),
    Many(Vec<String>),
}

impl Captions {
    fn into_vec(self) -> Vec<String> {
        match self {
            Captions::One(text) => vec![text],
            Captions::Many(texts) => texts,
        }
    }
}

/// An id that datasets write as a number or a string, as text.
fn id_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A captioned image sample (no questions).
fn captioned(key: String, image: PathBuf, captions: Vec<String>) -> Sample {
    Sample {
        key,
        image: ImageRef::File(image),
        captions,
        questions: Vec::new(),
    }
}

/// A fresh, empty folder under the system's temp dir for one test.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vlp-source-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticWorld;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Random bytes, or a valid file cut short and with a few bytes changed.
    fn mangle(rng: &mut ChaCha8Rng, valid: &[u8]) -> Vec<u8> {
        if rng.random_bool(0.25) {
            let len = rng.random_range(0..600);
            return (0..len).map(|_| rng.random()).collect();
        }
        let mut bytes = valid[..rng.random_range(0..=valid.len())].to_vec();
        for _ in 0..rng.random_range(0..4) {
            if !bytes.is_empty() {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
        }
        bytes
    }

    #[test]
    fn readers_do_not_panic_on_mangled_files() {
        let dir = test_dir("no-panic");
        let world = SyntheticWorld::new(0, 32);
        let export_to = |format, name: &str| {
            let options = ExportOptions {
                scenes: 3,
                held_out: 1,
                shard_size: 3,
                ..ExportOptions::new(format)
            };
            let folder = dir.join(format!("valid-{format}"));
            export(&world, &options, &folder).unwrap();
            std::fs::read(folder.join(name)).unwrap()
        };
        let valid = [
            (
                "coco",
                export_to(ExportFormat::Coco, "annotations/captions_train2017.json"),
            ),
            (
                "karpathy",
                export_to(ExportFormat::Karpathy, "dataset_coco.json"),
            ),
            ("jsonl", export_to(ExportFormat::Jsonl, "train.jsonl")),
            (
                "lavis",
                export_to(ExportFormat::Lavis, "annotations/coco_karpathy_val.json"),
            ),
            ("tsv", export_to(ExportFormat::Tsv, "train.tsv")),
            ("csv", export_to(ExportFormat::Csv, "train.csv")),
            (
                "vqa2",
                export_to(ExportFormat::Vqa2, "v2_mscoco_train2014_annotations.json"),
            ),
            (
                "tar",
                export_to(ExportFormat::WebDataset, "train-00000.tar"),
            ),
        ];
        let file = dir.join("mangled");
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for (name, bytes) in &valid {
                std::fs::write(&file, mangle(&mut rng, bytes)).unwrap();
                let budget = CorruptBudget::unlimited();
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    let _ = read_coco(&file, &dir, &budget);
                    let _ = read_karpathy(
                        &file,
                        &dir,
                        KarpathySelect::new(crate::synthetic::Split::Train),
                    );
                    let _ = read_jsonl(&file, &budget);
                    let _ = read_lavis(&file, &dir);
                    let _ = read_delimited(&file, &DelimitedOptions::tsv(), &budget);
                    let _ = read_delimited(&file, &DelimitedOptions::csv(), &budget);
                    let _ = read_vqa2(
                        &file,
                        Some(&file),
                        &dir,
                        &Vqa2Options::coco("train"),
                        &budget,
                    );
                    let _ = read_shard(&file, &budget, &mut |_| true);
                }));
                assert!(
                    outcome.is_ok(),
                    "a reader panicked on mangled {name} (seed {seed})"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A source's images reach the model through the image pipeline with
    /// the synthetic batcher's scaling: the world's scenes, taken as they
    /// are (eval mode, no resize, Inception's 0.5 normalisation), give
    /// exactly `images_to_tensor`'s `[-1, 1]` values.
    #[test]
    fn a_sources_images_load_through_the_pipeline_as_the_batcher_scales_them() {
        use crate::image::{batcher_scaling, ImageSample, TransformMode};
        use burn::backend::NdArray;

        let world = SyntheticWorld::new(3, 32);
        let source = synthetic::SyntheticSource::new(world, crate::synthetic::Split::Train, 3);
        let samples: Vec<Sample> = (0..3).map(|i| source.get(i).unwrap()).collect();
        let inputs: Vec<ImageSample> = samples
            .iter()
            .enumerate()
            .map(|(i, sample)| ImageSample {
                index: i as u64,
                image: sample.image.as_source(),
                caption: &sample.captions[0],
            })
            .collect();
        let pipeline = batcher_scaling(32);
        let loaded = pipeline.prepare(&inputs, TransformMode::Eval);
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);

        let renders: Vec<&RgbImage> = samples
            .iter()
            .map(|sample| match &sample.image {
                ImageRef::Pixels(pixels) => pixels,
                other => panic!("the world's samples carry pixels, not {other:?}"),
            })
            .collect();
        let expected: Vec<f32> = crate::images_to_tensor::<NdArray>(&renders, &Default::default())
            .into_data()
            .to_vec()
            .unwrap();
        vlp_test_support::assert_close(
            "pipeline vs batcher",
            &loaded.images.pixels[..],
            &expected[..],
            vlp_test_support::Tol::abs(1e-6),
        );
    }
}
