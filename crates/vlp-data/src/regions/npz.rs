//! UNITER-style per-image `.npz` files: `features` `[N, F]`, `norm_bb`
//! `[N, 6]` (`x1, y1, x2, y2, w, h` normalised to the image), and optionally
//! `conf` `[N]` and `soft_labels` `[N, C]`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::npy::{npy_bytes, parse_npy, NpyArray};
use super::{RegionFeatureSource, RegionRecord};
use crate::DataError;
use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// A directory of `<image_id>.npz` files.
///
/// [`NpzRegionDir::open`] lists the directory (names only); each
/// [`RegionFeatureSource::get`] opens and decodes one file. Members may be
/// stored (`np.savez`) or deflated (`np.savez_compressed`); arrays may be
/// float16 (UNITER stores features so), float32 or float64.
#[derive(Debug, Clone)]
pub struct NpzRegionDir {
    dir: PathBuf,
    /// Sorted, so that `get` finds ids by binary search.
    ids: Vec<String>,
}

impl NpzRegionDir {
    /// Lists the `.npz` files of `dir` (other files are ignored).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DataError> {
        let dir = dir.as_ref().to_path_buf();
        let io_error = |e: std::io::Error| DataError::RegionIo {
            path: dir.clone(),
            reason: e.to_string(),
        };
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            if path.extension().is_some_and(|e| e == "npz") && path.is_file() {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    ids.push(stem.to_string());
                }
            }
        }
        ids.sort_unstable();
        Ok(Self { dir, ids })
    }

    /// The folder of the `.npz` files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `image_id`.
    pub fn path_of(&self, image_id: &str) -> PathBuf {
        self.dir.join(format!("{image_id}.npz"))
    }
}

impl RegionFeatureSource for NpzRegionDir {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn ids(&self) -> &[String] {
        &self.ids
    }

    fn get(&self, image_id: &str) -> Result<RegionRecord, DataError> {
        if self
            .ids
            .binary_search_by(|id| id.as_str().cmp(image_id))
            .is_err()
        {
            return Err(DataError::UnknownImage {
                path: self.dir.clone(),
                image_id: image_id.to_string(),
            });
        }
        NpzFile::open(self.path_of(image_id))?.record(image_id)
    }
}

/// Writes `record` as a UNITER-style `.npz` file that [`NpzRegionDir`]
/// reads back: stored members `features` `[N, F]` and `norm_bb` `[N, 6]`
/// (`x1, y1, x2, y2, w, h`), and `conf` `[N]` and `soft_labels` `[N, C]`
/// when the record has them.
///
/// # Errors
/// [`DataError::RegionIo`] naming `path` when it cannot be written.
pub fn write_npz(path: &Path, record: &RegionRecord) -> Result<(), DataError> {
    let n = record.num_boxes;
    let norm_bb: Vec<f32> = record
        .boxes
        .iter()
        .flat_map(|&[x1, y1, x2, y2]| [x1, y1, x2, y2, x2 - x1, y2 - y1])
        .collect();
    let mut arrays = vec![
        (
            "features",
            npy_bytes(&record.features, &[n, record.feature_dim]),
        ),
        ("norm_bb", npy_bytes(&norm_bb, &[n, 6])),
    ];
    if let Some(conf) = &record.confidence {
        arrays.push(("conf", npy_bytes(conf, &[n])));
    }
    if let Some(soft) = &record.soft_labels {
        arrays.push(("soft_labels", npy_bytes(soft, &[n, record.num_classes])));
    }
    let write = || -> Result<(), Box<dyn std::error::Error>> {
        let mut zip = ZipWriter::new(BufWriter::new(File::create(path)?));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        for (name, bytes) in arrays {
            zip.start_file(format!("{name}.npy"), options)?;
            zip.write_all(&bytes)?;
        }
        zip.finish()?.flush()?;
        Ok(())
    };
    write().map_err(|e| DataError::RegionIo {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// One open `.npz` archive (a zip of `.npy` members, stored or deflated).
struct NpzFile {
    path: PathBuf,
    archive: ZipArchive<BufReader<File>>,
}

impl NpzFile {
    fn open(path: PathBuf) -> Result<Self, DataError> {
        let file = File::open(&path).map_err(|e| DataError::RegionIo {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let archive = ZipArchive::new(BufReader::with_capacity(1 << 16, file)).map_err(|e| {
            DataError::NpzArchive {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self { path, archive })
    }

    fn error(&self, key: &str, reason: impl Into<String>) -> DataError {
        DataError::NpzArray {
            path: self.path.clone(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// The array `key`, `None` if the archive has no such member.
    fn array(&mut self, key: &str) -> Result<Option<NpyArray>, DataError> {
        let path = &self.path;
        let error = |reason: String| DataError::NpzArray {
            path: path.clone(),
            key: key.to_string(),
            reason,
        };
        let mut bytes = Vec::new();
        match self.archive.by_name(&format!("{key}.npy")) {
            Ok(mut member) => {
                bytes.reserve(member.size() as usize);
                // The zip crate checks each member's CRC-32 as it reads.
                member
                    .read_to_end(&mut bytes)
                    .map_err(|e| error(e.to_string()))?;
            }
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(error(e.to_string())),
        }
        parse_npy(&bytes).map(Some).map_err(|r| self.error(key, r))
    }

    fn required(&mut self, key: &str) -> Result<NpyArray, DataError> {
        let members: Vec<&str> = self.archive.file_names().collect();
        let missing = format!("missing (the archive holds {members:?})");
        self.array(key)?.ok_or_else(|| self.error(key, missing))
    }

    fn disagrees(
        &self,
        key: &str,
        array: &NpyArray,
        features: &[usize],
        columns: &str,
    ) -> DataError {
        self.error(
            key,
            format!(
                "shape {:?} disagrees with features {features:?}: expected [{}{columns}]",
                array.shape, features[0]
            ),
        )
    }

    fn record(mut self, image_id: &str) -> Result<RegionRecord, DataError> {
        let features = self.required("features")?;
        let [num_boxes, feature_dim] = features.shape[..] else {
            return Err(self.error(
                "features",
                format!("shape {:?} is not [N, F]", features.shape),
            ));
        };
        if num_boxes == 0 || feature_dim == 0 {
            return Err(self.error("features", format!("shape {:?} is empty", features.shape)));
        }
        let norm_bb = self.required("norm_bb")?;
        let boxes = match norm_bb.shape[..] {
            [n, c] if n == num_boxes && c >= 4 => norm_bb
                .values
                .chunks_exact(c)
                .map(|b| [b[0], b[1], b[2], b[3]])
                .collect::<Vec<_>>(),
            _ => return Err(self.disagrees("norm_bb", &norm_bb, &features.shape, ", 6")),
        };
        if let Some(v) = boxes.iter().flatten().find(|v| !v.is_finite()) {
            return Err(self.error("norm_bb", format!("holds a non-finite value {v}")));
        }
        let confidence = match self.array("conf")? {
            Some(conf) if conf.values.len() == num_boxes && conf.shape.len() <= 2 => {
                Some(conf.values)
            }
            Some(conf) => return Err(self.disagrees("conf", &conf, &features.shape, "")),
            None => None,
        };
        let (soft_labels, num_classes) = match self.array("soft_labels")? {
            Some(soft) => match soft.shape[..] {
                [n, c] if n == num_boxes && c > 0 => (Some(soft.values), c),
                _ => return Err(self.disagrees("soft_labels", &soft, &features.shape, ", C")),
            },
            None => (None, 0),
        };
        Ok(RegionRecord {
            image_id: image_id.to_string(),
            num_boxes,
            feature_dim,
            features: features.values,
            // UNITER's boxes are clipped to the image already; clamping only
            // removes float16 rounding spill.
            boxes: boxes
                .into_iter()
                .map(|b| b.map(|v| v.clamp(0.0, 1.0)))
                .collect(),
            image_size: None,
            confidence,
            soft_labels,
            num_classes,
        })
    }
}
