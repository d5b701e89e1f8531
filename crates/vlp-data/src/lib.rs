//! vlp-data: everything before the model.
//!
//! - [`synthetic`]: a deterministic world of captioned images, boxes,
//!   questions and clips, for training and testing without downloads.
//! - [`image`]: JPEG, PNG and WebP files to normalised `[N, 3, S, S]`
//!   tensors (decode, resize, crop, flip with the caption, normalise), in
//!   parallel and deterministic for a seed.
//! - [`regions`]: object-detector region features (BUTD TSV, UNITER's
//!   per-image NPZ) read lazily, and padded region batches.
//! - [`tokenizer`]: subword tokenization from a `tokenizer.json`.
//! - [`masking`] and [`negatives`]: MLM masks (token or whole-word) and
//!   ITM negative pairs.
//! - [`region_masking`]: masked region modelling inputs and targets (UNITER,
//!   LXMERT's 80/10/10).
//! - [`patch_masking`]: ViLT's masked patch prediction (patch masks, mean-RGB
//!   bin targets).
//! - [`frame_order`]: HERO's frame order modelling (shuffled clip positions
//!   and their original indices).
//! - [`prefix`]: the PrefixLM split sampler (SimVLM).
//! - [`vqa_targets`]: the official VQA v2 soft score and `[A]` answer
//!   targets; [`vqa_accuracy()`]: the official accuracy from raw answers,
//!   overall and per answer type.
//! - [`visual`]: pixels or detector regions, on the host and on a device.
//! - [`collate`]: tokens, images and clips into padded tensors with masks,
//!   generic over the Burn backend ([`tokens_to_tensors`] is the glue between
//!   [`TextTokenizer`] and a model).
//! - [`video`]: clips from video datasets (uniform frame sampling, a
//!   random offset in training, bad frames replaced and counted).
//! - [`source`]: datasets users bring (COCO, Karpathy, JSONL, LAVIS,
//!   CSV/TSV, WebDataset shards, VQA v2) and the synthetic world as
//!   [`Sample`]s, MSR-VTT's videos as [`source::VideoSample`]s, with a
//!   budget of skipped corrupt samples, and the export of the world in
//!   each format.
//! - [`pretrain_batch`]: what one pre-training step takes, on the host and
//!   on a device; [`batch`]: [`PretrainBatcher`], which builds them from the
//!   synthetic world or from datasets on disk ([`dataset_pairs`]: pairs
//!   drawn, mixed by weight, images loaded in parallel, broken ones skipped);
//!   [`shard`]: a batch as one shard of a data-parallel step.

pub mod batch;
pub mod collate;
pub mod dataset_pairs;
mod error;
pub mod frame_order;
pub mod image;
pub mod masking;
pub mod negatives;
pub mod patch_masking;
pub mod prefix;
pub mod pretrain_batch;
pub mod region_masking;
pub mod regions;
pub mod shard;
pub mod source;
pub mod synthetic;
pub mod tokenizer;
pub mod video;
pub mod visual;
pub mod vqa_accuracy;
pub mod vqa_targets;
pub mod wordpiece_trainer;

pub use self::image::{
    HostImageBatch, HostImages, ImageBatch, ImagePipeline, ImageSample, ImageSource,
    ImageTransformConfig, Normalization, SkippedImage, TransformMode,
};
pub use batch::{HeldOutPairs, PairSource, PretrainBatcher, TrainState};
pub use collate::{clips_to_tensor, images_to_tensor, tokens_to_tensors};
pub use dataset_pairs::{DatasetPairs, LoadedPair, TrainDraws, WeightedDataset};
pub use error::DataError;
pub use frame_order::{FrameOrderShuffle, ShuffledFrameBatch, ShuffledFrames};
pub use masking::{MaskedSequence, MlmMasking};
pub use negatives::{random_negatives, ItmPairs};
pub use patch_masking::{patch_mask_to_tensor, patch_rgb_targets, MaskedPatches, PatchMasking};
pub use prefix::{draw_prefix_length, IMAGE_ONLY_PREFIX_PROBABILITY};
pub use pretrain_batch::{
    HostPretrainBatch, HostVqaBatch, MppBatch, MvmBatch, PretrainBatch, TargetSlots, VqaBatch,
};
pub use region_masking::{MaskedRegionTensors, MaskedRegions, RegionMasking};
pub use regions::{
    ButdTsv, NpzRegionDir, RegionBatch, RegionFeatureSource, RegionRecord, RegionRecords,
    RegionTensors,
};
pub use shard::ShardGather;
pub use source::{
    CorruptBudget, ExportFormat, ImageRef, Sample, SampleList, SampleSource, SkipLimit,
    SyntheticSource, VqaQuestion, WebDataset,
};
pub use tokenizer::{SpecialTokens, TextPadding, TextTokenizer, TokenizedBatch};
pub use visual::{HostVisual, VisualBatch};
pub use vqa_accuracy::{vqa_accuracy, VqaAccuracy};
pub use vqa_targets::{vqa_soft_score, AnswerVocabulary};
