//! Karpathy & Fei-Fei's retrieval splits ("Deep Visual-Semantic Alignments
//! for Generating Image Descriptions", 2015): `dataset_coco.json`,
//! `dataset_flickr30k.json`, one list of images, each with its `split` and
//! its sentences. The standard protocol trains on `train` + `restval` and
//! tests on the 5K (COCO) or 1K (Flickr30k) `test` images.

use std::path::Path;

use serde::Deserialize;

use super::{captioned, read_json, SampleList};
use crate::synthetic::Split;
use crate::DataError;

#[derive(Deserialize)]
struct KarpathyFile {
    images: Vec<KarpathyImage>,
}

#[derive(Deserialize)]
struct KarpathyImage {
    #[serde(default)]
    filepath: Option<String>,
    filename: String,
    #[serde(default)]
    imgid: Option<serde_json::Value>,
    #[serde(default)]
    cocoid: Option<serde_json::Value>,
    split: String,
    sentences: Vec<KarpathySentence>,
}

#[derive(Deserialize)]
struct KarpathySentence {
    raw: String,
}

/// Which images of a Karpathy file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KarpathySelect {
    /// The split wanted.
    pub split: Split,
    /// Whether `restval` images count as training images (true by default:
    /// the usual 113K-image COCO training set).
    pub restval_as_train: bool,
}

impl KarpathySelect {
    /// The images of `split`, `restval` counted as training images.
    pub fn new(split: Split) -> Self {
        Self {
            split,
            restval_as_train: true,
        }
    }

    fn wants(&self, split: &str) -> Option<bool> {
        Some(match split {
            "train" => self.split == Split::Train,
            "restval" => self.split == Split::Train && self.restval_as_train,
            "val" => self.split == Split::Val,
            "test" => self.split == Split::Test,
            _ => return None,
        })
    }
}

/// The images of `select`'s split with their raw sentences, each at
/// `images/filepath/filename` (Flickr30k has no `filepath`). The key is the
/// `cocoid` when there is one, else the `imgid`, else the file name. A
/// missing key or an unknown split value is an error naming the file and
/// the image.
pub fn read_karpathy(
    path: &Path,
    images: &Path,
    select: KarpathySelect,
) -> Result<SampleList, DataError> {
    let file: KarpathyFile = read_json(path)?;
    let mut samples = Vec::new();
    for (i, image) in file.images.into_iter().enumerate() {
        let wanted = select
            .wants(&image.split)
            .ok_or_else(|| DataError::AnnotationRecord {
                path: path.to_path_buf(),
                at: format!("images[{i}]"),
                reason: format!(
                    "split {:?} is none of train, restval, val, test",
                    image.split
                ),
            })?;
        if !wanted {
            continue;
        }
        let key = match image.cocoid.as_ref().or(image.imgid.as_ref()) {
            Some(id) => super::id_text(id),
            None => image.filename.clone(),
        };
        let folder = images.join(image.filepath.unwrap_or_default());
        let captions = image.sentences.into_iter().map(|s| s.raw).collect();
        samples.push(captioned(key, folder.join(image.filename), captions));
    }
    Ok(SampleList::new(path.to_path_buf(), samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{test_dir, SampleSource};

    #[test]
    fn splits_select_images_and_restval_is_optional() {
        let dir = test_dir("karpathy");
        let path = dir.join("dataset_flickr30k.json");
        let image = |name: &str, split: &str| {
            format!(
                r#"{{"filename": "{name}.jpg", "imgid": "{name}", "split": "{split}",
                     "sentences": [{{"raw": "{name} one", "tokens": []}}, {{"raw": "{name} two"}}]}}"#
            )
        };
        let images = [
            image("t", "train"),
            image("r", "restval"),
            image("v", "val"),
            image("s", "test"),
        ];
        std::fs::write(&path, format!(r#"{{"images": [{}]}}"#, images.join(","))).unwrap();
        let keys = |select| -> Vec<String> {
            let list = read_karpathy(&path, &dir, select).unwrap();
            list.samples().iter().map(|s| s.key.clone()).collect()
        };
        assert_eq!(keys(KarpathySelect::new(Split::Train)), ["t", "r"]);
        let no_restval = KarpathySelect {
            restval_as_train: false,
            ..KarpathySelect::new(Split::Train)
        };
        assert_eq!(keys(no_restval), ["t"]);
        assert_eq!(keys(KarpathySelect::new(Split::Test)), ["s"]);
        let val = read_karpathy(&path, &dir, KarpathySelect::new(Split::Val)).unwrap();
        let sample = val.get(0).unwrap();
        assert_eq!(sample.captions, ["v one", "v two"]);
        assert_eq!(sample.image.path().unwrap(), dir.join("v.jpg"));

        std::fs::write(
            &path,
            r#"{"images": [{"filename": "a.jpg", "split": "train"}]}"#,
        )
        .unwrap();
        let error = read_karpathy(&path, &dir, KarpathySelect::new(Split::Train))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("dataset_flickr30k.json") && error.contains("`sentences`"),
            "{error}"
        );
        std::fs::write(&path, format!(r#"{{"images": [{}]}}"#, image("x", "dev"))).unwrap();
        let error = read_karpathy(&path, &dir, KarpathySelect::new(Split::Train))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("images[0]") && error.contains("\"dev\""),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
