//! A dataset named by its files (issue 15's runner flags and `[data]`
//! tables): the format, the annotation file and image folder, or the
//! WebDataset shard pattern, opened as an indexed [`SampleSource`] or a
//! shard list to stream. One reader per format, as `data export` writes
//! them; [`DatasetSpec::open`] is where a format name meets its reader.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    read_coco, read_delimited, read_jsonl, read_karpathy, read_lavis, CorruptBudget,
    DelimitedOptions, ExportFormat, KarpathySelect, SampleSource, WebDataset,
};
use crate::synthetic::Split;
use crate::DataError;

/// One dataset's files. `format` picks the reader: `coco` (`annotations` =
/// `captions_*.json`, `images` = its folder), `karpathy` (`dataset_*.json`
/// and the folder its `filepath`s are relative to; the split comes from the
/// file), `lavis` (BLIP/LAVIS `coco_karpathy_*.json` and the image root),
/// `jsonl`, `csv`, `tsv` (image paths relative to the file; `images` is not
/// used), `webdataset` (`shards`, a brace pattern).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// The layout (`coco`, `karpathy`, `lavis`, `jsonl`, `csv`, `tsv`,
    /// `webdataset`).
    #[serde(with = "format_name")]
    pub format: ExportFormat,
    /// The annotation file (every format but `webdataset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<PathBuf>,
    /// The image folder (`coco`, `karpathy`, `lavis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<PathBuf>,
    /// The shards, `data-{00000..00099}.tar` (`webdataset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<String>,
    /// Detector region features of the images, read in their place by a
    /// model on regions: a folder of per-image `.npz` files or a BUTD TSV
    /// file, keyed by image id ([`crate::regions::region_record`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<PathBuf>,
    /// Share of the training pairs drawn from this dataset when several are
    /// mixed (relative to the others' weights; 1 by default).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

fn is_one(weight: &f64) -> bool {
    *weight == 1.0
}

mod format_name {
    use super::ExportFormat;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(format: &ExportFormat, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(format.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ExportFormat, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A dataset opened for reading: annotations parsed into memory (images are
/// read when batched), or shards to stream.
#[derive(Clone)]
pub enum OpenedDataset {
    /// Random access to every sample.
    Indexed(Arc<dyn SampleSource>),
    /// Tar shards, read front to back.
    Shards(WebDataset),
}

impl std::fmt::Debug for OpenedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenedDataset::Indexed(source) => write!(f, "Indexed({} samples)", source.len()),
            OpenedDataset::Shards(shards) => write!(f, "Shards({:?})", shards.shards()),
        }
    }
}

impl DatasetSpec {
    /// A dataset of `format` with weight 1 and no files yet.
    pub fn new(format: ExportFormat) -> Self {
        Self {
            format,
            annotations: None,
            images: None,
            shards: None,
            regions: None,
            weight: 1.0,
        }
    }

    /// Checks that the files the format needs are named, and the weight.
    ///
    /// # Errors
    /// [`DataError::DatasetFormat`] naming the missing setting.
    pub fn validate(&self) -> Result<(), DataError> {
        let name = self.format.name();
        let missing = |what: &str| {
            Err(DataError::DatasetFormat(format!(
                "a {name} dataset needs `{what}`"
            )))
        };
        match self.format {
            ExportFormat::WebDataset if self.shards.is_none() => return missing("shards"),
            ExportFormat::WebDataset => {}
            ExportFormat::Vqa2 => {
                return Err(DataError::DatasetFormat(
                    "a vqa2 dataset holds questions, not captions: pre-train on a caption \
                     dataset (coco, karpathy, lavis, jsonl, csv, tsv, webdataset)"
                        .into(),
                ))
            }
            _ if self.annotations.is_none() => return missing("annotations"),
            ExportFormat::Coco | ExportFormat::Karpathy | ExportFormat::Lavis
                if self.images.is_none() =>
            {
                return missing("images")
            }
            _ => {}
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(DataError::DatasetFormat(format!(
                "dataset weight {} must be positive",
                self.weight
            )));
        }
        Ok(())
    }

    /// Opens the dataset: annotation files are parsed now (bad records
    /// skipped and counted in `budget`), shards are only listed. `split`
    /// picks the images of a Karpathy file (its `restval` counts as
    /// training); the other formats hold one split per file.
    ///
    /// # Errors
    /// [`DatasetSpec::validate`]'s, and those of the format's reader (a
    /// missing file, a file that is not the format).
    pub fn open(&self, split: Split, budget: &CorruptBudget) -> Result<OpenedDataset, DataError> {
        self.validate()?;
        let annotations = self.annotations.as_deref().unwrap_or(Path::new(""));
        let images = self.images.as_deref().unwrap_or(Path::new(""));
        let list = match self.format {
            ExportFormat::WebDataset => {
                let pattern = self.shards.as_deref().unwrap_or_default();
                return Ok(OpenedDataset::Shards(WebDataset::from_pattern(pattern)?));
            }
            ExportFormat::Coco => read_coco(annotations, images, budget)?,
            ExportFormat::Karpathy => {
                read_karpathy(annotations, images, KarpathySelect::new(split))?
            }
            ExportFormat::Lavis => read_lavis(annotations, images)?,
            ExportFormat::Jsonl => read_jsonl(annotations, budget)?,
            ExportFormat::Csv | ExportFormat::Tsv => {
                let options = match self.format {
                    ExportFormat::Tsv => DelimitedOptions::tsv(),
                    _ => DelimitedOptions::csv(),
                };
                read_delimited(annotations, &options, budget)?
            }
            ExportFormat::Vqa2 => unreachable!("validate rejects vqa2"),
        };
        if list.is_empty() {
            return Err(DataError::DatasetFormat(format!(
                "{} has no {} samples",
                annotations.display(),
                super::synthetic::split_name(split)
            )));
        }
        Ok(OpenedDataset::Indexed(Arc::new(list)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{export, ExportOptions};
    use crate::synthetic::SyntheticWorld;

    #[test]
    fn specs_parse_from_toml_and_name_what_is_missing() {
        let spec: DatasetSpec =
            toml_like(r#"{"format": "coco", "annotations": "a.json", "images": "img"}"#);
        assert_eq!(spec.format, ExportFormat::Coco);
        assert_eq!(spec.weight, 1.0);
        spec.validate().unwrap();
        let no_images = DatasetSpec {
            images: None,
            ..spec.clone()
        };
        let message = no_images.validate().unwrap_err().to_string();
        assert!(message.contains("`images`"), "{message}");
        let shards = DatasetSpec::new(ExportFormat::WebDataset);
        assert!(shards
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`shards`"));
        let vqa = DatasetSpec::new(ExportFormat::Vqa2);
        assert!(vqa
            .validate()
            .unwrap_err()
            .to_string()
            .contains("questions"));
        let bad: Result<DatasetSpec, _> = serde_json::from_str(r#"{"format": "parquet"}"#);
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown dataset format"));
        let weightless = DatasetSpec {
            weight: 0.0,
            ..spec
        };
        assert!(weightless
            .validate()
            .unwrap_err()
            .to_string()
            .contains("weight"));
    }

    fn toml_like(json: &str) -> DatasetSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_exported_dataset_opens_split_by_split() {
        let dir = std::env::temp_dir().join(format!("vlp-spec-{}", std::process::id()));
        let world = SyntheticWorld::new(1, 32);
        let options = ExportOptions {
            scenes: 5,
            held_out: 2,
            ..ExportOptions::new(ExportFormat::Karpathy)
        };
        export(&world, &options, &dir).unwrap();
        let spec = DatasetSpec {
            annotations: Some(dir.join("dataset_coco.json")),
            images: Some(dir.clone()),
            ..DatasetSpec::new(ExportFormat::Karpathy)
        };
        let budget = CorruptBudget::default();
        let lens: Vec<usize> = [Split::Train, Split::Val]
            .into_iter()
            .map(|split| match spec.open(split, &budget).unwrap() {
                OpenedDataset::Indexed(source) => source.len(),
                OpenedDataset::Shards(_) => unreachable!(),
            })
            .collect();
        assert_eq!(lens, [5, 2]);
        let missing = DatasetSpec {
            annotations: Some(dir.join("nope.json")),
            ..spec
        };
        let message = missing.open(Split::Train, &budget).unwrap_err().to_string();
        assert!(message.contains("nope.json"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
