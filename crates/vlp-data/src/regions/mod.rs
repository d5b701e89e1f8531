//! Region features from an object detector (bottom-up attention style), read
//! lazily from the formats users bring.
//!
//! - [`NpzRegionDir`]: a directory of per-image `.npz` files (UNITER's
//!   conversion).
//! - [`ButdTsv`]: one bottom-up-attention TSV file, indexed once by byte
//!   offset.
//!
//! Both implement [`RegionFeatureSource`] ([`open_regions`] picks by the
//! path; [`region_record`] finds a dataset sample's record; [`write_npz`]
//! writes one): opening a source reads only names
//! or offsets, and each [`RegionFeatureSource::get`] decodes one image, so a
//! loader worker's memory does not grow with the size of the data set.
//! [`RegionRecords`] walks a source in order, skipping and counting corrupt
//! records up to a limit. [`RegionBatch`] pads records into `[B, R, F]`
//! batches.

mod batch;
pub(crate) mod npy;
mod npz;
mod record;
mod tsv;

pub use batch::{RegionBatch, RegionTensors};
pub use npy::{npy_bytes, NpyElement};
pub use npz::{write_npz, NpzRegionDir};
pub use record::RegionRecord;
pub use tsv::ButdTsv;

use std::path::Path;
use std::sync::Arc;

use crate::DataError;

/// A region feature source shared by loader threads.
pub type SharedRegions = Arc<dyn RegionFeatureSource + Send>;

/// The region features at `path`: a folder of per-image `.npz` files, or
/// a BUTD TSV file.
///
/// # Errors
/// [`DataError::RegionIo`] when the folder or file cannot be read.
pub fn open_regions(path: &Path) -> Result<SharedRegions, DataError> {
    Ok(match path.is_dir() {
        true => Arc::new(NpzRegionDir::open(path)?),
        false => Arc::new(ButdTsv::open(path)?),
    })
}

/// The record of the sample `key` (its image id): the record named `key`,
/// else the one named by the key's file stem (a JSONL or CSV sample's key
/// is its image path: `images/000139.jpg` finds `000139`).
///
/// # Errors
/// The source's error for the key when neither name is in it, or the
/// record's decoding error.
pub fn region_record(
    source: &dyn RegionFeatureSource,
    key: &str,
) -> Result<RegionRecord, DataError> {
    match (
        source.get(key),
        Path::new(key).file_stem().and_then(|s| s.to_str()),
    ) {
        (Err(DataError::UnknownImage { .. }), Some(stem)) if stem != key => source.get(stem),
        (result, _) => result,
    }
}

/// A set of per-image region features, keyed by image id.
///
/// Implementors are `Sync`: one source serves several loader threads.
pub trait RegionFeatureSource: Sync {
    /// Number of records (indexed images).
    fn len(&self) -> usize;

    /// Whether the source has no record.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image ids in the source's order (directory order sorted by name for
    /// NPZ, file order for TSV).
    fn ids(&self) -> &[String];

    /// Decodes the record of `image_id`.
    fn get(&self, image_id: &str) -> Result<RegionRecord, DataError>;

    /// Problems found while indexing (a TSV line without columns, a
    /// repeated image id), built afresh on each call; [`RegionRecords`]
    /// counts them as corrupt records.
    fn index_errors(&self) -> Vec<DataError> {
        Vec::new()
    }

    /// Every record in [`Self::ids`] order, skipping up to `max_corrupt`
    /// corrupt ones.
    fn records(&self, max_corrupt: usize) -> RegionRecords<'_, Self>
    where
        Self: Sized,
    {
        RegionRecords::new(self, max_corrupt)
    }
}

/// The default number of corrupt records [`RegionRecords`] tolerates.
pub const DEFAULT_MAX_CORRUPT: usize = 100;

/// Iterator over the records of a source that skips corrupt ones.
///
/// A record that fails to decode is skipped and kept in [`Self::skipped`];
/// once more than `max_corrupt` records (index errors included) have failed,
/// the iterator yields [`DataError::TooManyCorruptRecords`] and ends. A few
/// bad images in a multi-gigabyte dump should not stop a run, but a wrong
/// format or a truncated copy, which corrupts everything, should stop it
/// early. `max_corrupt = 0` is strict: the first corrupt record is an error.
pub struct RegionRecords<'a, S: RegionFeatureSource> {
    source: &'a S,
    next: usize,
    max_corrupt: usize,
    skipped: Vec<DataError>,
    done: bool,
}

impl<'a, S: RegionFeatureSource> RegionRecords<'a, S> {
    /// Records of `source`, skipping at most `max_corrupt` unreadable ones.
    pub fn new(source: &'a S, max_corrupt: usize) -> Self {
        Self {
            source,
            next: 0,
            max_corrupt,
            skipped: source.index_errors(),
            done: false,
        }
    }

    /// Number of corrupt records met so far, index errors included.
    pub fn corrupt(&self) -> usize {
        self.skipped.len()
    }

    /// The errors of the corrupt records met so far, index errors first.
    pub fn skipped(&self) -> &[DataError] {
        &self.skipped
    }

    fn give_up(&mut self, count: usize, last: DataError) -> DataError {
        self.done = true;
        DataError::TooManyCorruptRecords {
            count,
            max: self.max_corrupt,
            last: Box::new(last),
        }
    }
}

impl<S: RegionFeatureSource> Iterator for RegionRecords<'_, S> {
    type Item = Result<RegionRecord, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.skipped.len() > self.max_corrupt {
            let count = self.skipped.len();
            if let Some(last) = self.skipped.pop() {
                return Some(Err(self.give_up(count, last)));
            }
        }
        while let Some(id) = self.source.ids().get(self.next) {
            self.next += 1;
            match self.source.get(id) {
                Ok(record) => return Some(Ok(record)),
                Err(error) if self.skipped.len() < self.max_corrupt => self.skipped.push(error),
                Err(error) => {
                    let count = self.skipped.len() + 1;
                    return Some(Err(self.give_up(count, error)));
                }
            }
        }
        self.done = true;
        None
    }
}
